"""Is this SAE an SAE of this model? Its explained variance and the share of the model's loss it
recovers when spliced in, on the data a claim is measured on (metric definition version 2).

- Explained variance: 1 - sum ||x - x_hat||^2 / sum ||x - mean x||^2 over every token (position) of
  the data, x the hook's activation, x_hat = decode(encode(x)) by the SAE's own sae_lens forward, mean
  x the mean activation vector over all tokens.
- Loss recovered: (L_zero - L_splice) / (L_zero - L_clean), L the mean cross-entropy of the model's
  next-token predictions over the positions its domain scores, with the hook zero-ablated (L_zero),
  replaced by the SAE's reconstruction (L_splice), or untouched (L_clean). 1 is a perfect splice, 0
  no better than deleting the hook. The ratio means something only where deleting the hook clearly
  hurts: when the 95% interval of the zero-ablation's effect relative to the clean loss,
  (L_zero - L_clean) / L_clean, reaches below MIN_ZERO_ABLATION_EFFECT, loss recovered is not
  measurable (a ValueError saying so, with that interval), never a number compared with a floor.
  (Version 2; version 1 had no such guard and judged a ratio over an untrained model's near-zero
  denominator like any other.)
Both come with 95% cluster-bootstrap intervals that resample whole sequences (games, puzzles).
These are sae_lens' usual definitions (its evals compute them from an ActivationsStore of a
language-model dataset, which our subjects' games and puzzles are not), written here so the claims
state and version exactly what they print. The tokens domain, whose data are token batches, computes
loss recovered from SAELens' own get_recons_loss and hands the losses to `recovered_from`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from verify import stats, timing
from verify.interventions import Hook, run_with_hooks, sae_splice, zero_ablation
from verify.suffix import suffix_logits

DEFINITION_VERSION = 2
# zero-ablating the hook must raise the loss by at least this share of the clean loss (the lower end
# of its 95% interval) for loss recovered to be measured: the trained embedded subjects' SAE hooks
# raise it by 2.05x (othello-tiny) and 16.5x (culture-tiny), culture-tiny's first training stage by
# 0.29; untrained models by 0.02 (culture-tiny's shape) and -0.002 (othello-tiny's)
MIN_ZERO_ABLATION_EFFECT = 0.1


@timing.stage("forward")
@torch.inference_mode()
def explained_variance(sae, acts: torch.Tensor, batch_size: int = 8192) -> stats.Estimate:
    """acts (sequences, positions, d_in) -> explained variance, resampling sequences."""
    flat = acts.reshape(-1, acts.shape[-1])
    recon = torch.cat([sae(flat[i : i + batch_size]) for i in timing.steps(range(0, len(flat), batch_size))]).reshape(acts.shape)
    x = acts.double()
    per_sequence = np.concatenate([
        np.full((len(x), 1), float(x.shape[1])),  # tokens
        (x * x).sum((1, 2)).cpu().numpy()[:, None],  # sum ||x||^2
        ((x - recon.double()) ** 2).sum((1, 2)).cpu().numpy()[:, None],  # sum ||x - x_hat||^2
        x.sum(1).cpu().numpy(),  # sum x, a vector
    ], axis=1)

    def ev(totals: np.ndarray) -> np.ndarray:
        n, sq, err, s = totals[..., 0], totals[..., 1], totals[..., 2], totals[..., 3:]
        centred = sq - (s * s).sum(-1) / n
        with np.errstate(invalid="ignore", divide="ignore"):
            return 1 - err / centred

    return stats.cluster_bootstrap(per_sequence, ev)


def loss_recovered(losses: Callable[[list[Hook]], np.ndarray], hook: str, sae) -> stats.Estimate:
    """`losses(hooks)` -> (sequences,) summed cross-entropy of each sequence's scored positions (all
    sequences score the same number of positions) with `hooks` applied."""
    clean, zero = losses([]), losses([zero_ablation(hook)])
    return recovered_from(clean, zero, lambda: losses([sae_splice(hook, sae)]), hook)


def recovered_from(clean: np.ndarray, zero: np.ndarray, spliced: Callable[[], np.ndarray] | np.ndarray, hook: str) -> stats.Estimate:
    """Loss recovered from (sequences,) summed losses however computed (e.g. by SAELens' evals):
    clean, with the hook zero-ablated, and spliced (the array, or a function computing it, called only
    where the ratio is measurable)."""
    effect = zero_ablation_effect(clean, zero)
    if not effect.lo >= MIN_ZERO_ABLATION_EFFECT:  # nan included
        raise ValueError(f"loss recovered on {hook} is not measurable: zero-ablating the hook raises the loss by "
                         f"{effect} (95% CI) of the clean loss, not clearly more than {MIN_ZERO_ABLATION_EFFECT} "
                         f"(fidelity v{DEFINITION_VERSION}): the ratio's denominator is too close to zero to divide by")
    per_sequence = np.stack([clean, zero, spliced() if callable(spliced) else spliced], -1)

    def recovered(totals: np.ndarray) -> np.ndarray:
        c, z, s = totals[..., 0], totals[..., 1], totals[..., 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            return (z - s) / (z - c)

    return stats.cluster_bootstrap(per_sequence, recovered)


def zero_ablation_effect(clean: np.ndarray, zero: np.ndarray) -> stats.Estimate:
    """(L_zero - L_clean) / L_clean from (sequences,) summed losses, resampling sequences."""
    return stats.cluster_bootstrap(np.stack([zero - clean, clean], -1), stats.ratio)


@timing.stage("forward")
@torch.inference_mode()
def summed_cross_entropy(model, tokens: torch.Tensor, targets: torch.Tensor, logit_positions: slice | torch.Tensor,
                         hooks: list[Hook], batch_size: int = 64, start_at_layer: int | None = None) -> np.ndarray:
    """(sequences,) sum over `logit_positions` of -log p(target) with `hooks` applied. With
    `start_at_layer` L, `tokens` is the residual stream entering block L and only blocks L.. run."""
    first, read = 0, logit_positions
    if isinstance(logit_positions, slice) and logit_positions.step in (None, 1) and (logit_positions.start or 0) > 0:
        # the last block computes only from the first position read on (verify.suffix)
        first = logit_positions.start
        stop = logit_positions.stop
        read = slice(0, stop - first if stop is not None and stop >= 0 else stop)  # a negative stop counts from the end as before
    out = []
    for i in timing.steps(range(0, len(tokens), batch_size)):
        batch = tokens[i : i + batch_size]
        logits = (suffix_logits(model, batch, first, hooks, start_at_layer) if first
                  else run_with_hooks(model, batch, hooks, start_at_layer))[:, read].float()
        logp = torch.log_softmax(logits, -1).gather(-1, targets[i : i + batch_size, :, None])[..., 0]
        out.append(-logp.double().sum(1))
    return torch.cat(out).cpu().numpy()
