"""Reading checkpoint files with errors that name the file and what is wrong."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used as its manifest says."""


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: cannot read as JSON: {err}") from None


def check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    for name, tensor in tensors.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: tensor {name!r} contains NaN or infinite values")


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises several types for bad files
        raise CheckpointError(f"{path}: not a readable safetensors file ({err}); truncated or corrupt?") from None
    check_finite(tensors, path)
    return tensors


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")  # "Unsupported global: GLOBAL x.y", "unsupported GLOBAL x.y whose module ..."


def torch_load_problem(err: Exception) -> str:
    """torch's refusal in one line: the pickle global it refused, by name, when it names one."""
    text = _ANSI.sub("", str(err))
    found = _GLOBAL.search(text)
    if found:
        return f"it needs the pickle global {found.group(1)}, which a weights-only load refuses (it could run code)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0].split(". ")[0] if lines else type(err).__name__


def read_torch(path: Path, mmap: bool = False):
    """torch.load with weights_only=True: tensors and plain containers only, never arbitrary code."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: refused or unreadable as a weights-only torch file: {torch_load_problem(err)}") from None


def hooked_transformer_config(config_path: Path) -> dict:
    """The HookedTransformerConfig arguments stored beside safetensors weights."""
    cfg = read_json(config_path)
    missing = [k for k in ("n_layers", "d_model", "d_head", "n_heads", "d_mlp", "d_vocab", "n_ctx") if k not in cfg]
    if missing:
        raise CheckpointError(f"{config_path}: missing architecture keys {missing}")
    return cfg


def meta_model(cfg: dict):
    """A HookedTransformer of this architecture on torch's meta device: its hook points and shapes,
    without allocating or reading any weights."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    try:
        with torch.device("meta"):
            return HookedTransformer(HookedTransformerConfig(**{**cfg, "device": "meta"}))
    except (TypeError, ValueError, AssertionError) as err:
        raise CheckpointError(f"not a valid HookedTransformer config: {err}") from None


def load_state_dict_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}  # masks etc. that the model builds itself
    state = {**{k: v for k, v in expected.items() if k in buffers and k not in state}, **state}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the architecture: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"{path}: {name} has shape {tuple(tensor.shape)}, the architecture needs {tuple(expected[name].shape)}")
    check_finite({k: v for k, v in state.items() if k not in buffers}, path)  # IGNORE buffers are -inf by design
    model.load_state_dict(state)


def sae_lens_config(folder: Path) -> dict:
    return read_json(Path(folder) / "cfg.json")
