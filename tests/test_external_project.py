"""The plugin from another repository: a project with only its own manifest and its own claim
(examples/own-claim, the README's "Write your own claim") runs against a wheel of this package
installed apart from the source tree, and its claim executes, prints its checks and can fail."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "own-claim"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """This package built as a wheel (from a copy of the sources, so nothing is written into the
    repository) and installed, without dependencies, into a folder of its own."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(source)], check=True)
    wheel = next((work / "dist").glob("verify-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(work / "site"), str(wheel)], check=True)
    return work / "site"


def project(tmp_path: Path, min_norm: float) -> Path:
    """A copy of the example project whose manifest points at the shipped othello-tiny weights."""
    shutil.copytree(EXAMPLE, tmp_path / "project")
    manifest = tmp_path / "project" / "subjects" / "tiny.toml"
    text = manifest.read_text().replace("../../../fixtures/", f"{ROOT / 'fixtures'}/").replace("min_norm = 10.0", f"min_norm = {min_norm}")
    manifest.write_text(text)
    return tmp_path / "project"


def run_pytest(site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    check = "import verify, sys; assert verify.__file__.startswith(sys.argv[1]), verify.__file__"
    subprocess.run([sys.executable, "-c", check, str(site)], env=env, cwd=cwd, check=True)  # the wheel, not the sources
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--device", "cpu"], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_own_claim_runs_against_the_installed_wheel(installed, tmp_path):
    result = run_pytest(installed, project(tmp_path, min_norm=10.0))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS mean residual norm at blocks.2.hook_resid_post = " in result.stdout
    assert "claims executed: 1 (1 held, 0 failed)" in result.stdout


def test_own_claim_fails_where_it_does_not_hold(installed, tmp_path):
    result = run_pytest(installed, project(tmp_path, min_norm=30.0))  # the norm is 28
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert "FAIL mean residual norm at blocks.2.hook_resid_post = " in result.stdout
    assert "claims executed: 1 (0 held, 1 failed)" in result.stdout


def readme_manifest_project(tmp_path: Path, moved: bool) -> Path:
    """The README's "Pin a finding about your own model" project (a pytest.ini and one manifest, no
    Python) pointing at induction-tiny's files; `moved`: every claim's bound set past its value."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Pin a finding about your own model"):]
    manifest = section[section.index("```toml\n") + len("```toml\n"): section.index("\n```\n")]
    manifest = manifest.replace('"model/', f'"{(ROOT / "fixtures" / "induction-tiny").as_posix()}/')
    if moved:  # each past its value: head 0.1's score 0.43, scores < 1, nats lost < 5, L0 > 0.5
        for old, new in (("max_score = 0.48", "max_score = 0.40"), ("min_score = 0.94", "min_score = 1.0"),
                         ("min_effect = 0.32", "min_effect = 5.0"), ("max_l0 = ", "min_l0 = 0.0\nmax_l0 = 0.5\n# was ")):
            assert old in manifest, old
            manifest = manifest.replace(old, new)
    project = tmp_path / "manifest-only"
    (project / "subjects").mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\nverify_subjects_dir = subjects\n")
    (project / "subjects" / "mine.toml").write_text(manifest)
    return project


@pytest.mark.parametrize("moved", [False, True], ids=["as-written", "bounds-moved"])
def test_manifest_only_project_runs_against_the_installed_wheel(installed, tmp_path, moved):
    """No Python in the project: the wheel's plugin collects the manifest's four claims (two named
    instances of attention_pattern, an ablation, an SAE's quality); each holds as written and each
    fails once its bound is moved past the measured value."""
    result = run_pytest(installed, readme_manifest_project(tmp_path, moved))
    expected = pytest.ExitCode.TESTS_FAILED if moved else pytest.ExitCode.OK
    assert result.returncode == expected, result.stdout + result.stderr
    assert ("claims executed: 4 (0 held, 4 failed)" if moved else "claims executed: 4 (4 held, 0 failed)") in result.stdout
    assert "subjects/mine.toml::test_attention_pattern[my-model/induction_1_0]" in result.stdout
