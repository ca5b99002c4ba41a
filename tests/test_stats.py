"""Statistics: point values against direct formulas, intervals that cover and can exclude."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from verify import stats


def test_pooled_correlation_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 30))
    y = x * 0.5 + rng.normal(size=(40, 30))
    est = stats.correlation_estimate(x, y)
    assert est.value == pytest.approx(np.corrcoef(x.ravel(), y.ravel())[0, 1], abs=1e-12)
    assert est.lo < est.value < est.hi


def test_interval_excludes_zero_for_a_real_effect_and_covers_it_for_none():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 20))
    assert stats.correlation_estimate(x, x + rng.normal(size=x.shape)).lo > 0.5
    # a 95% interval covers a true zero in about 19 of 20 independent data sets
    covered = [(e := stats.correlation_estimate(x, rng.normal(size=x.shape), seed=i)).lo < 0 < e.hi for i in range(40)]
    assert sum(covered) >= 34


def test_ratio_is_pooled_over_clusters():
    est = stats.ratio_estimate(np.array([1, 9]), np.array([10, 10]))
    assert est.value == pytest.approx(0.5)


def test_bootstrap_is_deterministic_for_a_seed():
    rng = np.random.default_rng(2)
    num, den = rng.integers(0, 10, 50), np.full(50, 10)
    assert stats.ratio_estimate(num, den, seed=3) == stats.ratio_estimate(num, den, seed=3)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="clusters"):
        stats.cluster_bootstrap(np.zeros(5), stats.ratio)


@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=50), st.data())
def test_auroc_matches_pairwise_definition(scores, data):
    labels = data.draw(st.lists(st.booleans(), min_size=len(scores), max_size=len(scores)))
    s, l = np.array(scores), np.array(labels)
    if l.all() or not l.any():
        assert np.isnan(stats.auroc(s, l))
        return
    pos, neg = s[l], s[~l]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert stats.auroc(s, l) == pytest.approx(pairwise)
