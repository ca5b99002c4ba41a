"""The same measurement twice gives the same numbers (seeded data, bootstrap and baselines)."""

import dataclasses

from conftest import OTHELLO_TINY
from verify.findings import othello as f
from verify.subjects import load_subject, read_manifest


def fresh():
    m = read_manifest(OTHELLO_TINY)
    return load_subject(dataclasses.replace(m, data=dataclasses.replace(m.data, size=100)), "cpu")


def test_claims_measure_the_same_twice():
    a, b = fresh(), fresh()
    params = a.manifest.claims["feature_tracks_empty_square"]
    assert f.measure_feature_emptiness(a, params) == f.measure_feature_emptiness(b, params)
    assert f.measure_legal_move_rate(a) == f.measure_legal_move_rate(b)
    neuron = a.manifest.claims["neuron_fires_on_one_move"]
    assert f.measure_neuron_move(a, neuron) == f.measure_neuron_move(b, neuron)
