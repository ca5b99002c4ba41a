"""The console tools see what pytest sees (#22 item 5): `verify subjects` reads the subjects folder
from the ini file, the claims a conftest.py registers, and refuses exactly the manifests pytest's
collection refuses (one code path: verify.collection)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "own-claim"
TINY = ROOT / "fixtures" / "othello-tiny"

# verify subjects first (a fresh process: it must register the conftest's claim itself), then pytest,
# for each manifest alone; one process for all, so the test takes seconds, not a minute
AGREE = r'''
import contextlib, io, json, sys
import pytest
from verify.cli import subjects
out = []
for args in json.loads(sys.argv[1]):
    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
        tool = subjects.main(args)
        listing = text.getvalue()
        code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *args])
    out.append({"args": args, "tool": tool, "listing": listing, "pytest": int(code), "pytest_output": text.getvalue()[len(listing):]})
print("RESULT" + json.dumps(out))
'''

BAD = {
    "unknown-loader": ('loader = "nonesuch"', "unknown loader 'nonesuch'"),
    "missing-config": ('loader = "hooked_transformer"\nweights = "WEIGHTS"', "missing key 'config'"),
    "missing-hook": ('loader = "hooked_transformer"\nweights = "WEIGHTS"\nconfig = "CONFIG"', "the model has no hook point"),
    "unknown-claim": ('loader = "hooked_transformer"\nweights = "WEIGHTS"\nconfig = "CONFIG"', "unknown claim"),
}


def project(tmp_path: Path) -> Path:
    """The README's own-claim example (pytest.ini: verify_subjects_dir = subjects; its claim in conftest.py),
    and one folder per bad manifest."""
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root)
    manifest = root / "subjects" / "tiny.toml"
    manifest.write_text(manifest.read_text().replace("../../../fixtures/", f"{ROOT / 'fixtures'}/"))
    for name, (model, _) in BAD.items():
        text = manifest.read_text()
        model_table = text[text.index("[model]"):text.index("[data]")]
        text = text.replace(model_table, "[model]\n" + model.replace("WEIGHTS", str(TINY / "model.safetensors"))
                            .replace("CONFIG", str(TINY / "model_config.json")) + "\n\n")
        if name == "missing-hook":
            text = text.replace('hook = "blocks.2.hook_resid_post"', 'hook = "blocks.9.hook_resid_post"')
        if name == "unknown-claim":
            text = text.replace("[claims.residual_norm]", "[claims.nonesuch]")
        (root / "cases" / name).mkdir(parents=True)
        (root / "cases" / name / "x.toml").write_text(text)
    (root / "empty").mkdir()
    return root


def agree(cwd: Path, cases: list[list[str]]) -> list[dict]:
    result = subprocess.run([sys.executable, "-c", AGREE, json.dumps(cases)], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "RESULT" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.split("RESULT", 1)[1])


def test_verify_subjects_and_pytest_agree_on_every_manifest(tmp_path):
    root = project(tmp_path)
    cases = [[], *([f"--subjects-dir=cases/{name}"] for name in BAD)]
    cases.append([f"--subjects-dir={ROOT / 'fixtures' / 'subjects'}"])  # the shipped folder, whole
    cases += [["--subjects-dir=empty", f"--subject-file={path}"] for path in sorted((ROOT / "tests").rglob("*.toml"))]
    results = agree(root, cases)
    first = results[0]  # the ini's folder and the conftest's claim, in a process where nothing registered it before
    assert first["tool"] == 0 and first["pytest"] == 0, first
    assert "my-othello [othello] available" in first["listing"], first["listing"]
    assert "claim residual_norm (definition v1)" in first["listing"]
    for (name, (_, error)), found in zip(BAD.items(), results[1:]):
        assert (found["tool"], found["pytest"]) == (2, 4), (name, found)
        assert "REFUSED" in found["listing"] and error in found["listing"], (name, found["listing"])
        assert error in found["pytest_output"], (name, found["pytest_output"])
    shipped = results[1 + len(BAD)]
    assert (shipped["tool"], shipped["pytest"]) == (0, 0) and "REFUSED" not in shipped["listing"], shipped
    for found in results[2 + len(BAD):]:  # every manifest under tests/, alone: accepted by both, or refused by both
        assert (found["tool"], found["pytest"]) in ((0, 0), (2, 4)), found
        assert ("REFUSED" in found["listing"]) is (found["tool"] == 2), found


def floors_tool(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "verify.cli.fidelity_floors", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def test_fidelity_floors_reads_the_manifest_itself_with_the_conftest_claims(tmp_path):
    """A claim registered in conftest.py is known (it reads no SAE: no floor to write); an error names
    the manifest, not a temporary copy of it."""
    root = project(tmp_path)
    result = floors_tool(root, "subjects/tiny.toml")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    result = floors_tool(root, "cases/unknown-claim/x.toml")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"{(root / 'cases' / 'unknown-claim' / 'x.toml').resolve()}: [claims.nonesuch]: unknown claim" in result.stderr


def test_fidelity_floors_prints_a_release_s_published_numbers(tmp_path):
    from tests.test_pretrained_replica import SAE_TABLE, manifest, write_gpt2_replica, write_jb_release_replica

    write_gpt2_replica(tmp_path / "hf" / "hub")
    write_jb_release_replica(tmp_path / "hf" / "hub")
    path = manifest(tmp_path, extra=SAE_TABLE)
    result = floors_tool(ROOT, str(path), env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[saes.res] published by SAELens (gpt2-small-res-jb blocks.1.hook_resid_pre): variance_explained = 0.999, l0 = 10" \
        in result.stdout
