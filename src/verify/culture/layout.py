"""Where everything sits in a puzzle sequence, from one description of the puzzle.

A puzzle is [BOS] + n_blocks x (marker + height*width grid cells, row-major). The last block is
the answer. Logits at position t predict token t+1, so the answer's predictions are the logits at
the positions one before the answer cells. The real culture layout (405 tokens) is REAL_LAYOUT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

N_COLOURS = 11  # tokens 0..10: colours (0 = background, also BOS)
MARKERS = {"A": 11, "f(A)": 12, "B": 13, "f(B)": 14}
VOCAB_SIZE = 15
GLYPHS = ".123456789X"  # one character per colour in renderings


@dataclass(frozen=True)
class PuzzleLayout:
    height: int = 10
    width: int = 10
    n_blocks: int = 4
    bos: bool = True

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1 or self.n_blocks < 1:
            raise ValueError(f"a puzzle layout needs positive sizes, got {self}")

    @property
    def cells(self) -> int:
        return self.height * self.width

    @property
    def block_length(self) -> int:
        return 1 + self.cells

    @property
    def length(self) -> int:
        return int(self.bos) + self.n_blocks * self.block_length

    def marker_position(self, block: int) -> int:
        if not 0 <= block < self.n_blocks:
            raise IndexError(f"block {block} outside 0..{self.n_blocks - 1}")
        return int(self.bos) + block * self.block_length

    def grid_slice(self, block: int) -> slice:
        start = self.marker_position(block) + 1
        return slice(start, start + self.cells)

    def cell_position(self, block: int, row: int, col: int) -> int:
        if not (0 <= row < self.height and 0 <= col < self.width):
            raise IndexError(f"cell ({row}, {col}) outside a {self.height}x{self.width} grid")
        return self.grid_slice(block).start + row * self.width + col

    @property
    def answer_slice(self) -> slice:
        return self.grid_slice(self.n_blocks - 1)

    @property
    def answer_logits_slice(self) -> slice:
        """Logit positions that predict the answer cells (valid for the full or the stripped sequence)."""
        return slice(self.answer_slice.start - 1, self.answer_slice.stop - 1)

    def check(self, tokens: torch.Tensor, where: str = "puzzle batch") -> None:
        """Raise ValueError naming `where` if `tokens` (batch, length) does not fit this layout."""
        if tokens.dim() != 2 or tokens.shape[1] != self.length:
            raise ValueError(f"{where}: expected sequences of {self.length} tokens (layout {self.height}x{self.width}, "
                             f"{self.n_blocks} blocks, bos={self.bos}), got shape {tuple(tokens.shape)}")
        bad = (tokens < 0) | (tokens >= VOCAB_SIZE)
        if bad.any():
            row, pos = (int(i) for i in bad.nonzero()[0])
            raise ValueError(f"{where}: token {int(tokens[row, pos])} at puzzle {row}, position {pos} is outside the vocabulary 0..{VOCAB_SIZE - 1}")

    def render(self, tokens) -> str:
        """A text picture of one puzzle: each block's marker and grid, side by side."""
        tokens = [int(t) for t in tokens]
        names = {v: k for k, v in MARKERS.items()}
        grids = []
        for k in range(self.n_blocks):
            s = self.grid_slice(k)
            cells = tokens[s.start : s.stop]
            rows = ["".join(GLYPHS[c] if c < N_COLOURS else "?" for c in cells[r * self.width : (r + 1) * self.width])
                    for r in range(self.height)]
            grids.append([names.get(tokens[self.marker_position(k)], "?").ljust(self.width)] + rows)
        return "\n".join("  ".join(block[i] for block in grids) for i in range(self.height + 1))


REAL_LAYOUT = PuzzleLayout(10, 10, 4, True)
