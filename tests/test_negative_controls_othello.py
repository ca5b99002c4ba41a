"""Each Othello claim holds on othello-tiny and fails where its finding is false."""

import torch

from tests.conftest import deepcopy_model, failed_checks, mutated, random_model
from verify.activations import random_like
from verify.findings import othello as f

CLAIMS = {
    "legal_move_rate": (f.measure_legal_move_rate, f.judge_legal_move_rate),
    "feature_tracks_empty_square": (f.measure_feature_emptiness, f.judge_feature_emptiness),
    "neuron_fires_on_one_move": (f.measure_neuron_move, f.judge_neuron_move),
}


def verdict(subject, claim: str) -> list[str]:
    return failed_checks(subject, claim, *CLAIMS[claim])


def permute_features(sae, seed: int = 0):
    """The same SAE with its features in another order: every feature index names another feature."""
    perm = torch.randperm(sae.cfg.d_sae, generator=torch.Generator().manual_seed(seed))
    out = random_like(sae, 0)
    out.load_state_dict({"W_enc": sae.W_enc[:, perm], "b_enc": sae.b_enc[perm], "W_dec": sae.W_dec[perm], "b_dec": sae.b_dec})
    return out


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
