"""Activation fingerprints: catch a library that changes what a hook point means.

TransformerLens has shipped hook points that kept their names and shapes but changed their values
(post-LN instead of pre-LN). Such a change can leave every claim passing while the numbers stop
meaning what they meant. A fingerprint records, for every hook point a subject's claims or SAEs
read, summary statistics of its activations on a fixed seeded batch, plus the model's top-1
predictions there; `moved` compares two fingerprints.

The batch comes from the subject's data source (`DataSource.fingerprint_batch`), so it depends on
the manifest's seeds only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from verify.ledger import Fingerprint, HookStats
from verify.params import HookPoint, SAERef, kinds

if TYPE_CHECKING:  # torch is imported where activations are taken: `verify compare` reads ledgers without it
    import torch

QUANTILES = (0.01, 0.5, 0.99)
STAT_TOLERANCE = 1e-3  # a statistic moves when it changes by more than this times the old std
TOP1_TOLERANCE = 0.01  # top-1 predictions move when more than this fraction of them change


def hooks_read(manifest) -> list[str]:
    """The hook points that the manifest's claims name, directly or through an SAE, and its SAEs read."""
    found = {spec.hook for spec in manifest.saes.values()}
    for params in manifest.claims.values():
        for name, kind in kinds(type(params)).items():
            if getattr(params, name) is None:  # an optional field left out
                continue
            if isinstance(kind, HookPoint):
                found.add(getattr(params, name))
            elif isinstance(kind, SAERef):
                found.add(manifest.saes[getattr(params, name)].hook)
    return sorted(found)


def hook_stats(acts: torch.Tensor) -> HookStats:
    x = acts.detach().double().cpu()
    flat = x.reshape(-1).numpy()
    return HookStats(shape=list(x.shape), mean=float(flat.mean()), std=float(flat.std()),
                     norm=float(x.reshape(-1, x.shape[-1]).norm(dim=-1).mean()),
                     quantiles={str(q): float(v) for q, v in zip(QUANTILES, np.quantile(flat, QUANTILES))})


def fingerprint(model, tokens: torch.Tensor, hooks: list[str], batch: str) -> Fingerprint:
    """Statistics of `hooks` and the top-1 predictions of one forward pass on `tokens`."""
    import torch

    with torch.inference_mode():
        logits, cache = model.run_with_cache(tokens, names_filter=lambda name: name in hooks)
    return Fingerprint(batch=batch, hooks={h: hook_stats(cache[h]) for h in hooks},
                       top1=logits.argmax(-1).cpu().tolist())


def moved(old: Fingerprint, new: Fingerprint, tolerance: float = STAT_TOLERANCE,
          top1_tolerance: float = TOP1_TOLERANCE) -> list[str]:
    """What moved from `old` to `new`, one line each; empty when nothing did."""
    if old.batch != new.batch:
        return [f"fingerprint batches differ ({old.batch!r} vs {new.batch!r}): not comparable"]
    lines = []
    for hook in sorted(set(old.hooks) | set(new.hooks)):
        a, b = old.hooks.get(hook), new.hooks.get(hook)
        if a is None or b is None:
            lines.append(f"{hook}: fingerprinted only in the {'new' if a is None else 'old'} run")
            continue
        if a.shape != b.shape:
            lines.append(f"{hook}: activation shape {a.shape} -> {b.shape}")
            continue
        scale = max(a.std, 1e-12)
        pairs = {"mean": (a.mean, b.mean), "std": (a.std, b.std), "norm": (a.norm, b.norm)}
        pairs.update({f"q{q}": (a.quantiles[q], b.quantiles.get(q, float("nan"))) for q in a.quantiles})
        for stat, (x, y) in pairs.items():
            if not abs(y - x) <= tolerance * scale:
                lines.append(f"{hook}: {stat} {x:.6g} -> {y:.6g} (change {y - x:+.3g}, tolerance {tolerance * scale:.3g})")
    old_top, new_top = np.asarray(old.top1), np.asarray(new.top1)
    if old_top.shape != new_top.shape:
        lines.append(f"top-1 predictions: shape {old_top.shape} -> {new_top.shape}")
    else:
        changed = float((old_top != new_top).mean())
        if changed > top1_tolerance:
            lines.append(f"top-1 predictions: {changed:.1%} changed (tolerance {top1_tolerance:.1%})")
    return lines
