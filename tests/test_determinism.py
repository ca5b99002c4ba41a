"""The same measurement twice gives the same numbers (seeded data, bootstrap and baselines)."""

import dataclasses

from tests.conftest import OTHELLO_TINY
from verify.othello import findings as f
from verify.othello.probe import measure_board_probe
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
    probe = a.manifest.claims["board_probe"]
    assert measure_board_probe(a, probe) == measure_board_probe(b, probe)


def test_sae_training_is_reproducible_from_its_seed(tmp_path):
    import torch
    from safetensors.torch import load_file

    from verify.cli.sae import train_sae

    subject = fresh()
    tokens = torch.from_numpy(f.split(subject, "selection").tokens[:50, :59])
    for run in ("a", "b"):
        train_sae(subject.model, tokens, "blocks.1.hook_resid_pre", tmp_path / run, d_sae=64, l1_coefficient=5.0,
                  training_tokens=20_000, batch_size=512, seed=3)
    a, b = (load_file(str(tmp_path / run / "sae_weights.safetensors")) for run in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
