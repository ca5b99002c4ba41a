"""The culture trainer's stages: a run cut into stages (--from-stage) ends with the weights of one
uninterrupted run, refuses to continue from unfinished stages, and the shipped model's record is
the recipe in CONFIG run to its end."""

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from verify.culture.tasks import generate_task
from verify.culture.data import TASKS
from verify.cli import train_culture_model as culture_model

SHIPPED = Path(__file__).resolve().parents[1] / "fixtures" / "culture-tiny"


@pytest.fixture
def tiny_recipe(monkeypatch):
    """CONFIG shrunk to a one-layer model and a few puzzles; generation in-process (no worker pool)."""
    cfg = copy.deepcopy(culture_model.CONFIG)
    cfg["model"].update(n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=32)
    cfg["stages"] = [{**stage, "train_per_task": 4, "epochs": 1, "warmup_steps": 2} for stage in cfg["stages"]]
    cfg.update(chunk=4, eval_per_task=2, batch=8, eval_every=2)
    monkeypatch.setattr(culture_model, "CONFIG", cfg)
    monkeypatch.setattr(culture_model, "generate", lambda per_task, seed, chunk, log: torch.cat(
        [generate_task(task, per_task, seed, culture_model.LAYOUT) for task in TASKS]))
    return cfg


def test_stages_run_one_at_a_time_equal_one_run(tiny_recipe, tmp_path, monkeypatch):
    culture_model.train(tmp_path / "whole", "cpu", minutes=60)
    with monkeypatch.context() as m:  # a recipe that stops after stage 1, as a run cut there would
        m.setitem(tiny_recipe, "stages", tiny_recipe["stages"][:1])
        culture_model.train(tmp_path / "staged", "cpu", minutes=60)
    culture_model.train(tmp_path / "staged", "cpu", minutes=60, from_stage=2)

    whole, staged = (load_file(str(tmp_path / run / "model.safetensors")) for run in ("whole", "staged"))
    assert whole.keys() == staged.keys() and all(torch.equal(whole[k], staged[k]) for k in whole)
    stages = json.loads((tmp_path / "staged" / "training.json").read_text())["stages"]
    assert [(st["stage"], st["stopped"]) for st in stages] == [(n, "all epochs done") for n in range(1, len(tiny_recipe["stages"]) + 1)]


def test_continuing_needs_the_earlier_stages_finished(tiny_recipe, tmp_path):
    with pytest.raises(SystemExit, match="training.json is missing"):
        culture_model.train(tmp_path, "cpu", minutes=60, from_stage=2)
    (tmp_path / "training.json").write_text(json.dumps({"stages": [{"stage": 1, "stopped": "time budget reached"}]}))
    with pytest.raises(SystemExit, match="have not all run to their end"):
        culture_model.train(tmp_path, "cpu", minutes=60, from_stage=2)
    with pytest.raises(SystemExit, match="CONFIG has stages 1..5"):
        culture_model.train(tmp_path, "cpu", minutes=60, from_stage=6)


def test_the_shipped_model_is_the_recipe_run_to_its_end():
    record = json.loads((SHIPPED / "training.json").read_text())
    assert record["config"] == json.loads(json.dumps(culture_model.CONFIG)), "CONFIG changed since culture-tiny was trained"
    assert [st["stopped"] for st in record["stages"]] == ["all epochs done"] * len(culture_model.CONFIG["stages"])
