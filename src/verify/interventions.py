"""Interventions that belong to no domain: zeroing a hook, splicing an SAE's reconstruction into it,
and the null models claims are compared with (a freshly initialised SAE, a shuffled dictionary).

A hook intervention is a (hook name, function) pair as TransformerLens' `run_with_hooks` takes it.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Callable

import torch

Hook = tuple[str, Callable]
POSITIONWISE_ATTR = "positionwise"


def positionwise(fn: Callable) -> Callable:
    """Mark a hook function as acting on each position alone (its output at a position depends only on
    its input there): verify.suffix may then run it on some positions only."""
    setattr(fn, POSITIONWISE_ATTR, True)
    return fn


def zero_ablation(hook: str) -> Hook:
    return hook, positionwise(lambda act, hook: torch.zeros_like(act))


def sae_splice(hook: str, sae) -> Hook:
    """Replace the hook's activation by the SAE's reconstruction, computed on the fly (an SAE encodes
    and decodes each position alone)."""
    return hook, positionwise(lambda act, hook: sae(act).to(act.dtype))


def random_like(sae, seed: int):
    """An SAE of the same class and config, freshly initialised by sae_lens from `seed` (a baseline)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = type(sae)(sae.cfg)
    return fresh.to(sae.W_enc.device).eval()


def shuffled_decoder(sae, seed: int):
    """A copy of `sae` whose features write each other's directions (decoder rows permuted from
    `seed`): same encoder, sparsity and decoder norms, but a reconstruction that is not the input.
    The null for "this SAE's reconstruction restores": a freshly initialised sae_lens SAE is none,
    since its decoder starts as the encoder's transpose and so reconstructs a multiple of its input."""
    shuffled = copy.deepcopy(sae)
    order = torch.randperm(sae.cfg.d_sae, generator=torch.Generator().manual_seed(seed)).to(sae.W_dec.device)
    with torch.no_grad():
        shuffled.W_dec.copy_(sae.W_dec[order])
    return shuffled


def random_model_like(model, seed: int):
    """A model of the same architecture, freshly initialised by TransformerLens from `seed`: the
    baseline for "the trained model represents X" (a random network's activations still carry the
    tokens and positions it was given). For a TransformerBridge, the same random HookedTransformer
    in a bridge: the baseline is the same random model on both APIs."""
    from verify.loaders import bridge

    on_bridge = bridge.is_bridge(model)
    # TransformerLens initialises the weights from cfg.seed (its constructor reseeds torch with it, after
    # any seed of ours), so the baseline's seed goes into the config; the caller's RNG state is kept
    cfg = dataclasses.replace(bridge.hooked_config(model), seed=seed)
    with torch.random.fork_rng(devices=[]):
        if on_bridge:
            from transformer_lens import HookedTransformer

            with bridge.hooked_without_deprecation():  # built only to be copied into a bridge
                fresh = HookedTransformer(cfg)
        else:
            fresh = type(model)(cfg)
    fresh = fresh.to(cfg.device).eval().requires_grad_(False)
    return bridge.to_bridge(fresh) if on_bridge else fresh


_STARTS_AT_LAYER: dict[type, bool] = {}


def starts_at_layer(model) -> bool:
    """Whether the model's forward takes `start_at_layer`, probed once per model type on a
    one-position stream that runs no block: a HookedTransformer does; TransformerLens 3.9's
    TransformerBridge raises NotImplementedError (a later one may not, and is then used as is)."""
    kind = type(model)
    if kind not in _STARTS_AT_LAYER:
        stream = torch.zeros(1, 1, model.cfg.d_model, device=next(model.parameters()).device)
        try:
            with torch.inference_mode():
                model(stream, start_at_layer=model.cfg.n_layers)
            _STARTS_AT_LAYER[kind] = True
        except NotImplementedError:
            _STARTS_AT_LAYER[kind] = False
    return _STARTS_AT_LAYER[kind]


def run_with_hooks(model, inputs: torch.Tensor, hooks: list[Hook] = (), start_at_layer: int | None = None, **kwargs):
    """`model.run_with_hooks(inputs, fwd_hooks=hooks, start_at_layer=..., **kwargs)` on a model whose
    forward may not start at a layer (`starts_at_layer`): there, a full forward on placeholder tokens
    whose residual stream entering block L is replaced by `inputs` before `hooks` see it. The same
    numbers wherever the blocks from L read only that stream (standard positional embeddings, which
    enter before block 0); the blocks before L run for nothing."""
    if start_at_layer is None or starts_at_layer(model):
        return model.run_with_hooks(inputs, fwd_hooks=list(hooks), start_at_layer=start_at_layer, **kwargs)
    if not 0 <= start_at_layer < model.cfg.n_layers:
        raise ValueError(f"start_at_layer {start_at_layer}: a forward starting at a block needs one of 0..{model.cfg.n_layers - 1}")
    placeholder = torch.zeros(inputs.shape[:2], dtype=torch.long, device=inputs.device)
    stream = (f"blocks.{start_at_layer}.hook_resid_pre", lambda act, hook: inputs.to(act.dtype))
    return model.run_with_hooks(placeholder, fwd_hooks=[stream, *hooks], **kwargs)
