"""The same seeds give the same results. That the claims measure the same numbers twice is checked
where it matters most, across processes: tests/test_ledger.py compares every ledger value of two
runs (serial shards, and the same claims under `pytest -n 2`) for equality."""

import dataclasses

from tests.conftest import OTHELLO_TINY
from verify.othello import findings as f
from verify.subjects import load_subject, read_manifest


def fresh():
    m = read_manifest(OTHELLO_TINY)
    return load_subject(dataclasses.replace(m, data=dataclasses.replace(m.data, size=100)), "cpu")


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
