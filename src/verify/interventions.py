"""Interventions that belong to no domain: zeroing a hook, splicing an SAE's reconstruction into it,
and the null models claims are compared with (a freshly initialised SAE, a shuffled dictionary).

A hook intervention is a (hook name, function) pair as TransformerLens' `run_with_hooks` takes it.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch

Hook = tuple[str, Callable]


def zero_ablation(hook: str) -> Hook:
    return hook, lambda act, hook: torch.zeros_like(act)


def sae_splice(hook: str, sae) -> Hook:
    """Replace the hook's activation by the SAE's reconstruction, computed on the fly."""
    return hook, lambda act, hook: sae(act).to(act.dtype)


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
    tokens and positions it was given)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = type(model)(model.cfg)
    return fresh.to(model.cfg.device).eval().requires_grad_(False)
