"""The pytest plugin end to end, on pytester projects (in this process unless a run needs a fresh one): options, skips, failures and the report."""

import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import OTHELLO_TINY, ROOT

CLAIMS = str(ROOT / "claims" / "test_othello.py")
FIXTURES = ROOT / "fixtures" / "othello-tiny"


def manifest_copy(tmp_path: Path, name: str, weights_dir: Path, size: int = 300) -> Path:
    """othello-tiny's manifest renamed, with its files taken from `weights_dir` and no hashes."""
    lines = []
    for line in OTHELLO_TINY.read_text().splitlines():
        if line.startswith("sha256"):
            continue  # other weights, other hashes: a gate on a new checkpoint may leave them out
        line = line.replace('name = "othello-tiny"', f'name = "{name}"').replace('"../othello-tiny/', f'"{weights_dir}/')
        lines.append(f"size = {size}" if line.startswith("size =") else line)
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(pytester: pytest.Pytester, *args: str, env: dict | None = None, fresh: bool = False) -> pytest.RunResult:
    """pytest on `args` with this plugin, in this process (a second interpreter's imports cost seconds a
    run), or in a fresh one where the run needs what a process reads once: environment variables
    (`env`: huggingface_hub reads its cache paths on import) or a library's global settings that the
    run changes (`fresh`: a project's hypothesis profile)."""
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        how = pytester.runpytest_subprocess if env or fresh else pytester.runpytest_inprocess
        return how("-p", "no:cacheprovider", "--rootdir", str(pytester.path), *args)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_subject_file_checks_a_copy_the_same_way(pytester, tmp_path):
    path = manifest_copy(tmp_path, "tiny-copy", FIXTURES)
    result = run(pytester, CLAIMS, "--subject-file", str(path), "--subject", "tiny-copy", "--device", "cpu")
    result.assert_outcomes(passed=3, xfailed=1)  # F4, declared absent on othello-tiny
    result.stdout.fnmatch_lines(["*claims: measured against thresholds*", "*PASS top-1 prediction is a legal move = *",
                                 "*claims executed: 4 (3 held, 0 failed, 1 expected absent)*"])


def test_subject_file_with_other_weights_fails_the_claims(pytester, tmp_path):
    weights = tmp_path / "random"
    shutil.copytree(FIXTURES, weights)
    from safetensors.torch import load_file

    state = load_file(str(FIXTURES / "model.safetensors"))
    gen = torch.Generator().manual_seed(0)
    save_file({k: (torch.randn(v.shape, generator=gen) * 0.02 if v.dim() > 1 else v) for k, v in state.items()},
              str(weights / "model.safetensors"))
    path = manifest_copy(tmp_path, "tiny-random", weights)
    result = run(pytester, CLAIMS, "--subject-file", str(path), "--subject", "tiny-random", "--device", "cpu")
    # every claim fails on the legal-move rate it rests on, before its SAE is measured (on an untrained
    # model loss recovered is not even measurable: tests/test_negative_controls_othello.py); F4,
    # declared absent, fails as expected
    result.assert_outcomes(failed=3, xfailed=1)
    result.stdout.fnmatch_lines(["*FAIL precondition: top-1 prediction is a legal move*",
                                 "*claims executed: 4 (0 held, 3 failed, 1 expected absent); not measurable (errors): 0;*"])


def hub_manifest(tmp_path: Path) -> Path:
    text = OTHELLO_TINY.read_text().replace('name = "othello-tiny"', 'name = "tiny-on-hub"')
    text = text.replace('weights = "../othello-tiny/model.safetensors"', 'weights = "hf://verify-test/absent/model.safetensors"')
    text = text.replace('config = "../othello-tiny/model_config.json"', 'config = "hf://verify-test/absent/model_config.json"')
    text = text.replace('path = "../othello-tiny/sae-resid"', 'path = "hf://verify-test/absent/sae-resid/"')
    path = tmp_path / "hub.toml"
    path.write_text(text)
    return path


def test_offline_hub_subject_is_skipped_with_its_reason(pytester, tmp_path):
    result = run(pytester, CLAIMS, "--subject-file", str(hub_manifest(tmp_path)), "--subject", "tiny-on-hub", "-rs",
                 env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(["*skipped for a missing subject: 4*"])
    result.stdout.fnmatch_lines(["*not available offline: verify-test/absent/model.safetensors*"])


def test_require_subjects_turns_the_skip_into_a_failure(pytester, tmp_path):
    result = run(pytester, CLAIMS, "--subject-file", str(hub_manifest(tmp_path)), "--subject", "tiny-on-hub",
                 "--require-subjects", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(["*not available offline*--require-subjects*"])


def test_unknown_subject_is_a_usage_error(pytester):
    result = run(pytester, CLAIMS, "--subject", "no-such-subject")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown subject 'no-such-subject'*"])


def test_help_documents_the_options(pytester):
    result = run(pytester, "--help")
    for option in ("--subject=NAME", "--subject-file=PATH", "--subjects-dir=DIR", "--require-subjects", "--device", "verify_subjects_dir"):
        result.stdout.fnmatch_lines([f"*{option}*"])


def test_subjects_dir_from_the_ini_file(pytester):
    """A project names its subjects folder once, in its ini file; a missing folder named there is an error."""
    ini = pytester.makeini(f"[pytest]\nverify_subjects_dir = {OTHELLO_TINY.parent}\n")
    result = run(pytester, CLAIMS, "-c", str(ini), "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_legal_move_rate[[]othello-tiny[]]*"])
    ini = pytester.makeini("[pytest]\nverify_subjects_dir = nowhere\n")
    result = run(pytester, CLAIMS, "-c", str(ini), "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*subjects folder *nowhere does not exist*"])
