"""Building a HookedTransformer from plain config and saving it as the embedded subjects ship it."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def build_model(model_cfg: dict, device: str):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    return HookedTransformer(HookedTransformerConfig(**model_cfg, device=device))


def save_checkpoint(model, out: Path, model_cfg: dict, record: dict) -> None:
    """model.safetensors (parameters only: buffers are rebuilt on load), model_config.json, training.json."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.named_parameters()}, out / "model.safetensors")
    (out / "model_config.json").write_text(json.dumps(model_cfg, indent=2) + "\n")
    (out / "training.json").write_text(json.dumps({**record, "torch": torch.__version__}, indent=2) + "\n")
