"""Solved rate per block structure: which of the four block orders a model gets right.

    verify structures MANIFEST  (the command-line report)

The answer block's marker names the structure (tasks.STRUCTURES). In structures 0 and 2 the answer
is a pair's output, which the task's rule determines; in 1 and 3 it is a pair's input, read back
from its output, which on grids below 8x8 can have more than one valid answer
(verify.culture.ambiguity). A task solved well in 0 and 2 but not in 1 and 3 is limited by its
puzzles, not by the model.
"""

from __future__ import annotations

import numpy as np
import torch

from verify.culture.data import TASKS
from verify.culture.layout import PuzzleLayout
from verify.culture.tasks import MARKER_OF, STRUCTURES
from verify.culture import findings as f

STRUCTURE_OF_ANSWER_MARKER = {MARKER_OF[order[-1]]: s for s, order in enumerate(STRUCTURES)}


def structure_of(tokens: torch.Tensor, layout: PuzzleLayout) -> np.ndarray:
    """(N,) structure index 0..3 of each puzzle, from its answer block's marker."""
    layout.check(tokens)
    markers = tokens[:, layout.marker_position(layout.n_blocks - 1)].tolist()
    for i, marker in enumerate(markers):
        if marker not in STRUCTURE_OF_ANSWER_MARKER:
            raise ValueError(f"puzzle {i}: answer block marker {marker} is none of {sorted(STRUCTURE_OF_ANSWER_MARKER)}")
    return np.array([STRUCTURE_OF_ANSWER_MARKER[m] for m in markers])


def solved_by_structure(subject, split: str) -> dict[str, dict[int, tuple]]:
    """task -> structure -> (solved-rate Estimate, puzzles), on the subject's puzzles of `split`."""
    table = {}
    for task in TASKS:
        flags = f.verdicts(subject, task, which=split)
        structures = structure_of(f.puzzles(subject, task, split), f.layout(subject))
        table[task] = {s: (f.rate(flags[structures == s]), int((structures == s).sum())) for s in range(len(STRUCTURES))}
    return table


def undetermined_by_structure(subject, split: str) -> dict[str, dict[int, float]]:
    """task -> structure -> share of puzzles a rate over determined puzzles does not count
    (verify.culture.oracle.counts: undetermined, degenerate, or allowing only another answer)."""
    table = {}
    for task in TASKS:
        counted = f.counted(subject, task, split, "determined")
        structures = structure_of(f.puzzles(subject, task, split), f.layout(subject))
        table[task] = {s: float(1 - counted[structures == s].mean()) if (structures == s).any() else float("nan")
                       for s in range(len(STRUCTURES))}
    return table
