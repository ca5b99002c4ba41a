"""tommyp111/culture-gpt checkpoints: gpt_00N.pth = torch.save((state_dict, test_accuracy)).

The original model: 12 pre-LN blocks, d_model 512, 8 heads of 64 without biases, ReLU MLP 2048,
sinusoidal positions (L = 1e5), no final LayerNorm, readout with bias, vocabulary 15. It maps onto a
HookedTransformer with the sinusoidal table as the "standard" W_pos, zero attention biases and an
identity ln_final; no weight processing (folding LayerNorm would change the model).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch

from verify.loaders.common import CheckpointError, load_state_dict_checked, meta_model, read_torch

CULTURE_GPT_CONFIG = {
    "n_layers": 12, "d_model": 512, "n_heads": 8, "d_head": 64, "d_mlp": 2048, "d_vocab": 15, "n_ctx": 405,
    "act_fn": "relu", "normalization_type": "LN", "eps": 1e-5, "positional_embedding_type": "standard",
    "default_prepend_bos": False,
}
POSITION_BASE = 1e5


def sinusoidal_table(n_ctx: int, d_model: int, base: float = POSITION_BASE) -> torch.Tensor:
    """pe[t, j] = sin(t / base^((j - j mod 2) / d_model) + (pi / 2) (j mod 2))."""
    t = torch.arange(n_ctx, dtype=torch.float64)[:, None]
    j = torch.arange(d_model)
    freq = base ** (-(j - j % 2).double() / d_model)
    return torch.sin(t * freq + (math.pi / 2) * (j % 2)).float()


def convert(state: dict[str, torch.Tensor], cfg: dict) -> dict[str, torch.Tensor]:
    """The original state dict in TransformerLens names and layouts."""
    n_heads, d_head, d_model = cfg["n_heads"], cfg["d_head"], cfg["d_model"]
    out = {"embed.W_E": state["embedding.0.f.0.weight"],
           "pos_embed.W_pos": sinusoidal_table(cfg["n_ctx"], d_model),
           "unembed.W_U": state["readout.f.weight"].T, "unembed.b_U": state["readout.f.bias"]}
    for layer in range(cfg["n_layers"]):
        attn, mlp, b = f"trunk.{2 * layer}.f", f"trunk.{2 * layer + 1}.f.f", f"blocks.{layer}"
        out[f"{b}.ln1.w"], out[f"{b}.ln1.b"] = state[f"{attn}.0.f.0.weight"], state[f"{attn}.0.f.0.bias"]
        for name in ("q", "k", "v"):
            out[f"{b}.attn.W_{name.upper()}"] = state[f"{attn}.1.w_{name}"].transpose(1, 2)  # (heads, d_model, d_head)
            out[f"{b}.attn.b_{name.upper()}"] = torch.zeros(n_heads, d_head)
        out[f"{b}.attn.W_O"] = state[f"{attn}.1.w_o"].reshape(n_heads, d_head, d_model)
        out[f"{b}.attn.b_O"] = torch.zeros(d_model)
        out[f"{b}.ln2.w"], out[f"{b}.ln2.b"] = state[f"{mlp}.0.weight"], state[f"{mlp}.0.bias"]
        out[f"{b}.mlp.W_in"], out[f"{b}.mlp.b_in"] = state[f"{mlp}.2.weight"].T, state[f"{mlp}.2.bias"]
        out[f"{b}.mlp.W_out"], out[f"{b}.mlp.b_out"] = state[f"{mlp}.4.weight"].T, state[f"{mlp}.4.bias"]
    return {k: v.contiguous() for k, v in out.items()}


def read_culture_state(path: Path, mmap: bool = False) -> tuple[dict[str, torch.Tensor], float | None]:
    obj = read_torch(path, mmap=mmap)
    accuracy = obj[1] if isinstance(obj, (tuple, list)) and len(obj) == 2 else None
    if isinstance(obj[0] if accuracy is not None else None, dict) and (
            isinstance(accuracy, (int, float)) or (isinstance(accuracy, torch.Tensor) and accuracy.numel() == 1)):
        return obj[0], float(accuracy)
    if isinstance(obj, dict) and "embedding.0.f.0.weight" in obj:
        return obj, None
    raise CheckpointError(f"{path}: expected a (state_dict, test_accuracy) tuple as in tommyp111/culture-gpt, got {type(obj).__name__}")


def architecture(state: dict[str, torch.Tensor], path: Path) -> dict:
    """CULTURE_GPT_CONFIG with the sizes read off the tensors (so smaller replicas load too)."""
    try:
        n_trunk = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("trunk."))
        n_heads, d_head, d_model = state["trunk.0.f.1.w_q"].shape
        return {**CULTURE_GPT_CONFIG, "n_layers": n_trunk // 2, "d_model": d_model, "n_heads": n_heads, "d_head": d_head,
                "d_mlp": state["trunk.1.f.f.2.weight"].shape[0], "d_vocab": state["embedding.0.f.0.weight"].shape[0]}
    except (KeyError, ValueError, AttributeError, TypeError) as err:  # a missing tensor, a wrong rank, a non-tensor
        raise CheckpointError(f"{path}: not the culture GPT layout (embedding.0.f.0, trunk.N.f..., readout.f): {type(err).__name__}: {err}") from None


def without_final_ln(model):
    model.ln_final = torch.nn.Identity()  # the original has no final LayerNorm
    model.setup()  # refresh the hook dict after replacing a module
    return model


def skeleton(files: dict[str, Path | None]):
    """The architecture, read off the tensor shapes of a local file (memory-mapped: no weights are
    read) or, for a file still on the hub, the published one."""
    path = files.get("weights")
    if path is None:
        return published_skeleton()
    return without_final_ln(meta_model(architecture(read_culture_state(path, mmap=True)[0], path)))


@functools.cache
def published_skeleton():
    """The published architecture on the meta device, built once: every culture-gpt checkpoint not
    yet fetched shares it (each build took about a second of every run's collection). Read only."""
    return without_final_ln(meta_model(CULTURE_GPT_CONFIG))


def load_culture_pth(weights: Path, device: str, config: Path | None = None):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    state, _ = read_culture_state(weights)
    cfg = architecture(state, weights)
    model = without_final_ln(HookedTransformer(HookedTransformerConfig(**cfg, device="cpu")))
    try:
        converted = convert(state, cfg)
    except KeyError as err:
        raise CheckpointError(f"{weights}: missing tensor {err} of the culture GPT layout") from None
    except (AttributeError, TypeError, RuntimeError) as err:  # a non-tensor or a tensor of the wrong rank
        raise CheckpointError(f"{weights}: not the culture GPT layout: {type(err).__name__}: {err}") from None
    load_state_dict_checked(model, converted, weights)
    return model.to(device).eval()
