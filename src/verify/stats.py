"""Effect sizes with confidence intervals.

Positions within one game (or answer cells within one puzzle) are not independent, so intervals
come from a cluster bootstrap: whole clusters (games, puzzles) are resampled. Every statistic here
is a function of per-cluster sums, which makes a bootstrap one matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from verify import timing

N_BOOT = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    value: float
    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.lo:.4f}, {self.hi:.4f}]"


@timing.stage("statistics")
def cluster_bootstrap(
    sums: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], seed: int = 0, n_boot: int = N_BOOT
) -> Estimate:
    """`sums` (clusters, k): per-cluster sufficient statistics; `statistic` maps (..., k) totals to values.

    Returns the statistic on all clusters with a percentile interval over `n_boot` resamples.
    """
    sums = np.asarray(sums, dtype=np.float64)
    if sums.ndim != 2 or len(sums) == 0:
        raise ValueError(f"need per-cluster sums of shape (clusters, k), got {sums.shape}")
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(sums), np.full(len(sums), 1 / len(sums)), size=n_boot)
    boot = statistic(weights @ sums)
    value = float(statistic(sums.sum(0)[None])[0])
    alpha = (1 - CONFIDENCE) / 2
    lo, hi = np.nanquantile(boot, [alpha, 1 - alpha]) if np.isfinite(boot).any() else (np.nan, np.nan)
    return Estimate(value, float(lo), float(hi))


def ratio(totals: np.ndarray) -> np.ndarray:
    """totals (..., 2) = (numerator, denominator) -> numerator / denominator (nan where 0/0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return totals[..., 0] / totals[..., 1]


def ratio_estimate(numerator: np.ndarray, denominator: np.ndarray, seed: int = 0) -> Estimate:
    """A proportion pooled over clusters: per-cluster counts (clusters,) each."""
    return cluster_bootstrap(np.stack([numerator, denominator], -1), ratio, seed)


def correlation_sums(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x, y (clusters, n): per-cluster (n, sx, sy, sxx, syy, sxy) for a pooled Pearson correlation."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = np.full(len(x), x.shape[1], dtype=np.float64)
    return np.stack([n, x.sum(1), y.sum(1), (x * x).sum(1), (y * y).sum(1), (x * y).sum(1)], -1)


def pearson(totals: np.ndarray) -> np.ndarray:
    n, sx, sy, sxx, syy, sxy = np.moveaxis(totals, -1, 0)
    cov = sxy / n - (sx / n) * (sy / n)
    var_x = sxx / n - (sx / n) ** 2
    var_y = syy / n - (sy / n) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.sqrt(var_x * var_y)


def correlation_estimate(x: np.ndarray, y: np.ndarray, seed: int = 0) -> Estimate:
    """Pooled Pearson correlation of x and y, (clusters, n) each, with a cluster-bootstrap interval."""
    return cluster_bootstrap(correlation_sums(x, y), pearson, seed)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for binary `labels` (ties count one half)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2 + 1
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def rate_difference_se(p: float, n: int) -> float:
    """Standard error of the difference between two independent n-sample rates whose truth is p:
    how far a rate measured on the selection split may move on the confirmation split."""
    return float(np.sqrt(2 * p * (1 - p) / n))
