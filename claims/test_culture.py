"""Culture-puzzle findings F1, F2, F5 (shared/docs/FINDINGS.md), re-checked per declaring subject."""

import pytest

from verify.findings import culture as f


@pytest.mark.claim("solved_rate")
def test_solved_rate(subject, params, verdict):
    """F5: the model solves the puzzles of every task (whole answer grid right)."""
    verdict(f.judge_solved_rate(f.measure_solved_rate(subject, params), params))


@pytest.mark.claim("ablation_breaks_one_task")
def test_ablation_breaks_one_task(subject, params, verdict):
    """F1: zeroing the declared hook breaks the declared task's puzzles and (almost) no other task's."""
    verdict(f.judge_ablation(f.measure_ablation(subject, params), params))


@pytest.mark.claim("sae_splice_restores")
def test_sae_splice_restores(subject, params, verdict):
    """F2: splicing in the SAE's reconstruction solves the puzzles the ablation broke, and changes
    no task's clean solved rate by more than the declared amount."""
    verdict(f.judge_splice(f.measure_splice(subject, params), params))
