"""Othello findings (docs/findings.md), re-checked on every subject that declares them."""

import pytest


@pytest.mark.claim("legal_move_rate")
def test_legal_move_rate(measurement, params, claim, verdict):
    """F5: the model's top-1 prediction is a legal move (the competence F3 and F4 rest on)."""
    verdict(claim.checks(measurement, params))


@pytest.mark.claim("feature_tracks_empty_square")
def test_feature_tracks_empty_square(measurement, params, claim, verdict):
    """F3: the declared SAE feature's activation tracks 'the declared square is empty' (state == 0),
    on held-out games, better than the best feature of a random SAE of the same shape."""
    verdict(claim.checks(measurement, params))


@pytest.mark.claim("neuron_fires_on_one_move")
def test_neuron_fires_on_one_move(measurement, params, claim, verdict):
    """F4: whenever the declared neuron fires (> 0), the current move is the declared square."""
    verdict(claim.checks(measurement, params))


@pytest.mark.claim("board_probe")
def test_board_probe(measurement, params, claim, verdict):
    """F6: a linear probe on the declared residual hook reads every square as empty / mine / theirs
    on held-out games, better than on a randomly initialised model and better than black / white."""
    verdict(claim.checks(measurement, params))
