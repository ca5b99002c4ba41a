"""Shared fixtures for the library's tests: the embedded subject, loaded once, on less data."""

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from verify import registry
from verify.loaders import load_hooked_transformer
from verify.plugin import subjects
from verify.subjects import Subject, load_subject, read_manifest
from verify.verdicts import failures

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS_DIR = ROOT / "fixtures" / "subjects"
OTHELLO_TINY = SUBJECTS_DIR / "othello-tiny.toml"


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
    session = subjects(config)
    if name in session.manifests:
        return session.load(name)
    return load_subject(read_manifest(SUBJECTS_DIR / f"{name}.toml"), "cpu")


def mutated(subject: Subject, model=None, saes=None) -> Subject:
    """A copy of `subject` with other weights: games and puzzles are shared (they depend on seeds
    only), every weight-dependent result is recomputed."""
    return subject.with_weights(model, saes)


def failed_checks(subject: Subject, claim: str) -> list[str]:
    """The failed checks of the registered `claim` on `subject` with its manifest's parameters
    (empty: the claim holds)."""
    return [str(c) for c in failures(registry.get_claim(claim).check(subject, subject.manifest.claims[claim]))]


def own_failed_checks(subject: Subject, claim: str) -> list[str]:
    """The failed checks of the claim's own judgement, measured even where a precondition fails:
    what the claim would say if nothing guarded its assumptions."""
    c, params = registry.get_claim(claim), subject.manifest.claims[claim]
    return [str(x) for x in failures(c.judge(c.measure(subject, params), params))]


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
