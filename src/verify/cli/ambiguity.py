"""Count contact puzzles whose answer the puzzle does not determine (verify.culture.ambiguity says why).

    verify ambiguity [--size 6] [--n 600] [--seed 5]
"""

from __future__ import annotations

import argparse

from verify.culture.ambiguity import contact_ambiguity
from verify.culture.layout import PuzzleLayout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=6, help="grid height and width")
    parser.add_argument("--n", type=int, default=600, help="contact puzzles to draw")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    merged, ambiguous = contact_ambiguity(PuzzleLayout(args.size, args.size), args.n, args.seed)
    print(f"{args.n} contact puzzles on a {args.size}x{args.size} grid: {merged} show a touching rectangle merged "
          f"into rectangle 0; {ambiguous} ({ambiguous / args.n:.3f}) have more than one valid answer")


if __name__ == "__main__":
    main()
