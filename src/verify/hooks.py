"""Hook points of a TransformerLens model, known from its config alone (no weights needed).

Manifests are checked at collection time, before any model is loaded, so the hook names and
widths an SAE or claim may refer to are derived here from the architecture numbers.
"""

from __future__ import annotations

import re
from typing import Mapping

_BLOCK_HOOK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def hook_widths(cfg: Mapping) -> dict[str, int]:
    """Last-axis width of each hook point an SAE, ablation or probe in this suite can use."""
    d_model, d_mlp = cfg["d_model"], cfg["d_mlp"]
    widths = {"hook_embed": d_model, "hook_pos_embed": d_model}
    for layer in range(cfg["n_layers"]):
        for name in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out"):
            widths[f"blocks.{layer}.{name}"] = d_model
        widths[f"blocks.{layer}.mlp.hook_pre"] = d_mlp
        widths[f"blocks.{layer}.mlp.hook_post"] = d_mlp
        widths[f"blocks.{layer}.attn.hook_z"] = cfg["d_head"]
    return widths


def hook_layer(hook: str) -> int | None:
    """Block index of a hook name (None for hooks before the first block)."""
    match = _BLOCK_HOOK.match(hook)
    return int(match.group(1)) if match else None


def stop_layer(hook: str) -> int:
    """`stop_at_layer` value that still runs `hook` (and nothing after its block)."""
    layer = hook_layer(hook)
    return 0 if layer is None else layer + 1
