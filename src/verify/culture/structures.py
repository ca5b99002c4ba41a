"""Solved rate per block structure: which of the four block orders a model gets right.

    python -m verify.culture.structures fixtures/subjects/culture-tiny.toml [--split confirmation]

The answer block's marker names the structure (tasks.STRUCTURES). In structures 0 and 2 the answer
is a pair's output, which the task's rule determines; in 1 and 3 it is a pair's input, read back
from its output, which on grids below 8x8 can have more than one valid answer
(verify.culture.ambiguity). A task solved well in 0 and 2 but not in 1 and 3 is limited by its
puzzles, not by the model.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from verify.culture.data import TASKS
from verify.culture.layout import PuzzleLayout
from verify.culture.tasks import MARKER_OF, STRUCTURES
from verify.findings import culture as f
from verify.subjects import load_subject, read_manifest

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest")
    parser.add_argument("--split", choices=("selection", "confirmation"), default="confirmation")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    subject = load_subject(read_manifest(args.manifest), args.device)
    print(f"{subject.name}, {args.split} split: solved rate [95% CI] (puzzles) per structure; "
          "the answer is an output in 0 and 2, an input in 1 and 3")
    for task, row in solved_by_structure(subject, args.split).items():
        print(f"{task:>13}  " + "  ".join(f"s{s} {e.value:.2f} [{e.lo:.2f}, {e.hi:.2f}] ({n})" for s, (e, n) in row.items()))


if __name__ == "__main__":
    main()
