"""Activations at one hook point, computed in batches under inference mode.

Only the asked-for hook is cached (`names_filter`) and the forward pass stops after the hook's
block (`stop_at_layer`): an early hook costs a fraction of a full forward.
"""

from __future__ import annotations

import torch

from verify.hooks import stop_layer


@torch.inference_mode()
def hook_activations(model, tokens: torch.Tensor, hook: str, batch_size: int = 256) -> torch.Tensor:
    """(batch, pos, width) activations of `hook` for `tokens` (batch, pos), on the model's device."""
    if hook not in model.hook_dict:
        raise KeyError(f"the model has no hook point {hook!r}")
    stop = stop_layer(hook)
    stop = None if stop >= model.cfg.n_layers else stop
    out = []
    for i in range(0, len(tokens), batch_size):
        _, cache = model.run_with_cache(tokens[i : i + batch_size], names_filter=hook, stop_at_layer=stop, return_type=None)
        out.append(cache[hook])
    return torch.cat(out)


@torch.inference_mode()
def sae_feature_acts(sae, acts: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    """SAE feature activations for hook activations (..., d_in) -> (..., d_sae)."""
    flat = acts.reshape(-1, acts.shape[-1])
    if flat.shape[-1] != sae.cfg.d_in:
        raise ValueError(f"SAE d_in is {sae.cfg.d_in} but the activations have width {flat.shape[-1]}")
    feats = torch.cat([sae.encode(flat[i : i + batch_size]) for i in range(0, len(flat), batch_size)])
    return feats.reshape(*acts.shape[:-1], -1)
