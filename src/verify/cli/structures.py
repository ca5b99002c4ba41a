"""Solved rate per block structure: which of the four block orders a model gets right.

    verify structures fixtures/subjects/culture-tiny.toml [--split confirmation]

The answer block's marker names the structure (tasks.STRUCTURES). In structures 0 and 2 the answer
is a pair's output, which the task's rule determines; in 1 and 3 it is a pair's input, read back
from its output, which on grids below 8x8 can have more than one valid answer
(verify.culture.ambiguity). A task solved well in 0 and 2 but not in 1 and 3 is limited by its
puzzles, not by the model.
"""

from __future__ import annotations

import argparse

from verify.culture.structures import solved_by_structure
from verify.subjects import load_subject, read_manifest


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
