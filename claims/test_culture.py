"""Culture-puzzle findings (docs/findings.md), re-checked on every subject that declares them."""

import pytest


@pytest.mark.claim("solved_rate")
def test_solved_rate(measurement, params, claim, verdict):
    """F5: the model solves the puzzles of every task (whole answer grid right)."""
    verdict(claim.checks(measurement, params))


@pytest.mark.claim("ablation_breaks_one_task")
def test_ablation_breaks_one_task(measurement, params, claim, verdict):
    """F1: zeroing the declared hook breaks the declared task's puzzles, by a declared margin more
    often than any other task's."""
    verdict(claim.checks(measurement, params))


@pytest.mark.claim("sae_splice_restores")
def test_sae_splice_restores(measurement, params, claim, verdict):
    """F2: splicing in the SAE's reconstruction solves the puzzles the ablation broke, and changes
    no task's clean solved rate by more than the declared amount."""
    verdict(claim.checks(measurement, params))
