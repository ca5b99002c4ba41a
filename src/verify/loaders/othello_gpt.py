"""Othello-GPT checkpoints: a TransformerLens state dict (plain or LayerNorm-folded) or the minGPT
checkpoint behind TransformerLens' "othello-gpt" alias (converted by TransformerLens' own
convert_mingpt_weights). The architecture is fixed, so no config file is needed."""

from __future__ import annotations

from pathlib import Path

import torch

from verify.loaders.common import (CheckpointError, buffer_names, load_state_dict_checked, meta_model, read_safetensors,
                                   read_torch)

OTHELLO_GPT_CONFIG = {
    "n_layers": 8, "d_model": 512, "n_heads": 8, "d_head": 64, "d_mlp": 2048, "d_vocab": 61, "n_ctx": 59,
    "act_fn": "gelu", "normalization_type": "LN", "default_prepend_bos": False,
}


def load_othello_gpt(weights: Path, device: str, config: Path | None = None):
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.mingpt import convert_mingpt_weights

    safetensors = str(weights).endswith(".safetensors")  # TransformerLens' buffers (IGNORE = -inf) are no weights
    state = read_safetensors(weights, buffer_names(skeleton({}))) if safetensors else read_torch(weights)
    if not isinstance(state, dict):
        raise CheckpointError(f"{weights}: expected a state dict, got {type(state).__name__}")
    cfg = dict(OTHELLO_GPT_CONFIG)
    if "tok_emb.weight" in state:  # minGPT layout
        hooked = HookedTransformerConfig(**cfg, device="cpu")
        try:
            state = convert_mingpt_weights(state, hooked)
            state.setdefault("unembed.b_U", torch.zeros(cfg["d_vocab"]))  # minGPT's head has no bias
        except KeyError as err:
            raise CheckpointError(f"{weights}: missing tensor {err} of the minGPT Othello layout") from None
        except (AttributeError, TypeError, RuntimeError) as err:  # a non-tensor or a tensor of the wrong rank
            raise CheckpointError(f"{weights}: not the minGPT Othello layout: {type(err).__name__}: {err}") from None
    elif "blocks.0.ln1.w" not in state:  # LayerNorm folded into the next weights
        cfg["normalization_type"] = "LNPre"
    model = HookedTransformer(HookedTransformerConfig(**cfg, device="cpu"))
    load_state_dict_checked(model, state, weights)
    return model.to(device).eval()


def skeleton(files: dict[str, Path | None]):
    """The fixed Othello-GPT architecture (a LayerNorm-folded copy has the same hook points)."""
    return meta_model(OTHELLO_GPT_CONFIG)
