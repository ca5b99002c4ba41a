"""The answer oracle: which answers a culture puzzle allows, read from its tokens alone.

Definition (VERSION 2). A puzzle shows a worked example (blocks 0 and 1: one pair's input
and output, in the order their markers give) and a question (block 2: one half of the other pair);
block 3, the answer, is that pair's other half. A *hypothesis* is what `tasks.make_quiz` draws and
the tokens hide: the quiz parameters the task's rule reads (the colour of each rectangle index, the
extra colour, the direction, the grow/shrink mode, the corner pair, the half_fill side) and, per
pair, an ordered tuple of rectangles the generator can draw (a count in the task's `n_rects` range;
sides >= `min_side_for(layout)`, or the last rectangle's own minimum and edge inset; area <=
MAX_AREA; non-overlapping; the task's conditions on the moved or grown last rectangle and on
contact); rectangle i has colour i, colours distinct and unlike the extra colour. A hypothesis is
kept when it reproduces the worked example exactly, cell for cell, and its question half is the
least Hamming distance d* from block 2 among all such hypotheses; d* = 0 wherever block 2 is
noise-free (structures 2 and 3, and noisy blocks whose noise changed nothing). The *valid answers*
are the answer halves of the kept hypotheses; a puzzle is *determined* when there is exactly one.
A pair is *degenerate* when its output equals its input. A rate over determined puzzles *counts* a
puzzle when it is determined, its one valid answer is the answer block (the one scored: noise can
make a wrong reading strictly closer and leave one valid answer that is not it), and no pair is
degenerate: the worked example (noise-free), the question's pair as the kept hypotheses read it,
noise-free (noise in block 2 can hide that its pair is degenerate; a kept reading that is
degenerate makes the puzzle degenerate), and block 2 as shown against the answer. VERSION 1
judged the question's pair as shown only and did not compare the one valid answer with the answer
block.

Noise. In structures 0 and 1 block 2 carries the generator's 5% noise, which can turn any grid into
any other; the least-distance rule is the maximum-likelihood reading of it. Always d* <= the number
of cells the noise changed (the true hypothesis is at that distance), and when they are equal the
true answer is valid. Noise that leaves two readings equally close (e.g. a stray cell beside a
rectangle two cells wide) makes the puzzle undetermined; noise that makes a wrong reading strictly
closer leaves the true answer out (and the puzzle may then count as determined). Measured on 100
noisy puzzles per task: noise alone made 2-7% of them undetermined on 6x6 grids and 0-2% on 10x10;
the true answer was left out once in about 2000 noisy puzzles (a 10x10 contact output).

How, and how fast. A grid is a background of 0 with each rectangle's pattern drawn in its own
cells, so a hypothesis's distance to a grid is (nonzero cells) + the sum over its rectangles of
(cells not showing the pattern - nonzero cells), a score per rectangle. Per grid, integral images
count every colour over every rectangle's parts (all R rectangles: 441 on 6x6, 3025 on 10x10); each
rectangle index gets its (rectangle, colour) candidates sorted by score, and a branch and bound over
the <= 3 indices keeps those that can end within the bound (least scores left, cells already wrong,
overlaps, distinct colours). It extends all partial hypotheses of a search at once, index by index
in depth-first order, pairing each with only the candidates its score allows (a prefix of the sorted
list) and reading overlaps and shared sides from (R, R) tables per grid size: one numpy step per
index, where a search node by node made one per node (190k for 400 6x6 contact puzzles, most of
their time). An exact reading (the example; noise-free questions) keeps only candidates that match
their pattern and hold every cell of their colour, so a handful remain; a noisy question is searched
by iterative deepening, bound 0, 1, ... until a hypothesis fits. Every kept hypothesis is redrawn
with the generator's rule and checked against its distance. Cost: O(R) numpy work per grid and
candidate list, a few numpy steps per index and bound, and the tables once per process (10x10: 2 x
9 MB, ~60 ms). Measured as CPU time of `counts` per puzzle on this 2-core machine, with other jobs
running on it: on 6x6 (800 puzzles per task, draw_split seeds 100 and 101) 0.7-1.8 ms on average
per task, contact 1.4 ms (12.6 ms node by node), under 100 ms at worst; on 10x10 (200 per task)
1.4-3.1 ms on average, under 30 ms at worst but the first puzzle (~150 ms: the geometry and tables).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace
from functools import cache, cached_property
from typing import Iterator

import numpy as np
import torch

from verify import diskcache, timing
from verify.culture.data import check_task
from verify.culture.layout import MARKERS, N_COLOURS, PuzzleLayout
from verify.culture.tasks import (MARKER_OF, MAX_AREA, STRUCTURES, Rect, _half, _mid_line, contact_output, l_mark,
                                  min_side_for, paint)

# Of the definition above: bump it when what counts as a valid answer, or what a rate counts, changes.
# It keys the disk caches of `counted` and `answer_grids`; tests/test_culture_cache.py pins the mask.
VERSION = 2

MOVES = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))
SETTINGS = {  # the values `quiz_draws` can give the parameters each task's rule reads
    "translate": tuple({"direction": move} for move in MOVES),
    "grow": ({"grow": True}, {"grow": False}),
    "corners": ({"corners": ("tl", "br")}, {"corners": ("tr", "bl")}),
    "half_fill": tuple({"side": side} for side in ("up", "down", "left", "right")),
}
USES_EXTRA = frozenset({"replace_color", "half_fill", "detect"})
RECT_COUNTS = {"detect": (2, 3), "contact": (3, 3)}  # (lo, hi) of `n_rects`; (1, 3) for the others
INPUT_MARKERS = frozenset({MARKERS["A"], MARKERS["B"]})
STRUCTURE_OF_ANSWER_MARKER = {MARKER_OF[order[-1]]: s for s, order in enumerate(STRUCTURES)}
NOISY_STRUCTURES = (0, 1)  # make_quiz adds noise to block 2 in these
OWN = "own"  # in a Pattern: the rectangle's own colour


# --- the generator's rules, for a given hypothesis ---------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """The quiz parameters of a hypothesis; None where the task does not read one."""
    colours: tuple[int, ...] = ()  # colour of rectangle 0, 1, ... as far as the worked example shows
    extra: int | None = None
    direction: tuple[int, int] | None = None
    grow: bool | None = None
    corners: tuple[str, str] | None = None
    side: str | None = None


def last_moved(task: str, rule: Rule, r: Rect) -> Rect:
    """Where the rule draws the last rectangle in the output: moved (translate), grown or shrunk (grow)."""
    if task == "translate":
        return r.moved(*rule.direction)
    if task == "grow":
        d = 1 if rule.grow else -1
        return Rect(r.r0 - d, r.c0 - d, r.r1 + d, r.c1 + d)
    return r


def pair_grids(task: str, rule: Rule, rects, colours, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(input, output) of the pair with these rectangles: the rules of `tasks.PAIR_MAKERS`."""
    rects, colours = list(rects), list(colours)
    inp = paint(h, w, rects, colours)
    if task in ("translate", "grow"):
        return inp, paint(h, w, rects[:-1] + [last_moved(task, rule, rects[-1])], colours)
    if task == "contact":
        return inp, contact_output(h, w, rects, colours)
    if task == "corners":
        marks = np.zeros_like(inp)
        for r, colour in zip(rects, colours):
            for cell in corner_cells(r, rule.corners):
                marks[cell] = colour
        return marks, inp
    if task == "half_fill":
        for r in rects:
            inp[_mid_line(r, rule.side)] = rule.extra
    out, last = inp.copy(), rects[-1]
    if task == "replace_color":
        out[rects[0].cells] = rule.extra
    elif task == "half_fill":
        out[_half(last, rule.side)] = rule.extra
    elif task == "frame":
        out[interior(last)] = 0
    elif task == "detect":
        for r in rects[:2]:
            for cell in corner_cells(r, ("tl",)):
                out[cell] = rule.extra
    return inp, out


def corner_cells(r: Rect, corners) -> set[tuple[int, int]]:
    return {cell for corner in corners for cell in l_mark(r, corner, 1)}


def interior(r: Rect) -> tuple[slice, slice]:
    return slice(r.r0 + 1, r.r1 - 1), slice(r.c0 + 1, r.c1 - 1)


def rect_limits(task: str, rule: Rule, min_side: int, last: bool) -> tuple[int, int]:
    """(least side, inset from the edges) of a rectangle: `random_rects`'s last_min and last_inset."""
    if last and task == "frame":
        return max(min_side, 3), 0
    if last and task == "grow":
        return min_side + 1, int(rule.grow)
    return min_side, 0


def rect_counts(task: str, h: int, w: int, min_side: int) -> range:
    """The rectangle counts `n_rects` can give (none where the generator raises)."""
    lo, hi = RECT_COUNTS.get(task, (1, 3))
    return range(lo, min(hi, (h // min_side) * (w // min_side)) + 1)


# --- what the tokens show ------------------------------------------------------------------------

@dataclass(frozen=True)
class Puzzle:
    example_input: np.ndarray
    example_output: np.ndarray
    question: np.ndarray
    answer: np.ndarray
    question_is_input: bool
    noisy: bool


def read_puzzle(tokens, layout: PuzzleLayout) -> Puzzle:
    """The blocks of one puzzle (a 1-D array or tensor of layout.length tokens), checked against STRUCTURES."""
    tokens = torch.as_tensor(tokens).cpu().numpy().astype(np.int64)
    if tokens.shape != (layout.length,) or layout.n_blocks != 4:
        raise ValueError(f"expected one puzzle of {layout.length} tokens in 4 blocks, got shape {tokens.shape}")
    markers = [int(tokens[layout.marker_position(k)]) for k in range(4)]
    structure = STRUCTURE_OF_ANSWER_MARKER.get(markers[3])
    if structure is None or markers != [MARKER_OF[half] for half in STRUCTURES[structure]]:
        raise ValueError(f"block markers {markers} follow none of the structures")
    grids = [tokens[layout.grid_slice(k)].reshape(layout.height, layout.width) for k in range(4)]
    if any(((g < 0) | (g >= N_COLOURS)).any() for g in grids):
        raise ValueError(f"a grid cell is not a colour 0..{N_COLOURS - 1}")
    first_is_input = markers[0] in INPUT_MARKERS
    return Puzzle(example_input=grids[0 if first_is_input else 1], example_output=grids[1 if first_is_input else 0],
                  question=grids[2], answer=grids[3], question_is_input=markers[2] in INPUT_MARKERS,
                  noisy=structure in NOISY_STRUCTURES)


# --- every rectangle of a grid, and colour counts over its parts -----------------------------------

class Geometry:
    """Every rectangle of an h x w grid (any size), where the rules move them, and where their parts lie."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.rects = [Rect(r0, c0, r1, c1) for r0 in range(h) for r1 in range(r0 + 1, h + 1)
                      for c0 in range(w) for c1 in range(c0 + 1, w + 1)]
        self.index = {r: i for i, r in enumerate(self.rects)}
        self.coords = np.array([(r.r0, r.c0, r.r1, r.c1) for r in self.rects])
        self.heights = self.coords[:, 2] - self.coords[:, 0]
        self.widths = self.coords[:, 3] - self.coords[:, 1]
        self._fitting: dict = {}
        self._moved: dict = {}
        self._parts: dict = {}

    @cached_property
    def overlaps(self) -> np.ndarray:
        """(R, R) bool: Rect.overlaps of every two rectangles."""
        boxes = self.coords.astype(np.int16)  # not int64: builds the 3025 x 3025 of 10x10 grids ~4x faster
        return overlapping(boxes[:, None], boxes[None])

    @cached_property
    def shares_side(self) -> np.ndarray:
        """(R, R) bool: Rect.shares_side of every two rectangles."""
        boxes = self.coords.astype(np.int16)
        return sharing_side(boxes[:, None], boxes[None])

    def fitting(self, min_side: int, inset: int) -> np.ndarray:
        """Indices of the rectangles `random_rect` can draw with these limits."""
        if (min_side, inset) not in self._fitting:  # asked once per candidate list: thousands of times per task
            r0, c0, r1, c1 = self.coords.T
            ok = (np.minimum(self.heights, self.widths) >= min_side) & (self.heights * self.widths <= MAX_AREA)
            ok &= (r0 >= inset) & (c0 >= inset) & (r1 <= self.h - inset) & (c1 <= self.w - inset)
            self._fitting[min_side, inset] = np.flatnonzero(ok)
        return self._fitting[min_side, inset]

    def moved(self, task: str, rule: Rule) -> np.ndarray:
        """For every rectangle, the index of `last_moved` of it; -1 where that leaves the grid."""
        key = (task, rule.direction, rule.grow)
        if key not in self._moved:
            self._moved[key] = np.array([self.index.get(last_moved(task, rule, r), -1) for r in self.rects])
        return self._moved[key]

    def part(self, part) -> np.ndarray:
        """Where `part` (see `part_cells`) of each rectangle lies: (rectangles, 4) boxes r0, c0, r1, c1
        for the rectangular parts; (rectangles, 6) flat cell indices, padded with h*w, for L marks."""
        if part not in self._parts:
            if isinstance(part, tuple) and part[0] == "corners":
                cells = np.full((len(self.rects), 6), self.h * self.w)
                for i, r in enumerate(self.rects):
                    marks = part_cells(part, r)
                    cells[i, : len(marks)] = [row * self.w + col for row, col in marks]
                self._parts[part] = cells
            else:
                rows, cols = zip(*(part_cells(part, r) for r in self.rects))
                self._parts[part] = np.array([(rs.start, cs.start, max(rs.start, rs.stop), max(cs.start, cs.stop))
                                              for rs, cs in zip(rows, cols)])
        return self._parts[part]


def part_cells(part, r: Rect):
    """The cells of a part of a rectangle: (rows, cols) slices for "full", "interior", ("mid", side)
    and ("half", side); a set of cells for ("corners", corners), the L marks (none on a rectangle
    too thin to hold them)."""
    if part == "full":
        return r.cells
    if part == "interior":
        return interior(r)
    kind, arg = part
    if kind == "mid":
        return _mid_line(r, arg)
    if kind == "half":
        return _half(r, arg)
    return corner_cells(r, arg) if min(r.r1 - r.r0, r.c1 - r.c0) >= 2 else set()


@cache
def geometry(h: int, w: int) -> Geometry:
    return Geometry(h, w)


# --- how each rectangle is drawn, and its score -------------------------------------------------

@dataclass(frozen=True)
class Pattern:
    """How a rule draws one rectangle: all its cells in `base`, then the cells of `part` in `over`
    (colours, or OWN for the rectangle's own colour)."""
    base: int | str
    part: object = None
    over: int | str | None = None
    touches: int = -1  # contact outputs: drawn as sharing a side with rectangle 0 (1) or not (0)
    own_shared: bool = False  # the own colour is drawn by other rectangles too (contact's rectangle 0)


def patterns(task: str, rule: Rule, index: int, last: bool, is_input: bool) -> list[Pattern]:
    """The ways rectangle `index` (the last one or not) is drawn in a pair's input or output."""
    if task == "half_fill" and last and not is_input:
        return [Pattern(OWN, ("half", rule.side), rule.extra)]
    if task == "half_fill":  # the mid-line is across the side's axis: the same for up and down
        return [Pattern(OWN, ("mid", {"down": "up", "right": "left"}.get(rule.side, rule.side)), rule.extra)]
    if task == "corners":
        return [Pattern(0, ("corners", rule.corners), OWN) if is_input else Pattern(OWN)]
    if is_input:
        return [Pattern(OWN)]
    if task == "replace_color" and index == 0:
        return [Pattern(rule.extra)]
    if task == "frame" and last:
        return [Pattern(OWN, "interior", 0)]
    if task == "detect" and index < 2:
        return [Pattern(OWN, ("corners", ("tl",)), rule.extra)]
    if task == "contact":
        if index == 0:
            return [Pattern(OWN, own_shared=True)]
        return [Pattern(OWN, touches=0), Pattern(rule.colours[0], "interior", OWN, touches=1)]
    return [Pattern(OWN)]


@dataclass(frozen=True)
class Candidates:
    """Everything one rectangle index can be, best score first. The score is the change to the
    distance from the grid that drawing it makes: its mismatching cells minus its nonzero cells."""
    rect: np.ndarray  # geometry index of the hypothesis's rectangle
    moved: np.ndarray  # geometry index of `last_moved` of it (the rectangle itself but for the last index)
    colour: np.ndarray
    touches: np.ndarray
    score: np.ndarray
    mismatched: np.ndarray  # cells of the rectangle that do not show its pattern
    best: np.ndarray  # (N_COLOURS,) least score per colour, inf where none
    moves: bool  # the rule draws it elsewhere in the output (the last rectangle in translate and grow)


def free_colours(rule: Rule) -> list[int]:
    """Colours a rectangle index the worked example does not show can have."""
    return [c for c in range(1, N_COLOURS) if c not in rule.colours and c != rule.extra]


# --- one grid, read as one half of a pair ----------------------------------------------------------

class GridReading:
    """A grid read as a pair's input (or output) under the rules of `task`: exactly, or scored for the
    least distance. Holds its colour counts over every rectangle's parts, and each index's candidates."""

    def __init__(self, task: str, grid: np.ndarray, is_input: bool, geo: Geometry, min_side: int, exact: bool):
        self.task, self.is_input, self.geometry, self.min_side, self.exact = task, is_input, geo, min_side, exact
        onehot = np.eye(N_COLOURS, dtype=np.int64)[grid]  # (h, w, colours)
        self.cumulative = np.pad(onehot.cumsum(0).cumsum(1), ((1, 0), (1, 0), (0, 0)))  # counts above-left of (r, c)
        # one-hot colour of each cell, row-major, and a row of zeros for the padding of L marks
        self.cell_colours = np.vstack([onehot.reshape(-1, N_COLOURS), np.zeros((1, N_COLOURS), dtype=np.int64)])
        self.total = np.bincount(grid.ravel(), minlength=N_COLOURS)
        self.nonzero = int((grid != 0).sum())
        self._counts: dict = {}
        self._candidates: dict = {}

    def counts(self, part) -> np.ndarray:
        """(rectangles, N_COLOURS): how many cells of each colour `part` of each rectangle holds."""
        if part not in self._counts:
            where = self.geometry.part(part)
            if where.shape[1] == 4:
                r0, c0, r1, c1 = where.T
                s = self.cumulative
                self._counts[part] = s[r1, c1] - s[r0, c1] - s[r1, c0] + s[r0, c0]
            else:
                self._counts[part] = self.cell_colours[where].sum(axis=1)
        return self._counts[part]

    def matched(self, pattern: Pattern, scene: np.ndarray, own: np.ndarray) -> np.ndarray:
        """(rectangles, colours): cells of each scene rectangle that show the pattern, per own colour."""
        def column(colour):
            return own if colour == OWN else np.full(len(own), colour)

        matched = self.counts("full")[scene][:, column(pattern.base)]
        if pattern.part is not None:
            part = self.counts(pattern.part)[scene]
            matched = matched - part[:, column(pattern.base)] + part[:, column(pattern.over)]
        return matched

    def candidates(self, rule: Rule, index: int, last: bool) -> Candidates:
        """Scored candidates for rectangle `index`; when exact, only those drawn without a mismatch
        that hold every cell of their own colour the grid shows. Shared by the rules that agree on
        what they make of this index."""
        drawn = tuple(patterns(self.task, rule, index, last, self.is_input))
        limits = rect_limits(self.task, rule, self.min_side, last)
        motion = (rule.direction, rule.grow) if last and self.task in ("translate", "grow") else None
        own = (rule.colours[index],) if index < len(rule.colours) else tuple(free_colours(rule))
        key = (drawn, limits, motion, own)
        if key not in self._candidates:
            self._candidates[key] = self._score(rule, drawn, limits, last, np.array(own))
        return self._candidates[key]

    def _score(self, rule: Rule, drawn: tuple, limits: tuple[int, int], last: bool, own: np.ndarray) -> Candidates:
        geo = self.geometry
        rects = geo.fitting(*limits)
        moved = geo.moved(self.task, rule)[rects] if last else rects
        rects, moved = rects[moved >= 0], moved[moved >= 0]
        scene = rects if self.is_input else moved
        full = self.counts("full")[scene]
        area = (geo.heights * geo.widths)[scene][:, None]
        found = []
        for pattern in drawn:
            matched = self.matched(pattern, scene, own)
            keep = np.ones(matched.shape, dtype=bool)
            if self.exact:
                keep = (matched == area) & (pattern.own_shared | (full[:, own] == self.total[own]))
            r, c = np.nonzero(keep)
            found.append((rects[r], moved[r], own[c], np.full(len(r), pattern.touches), full[r, 0] - matched[r, c],
                          area[r, 0] - matched[r, c]))
        rect, moved, colour, touches, score, mismatched = (np.concatenate(x) for x in zip(*found))
        order = np.argsort(score, kind="stable")
        best = np.full(N_COLOURS, np.inf)
        np.minimum.at(best, colour, score)
        return Candidates(rect[order], moved[order], colour[order], touches[order], score[order], mismatched[order], best,
                          bool((rect != moved).any()))


# --- the search -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hypothesis:
    rule: Rule
    rects: tuple[Rect, ...]
    colours: tuple[int, ...]
    distance: int  # Hamming distance of its half of the pair to the grid read


def overlapping(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rect.overlaps of boxes (r0, c0, r1, c1 along the last axis), broadcast over the other axes."""
    return (a[..., 0] < b[..., 2]) & (b[..., 0] < a[..., 2]) & (a[..., 1] < b[..., 3]) & (b[..., 1] < a[..., 3])


def sharing_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rect.shares_side of boxes, broadcast as in `overlapping`."""
    rows = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    cols = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    return (((rows > 0) & ((a[..., 3] == b[..., 1]) | (b[..., 3] == a[..., 1])))
            | ((cols > 0) & ((a[..., 2] == b[..., 0]) | (b[..., 2] == a[..., 0]))))


@dataclass(frozen=True)
class Partial:
    """Partial hypotheses, one per row: the candidate picked for each index so far (`picks[i]`
    indexes `Search.options[i]`), their total score, their mismatching cells and their colours (a
    bit mask). Rows are in depth-first order: by the pick of index 0, then index 1, ..."""
    picks: tuple[np.ndarray, ...]
    score: np.ndarray
    mismatched: np.ndarray
    used: np.ndarray


class Search:
    """Branch and bound over the rectangles (index 0 first) of one pair with `n` rectangles under
    `rule`: the hypotheses whose half of the pair is within `bound` of the grid read. It extends
    every partial hypothesis at once, one index at a time, with the options that can still end
    within the bound: the pruning and order of a depth-first search, one numpy step per index rather
    than per partial hypothesis (190k of them in 400 6x6 contact puzzles)."""

    def __init__(self, reading: GridReading, rule: Rule, n: int, bound: float):
        self.reading, self.rule, self.n, self.bound = reading, rule, n, bound
        self.options = [reading.candidates(rule, i, i == n - 1) for i in range(n)]

    def least_distance(self) -> float:
        """A lower bound on the distance of any of its hypotheses."""
        return self.reading.nonzero + float(np.min(self._least_score(0, np.zeros(1, dtype=np.int64))))

    def _least_score(self, start: int, used: np.ndarray) -> np.ndarray | float:
        """Per row of `used` (colour bit masks): least total score of indices start.. : each known
        colour's best, plus the least best scores of as many distinct unused colours as there are
        indices of unknown colour."""
        known = len(self.rule.colours)
        total = sum(self.options[i].best.min() for i in range(start, min(known, self.n)))
        free = [self.options[i].best for i in range(max(start, known), self.n)]
        if not free:
            return total
        taken = (used[:, None] >> np.arange(N_COLOURS)) & 1 == 1
        return total + np.sort(np.where(taken, np.inf, np.min(free, axis=0)), axis=1)[:, : len(free)].sum(axis=1)

    def hypotheses(self) -> Iterator[Hypothesis]:
        if not all(len(options.score) for options in self.options):
            return
        zero = np.zeros(1, dtype=np.int64)
        partial = Partial((), zero, zero, zero)
        for index in range(self.n):
            partial = self._extend(partial, index)
            if partial is None:
                return
        yield from self._finish(partial)

    def _extend(self, partial: Partial, index: int) -> Partial | None:
        """Every row of `partial` (picks of indices < index) extended by every option of `index`
        that can still end within the bound, in depth-first order; None when there is none."""
        options, picks = self.options[index], partial.picks
        slack = self.bound - self.reading.nonzero - partial.score - self._least_score(index + 1, partial.used)
        cuts = np.searchsorted(options.score, slack, side="right")  # options are sorted by score: a prefix per row
        if not cuts.any():
            return None
        # each row with each option of its prefix, row by row (depth-first order): a small share of
        # rows x options once the bound is tight, so the checks below work on these pairs only
        row = np.repeat(np.arange(len(cuts)), cuts)
        k = np.arange(len(row)) - np.repeat(np.cumsum(cuts) - cuts, cuts)
        ok = options.mismatched[k] <= self.bound - partial.mismatched[row]  # those cells stay wrong whatever follows
        if index >= len(self.rule.colours) and picks:  # a free colour: unlike those picked
            ok &= (partial.used[row] >> options.colour[k]) & 1 == 0
        geo = self.reading.geometry
        rects = [options.rect[k]] + ([options.moved[k]] if options.moves else [])
        for picked, p in zip(self.options, picks):  # no overlap between rectangles, nor with where the last one moves
            other = picked.rect[p[row]]  # an index before the last: it does not move
            for rect in rects:
                ok &= ~geo.overlaps[other, rect]
        if picks and self.reading.task == "contact" and not self.reading.is_input:
            ok &= options.touches[k] == geo.shares_side[self.options[0].rect[picks[0][row]], rects[0]]
        if not ok.any():
            return None
        row, k = row[ok], k[ok]
        return Partial(tuple(p[row] for p in picks) + (k,), partial.score[row] + options.score[k],
                       partial.mismatched[row] + options.mismatched[k], partial.used[row] | (1 << options.colour[k]))

    def _finish(self, partial: Partial) -> Iterator[Hypothesis]:
        geo = self.reading.geometry
        rects = [options.rect[k] for options, k in zip(self.options, partial.picks)]
        colours = [options.colour[k] for options, k in zip(self.options, partial.picks)]
        keep = np.ones(len(partial.score), dtype=bool)
        if self.reading.task == "contact":  # rectangle 0 shares a side with another
            keep = np.any([geo.shares_side[rects[0], other] for other in rects[1:]], axis=0)
        for row in np.flatnonzero(keep):
            yield Hypothesis(self.rule, tuple(geo.rects[int(r[row])] for r in rects), tuple(int(c[row]) for c in colours),
                             self.reading.nonzero + int(partial.score[row]))


def closest(searches: list[Search], cells: int) -> tuple[int | None, list[Hypothesis]]:
    """(least distance, all hypotheses at it) over the searches, by iterative deepening: each round
    searches to a bound one higher than the last, so that no round explores far beyond the answer.
    (None, []) when no hypothesis exists at any distance up to `cells`."""
    least = min((search.least_distance() for search in searches), default=math.inf)
    if least == math.inf:
        return None, []
    for bound in range(max(0, math.ceil(least)), cells + 1):
        for search in searches:
            search.bound = bound
        found = [hyp for search in searches for hyp in search.hypotheses()]
        if found:
            return bound, found  # all at `bound`: the rounds before found none closer
    return None, []


# --- the oracle -------------------------------------------------------------------------------------

def example_rules(task: str, puzzle: Puzzle, geo: Geometry, min_side: int) -> list[Rule]:
    """The rules (with the colours the example shows, in index order) under which some rectangle
    tuple draws the worked example's input and output exactly, in the order found: a set's order
    would vary between processes (hash(None) does), and with it the answers `solve` stops at."""
    reading = GridReading(task, puzzle.example_input, True, geo, min_side, exact=True)
    rules: dict[Rule, None] = {}
    for setting in SETTINGS.get(task, ({},)):
        for extra in extra_colours(task, puzzle):
            draft = Rule(extra=extra, **setting)
            for n in rect_counts(task, geo.h, geo.w, min_side):
                for hyp in Search(reading, draft, n, bound=0).hypotheses():
                    _, out = pair_grids(task, draft, hyp.rects, hyp.colours, geo.h, geo.w)
                    if (out == puzzle.example_output).all():
                        rules[replace(draft, colours=hyp.colours)] = None
    return list(rules)


def extra_colours(task: str, puzzle: Puzzle) -> list[int | None]:
    """What the extra colour can be: the rule paints every cell it changes in it; any colour of the
    output where the example changes nothing. None for the tasks without one."""
    if task not in USES_EXTRA:
        return [None]
    changed = puzzle.example_output[puzzle.example_input != puzzle.example_output]
    return sorted(set(changed.tolist()) if changed.size else set(puzzle.example_output.ravel().tolist()) - {0})


@dataclass(frozen=True)
class Solution:
    answers: set[bytes]  # each an (h, w) int64 grid's tobytes()
    noise: int | None  # d*: cells of block 2 the kept hypotheses read as noise; None when none is kept
    degenerate: bool = False  # some kept hypothesis draws the question's pair with output == input


def solve(tokens, task: str, layout: PuzzleLayout, limit: int | None = None) -> Solution:
    """The valid answers of one puzzle (see the module docstring), and the noise they assume;
    stops at `limit` answers (only once d* is known: noisy questions are searched to the end)."""
    with timing.stage("data"):
        return _solve(tokens, task, layout, limit)


def _solve(tokens, task: str, layout: PuzzleLayout, limit: int | None) -> Solution:
    check_task(task)
    puzzle = read_puzzle(tokens, layout)
    h, w, min_side = layout.height, layout.width, min_side_for(layout)
    geo = geometry(h, w)
    reading = GridReading(task, puzzle.question, puzzle.question_is_input, geo, min_side, exact=not puzzle.noisy)
    searches = [Search(reading, rule, n, bound=0)
                for rule in example_rules(task, puzzle, geo, min_side) for n in rect_counts(task, h, w, min_side)]
    if puzzle.noisy:
        distance, kept = closest(searches, h * w)
    else:
        distance, kept = 0, (hyp for search in searches for hyp in search.hypotheses())
    answers, degenerate = set(), False
    for hyp in kept:
        inp, out = pair_grids(task, hyp.rule, hyp.rects, hyp.colours, h, w)
        shown, answer = (inp, out) if puzzle.question_is_input else (out, inp)
        assert (shown != puzzle.question).sum() == hyp.distance, f"{task}: scores disagree with the rule"
        answers.add(answer.tobytes())
        degenerate |= bool((inp == out).all())  # the pair read noise-free: noise in block 2 cannot hide it
        if limit is not None and len(answers) >= limit:
            break
    return Solution(answers, distance if answers else None, degenerate)


def valid_answers(tokens, task: str, layout: PuzzleLayout, limit: int | None = None) -> set[bytes]:
    """The answer grids (np.int64 (h, w) .tobytes()) the puzzle allows; at most `limit` of them."""
    return solve(tokens, task, layout, limit).answers


def answer_grids(tokens, task: str, layout: PuzzleLayout) -> np.ndarray:
    """(answers, layout.cells) int64: every valid answer of one puzzle, in byte order. Kept in the
    disk cache (verify.diskcache) between sessions, keyed by VERSION, the task, the layout and the
    puzzle's digest."""
    row = torch.as_tensor(tokens).cpu().numpy().astype(np.int64)
    key = {"oracle": VERSION, "task": check_task(task), "layout": dataclasses.asdict(layout), "puzzle": diskcache.digest(row)}

    def solve_one() -> np.ndarray:
        answers = sorted(valid_answers(row, task, layout))
        return np.array([np.frombuffer(a, dtype=np.int64) for a in answers], dtype=np.int64).reshape(len(answers), layout.cells)

    return diskcache.cached_array("culture-answers", key, solve_one)


def determined(puzzles, task: str, layout: PuzzleLayout) -> np.ndarray:
    """(N,) bool over a (N, layout.length) batch: the puzzle allows exactly one answer."""
    puzzles = torch.as_tensor(puzzles)
    layout.check(puzzles, "determined")
    return np.array([len(valid_answers(p, task, layout, limit=2)) == 1 for p in puzzles], dtype=bool)


def is_degenerate(tokens, layout: PuzzleLayout) -> bool:
    """As the tokens show them: the worked example's output equals its input, or block 2 equals the
    answer. (A noisy block 2 can hide that the question's pair is degenerate; `counts` reads it
    noise-free.)"""
    puzzle = read_puzzle(tokens, layout)
    return bool((puzzle.example_input == puzzle.example_output).all() or (puzzle.question == puzzle.answer).all())


def counts(tokens, task: str, layout: PuzzleLayout) -> bool:
    """One puzzle is counted by a rate over determined puzzles: exactly one valid answer, that answer
    is the answer block (the one scored), and no degenerate pair, the question's pair read noise-free
    (by the kept hypotheses) as well as shown."""
    solution = solve(tokens, task, layout, limit=2)
    scored = read_puzzle(tokens, layout).answer.tobytes()
    return solution.answers == {scored} and not solution.degenerate and not is_degenerate(tokens, layout)


def counted(puzzles, task: str, layout: PuzzleLayout) -> np.ndarray:
    """(N,) bool over a (N, layout.length) batch: `counts` of each puzzle. Kept in the disk cache
    (verify.diskcache) between sessions, keyed by VERSION, the task, the layout and the puzzles' digest."""
    rows = torch.as_tensor(puzzles).cpu().numpy()
    layout.check(torch.as_tensor(rows), "counted")
    key = {"oracle": VERSION, "task": check_task(task), "layout": dataclasses.asdict(layout), "puzzles": diskcache.digest(rows)}
    return diskcache.cached_array("culture-counted", key, lambda: np.array([counts(row, task, layout) for row in rows], dtype=bool))
