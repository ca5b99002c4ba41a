"""Each culture claim holds on culture-tiny and fails where its finding is false."""

import torch

from verify import registry
import dataclasses

import pytest

from tests.conftest import deepcopy_model, failed_checks, mutated, own_failed_checks, random_model
from verify.interventions import shuffled_decoder

CLAIMS = [name for name, c in registry.claims().items() if c.domain == "culture"]


def verdict(subject, claim: str) -> list[str]:
    return failed_checks(subject, claim)


def silenced(subject, hook: str):
    """A copy of the model whose `hook` output is always zero: ablating it can change nothing."""
    model = deepcopy_model(subject)
    _, layer, point = hook.split(".")
    block = model.blocks[int(layer)]
    weights = {"hook_mlp_out": (block.mlp.W_out, block.mlp.b_out), "hook_attn_out": (block.attn.W_O, block.attn.b_O)}[point]
    with torch.no_grad():
        for w in weights:
            w.zero_()
    return model


def test_the_embedded_subject_declares_every_culture_claim(culture_tiny):
    assert sorted(culture_tiny.manifest.claims) == sorted(CLAIMS)


def test_claims_hold_on_the_embedded_subject(culture_tiny):
    for claim in CLAIMS:
        assert verdict(culture_tiny, claim) == [], claim


def test_solved_rate_fails_on_a_random_model(culture_tiny):
    failed = verdict(mutated(culture_tiny, model=random_model(culture_tiny)), "solved_rate")
    assert len(failed) == len(culture_tiny.manifest.claims["solved_rate"].tasks), failed  # every claimed task


def test_ablation_claim_fails_on_a_random_model(culture_tiny):
    assert verdict(mutated(culture_tiny, model=random_model(culture_tiny)), "ablation_breaks_one_task")


def test_ablation_claim_fails_when_the_hook_carries_nothing(culture_tiny):
    hook = culture_tiny.manifest.claims["ablation_breaks_one_task"].hook
    bad = mutated(culture_tiny, model=silenced(culture_tiny, hook))
    assert verdict(bad, "ablation_breaks_one_task")  # the silenced model also solves less: its precondition fails
    own = own_failed_checks(bad, "ablation_breaks_one_task")
    assert any("FAIL broken by zeroing" in c for c in own), own


def test_splice_claim_fails_with_a_shuffled_dictionary(culture_tiny):
    name = culture_tiny.manifest.claims["sae_splice_restores"].sae
    bad = mutated(culture_tiny, saes={name: shuffled_decoder(culture_tiny.saes[name], seed=7)})
    failed = verdict(bad, "sae_splice_restores")  # a dictionary that does not reconstruct: the precondition says so
    assert any(f"FAIL precondition: SAE {name} explained variance" in c for c in failed), failed
    own = own_failed_checks(bad, "sae_splice_restores")  # and the claim's own checks fail too
    assert any("FAIL restored by" in c for c in own) and any("FAIL splice - clean" in c for c in own), own


def test_splice_claim_with_too_few_broken_puzzles_is_not_measurable(culture_tiny):
    claim = registry.get_claim("sae_splice_restores")
    params = dataclasses.replace(culture_tiny.manifest.claims["sae_splice_restores"], min_cases=10_000)
    with pytest.raises(ValueError, match=r"breaks \d+ translate puzzles \(min_cases 10000\): too few"):
        claim.check(culture_tiny, params)
