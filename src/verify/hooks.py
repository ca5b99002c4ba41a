"""Hook points of a TransformerLens model, as TransformerLens itself builds them.

Manifests are checked at collection time, before any weights are loaded: a model's skeleton on
torch's meta device (verify.loaders) is run once on a (1, 2) input, and every hook point that fires
is recorded with its activation shape. No list of hook names is kept by hand.
"""

from __future__ import annotations

import re
import warnings
import weakref

import torch

_BLOCK_HOOK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_BETWEEN_BLOCKS = re.compile(r"^blocks\.(\d+)\.hook_resid_(pre|post)$")


_SHAPES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its hook shapes


def hook_shapes(model) -> dict[str, tuple[int, ...]]:
    """Hook name -> activation shape without the batch axis, for an input of two positions
    (so a per-position vector hook is (2, width) and an attention pattern (heads, 2, 2)). Run once
    per model object: subjects that share a skeleton (checkpoints of one published config) share it."""
    if model not in _SHAPES:
        _SHAPES[model] = _run_hook_shapes(model)
    return dict(_SHAPES[model])


def _run_hook_shapes(model) -> dict[str, tuple[int, ...]]:
    fired: dict[int, tuple[int, ...]] = {}  # by hook point: a TransformerBridge's names are aliases of fewer points

    def record(act, hook):
        fired[id(hook)] = tuple(act.shape[1:])

    device = next(model.parameters()).device
    with torch.inference_mode(), warnings.catch_warnings():
        # a TransformerBridge warns for each hook it has switched off (use_attn_result, ...): they do
        # not fire, as on a HookedTransformer
        warnings.filterwarnings("ignore", message=r".*gated-off hook name", category=UserWarning)
        model.run_with_hooks(torch.zeros(1, 2, dtype=torch.long, device=device), return_type=None,
                             fwd_hooks=[(lambda name: True, record)])
    return {name: fired[id(point)] for name, point in model.hook_dict.items() if id(point) in fired}


def hook_layer(hook: str) -> int | None:
    """Block index of a hook name (None for hooks before the first block)."""
    match = _BLOCK_HOOK.match(hook)
    return int(match.group(1)) if match else None


def residual_layer(hook: str) -> int | None:
    """L where `hook` reads the residual stream between blocks, entering block L (blocks.L.hook_resid_pre,
    blocks.L-1.hook_resid_post): what a forward with stop_at_layer=L returns. None for other hooks."""
    match = _BETWEEN_BLOCKS.match(hook)
    return None if match is None else int(match.group(1)) + (match.group(2) == "post")


def stop_layer(hook: str) -> int:
    """The blocks a forward runs to see `hook`'s activation (its `stop_at_layer`): those before the
    hook's block, and that block too unless the hook reads the residual stream entering it."""
    between = residual_layer(hook)
    if between is not None:
        return between
    layer = hook_layer(hook)
    return 0 if layer is None else layer + 1
