"""Othello findings F3, F4, F5 (shared/docs/FINDINGS.md), re-checked on every subject declaring them."""

import pytest

from verify.findings import othello as f


@pytest.mark.claim("legal_move_rate")
def test_legal_move_rate(subject, params, verdict):
    """F5: the model's top-1 prediction is a legal move (the competence F3 and F4 rest on)."""
    verdict(f.judge_legal_move_rate(f.measure_legal_move_rate(subject), params))


@pytest.mark.claim("feature_tracks_empty_square")
def test_feature_tracks_empty_square(subject, params, verdict):
    """F3: the declared SAE feature's activation tracks 'the declared square is empty' (state == 0),
    on held-out games, better than the best feature of a random SAE of the same shape."""
    verdict(f.judge_feature_emptiness(f.measure_feature_emptiness(subject, params), params))


@pytest.mark.claim("neuron_fires_on_one_move")
def test_neuron_fires_on_one_move(subject, params, verdict):
    """F4: whenever the declared neuron fires (> 0), the current move is the declared square."""
    verdict(f.judge_neuron_move(f.measure_neuron_move(subject, params), params))
