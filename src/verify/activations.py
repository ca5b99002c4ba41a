"""Activations at one hook point, computed in batches under inference mode.

Only the asked-for hook is kept (a hook that records it) and the forward pass stops after the hook's
block (`stop_at_layer`): an early hook costs a fraction of a full forward. A residual-stream hook
between blocks (blocks.L.hook_resid_pre, blocks.L-1.hook_resid_post) is what the blocks before L
return, so block L is not run for it. Given the residual stream entering block L (`start_at_layer`),
only the blocks from L on are run (on a model that cannot start at a block, TransformerLens 3.9's
TransformerBridge, every block runs with that stream put in: verify.interventions.run_with_hooks).
"""

from __future__ import annotations

import torch

from verify import timing
from verify.hooks import residual_layer, stop_layer
from verify.interventions import run_with_hooks


@timing.stage("forward")
@torch.inference_mode()
def hook_activations(model, inputs: torch.Tensor, hook: str, batch_size: int = 256, start_at_layer: int | None = None) -> torch.Tensor:
    """(batch, pos, width) activations of `hook` for `inputs`, on the model's device: tokens (batch,
    pos), or with `start_at_layer` L the residual stream entering block L (batch, pos, d_model)."""
    if hook not in model.hook_dict:
        raise KeyError(f"the model has no hook point {hook!r}")
    stop = stop_layer(hook)
    if residual_layer(hook) is not None and stop < model.cfg.n_layers:  # the blocks before `stop` return it
        run = lambda batch: run_with_hooks(model, batch, [], start_at_layer, stop_at_layer=stop)  # noqa: E731
    else:
        stop = None if stop >= model.cfg.n_layers else stop

        def run(batch):
            seen = []  # a hook that keeps the activation: what run_with_cache does, with a start on any model
            run_with_hooks(model, batch, [(hook, lambda act, hook: seen.append(act))], start_at_layer, stop_at_layer=stop, return_type=None)
            return seen[0]
    return torch.cat([run(inputs[i : i + batch_size]) for i in timing.steps(range(0, len(inputs), batch_size))])


@timing.stage("forward")
@torch.inference_mode()
def sae_feature_acts(sae, acts: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    """SAE feature activations for hook activations (..., d_in) -> (..., d_sae)."""
    flat = acts.reshape(-1, acts.shape[-1])
    if flat.shape[-1] != sae.cfg.d_in:
        raise ValueError(f"SAE d_in is {sae.cfg.d_in} but the activations have width {flat.shape[-1]}")
    feats = torch.cat([sae.encode(flat[i : i + batch_size]) for i in timing.steps(range(0, len(flat), batch_size))])
    return feats.reshape(*acts.shape[:-1], -1)
