"""Each Othello claim holds on othello-tiny and fails where its finding is false."""

import copy

import torch

from verify import registry
import dataclasses

import pytest

from tests.conftest import deepcopy_model, failed_checks, mutated, own_failed_checks, random_model
from verify.interventions import random_like

CLAIMS = [name for name, c in registry.claims().items() if c.domain == "othello"]


def verdict(subject, claim: str) -> list[str]:
    return failed_checks(subject, claim)


def permute_features(sae, seed: int = 0):
    """The same SAE with its features in another order: every feature index names another feature."""
    perm = torch.randperm(sae.cfg.d_sae, generator=torch.Generator().manual_seed(seed))
    out = random_like(sae, 0)
    out.load_state_dict({"W_enc": sae.W_enc[:, perm], "b_enc": sae.b_enc[perm], "W_dec": sae.W_dec[perm], "b_dec": sae.b_dec})
    return out


def test_the_embedded_subject_declares_every_othello_claim(othello_tiny):
    assert sorted(othello_tiny.manifest.claims) == sorted(CLAIMS)


def test_claims_hold_on_the_embedded_subject(othello_tiny):
    for claim in CLAIMS:
        assert verdict(othello_tiny, claim) == [], claim


def test_legal_move_rate_fails_on_a_random_model(othello_tiny):
    assert verdict(mutated(othello_tiny, model=random_model(othello_tiny)), "legal_move_rate")


def test_feature_claim_fails_on_a_random_sae(othello_tiny):
    bad = mutated(othello_tiny, saes={"resid": random_like(othello_tiny.saes["resid"], seed=7)})
    assert verdict(bad, "feature_tracks_empty_square")


def test_feature_claim_fails_with_features_permuted(othello_tiny):
    bad = mutated(othello_tiny, saes={"resid": permute_features(othello_tiny.saes["resid"])})
    assert verdict(bad, "feature_tracks_empty_square")


def test_feature_claim_fails_on_a_random_model(othello_tiny):
    assert verdict(mutated(othello_tiny, model=random_model(othello_tiny)), "feature_tracks_empty_square")


def test_neuron_claim_fails_with_layer0_neurons_permuted(othello_tiny):
    model = deepcopy_model(othello_tiny)
    mlp = model.blocks[0].mlp
    perm = torch.randperm(mlp.W_in.shape[1], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the function is unchanged; only the neuron's index moves
        mlp.W_in.copy_(mlp.W_in[:, perm])
        mlp.b_in.copy_(mlp.b_in[perm])
        mlp.W_out.copy_(mlp.W_out[perm])
    assert verdict(mutated(othello_tiny, model=model), "neuron_fires_on_one_move")


def test_neuron_claim_fails_on_a_random_model(othello_tiny):
    assert verdict(mutated(othello_tiny, model=random_model(othello_tiny)), "neuron_fires_on_one_move")


def test_probe_claim_fails_on_a_random_model(othello_tiny):
    bad = mutated(othello_tiny, model=random_model(othello_tiny))
    assert any("FAIL precondition: top-1 prediction is a legal move" in c for c in verdict(bad, "board_probe"))
    own = own_failed_checks(bad, "board_probe")
    assert any("FAIL linear probe accuracy" in c for c in own) and any("FAIL margin over" in c for c in own), own


def test_probe_claim_fails_when_attention_sees_no_history(othello_tiny):
    """Without attention output no position learns the moves before it, so no board state exists
    to read beyond the current move (the model still computes, from one token at a time)."""
    model = deepcopy_model(othello_tiny)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.W_O.zero_()
            block.attn.b_O.zero_()
    bad = mutated(othello_tiny, model=model)
    assert verdict(bad, "board_probe")
    own = own_failed_checks(bad, "board_probe")
    assert any("FAIL linear probe accuracy" in c for c in own), own


def test_feature_claim_fails_when_the_sae_does_not_reconstruct(othello_tiny):
    """A zeroed decoder leaves the encoder, and so the feature's activations, as they were: the
    claim's own numbers are unchanged, and only the fidelity precondition stops it."""
    sae = copy.deepcopy(othello_tiny.saes["resid"])
    with torch.no_grad():
        sae.W_dec.zero_()
    bad = mutated(othello_tiny, saes={"resid": sae})
    assert own_failed_checks(bad, "feature_tracks_empty_square") == []
    failed = verdict(bad, "feature_tracks_empty_square")
    assert any("FAIL precondition: SAE resid explained variance" in c for c in failed), failed


def test_feature_claim_fails_when_a_middle_layer_is_broken(othello_tiny):
    """Layer 2's MLP writing scrambled outputs: the model no longer plays, and the feature claim
    (whose SAE reads layer 3) fails through what it rests on."""
    model = deepcopy_model(othello_tiny)
    perm = torch.randperm(model.cfg.d_mlp, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.blocks[2].mlp.W_out.copy_(model.blocks[2].mlp.W_out[perm])
    failed = verdict(mutated(othello_tiny, model=model), "feature_tracks_empty_square")
    assert any("FAIL precondition: top-1 prediction is a legal move" in c for c in failed), failed


def test_feature_claim_with_too_few_cases_is_not_measurable(othello_tiny):
    claim = registry.get_claim("feature_tracks_empty_square")
    params = dataclasses.replace(othello_tiny.manifest.claims["feature_tracks_empty_square"], min_cases=10**9)
    with pytest.raises(ValueError, match=r"cases of D2 \(min_cases 1000000000\)"):
        claim.check(othello_tiny, params)
