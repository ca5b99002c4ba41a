"""verify.culture.draws: numpy's scalar integers and the Generator's state afterwards, exactly."""

import numpy as np
import pytest

from verify.culture import draws as D

# n = high - low: 1 draws nothing; 2**31 + 1 rejects about half its words; 2**32 - 1 and 2**32 are the edges
RANGES = [1, 2, 3, 4, 5, 6, 7, 11, 1000, 2**31 + 1, 3 * 2**30 + 7, 2**32 - 1, 2**32]


def other_numpy_draws(rng: np.random.Generator, k: int) -> None:
    """What the puzzle generator draws through numpy between emulated stretches, mixed so that the
    32-bit buffer is left full or empty (with a stale word)."""
    [lambda: rng.integers(0, 3), lambda: rng.random(),
     lambda: rng.choice(np.arange(1, 11), size=4, replace=False), lambda: rng.integers(0, 11, size=k),
     lambda: rng.random((3, 3)) < 0.05, lambda: rng.integers(4)][k % 6]()


@pytest.mark.parametrize("seed", range(60))
def test_emulated_integers_are_numpys_and_leave_numpys_state(seed):
    mine, theirs = np.random.default_rng([seed, 3]), np.random.default_rng([seed, 3])
    plan = np.random.default_rng(seed)  # how many draws of which ranges, between which numpy draws
    words = draws = 0
    for stretch in range(12):
        k = int(plan.integers(0, 7))
        for rng in (mine, theirs):
            other_numpy_draws(rng, k)
        assert mine.bit_generator.state == theirs.bit_generator.state
        # stretches of 0 and 1 draws (the buffered word only), across blocks, and in between
        count = [0, 1, 2, 3, 2 * D.BLOCK + 1, int(plan.integers(0, 40))][stretch % 6]
        lows = plan.integers(-50, 50, size=count).tolist()
        ns = [RANGES[i] for i in plan.integers(0, len(RANGES), size=count)]
        emulated = D.Pcg64Integers(mine)
        got = [emulated.integers(low, low + n) for low, n in zip(lows, ns)]
        words += emulated.taken - emulated._buffered
        emulated.close()
        want = [int(theirs.integers(low, low + n)) for low, n in zip(lows, ns)]
        draws += sum(n > 1 for n in ns)
        assert got == want
        assert mine.bit_generator.state == theirs.bit_generator.state
    assert words > draws  # Lemire's method rejected some words, and the emulation followed numpy there
    assert mine.random() == theirs.random()


def test_small_ranges_the_generator_uses():
    """Thousands of draws of the rectangle ranges, in one stretch, as random_rects makes them."""
    mine, theirs = np.random.default_rng(11), np.random.default_rng(11)
    plan = [(lo, lo + n) for lo in range(0, 4) for n in range(1, 12)] * 300
    with D.scalar_draws(mine) as emulated:
        assert isinstance(emulated, D.Pcg64Integers)  # this numpy passes the self-check
        got = [emulated.integers(lo, hi) for lo, hi in plan]
    assert got == [int(theirs.integers(lo, hi)) for lo, hi in plan]
    assert mine.bit_generator.state == theirs.bit_generator.state


def test_an_exception_inside_still_hands_numpys_state_back():
    mine, theirs = np.random.default_rng(5), np.random.default_rng(5)
    with pytest.raises(KeyError):
        with D.scalar_draws(mine) as emulated:
            emulated.integers(0, 7), emulated.integers(2, 9), emulated.integers(0, 3)
            raise KeyError("a pair maker's Resample, say")
    theirs.integers(0, 7), theirs.integers(2, 9), theirs.integers(0, 3)
    assert mine.bit_generator.state == theirs.bit_generator.state


def test_ranges_outside_the_emulated_ones_are_refused():
    with D.scalar_draws(np.random.default_rng(0)) as emulated:
        for low, high in [(3, 3), (4, 3), (0, 2**32 + 1)]:
            with pytest.raises(ValueError, match="outside the emulated range"):
                emulated.integers(low, high)


def test_another_bit_generator_draws_through_numpy():
    mt = np.random.Generator(np.random.MT19937(0))
    with D.scalar_draws(mt) as draws:
        assert draws is mt


def modulo_integers(self, low, high):
    return low + self._next() % (high - low)


def state_without_buffer(self, rng):
    raise KeyError("has_uint32")


@pytest.mark.parametrize("patch", [("integers", modulo_integers), ("__init__", state_without_buffer)], ids=["modulo", "state"])
def test_the_self_check_falls_back_to_numpy_where_the_emulation_does_not_hold(monkeypatch, patch):
    """A numpy drawing bounded integers otherwise (here: modulo instead of Lemire's method) or keeping
    PCG64's state otherwise fails the first-use check: the generator then draws through numpy, warned."""
    assert D.emulation_agrees()  # this numpy: the emulation holds
    monkeypatch.setattr(D.Pcg64Integers, *patch)
    D.emulation_agrees.cache_clear()
    try:
        with pytest.warns(UserWarning, match="drawing through numpy"):
            assert not D.emulation_agrees()
        rng = np.random.default_rng(0)
        with D.scalar_draws(rng) as draws:
            assert draws is rng
    finally:
        D.emulation_agrees.cache_clear()
