"""The embedded subjects' format: bad files are refused with the file and the problem named."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import ROOT
from verify import loaders

TINY = ROOT / "fixtures" / "othello-tiny"


@pytest.fixture
def copy(tmp_path):
    for name in ("model.safetensors", "model_config.json"):
        shutil.copy(TINY / name, tmp_path / name)
    return tmp_path


def test_loads_and_predicts_legal_moves_shape(copy):
    model = loaders.load_hooked_transformer(copy / "model.safetensors", copy / "model_config.json", "cpu")
    assert model(torch.ones(1, 59, dtype=torch.long)).shape == (1, 59, 61)


def test_truncated_weights(copy):
    path = copy / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(loaders.CheckpointError, match="model.safetensors: not a readable safetensors file"):
        loaders.load_hooked_transformer(path, copy / "model_config.json", "cpu")


def test_nan_weights(copy):
    path = copy / "model.safetensors"
    state = load_file(str(path))
    state["embed.W_E"][3, 4] = float("nan")
    save_file(state, str(path))
    with pytest.raises(loaders.CheckpointError, match="'embed.W_E' contains NaN"):
        loaders.load_hooked_transformer(path, copy / "model_config.json", "cpu")


def test_config_that_does_not_fit_the_weights(copy):
    cfg = json.loads((copy / "model_config.json").read_text())
    (copy / "model_config.json").write_text(json.dumps({**cfg, "d_mlp": cfg["d_mlp"] * 2}))
    with pytest.raises(loaders.CheckpointError, match="model.safetensors: blocks.0.mlp.W_in has shape"):
        loaders.load_hooked_transformer(copy / "model.safetensors", copy / "model_config.json", "cpu")


def test_config_missing_architecture_keys(copy):
    (copy / "model_config.json").write_text("{}")
    with pytest.raises(loaders.CheckpointError, match="model_config.json: missing architecture keys"):
        loaders.load_hooked_transformer(copy / "model.safetensors", copy / "model_config.json", "cpu")
