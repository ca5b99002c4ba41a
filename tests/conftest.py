"""Shared fixtures for the library's tests: the embedded subject, loaded once, on less data."""

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from verify.loaders import load_hooked_transformer
from verify.plugin import registry
from verify.subjects import BUILTIN_SUBJECTS, Subject, load_subject, read_manifest
from verify.verdicts import failures

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
OTHELLO_TINY = ROOT / "fixtures" / "subjects" / "othello-tiny.toml"


@pytest.fixture(scope="session")
def othello_tiny() -> Subject:
    """othello-tiny with 300 games per split: enough to separate a true claim from a false one."""
    m = read_manifest(OTHELLO_TINY)
    return load_subject(dataclasses.replace(m, data=dataclasses.replace(m.data, size=300)), "cpu")


@pytest.fixture(scope="session")
def culture_tiny(request) -> Subject:
    """culture-tiny at its declared size (its thresholds allow for the sampling noise of that size)."""
    return session_subject(request.config, "culture-tiny")


def session_subject(config: pytest.Config, name: str) -> Subject:
    """The session's own loaded subject, shared with the claims (puzzles and clean results are made
    once); a separate load of the shipped manifest when --subject left it out of the session."""
    subjects = registry(config)
    if name in subjects.manifests:
        return subjects.load(name)
    return load_subject(read_manifest(BUILTIN_SUBJECTS / f"{name}.toml"), "cpu")


def mutated(subject: Subject, model=None, saes=None) -> Subject:
    """A copy of `subject` with other weights. Games and puzzles are shared (they depend on seeds
    only); results cached per model object (activations, clean verdicts) are recomputed."""
    return Subject(subject.manifest, model if model is not None else subject.model,
                   saes if saes is not None else dict(subject.saes), subject.device, dict(subject.cache))


def failed_checks(subject: Subject, claim: str, measure, judge) -> list[str]:
    """The failed checks of `claim` on `subject`, measured and judged (empty: the claim holds)."""
    params = subject.manifest.claims[claim]
    return [str(c) for c in failures(judge(measure(subject, params), params))]


def deepcopy_model(subject: Subject):
    return copy.deepcopy(subject.model)


def random_model(subject, seed: int = 1):
    torch.manual_seed(seed)
    m = subject.manifest
    fresh = load_hooked_transformer(m.dir / m.model.weights, m.dir / m.model.config, subject.device)
    for p in fresh.parameters():  # same architecture, weights re-drawn: an untrained model
        torch.nn.init.normal_(p, std=0.02) if p.dim() > 1 else torch.nn.init.zeros_(p)
    for name, p in fresh.named_parameters():
        if name.endswith(".w"):  # LayerNorm scales back to one
            torch.nn.init.ones_(p)
    return fresh.requires_grad_(False)
