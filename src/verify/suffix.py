"""Logits at the last positions only: the last block computed where a measurement reads its output.

A teacher-forced culture verdict reads the logits of the answer cells, the last quarter of a puzzle.
Every block but the last must run at every position (later positions attend to earlier ones), but in
the last block a position that no logit is read at only feeds the others its keys and values. So
`suffix_logits` runs blocks up to the last as TransformerLens does, and in the last one computes keys
and values at every position and everything else (queries, attention output, MLP, final LayerNorm,
unembedding) only from position `first` on: for culture-tiny, whose interventions start at the last
block, an ablated or spliced forward costs about a third of a whole one.

The numbers are those of the whole forward: the same fused kernels (verify.fused) on fewer rows, with a
causal mask aligned to the last position (tests/test_suffix.py checks logits and verdicts against the
whole forward). TransformerLens' own forward runs instead, and is sliced, when anything could see the
difference:

- a hook in the last block, on its final LayerNorm or its unembedding reads or changes a position-shaped
  activation (hook_resid_mid, hook_mlp_out, ...) that now holds only the suffix: allowed only for hook
  functions marked `verify.interventions.positionwise` (its zero-ablation and SAE splice, which act on
  each position alone), and never inside the last block's attention or first LayerNorm; hooks entering the
  last block (its hook_resid_pre) see every position and may do anything;
- the model is not a HookedTransformer with the fused attention installed on its last block
  (a TransformerBridge, `--claims-fused=off`, an architecture verify.fused refuses), or its config uses
  what this block does not implement (parallel attention and MLP, post-norm, split q/k/v inputs,
  shortformer positions, a logit soft-cap, several devices);
- a hook is registered on the model outside this call;
- the last block's attention output is not finite: TransformerLens' last block then runs alone, from the
  residual stream already computed, so each hook before it fires once, as in one forward.
"""

from __future__ import annotations

from typing import Sequence

import torch

from verify import fused
from verify.hooks import hook_layer
from verify.interventions import POSITIONWISE_ATTR, Hook, run_with_hooks

# hook points of the last block that see every position in the suffix forward, as in the whole one
_FULL_POSITION_HOOKS = ("hook_resid_pre",)
# hook points of the last block computed differently here (once, at every position, or fused): no hook there
_UNSUPPORTED_HOOKS = ("attn.", "ln1.", "hook_attn_in", "hook_q_input", "hook_k_input", "hook_v_input")


def refusal(model, hooks: Sequence[Hook] = ()) -> str | None:
    """Why `suffix_logits` must run TransformerLens' whole forward for this model and these hooks (None: it need not)."""
    from transformer_lens import HookedTransformer
    from transformer_lens.components.transformer_block import POST_NORM_ARCHITECTURES

    if not isinstance(model, HookedTransformer):
        return f"{type(model).__name__} is not a HookedTransformer"
    cfg, last = model.cfg, model.cfg.n_layers - 1
    block = model.blocks[last]
    ends = torch.nn.ModuleList([getattr(model, "ln_final", torch.nn.Identity()), model.unembed])
    checks = (
        (not getattr(block.attn, fused.FUSED_ATTR, False), "the last block's attention is not fused"),
        (getattr(block.attn, "_attention_dir_override", None) is not None, "an attention direction set at run time"),
        (cfg.dtype not in (torch.float32, torch.float64), f"dtype {cfg.dtype}"),
        (cfg.positional_embedding_type != "standard", f"{cfg.positional_embedding_type} positions"),
        (bool(cfg.parallel_attn_mlp or cfg.use_attn_in or cfg.use_split_qkv_input or cfg.use_attn_result),
         "parallel attention and MLP or per-head attention inputs"),
        (bool(cfg.use_normalization_before_and_after) or cfg.original_architecture in POST_NORM_ARCHITECTURES,
         "normalisation after the sublayers"),
        (bool(cfg.output_logits_soft_cap and cfg.output_logits_soft_cap > 0), "a logit soft-cap"),
        (cfg.n_devices != 1, "several devices"),
        (any(fused._hooked(module) for module in (*block.modules(), *ends.modules())),
         "a hook is registered on the last block outside this call"),
    )
    why = next((why for refused, why in checks if refused), None)
    if why is not None:
        return why
    for name, fn in hooks:
        if not isinstance(name, str):
            return "a hook chosen by a name filter"
        point = name.removeprefix(f"blocks.{last}.") if hook_layer(name) == last else None
        if point is None and not name.startswith(("ln_final.", "unembed.")):
            continue  # before the last block: every position, as in the whole forward
        if point in _FULL_POSITION_HOOKS:
            continue
        if point is not None and point.startswith(_UNSUPPORTED_HOOKS):
            return f"a hook on {name}"
        if not getattr(fn, POSITIONWISE_ATTR, False):
            return f"a hook on {name} not marked positionwise"
    return None


@torch.inference_mode()
def suffix_logits(model, inputs: torch.Tensor, first: int, hooks: Sequence[Hook] = (),
                  start_at_layer: int | None = None) -> torch.Tensor:
    """(batch, positions - first, vocab): the logits at positions `first`.. of
    `model.run_with_hooks(inputs, fwd_hooks=hooks, start_at_layer=start_at_layer)` (`inputs` tokens, or
    the residual stream entering block `start_at_layer`), computing the last block's non-key-value work
    only there where nothing could tell (`refusal`); else that whole forward, sliced."""
    positions = inputs.shape[1]
    if not 0 <= first < positions:
        raise ValueError(f"first position {first} outside 0..{positions - 1}")
    why = refusal(model, hooks)
    if why is None and (start_at_layer is None or start_at_layer < model.cfg.n_layers):
        return _suffix_forward(model, inputs, first, hooks, start_at_layer)
    return run_with_hooks(model, inputs, list(hooks), start_at_layer)[:, first:]


def _suffix_forward(model, inputs, first, hooks, start_at_layer):
    cfg, last = model.cfg, model.cfg.n_layers - 1
    block = model.blocks[last]
    with model.hooks(fwd_hooks=list(hooks)):
        if start_at_layer is None or start_at_layer < last:
            stream = model(inputs, start_at_layer=start_at_layer, stop_at_layer=last)
        else:
            stream = inputs
        resid_pre = block.hook_resid_pre(stream)
        attn_out = fused.attention_from(block.attn, block.ln1(resid_pre), first)
        if attn_out is not None:
            resid = resid_pre[:, first:] + block.hook_attn_out(attn_out)
            if not cfg.attn_only:  # TransformerBlock.forward's order of hooks
                resid = block.hook_resid_mid(resid)
                mlp_in = block.hook_mlp_in(resid.clone()) if cfg.use_hook_mlp_in else resid
                resid = resid + block.apply_mlp(block.ln2(mlp_in))
            resid = block.hook_resid_post(resid)
            if cfg.normalization_type is not None:
                resid = model.ln_final(resid)
            return model.unembed(resid)
    # not finite: TransformerLens' semantics, from its own last block, entered with what the blocks before it
    # returned and the hooks entering it did; each hook before it has fired once, as in one forward
    entering = f"blocks.{last}.hook_resid_pre"
    return run_with_hooks(model, resid_pre, [(name, fn) for name, fn in hooks if name != entering], last)[:, first:]
