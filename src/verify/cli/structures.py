"""A culture subject's solved rates, and its share of undetermined puzzles, per block structure
(verify.culture.structures says what the structures are and why they matter).

    verify structures fixtures/subjects/culture-tiny.toml [--split confirmation]
"""

from __future__ import annotations

import argparse

from verify.culture.structures import solved_by_structure, undetermined_by_structure
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
    print("share of puzzles not counted: the worked example allows more than one answer, or only one other than "
          "the answer block, or a pair is degenerate (verify.culture.oracle.counts), per structure")
    for task, row in undetermined_by_structure(subject, args.split).items():
        print(f"{task:>13}  " + "  ".join(f"s{s} {share:.3f}" for s, share in row.items()))


if __name__ == "__main__":
    main()
