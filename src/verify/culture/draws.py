"""numpy's scalar `Generator.integers(low, high)`, computed in Python from raw outputs fetched in bulk.

Why: the puzzle generator (verify.culture.tasks.random_rects) draws millions of small integers one
at a time, most of them for rectangles it then throws away, and a scalar numpy call costs ~0.85 us
of call overhead. The puzzles are pinned (tests/test_culture_cache.py), so a faster sampler must
return numpy's numbers and leave the Generator where numpy would: `scalar_draws` does both.

What it relies on (numpy's random/src/distributions/distributions.c, random_bounded_uint64_fill,
and random/src/pcg64/pcg64.h, pcg64_next32), for the default int64 dtype and the PCG64 bit generator
that np.random.default_rng makes:
- high - low == 1 draws nothing and returns low;
- high - low = n <= 2**32 draws 32-bit words and applies Lemire's method: m = u * n, redrawn while
  m mod 2**32 < (2**32 - n) mod n (checked only when m mod 2**32 < n), giving low + m // 2**32;
- PCG64's 32-bit word is the low half of a fresh 64-bit output, whose high half is kept
  (state["has_uint32"], state["uinteger"]) and returned by the next 32-bit request;
- bit_generator.random_raw(k) returns the next k 64-bit outputs without touching that buffer,
  and advance(j) steps the state j outputs and clears the buffer.
A numpy whose integers differ would make other numbers than numpy's own calls, so the first use
checks these assumptions against numpy (`emulation_agrees`) and, if they fail, `scalar_draws` hands
out the Generator itself, with a warning: slower, never different.
"""

from __future__ import annotations

import functools
import operator
import warnings
from contextlib import contextmanager
from typing import Iterator

import numpy as np

MASK32 = 0xFFFFFFFF
BLOCK = 256  # 64-bit outputs fetched at a time: a few microseconds, more than most pairs need


class Pcg64Integers:
    """Scalar integers(low, high) of a PCG64 Generator, numpy's numbers; `close` hands the
    Generator back in numpy's state. Nothing else may draw from the Generator until then."""

    def __init__(self, rng: np.random.Generator):
        self._bitgen = rng.bit_generator
        self._start = self._bitgen.state
        # the 32-bit words numpy would hand out, in order: the buffered high half first, if any
        self._buffered = self._start["has_uint32"]
        self._before = 0  # words in the blocks before self._words
        self._start_block(([self._start["uinteger"]] if self._buffered else []) + self._fetch())

    def _fetch(self) -> list[int]:
        raw = self._bitgen.random_raw(BLOCK)
        return np.stack([raw & MASK32, raw >> 32], axis=1).ravel().tolist()

    def _start_block(self, words: list[int]) -> None:
        self._words = words
        self._unread = iter(words)
        self._next_word = self._unread.__next__  # a C call: the cheapest way to take a word

    def _next(self) -> int:
        """The next word, fetching a block when this one is used up."""
        try:
            return self._next_word()
        except StopIteration:
            self._before += len(self._words)
            self._start_block(self._fetch())
            return self._next_word()

    def integers(self, low: int, high: int) -> int:
        n = high - low
        if n == 1:
            return low
        if not 1 < n <= 2**32:
            raise ValueError(f"Pcg64Integers.integers: {high} - {low} outside the emulated range 1..2**32")
        try:
            m = self._next_word() * n  # self._next(), inlined: this is the hot path
        except StopIteration:
            m = self._next() * n
        if m & MASK32 < n:  # rare (n / 2**32): the only case where Lemire's method may reject
            threshold = (2**32 - n) % n
            while m & MASK32 < threshold:
                m = self._next() * n
        return low + (m >> 32)

    @property
    def taken(self) -> int:
        """32-bit words taken so far, the buffered one included."""
        return self._before + len(self._words) - operator.length_hint(self._unread)

    def close(self) -> None:
        """Put the bit generator where numpy's own calls would have left it."""
        used = self.taken - self._buffered  # words taken from fresh 64-bit outputs
        if used <= 0:
            # at most the buffered word was taken: no output drawn; numpy keeps the stale uinteger
            self._bitgen.state = dict(self._start, has_uint32=int(used < 0))
            return
        outputs = (used + 1) // 2
        self._bitgen.state = self._start
        self._bitgen.advance(outputs)
        # the last output's high half: buffered if only its low half was used, stale otherwise
        high = self._words[self._buffered + 2 * outputs - 1 - self._before]
        self._bitgen.state = dict(self._bitgen.state, has_uint32=used % 2, uinteger=high)


@functools.cache
def emulation_agrees() -> bool:
    """Whether Pcg64Integers gives this numpy's numbers and final state, on ranges where Lemire's
    method rejects often (2**31 + 1) and never (1), starting with the 32-bit buffer empty (seeds 0
    and 2, the latter with a stale word) and full (1 and 3), across a block boundary. Warns if not.
    A numpy whose PCG64 state or random_raw look otherwise (the errors caught) disagrees too."""
    ranges = [1, 2, 3, 5, 6, 7, 2**31 + 1, 3 * 2**30 + 7, 2**32 - 1, 2**32]
    for seed in range(4):
        mine, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
        for rng in (mine, theirs):
            for _ in range(seed):
                rng.integers(0, 3)  # each takes one 32-bit word: odd seeds leave the buffer full
        want = [int(theirs.integers(-5, -5 + ranges[k % len(ranges)])) for k in range(3 * BLOCK + seed)]
        try:
            emulated = Pcg64Integers(mine)
            got = [emulated.integers(-5, -5 + ranges[k % len(ranges)]) for k in range(3 * BLOCK + seed)]
            emulated.close()
            agrees = got == want and mine.bit_generator.state == theirs.bit_generator.state
        except (AttributeError, KeyError, TypeError, ValueError):
            agrees = False
        if not agrees:
            warnings.warn(f"numpy {np.__version__}: its integers differ from verify.culture.draws' emulation; "
                          "drawing through numpy (slower, same numbers)")
            return False
    return True


@contextmanager
def scalar_draws(rng: np.random.Generator) -> Iterator:
    """An object whose integers(low, high) gives rng.integers(low, high)'s number, fast for a PCG64
    Generator (otherwise it is rng itself): draw only through it inside the block; on leaving, rng
    is where numpy's own calls would have left it."""
    if not (isinstance(rng.bit_generator, np.random.PCG64) and emulation_agrees()):
        yield rng
        return
    draws = Pcg64Integers(rng)
    try:
        yield draws
    finally:
        draws.close()
