"""A seeded generator of the eight world tasks, following the rules in reference-checkpoints.md.

A quiz is two (input, output) pairs of one task, A -> f(A) and B -> f(B), laid out in one of four
block structures; the fourth block is the answer. Colours, directions and modes are drawn once per
quiz, rectangles per pair. Rectangles are half-open [r0, r1) x [c0, c1), at least `min_side` on
each side (3 on the real 10x10 grid), area <= 50, non-overlapping (touching allowed).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from verify import diskcache, timing
from verify.culture.data import TASKS, Split, check_task, row_digest, row_hashes
from verify.culture.draws import scalar_draws
from verify.culture.layout import MARKERS, PuzzleLayout
from verify.splits import first_distinct

A, FA, B, FB = MARKERS["A"], MARKERS["f(A)"], MARKERS["B"], MARKERS["f(B)"]
# block order of each structure, as (pair, which) with pair 0 = (A, f(A)), 1 = (B, f(B)); which 0 = input
STRUCTURES = (((0, 0), (0, 1), (1, 0), (1, 1)), ((0, 1), (0, 0), (1, 1), (1, 0)),
              ((1, 0), (1, 1), (0, 0), (0, 1)), ((1, 1), (1, 0), (0, 1), (0, 0)))
MARKER_OF = {(0, 0): A, (0, 1): FA, (1, 0): B, (1, 1): FB}
# Keys the disk cache of generated puzzles (`cached_split`): bump it whenever `generate_task` or
# `draw_split` returns other puzzles for some arguments; tests/test_culture_cache.py pins their output.
# 2: splits skip repeats and the selection split's puzzles (`draw_split`).
GENERATOR_VERSION = 2
MAX_DRAWS = 10  # draw_split gives up after MAX_DRAWS * n + 1000 draws (a grid too small for n distinct puzzles)
NOISE = 0.05  # fraction of block 3's cells recoloured at random in the first two structures
MAX_AREA = 50


@dataclass(frozen=True)
class Rect:
    r0: int
    c0: int
    r1: int
    c1: int

    @property
    def cells(self) -> tuple[slice, slice]:
        return slice(self.r0, self.r1), slice(self.c0, self.c1)

    def overlaps(self, o: "Rect") -> bool:
        return self.r0 < o.r1 and o.r0 < self.r1 and self.c0 < o.c1 and o.c0 < self.c1

    def shares_side(self, o: "Rect") -> bool:
        """Touch along a side segment of at least one cell (a shared corner is not enough)."""
        rows = min(self.r1, o.r1) - max(self.r0, o.r0)
        cols = min(self.c1, o.c1) - max(self.c0, o.c0)
        return (rows > 0 and (self.c1 == o.c0 or o.c1 == self.c0)) or (cols > 0 and (self.r1 == o.r0 or o.r1 == self.r0))

    def border(self) -> np.ndarray:
        """(k, 2) cells of the 1-cell border."""
        return np.array([(r, c) for r in range(self.r0, self.r1) for c in range(self.c0, self.c1)
                         if r in (self.r0, self.r1 - 1) or c in (self.c0, self.c1 - 1)])

    def moved(self, dr: int, dc: int) -> "Rect":
        return Rect(self.r0 + dr, self.c0 + dc, self.r1 + dr, self.c1 + dc)

    def inside(self, h: int, w: int) -> bool:
        return 0 <= self.r0 < self.r1 <= h and 0 <= self.c0 < self.c1 <= w


@dataclass(frozen=True)
class Pair:
    input: np.ndarray  # (h, w) colours
    output: np.ndarray
    rects: tuple[Rect, ...]


class Resample(Exception):
    """This draw breaks a rule (e.g. a moved rectangle leaves the grid): draw again."""


def random_rect(rng: np.random.Generator, h: int, w: int, min_side: int, inset: int = 0) -> Rect:
    """A rectangle at least `inset` cells away from the grid's edges: random_rects' draw, alone."""
    return random_rects(rng, 1, h, w, min_side, last_inset=inset)[0]


def n_rects(rng, lo: int, hi: int, h: int, w: int, min_side: int) -> int:
    """A number of rectangles in [lo, hi], no more than the grid can hold."""
    fits = (h // min_side) * (w // min_side)
    if fits < lo:
        raise ValueError(f"a {h}x{w} grid cannot hold {lo} rectangles of side {min_side}")
    return int(rng.integers(lo, min(hi, fits) + 1))


def random_rects(rng, n: int, h: int, w: int, min_side: int, last_min: int | None = None, last_inset: int = 0) -> list[Rect]:
    """n non-overlapping rectangles, each at least `min_side` on a side and of area <= MAX_AREA; the
    last one at least `last_min` and `last_inset` cells away from the edges. Most draws are thrown
    away (a cramped grid): this loop is the generator's hot path, so it works on tuples, not Rects."""
    limits = {(last_min or min_side, last_inset)} | ({(min_side, 0)} if n > 1 else set())
    for side, inset in limits:  # else integers() below would fail with numpy's "low >= high"
        if side > min(h, w) - 2 * inset:
            raise ValueError(f"a {h}x{w} grid cannot hold a rectangle of side {side} kept {inset} cells from its edges")
    integers = rng.integers
    for _ in range(20):
        rects: list[tuple[int, int, int, int]] = []
        for i in range(n):
            last = i == n - 1
            side, inset = (last_min or min_side, last_inset) if last else (min_side, 0)
            for _ in range(50):
                while True:  # a rectangle: its height and width, then where it sits
                    rh, rw = integers(side, h - 2 * inset + 1), integers(side, w - 2 * inset + 1)
                    if rh * rw <= MAX_AREA:
                        r0, c0 = integers(inset, h - inset - rh + 1), integers(inset, w - inset - rw + 1)
                        break
                r1, c1 = r0 + rh, c0 + rw
                for o_r0, o_c0, o_r1, o_c1 in rects:
                    if r0 < o_r1 and o_r0 < r1 and c0 < o_c1 and o_c0 < c1:  # Rect.overlaps
                        break
                else:
                    rects.append((r0, c0, r1, c1))
                    break
        if len(rects) == n:
            return [Rect(*(int(v) for v in r)) for r in rects]
    raise Resample


def paint(h: int, w: int, rects, colours) -> np.ndarray:
    grid = np.zeros((h, w), dtype=np.int64)
    for r, colour in zip(rects, colours):
        grid[r.cells] = colour
    return grid


# --- the tasks: quiz-level draws, then one pair ------------------------------------------------------

def _replace_color(rng, q, h, w, s):
    rects = random_rects(rng, n_rects(rng, 1, 3, h, w, s), h, w, s)
    inp = paint(h, w, rects, q["colours"])
    out = inp.copy()
    out[rects[0].cells] = q["extra"]
    return Pair(inp, out, tuple(rects))


def _translate(rng, q, h, w, s):
    rects = random_rects(rng, n_rects(rng, 1, 3, h, w, s), h, w, s)
    moved = rects[-1].moved(*q["direction"])
    if not moved.inside(h, w) or any(moved.overlaps(o) for o in rects[:-1]):
        raise Resample
    inp = paint(h, w, rects, q["colours"])
    out = paint(h, w, rects[:-1] + [moved], q["colours"])
    return Pair(inp, out, tuple(rects))


def _grow(rng, q, h, w, s):
    # a growing rectangle keeps a 1-cell margin to the edges so that it can grow
    rects = random_rects(rng, n_rects(rng, 1, 3, h, w, s), h, w, s, last_min=s + 1, last_inset=int(q["grow"]))
    last = rects[-1]
    new = (Rect(last.r0 - 1, last.c0 - 1, last.r1 + 1, last.c1 + 1) if q["grow"]
           else Rect(last.r0 + 1, last.c0 + 1, last.r1 - 1, last.c1 - 1))
    if not new.inside(h, w) or any(new.overlaps(o) for o in rects[:-1]):
        raise Resample
    return Pair(paint(h, w, rects, q["colours"]), paint(h, w, rects[:-1] + [new], q["colours"]), tuple(rects))


def _mid_line(r: Rect, direction: str) -> tuple[slice, slice]:
    if direction in ("up", "down"):
        row = r.r0 + (r.r1 - r.r0) // 2
        return slice(row, row + 1), slice(r.c0, r.c1)
    col = r.c0 + (r.c1 - r.c0) // 2
    return slice(r.r0, r.r1), slice(col, col + 1)


def _half(r: Rect, direction: str) -> tuple[slice, slice]:
    """Cells from the mid-line (included) to the edge in `direction`."""
    mid = _mid_line(r, direction)
    return {"up": (slice(r.r0, mid[0].stop), mid[1]), "down": (slice(mid[0].start, r.r1), mid[1]),
            "left": (mid[0], slice(r.c0, mid[1].stop)), "right": (mid[0], slice(mid[1].start, r.c1))}[direction]


def _half_fill(rng, q, h, w, s):
    rects = random_rects(rng, n_rects(rng, 1, 3, h, w, s), h, w, s)
    inp = paint(h, w, rects, q["colours"])
    for r in rects:
        inp[_mid_line(r, q["side"])] = q["extra"]
    out = inp.copy()
    out[_half(rects[-1], q["side"])] = q["extra"]
    return Pair(inp, out, tuple(rects))


def _frame(rng, q, h, w, s):
    rects = random_rects(rng, n_rects(rng, 1, 3, h, w, s), h, w, s, last_min=max(s, 3))
    inp = paint(h, w, rects, q["colours"])
    out = inp.copy()
    last = rects[-1]
    out[last.r0 + 1 : last.r1 - 1, last.c0 + 1 : last.c1 - 1] = 0
    return Pair(inp, out, tuple(rects))


def l_mark(r: Rect, corner: str, arm: int) -> list[tuple[int, int]]:
    """The corner cell and `arm` cells along each edge from it."""
    row, dr = (r.r0, 1) if corner[0] == "t" else (r.r1 - 1, -1)
    col, dc = (r.c0, 1) if corner[1] == "l" else (r.c1 - 1, -1)
    return [(row, col)] + [(row + dr * k, col) for k in range(1, arm + 1)] + [(row, col + dc * k) for k in range(1, arm + 1)]


def _detect(rng, q, h, w, s):
    rects = random_rects(rng, n_rects(rng, 2, 3, h, w, s), h, w, s)
    inp = paint(h, w, rects, q["colours"])
    out = inp.copy()
    for r in rects[:2]:
        for cell in l_mark(r, "tl", 1):
            out[cell] = q["extra"]
    return Pair(inp, out, tuple(rects))


def _corners(rng, q, h, w, s):
    rects = random_rects(rng, n_rects(rng, 1, 3, h, w, s), h, w, s)
    out = paint(h, w, rects, q["colours"])
    inp = np.zeros_like(out)
    for r, colour in zip(rects, q["colours"]):
        for corner in q["corners"]:
            for cell in l_mark(r, corner, 1):
                inp[cell] = colour
    return Pair(inp, out, tuple(rects))


def contact_output(h: int, w: int, rects, colours) -> np.ndarray:
    """The contact rule: borders of rectangles sharing a side with rectangle 0 take its colour."""
    out = paint(h, w, rects, colours)
    for r in rects[1:]:
        if rects[0].shares_side(r):
            rows, cols = r.border().T
            out[rows, cols] = colours[0]
    return out


def _contact(rng, q, h, w, s):
    rects = random_rects(rng, n_rects(rng, 3, 3, h, w, s), h, w, s)
    if not (rects[0].shares_side(rects[1]) or rects[0].shares_side(rects[2])):
        raise Resample
    return Pair(paint(h, w, rects, q["colours"]), contact_output(h, w, rects, q["colours"]), tuple(rects))


PAIR_MAKERS: dict[str, Callable] = {
    "contact": _contact, "corners": _corners, "detect": _detect, "frame": _frame, "grow": _grow,
    "half_fill": _half_fill, "replace_color": _replace_color, "translate": _translate,
}
assert tuple(sorted(PAIR_MAKERS)) == TASKS


def quiz_draws(rng: np.random.Generator) -> dict:
    """What is drawn once per quiz: colours, the extra colour, direction, mode, corners, side."""
    colours = rng.choice(np.arange(1, 11), size=4, replace=False)
    moves = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
    return {"colours": [int(c) for c in colours[:3]], "extra": int(colours[3]),
            "direction": moves[int(rng.integers(len(moves)))], "grow": bool(rng.integers(2)),
            "corners": (("tl", "br"), ("tr", "bl"))[int(rng.integers(2))],
            "side": ("up", "down", "left", "right")[int(rng.integers(4))]}


def make_pair(task: str, rng: np.random.Generator, q: dict, h: int, w: int, min_side: int) -> Pair:
    # the pair makers draw only scalar integers, millions of them: verify.culture.draws gives
    # numpy's numbers without numpy's per-call overhead
    with scalar_draws(rng) as draws:
        for _ in range(1000):
            try:
                return PAIR_MAKERS[task](draws, q, h, w, min_side)
            except Resample:
                continue
    raise RuntimeError(f"task {task}: no valid pair on a {h}x{w} grid after 1000 draws")


def min_side_for(layout: PuzzleLayout) -> int:
    return 3 if min(layout.height, layout.width) >= 8 else 2


def make_quiz(task: str, rng: np.random.Generator, layout: PuzzleLayout) -> tuple[np.ndarray, int, tuple[Pair, Pair]]:
    """(tokens, structure, pairs) of one quiz."""
    check_task(task)
    h, w, s = layout.height, layout.width, min_side_for(layout)
    for _ in range(100):
        q = quiz_draws(rng)
        try:
            pairs = (make_pair(task, rng, q, h, w, s), make_pair(task, rng, q, h, w, s))
            break
        except RuntimeError:
            continue  # this quiz's draws admit no pair (e.g. a translation off a small grid)
    structure = int(rng.integers(4))
    tokens = np.zeros(layout.length, dtype=np.int64)
    for k, (pair, which) in enumerate(STRUCTURES[structure]):
        grid = (pairs[pair].input, pairs[pair].output)[which].copy()
        if k == 2 and structure < 2:
            noisy = rng.random(grid.shape) < NOISE
            grid[noisy] = rng.integers(0, 11, size=int(noisy.sum()))
        tokens[layout.marker_position(k)] = MARKER_OF[(pair, which)]
        tokens[layout.grid_slice(k)] = grid.ravel()
    return tokens, structure, pairs


def generate_task(task: str, n: int, seed: int, layout: PuzzleLayout) -> torch.Tensor:
    """(n, layout.length) int64 puzzles of one task, reproducible from (task, n, seed, layout): the
    first n of the task's seeded stream, repeats included (training data; splits use `draw_split`)."""
    rng = np.random.default_rng([seed, TASKS.index(check_task(task))])
    with timing.stage("data"):
        return torch.from_numpy(np.stack([make_quiz(task, rng, layout)[0] for _ in range(n)]))


def draw_split(task: str, n: int, seed: int, layout: PuzzleLayout, exclude: frozenset[bytes] = frozenset()) -> Split:
    """n puzzles of `generate_task`'s stream for (task, seed, layout), skipping every puzzle that
    repeats one already taken or whose digest (data.row_digest) is in `exclude` (the selection
    split's, for a confirmation split), and drawing on until n are taken: without a skip, the first n
    puzzles are generate_task's. The Split counts the skips."""
    rng = np.random.default_rng([seed, TASKS.index(check_task(task))])
    drawn = []

    def digests():
        for _ in range(MAX_DRAWS * n + 1000):
            drawn.append(make_quiz(task, rng, layout)[0])
            yield row_digest(drawn[-1])

    with timing.stage("data"):
        keep, shared, repeated = first_distinct(digests(), n, exclude)
    if len(keep) == n:
        return Split(torch.from_numpy(np.stack([drawn[i] for i in keep]) if keep else np.zeros((0, layout.length), dtype=np.int64)),
                     shared, repeated)
    raise ValueError(f"task {task}: {n} distinct puzzles not found in {MAX_DRAWS * n + 1000} draws on a "
                     f"{layout.height}x{layout.width} grid ({shared} met in the selection split, {repeated} repeats)")


def cached_split(task: str, n: int, seed: int, layout: PuzzleLayout, held_out_from: torch.Tensor | None = None) -> Split:
    """`draw_split`'s puzzles, excluding the rows `held_out_from` (the selection split), kept in
    the disk cache (verify.diskcache) between sessions with the counts of what was skipped."""
    exclude = frozenset(row_hashes(held_out_from)) if held_out_from is not None else frozenset()
    key = {"generator": GENERATOR_VERSION, "task": check_task(task), "n": n, "seed": seed, "layout": dataclasses.asdict(layout),
           "excluding": None if held_out_from is None else diskcache.digest(held_out_from.numpy())}
    made: list[Split] = []

    def make() -> Split:
        if not made:
            made.append(draw_split(task, n, seed, layout, exclude))
        return made[0]

    tokens = diskcache.cached_array("culture-puzzles", key, lambda: make().tokens.numpy())
    skipped = diskcache.cached_array("culture-puzzles-skipped", key, lambda: np.array([make().shared, make().repeated]))
    return Split(torch.from_numpy(tokens), int(skipped[0]), int(skipped[1]))


def build_dataset(n_per_task: int, seed: int, layout: PuzzleLayout):
    """A datasets.DatasetDict with one split per task in the real schema (input_ids int32, label)."""
    import datasets

    features = datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32")),
                                  "label": datasets.ClassLabel(names=list(TASKS))})
    return datasets.DatasetDict({
        task: datasets.Dataset.from_dict(
            {"input_ids": generate_task(task, n_per_task, seed, layout).int().tolist(), "label": [TASKS.index(task)] * n_per_task},
            features=features)
        for task in TASKS})
