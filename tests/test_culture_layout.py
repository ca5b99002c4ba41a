"""Puzzle layout: slices, positions and the logits alignment, for arbitrary layouts."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from verify.culture.layout import REAL_LAYOUT, PuzzleLayout

layouts = st.builds(PuzzleLayout, st.integers(1, 12), st.integers(1, 12), st.integers(1, 6), st.booleans())


def test_real_layout_positions():
    assert REAL_LAYOUT.length == 405
    assert [REAL_LAYOUT.marker_position(k) for k in range(4)] == [1, 102, 203, 304]
    assert (REAL_LAYOUT.answer_slice.start, REAL_LAYOUT.answer_slice.stop) == (305, 405)
    assert (REAL_LAYOUT.answer_logits_slice.start, REAL_LAYOUT.answer_logits_slice.stop) == (304, 404)
    assert list(range(405))[REAL_LAYOUT.answer_logits_slice] == list(range(405))[slice(-101, -1)]


@given(layouts)
def test_slices_are_disjoint_and_cover_the_sequence(layout):
    covered = [0] * int(layout.bos)
    for k in range(layout.n_blocks):
        covered.append(layout.marker_position(k))
        covered.extend(range(layout.length)[layout.grid_slice(k)])
    assert sorted(covered) == list(range(layout.length))


@given(layouts)
def test_answer_and_its_logits_align(layout):
    answer, logits = layout.answer_slice, layout.answer_logits_slice
    assert logits.stop - logits.start == answer.stop - answer.start == layout.cells
    assert all(p + 1 == a for p, a in zip(range(logits.start, logits.stop), range(answer.start, answer.stop)))
    # a stripped sequence (last token removed) still has every logits position the answer needs
    stripped = layout.length - 1
    assert logits.stop <= stripped and len(range(stripped)[logits]) == layout.cells


@given(layouts, st.data())
def test_cell_position_formula(layout, data):
    k = data.draw(st.integers(0, layout.n_blocks - 1))
    r, c = data.draw(st.integers(0, layout.height - 1)), data.draw(st.integers(0, layout.width - 1))
    expected = int(layout.bos) + k * (1 + layout.cells) + 1 + layout.width * r + c
    assert layout.cell_position(k, r, c) == expected
    assert layout.grid_slice(k).start <= expected < layout.grid_slice(k).stop


def test_real_cell_formula_from_the_reference():
    assert all(REAL_LAYOUT.cell_position(k, r, c) == 2 + 101 * k + 10 * r + c for k in range(4) for r in range(10) for c in range(10))


def test_bad_puzzles_are_named():
    with pytest.raises(ValueError, match="expected sequences of 405 tokens.*shape \\(2, 404\\)"):
        REAL_LAYOUT.check(torch.zeros(2, 404, dtype=torch.long))
    bad = torch.zeros(2, 405, dtype=torch.long)
    bad[1, 17] = 15
    with pytest.raises(ValueError, match="token 15 at puzzle 1, position 17 is outside the vocabulary"):
        REAL_LAYOUT.check(bad)


def test_render_shows_markers_and_grids():
    tokens = torch.zeros(405, dtype=torch.long)
    tokens[[1, 102, 203, 304]] = torch.tensor([11, 12, 13, 14])
    tokens[REAL_LAYOUT.cell_position(3, 0, 0)] = 10
    text = REAL_LAYOUT.render(tokens)
    assert text.splitlines()[0].split() == ["A", "f(A)", "B", "f(B)"]
    assert text.splitlines()[1].endswith("X.........")
