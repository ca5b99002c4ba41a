"""What a pytest run in this folder sees, for the console tools (`verify subjects`, `verify
fidelity-floors`): pytest's own configuration and collection run in-process (`--collect-only`), so
the tools read the same ini options (verify_subjects_dir in pytest.ini, pyproject.toml, tox.ini or
setup.cfg), import the same conftest.py files and test modules, and load the same `verify.claims`
entry points, whose claims and domains they register, as `pytest` would. The manifests themselves
are left out of that run and checked afterwards one at a time by `check_manifest`, the checks the
plugin applies at collection (verify.subjects.SubjectSet), so a tool can report each one."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from verify.manifest import Manifest
from verify.subjects import read_manifest


@dataclass
class PytestView:
    folder: Path | None  # the subjects folder the run would read (None: the default one does not exist)
    subject_files: list[Path] = field(default_factory=list)
    exit_code: int = 0
    output: str = ""  # what pytest printed, for when it did not get through collection

    @property
    def manifests(self) -> list[Path]:
        from verify.subjects import manifest_paths

        return (manifest_paths(self.folder) if self.folder else []) + self.subject_files


class _Probe:
    """Takes the subjects folder from the run's own options and keeps the manifests out of it."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.files: list[Path] = []

    @pytest.hookimpl(tryfirst=True)  # before the verify plugin reads the manifests in its own sessionstart
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from verify import plugin
        from verify.subjects import SubjectSet

        self.folder = plugin.subjects_dir(session.config)
        self.files = list(session.config.getoption("--subject-file"))
        session.config.stash[plugin.SUBJECTS] = SubjectSet([], "cpu")  # checked one at a time afterwards


def pytest_view(args: list[str]) -> PytestView:
    """Run `pytest --collect-only ARGS` here, quietly; claims and domains it registers stay registered."""
    probe = _Probe()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *args], plugins=[probe])
    # 5: no tests collected (a folder of manifests without claim tests) is still a complete view
    return PytestView(probe.folder, probe.files, int(code) if int(code) != 5 else 0, out.getvalue())


def check_manifest(path: Path) -> Manifest:
    """The plugin's collection checks on one manifest (files, architecture, and every claim table
    against the claims registered by now): ManifestError where pytest would stop with a usage error."""
    return read_manifest(path, strict=True)
