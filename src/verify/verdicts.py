"""Checks: one measured number against its bounds, printed the same way everywhere."""

from __future__ import annotations

import math
from dataclasses import dataclass

from verify.stats import Estimate


@dataclass(frozen=True)
class Check:
    """`what` must lie in [lo, hi] (either bound may be infinite). `estimate` carries the interval."""

    what: str
    estimate: Estimate
    lo: float = -math.inf
    hi: float = math.inf

    @property
    def passed(self) -> bool:
        v = self.estimate.value
        return not math.isnan(v) and self.lo <= v <= self.hi

    @property
    def bounds(self) -> str:
        if math.isinf(self.lo):
            return f"<= {self.hi:.4g}"
        if math.isinf(self.hi):
            return f">= {self.lo:.4g}"
        return f"in [{self.lo:.4g}, {self.hi:.4g}]"

    def __str__(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.what} = {self.estimate} (95% CI); required {self.bounds}"


@dataclass(frozen=True)
class Note:
    """A number reported alongside the checks (e.g. recall next to precision), not judged."""

    what: str
    estimate: Estimate

    def __str__(self) -> str:
        return f"info {self.what} = {self.estimate} (95% CI)"


def point(value: float) -> Estimate:
    """A number without an interval (e.g. an AUROC), shown as [value, value]."""
    return Estimate(value, value, value)


def failures(checks) -> list[Check]:
    return [c for c in checks if isinstance(c, Check) and not c.passed]
