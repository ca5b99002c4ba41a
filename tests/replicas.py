"""Replicas of the real checkpoints' files: random weights with the keys, shapes and file formats of
the published ones, so the loaders' tests and the real-shape benchmarks read them through the same
code paths as the real files (which cannot be downloaded here)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

# --- culture GPT .pth tuple ------------------------------------------------------------------------

SMALL = {"n_layers": 2, "d_model": 64, "n_heads": 4, "d_head": 16, "d_mlp": 128, "d_vocab": 15}


def culture_state(cfg=SMALL, seed=0) -> dict[str, torch.Tensor]:
    """A random state dict with the exact keys and shapes of tommyp111/culture-gpt."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, s=0.1: torch.randn(*shape, generator=g) * s  # noqa: E731
    D, H, dh, M, V = cfg["d_model"], cfg["n_heads"], cfg["d_head"], cfg["d_mlp"], cfg["d_vocab"]
    state = {"embedding.0.f.0.weight": r(V, D, s=1.0), "readout.f.weight": r(V, D), "readout.f.bias": r(V)}
    for layer in range(cfg["n_layers"]):
        a, m = f"trunk.{2 * layer}.f", f"trunk.{2 * layer + 1}.f.f"
        state |= {f"{a}.0.f.0.weight": 1 + r(D), f"{a}.0.f.0.bias": r(D),
                  f"{a}.1.w_q": r(H, dh, D), f"{a}.1.w_k": r(H, dh, D), f"{a}.1.w_v": r(H, dh, D), f"{a}.1.w_o": r(H * dh, D),
                  f"{m}.0.weight": 1 + r(D), f"{m}.0.bias": r(D), f"{m}.2.weight": r(M, D), f"{m}.2.bias": r(M),
                  f"{m}.4.weight": r(D, M), f"{m}.4.bias": r(D)}
    return state


# --- sae_lens folders (culture SAE, sae_lens 3.14 layout) ------------------------------------------

def write_sae_folder(folder: Path, d_in=16, d_sae=32, apply_b_dec_to_input=False, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    weights = {"W_enc": torch.randn(d_in, d_sae, generator=g), "b_enc": torch.randn(d_sae, generator=g),
               "W_dec": torch.randn(d_sae, d_in, generator=g), "b_dec": torch.randn(d_in, generator=g)}
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"architecture": "standard", "d_in": d_in, "d_sae": d_sae, "dtype": "float32", "device": "cuda",
           "model_name": "culture-gpt-0", "hook_name": "blocks.8.hook_mlp_out", "hook_layer": 8, "hook_head_index": None,
           "activation_fn_str": "relu", "activation_fn_kwargs": {}, "apply_b_dec_to_input": apply_b_dec_to_input,
           "finetuning_scaling_factor": False, "sae_lens_training_version": "3.14.0", "prepend_bos": True,
           "dataset_path": "tommyp111/culture-puzzles-1M", "context_size": 405, "normalize_activations": "none"}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file(weights, str(folder / "sae_weights.safetensors"))
    return weights


# --- legacy Othello SAE .pt (pickled config class) --------------------------------------------------

@contextlib.contextmanager
def legacy_config_class():
    """A stand-in for sae_training.config.LanguageModelSAERunnerConfig, importable only inside the block
    (while writing): a reader must not need it."""
    pkg, mod = types.ModuleType("sae_training"), types.ModuleType("sae_training.config")

    @dataclasses.dataclass
    class LanguageModelSAERunnerConfig:
        hook_point: str = "blocks.6.hook_resid_pre"
        d_in: int = 16
        l1_coefficient: float = 2e-4
        device: str = "cuda"

    LanguageModelSAERunnerConfig.__module__ = "sae_training.config"
    LanguageModelSAERunnerConfig.__qualname__ = "LanguageModelSAERunnerConfig"
    mod.LanguageModelSAERunnerConfig = LanguageModelSAERunnerConfig
    sys.modules["sae_training"], sys.modules["sae_training.config"] = pkg, mod
    try:
        yield LanguageModelSAERunnerConfig
    finally:
        sys.modules.pop("sae_training", None)
        sys.modules.pop("sae_training.config", None)


def write_legacy_sae(artifact: Path, d_in=16, d_sae=32, hook_point="blocks.6.hook_resid_pre", seed=0) -> dict:
    """An andyrdt wandb artifact folder: final_sparse_autoencoder.pt = torch.save({"cfg": <the pickled
    config class>, "state_dict": {W_enc, b_enc, W_dec, b_dec}})."""
    g = torch.Generator().manual_seed(seed)
    weights = {"W_enc": torch.randn(d_in, d_sae, generator=g), "b_enc": torch.randn(d_sae, generator=g),
               "W_dec": torch.randn(d_sae, d_in, generator=g), "b_dec": torch.randn(d_in, generator=g)}
    artifact.mkdir(parents=True, exist_ok=True)
    with legacy_config_class() as config:
        torch.save({"cfg": config(hook_point=hook_point, d_in=d_in), "state_dict": weights}, artifact / "final_sparse_autoencoder.pt")
    return weights


# --- whole hub repositories, laid out as published ------------------------------------------------

def write_culture_hub(root: Path, cfg: dict, d_sae: int, puzzles_per_task: int) -> Path:
    """tommyp111/culture-gpt (gpt_000.pth), culture-sae (gpt-0/blocks_8_mlp_out) and
    culture-puzzles-1M-partitioned (data/<task>-00000-of-00001.parquet, generated puzzles of the real
    405-token layout) as local folders under `root`."""
    from verify.culture.layout import REAL_LAYOUT
    from verify.culture.tasks import build_dataset

    (root / "culture-gpt").mkdir(parents=True)
    torch.save((culture_state(cfg), 0.95), root / "culture-gpt" / "gpt_000.pth")
    write_sae_folder(root / "culture-sae" / "gpt-0" / "blocks_8_mlp_out", d_in=cfg["d_model"], d_sae=d_sae)
    data = root / "culture-puzzles-1M-partitioned" / "data"
    data.mkdir(parents=True)
    for task, split in build_dataset(puzzles_per_task, 0, REAL_LAYOUT).items():
        split.to_parquet(str(data / f"{task}-00000-of-00001.parquet"))
    return root
