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
