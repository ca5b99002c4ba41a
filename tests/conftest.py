"""Shared fixtures for the library's tests: the embedded subject, loaded once, on less data."""

import copy
import dataclasses
from pathlib import Path

import pytest

from verify.subjects import Subject, load_subject, read_manifest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
OTHELLO_TINY = ROOT / "fixtures" / "subjects" / "othello-tiny.toml"


@pytest.fixture(scope="session")
def othello_tiny() -> Subject:
    """othello-tiny with 300 games per split: enough to separate a true claim from a false one."""
    m = read_manifest(OTHELLO_TINY)
    return load_subject(dataclasses.replace(m, data=dataclasses.replace(m.data, size=300)), "cpu")


def mutated(subject: Subject, model=None, saes=None) -> Subject:
    """A copy of `subject` with other weights; the games are shared (they depend on seeds only)."""
    return Subject(subject.manifest, model if model is not None else subject.model,
                   saes if saes is not None else dict(subject.saes), subject.device, dict(subject.cache))


def deepcopy_model(subject: Subject):
    return copy.deepcopy(subject.model)
