"""A claim of this project's own: the residual stream's mean norm at a hook lies in a band."""

from dataclasses import dataclass

import numpy as np

from verify import Check, Claim, register_claim, stats
from verify.activations import hook_activations
from verify.othello.data import input_tokens, split
from verify.params import VectorHook


@dataclass(frozen=True)
class ResidualNorm:
    hook: VectorHook  # checked against the model's hook points before anything is loaded
    min_norm: float
    max_norm: float = float("inf")


def measure(subject, p: ResidualNorm) -> stats.Estimate:
    games = split(subject, "confirmation")  # held-out games, from the manifest's seed
    norms = hook_activations(subject.model, input_tokens(subject, games), p.hook).norm(dim=-1).mean(-1)
    return stats.ratio_estimate(norms.double().cpu().numpy(), np.ones(len(norms)))  # interval over games


def judge(norm: stats.Estimate, p: ResidualNorm) -> list:
    return [Check(f"mean residual norm at {p.hook}", norm, p.min_norm, p.max_norm)]


register_claim(Claim("residual_norm", "othello", ResidualNorm, measure, judge, version=1))
