"""Contact puzzles whose answer the puzzle does not determine, on grids that allow 2-cell rectangles.

    verify ambiguity  (the command-line report)

In structures 1 and 3 the answer is a pair's *input*, to be read back from its output. A rectangle
two cells thick that touches rectangle 0 is all border, so the rule paints all of it in rectangle
0's colour and the two merge into one region. When another valid input (a different tiling of the
region, another piece as rectangle 0, or the colours swapped among the merged pieces) gives the same
output, the puzzle has more than one right answer and a model can only guess. With the real grid's
minimum side of 3 every rectangle keeps an interior and this cannot happen. The count is a lower
bound on ambiguity: it varies only the merged region.
"""

from __future__ import annotations

import itertools

import numpy as np

from verify.culture.layout import PuzzleLayout
from verify.culture.tasks import Rect, contact_output, make_quiz, min_side_for, paint


def rect_masks(h: int, w: int, min_side: int) -> dict[Rect, np.ndarray]:
    rects = [Rect(r0, c0, r1, c1) for r0 in range(h) for r1 in range(r0 + min_side, h + 1)
             for c0 in range(w) for c1 in range(c0 + min_side, w + 1)]
    masks = {}
    for r in rects:
        masks[r] = np.zeros((h, w), dtype=bool)
        masks[r][r.cells] = True
    return masks


def valid_inputs(rects: list[Rect], colours: list[int], merged: list[Rect], masks: dict, h: int, w: int) -> set[bytes]:
    """Distinct inputs, differing from the true one only inside the merged region, with the same output."""
    kept = [(r, c) for r, c in zip(rects[1:], colours[1:]) if r not in merged]
    region = np.logical_or.reduce([masks[r] for r in [rects[0], *merged]])
    shown = contact_output(h, w, rects, colours)
    inside = [r for r, m in masks.items() if not (m & ~region).any()]
    merged_colours = [c for r, c in zip(rects, colours) if r in merged]
    found = set()
    for tiling in itertools.combinations(inside, 1 + len(merged)):
        cover = [masks[t] for t in tiling]
        if sum(m.sum() for m in cover) != region.sum() or (np.logical_or.reduce(cover) ^ region).any():
            continue  # not a tiling of the region
        for first in tiling:
            for order in set(itertools.permutations(merged_colours)):
                cand = [first, *(t for t in tiling if t != first), *(r for r, _ in kept)]
                cand_colours = [colours[0], *order, *(c for _, c in kept)]
                if any(first.shares_side(o) for o in cand[1:]) and (contact_output(h, w, cand, cand_colours) == shown).all():
                    found.add(paint(h, w, cand, cand_colours).tobytes())
    return found


def contact_ambiguity(layout: PuzzleLayout, n: int, seed: int) -> tuple[int, int]:
    """(puzzles with a merged region, puzzles with more than one valid answer) among n contact puzzles."""
    h, w, side = layout.height, layout.width, min_side_for(layout)
    masks = rect_masks(h, w, side)
    rng = np.random.default_rng(seed)
    n_merged = n_ambiguous = 0
    for _ in range(n):
        _, structure, pairs = make_quiz("contact", rng, layout)
        if structure not in (1, 3):
            continue  # the answer is an output, which the rule determines
        pair = pairs[1 if structure == 1 else 0]
        rects = list(pair.rects)
        colours = [int(pair.input[r.r0, r.c0]) for r in rects]
        merged = [o for o in rects[1:] if rects[0].shares_side(o) and min(o.r1 - o.r0, o.c1 - o.c0) <= 2]
        if merged:
            n_merged += 1
            n_ambiguous += len(valid_inputs(rects, colours, merged, masks, h, w)) > 1
    return n_merged, n_ambiguous
