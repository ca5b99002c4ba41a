"""Contact puzzles whose answer the puzzle does not determine, on grids that allow 2-cell rectangles.

    verify ambiguity [--size 6] [--n 600] [--seed 5]

In structures 1 and 3 the answer is a pair's *input*, to be read back from its output. A rectangle
two cells thick that touches rectangle 0 is all border, so the rule paints all of it in rectangle
0's colour and the two merge into one region. When another valid input (a different tiling of the
region, another piece as rectangle 0, or the colours swapped among the merged pieces) gives the same
output, the puzzle has more than one right answer and a model can only guess. With the real grid's
minimum side of 3 every rectangle keeps an interior and this cannot happen. The count is a lower
bound on ambiguity: it varies only the merged region.
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
