"""The puzzle generator: each task's rule checked on generated pairs, the quiz structure, the dataset."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from verify.culture import tasks as T
from verify.culture.data import TASKS, task_rows
from verify.culture.draws import scalar_draws
from verify.culture.layout import REAL_LAYOUT, PuzzleLayout
from verify.culture.structures import structure_of

seeds = st.integers(0, 2**32 - 1)


def pairs(task: str, seed: int, h=10, w=10):
    rng = np.random.default_rng(seed)
    q = T.quiz_draws(rng)
    return q, [T.make_pair(task, rng, q, h, w, 3) for _ in range(3)]


def rect_mask(r: T.Rect, h=10, w=10) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[r.cells] = True
    return m


def check_rects(p: T.Pair):
    for i, r in enumerate(p.rects):
        assert r.r1 - r.r0 >= 3 and r.c1 - r.c0 >= 3 and (r.r1 - r.r0) * (r.c1 - r.c0) <= T.MAX_AREA
        assert not any(r.overlaps(o) for o in p.rects[i + 1 :])


@given(seeds)
def test_contact(seed):
    q, ps = pairs("contact", seed)
    for p in ps:
        r0 = p.rects[0]
        assert len(p.rects) == 3 and any(r0.shares_side(o) for o in p.rects[1:])
        check_rects(p)
        changed = p.input != p.output
        allowed = np.zeros_like(changed)
        for r in p.rects[1:]:
            if r0.shares_side(r):
                rows, cols = r.border().T
                allowed[rows, cols] = True
        assert not (changed & ~allowed).any()  # changes only on borders of rectangles touching rect 0
        assert (p.output[allowed] == q["colours"][0]).all()  # ... and they take rect 0's colour


@given(seeds)
def test_replace_color(seed):
    q, ps = pairs("replace_color", seed)
    for p in ps:
        changed = p.input != p.output
        assert (changed == rect_mask(p.rects[0])).all() and (p.output[changed] == q["extra"]).all()


@given(seeds)
def test_translate(seed):
    q, ps = pairs("translate", seed)
    dr, dc = q["direction"]
    for p in ps:
        last = p.rects[-1]
        assert (p.output[rect_mask(last.moved(dr, dc))] == p.input[last.r0, last.c0]).all()
        others = ~rect_mask(last) & ~rect_mask(last.moved(dr, dc))
        assert (p.output[others] == p.input[others]).all()


@given(seeds)
def test_grow(seed):
    q, ps = pairs("grow", seed)
    for p in ps:
        last = p.rects[-1]
        colour = p.input[last.r0, last.c0]
        new = T.Rect(last.r0 - 1, last.c0 - 1, last.r1 + 1, last.c1 + 1) if q["grow"] else T.Rect(last.r0 + 1, last.c0 + 1, last.r1 - 1, last.c1 - 1)
        assert (p.output[rect_mask(new)] == colour).all()
        assert (p.output[rect_mask(last) & ~rect_mask(new)] == 0).all()


@given(seeds)
def test_half_fill(seed):
    q, ps = pairs("half_fill", seed)
    for p in ps:
        for r in p.rects:  # every rectangle shows its mid-line in the line colour
            assert (p.input[T._mid_line(r, q["side"])] == q["extra"]).all()
        changed = p.input != p.output
        assert not (changed & ~rect_mask(p.rects[-1])).any()
        assert (p.output[T._half(p.rects[-1], q["side"])] == q["extra"]).all()


@given(seeds)
def test_frame(seed):
    _, ps = pairs("frame", seed)
    for p in ps:
        last = p.rects[-1]
        interior = np.zeros((10, 10), dtype=bool)
        interior[last.r0 + 1 : last.r1 - 1, last.c0 + 1 : last.c1 - 1] = True
        assert ((p.input != p.output) == interior).all() and (p.output[interior] == 0).all()


@given(seeds)
def test_detect(seed):
    q, ps = pairs("detect", seed)
    for p in ps:
        marks = {cell for r in p.rects[:2] for cell in T.l_mark(r, "tl", 1)}
        assert len(marks) == 6 and all(p.output[c] == q["extra"] for c in marks)
        assert {tuple(c) for c in np.argwhere(p.input != p.output)} <= marks


@given(seeds)
def test_corners(seed):
    _, ps = pairs("corners", seed)
    for p in ps:
        shown = p.input != 0
        marks = {cell for r in p.rects for corner in ("tl", "br", "tr", "bl") for cell in T.l_mark(r, corner, 1)}
        assert {tuple(c) for c in np.argwhere(shown)} <= marks
        assert (p.output != 0).sum() == sum((r.r1 - r.r0) * (r.c1 - r.c0) for r in p.rects)


@settings(max_examples=30)
@given(st.sampled_from(TASKS), seeds)
def test_quiz_structure_markers_and_noise(task, seed):
    rng = np.random.default_rng(seed)
    tokens, structure, (a, b) = T.make_quiz(task, rng, REAL_LAYOUT)
    assert tokens[0] == 0 and len(tokens) == 405
    for k, (pair, which) in enumerate(T.STRUCTURES[structure]):
        assert tokens[REAL_LAYOUT.marker_position(k)] == T.MARKER_OF[(pair, which)]
        grid = tokens[REAL_LAYOUT.grid_slice(k)].reshape(10, 10)
        expected = ((a, b)[pair].input, (a, b)[pair].output)[which]
        if k == 2 and structure < 2:
            assert (grid != expected).mean() <= 0.2  # 5% noise on block 3, a few cells at most
        else:
            assert (grid == expected).all()  # the answer (block 4) is never noisy


def test_generator_is_seeded_and_small_layouts_work():
    a = T.generate_task("frame", 5, 1, REAL_LAYOUT)
    assert (a == T.generate_task("frame", 5, 1, REAL_LAYOUT)).all()
    assert not (a == T.generate_task("frame", 5, 2, REAL_LAYOUT)).all()
    small = PuzzleLayout(6, 6)
    assert T.generate_task("contact", 3, 0, small).shape == (3, small.length)


def test_unknown_task_is_named():
    with pytest.raises(ValueError, match="unknown task 'contcat'"):
        T.generate_task("contcat", 1, 0, REAL_LAYOUT)


def test_dataset_has_the_real_schema_and_loads_offline(tmp_path):
    import datasets

    ds = T.build_dataset(4, 0, REAL_LAYOUT)
    assert set(ds) == set(TASKS)
    assert ds["contact"].features["input_ids"].feature.dtype == "int32"
    assert ds["grow"].features["label"].names == list(TASKS) and ds["grow"][0]["label"] == TASKS.index("grow")
    ds.save_to_disk(str(tmp_path / "puzzles"))
    again = datasets.load_from_disk(str(tmp_path / "puzzles"))
    assert (task_rows(again, "contact", 0, 4) == T.generate_task("contact", 4, 0, REAL_LAYOUT)).all()
    with pytest.raises(ValueError, match="has 4 rows"):
        task_rows(again, "contact", 0, 5)


def test_contact_answers_are_ambiguous_only_with_two_cell_rectangles():
    from verify.culture.ambiguity import contact_ambiguity, rect_masks, valid_inputs

    # rectangle 1 (2x2) touches rectangle 0 (2x2): the output is one 2x4 block of colour 1, and either
    # half could have been rectangle 0
    rects, colours = [T.Rect(0, 0, 2, 2), T.Rect(0, 2, 2, 4), T.Rect(4, 4, 6, 6)], [1, 2, 3]
    found = valid_inputs(rects, colours, rects[1:2], rect_masks(6, 6, 2), 6, 6)
    assert len(found) == 2 and T.paint(6, 6, rects, colours).tobytes() in found
    merged, ambiguous = contact_ambiguity(PuzzleLayout(6, 6), 60, 0)
    assert 0 < ambiguous <= merged < 60
    assert contact_ambiguity(REAL_LAYOUT, 20, 0) == (0, 0)


@given(st.sampled_from(TASKS), st.integers(0, 2**32 - 1))
@settings(max_examples=20)
def test_structure_is_read_back_from_the_answer_marker(task, seed):
    layout = PuzzleLayout(6, 6)
    tokens, structure, _ = T.make_quiz(task, np.random.default_rng(seed), layout)
    assert structure_of(torch.from_numpy(tokens)[None], layout).tolist() == [structure]


def test_an_answer_block_without_a_marker_is_named():
    layout = PuzzleLayout(6, 6)
    tokens = T.generate_task("frame", 3, 0, layout)
    tokens[2, layout.marker_position(3)] = 0
    with pytest.raises(ValueError, match="puzzle 2: answer block marker 0"):
        structure_of(tokens, layout)


def numpy_random_rects(rng, n, h, w, min_side, last_min=None, last_inset=0):
    """random_rects as first written (GENERATOR_VERSION 2), every draw a numpy call: the reference
    that its faster loop (tuples, verify.culture.draws) must follow draw for draw."""
    def random_rect(side, inset):
        while True:
            rh, rw = rng.integers(side, h - 2 * inset + 1), rng.integers(side, w - 2 * inset + 1)
            if rh * rw <= T.MAX_AREA:
                r0, c0 = rng.integers(inset, h - inset - rh + 1), rng.integers(inset, w - inset - rw + 1)
                return T.Rect(int(r0), int(c0), int(r0 + rh), int(c0 + rw))

    for _ in range(20):
        rects = []
        for i in range(n):
            last = i == n - 1
            for _ in range(50):
                r = random_rect(last_min if (last_min and last) else min_side, last_inset if last else 0)
                if not any(r.overlaps(o) for o in rects):
                    rects.append(r)
                    break
        if len(rects) == n:
            return rects
    raise T.Resample


# (n, h, w, min_side, last_min, last_inset): the pair makers' calls on both layouts, and cramped ones
RECT_CALLS = sorted({(n, h, h, s, last_min, inset) for h, s in ((6, 2), (10, 3)) for n in (1, 2, 3)
                     for last_min, inset in ((None, 0), (s + 1, 0), (s + 1, 1), (3, 0))}, key=str) + [(3, 5, 5, 2, 3, 1), (2, 4, 5, 2, None, 0)]


@pytest.mark.parametrize("call", RECT_CALLS, ids=str)
def test_random_rects_follows_numpys_draws(call):
    """Rectangles, Resamples and the Generator's state afterwards equal the all-numpy reference's,
    drawing through verify.culture.draws (as make_pair does) or through the Generator itself."""
    outcomes = set()
    for seed in range(80):
        mine, plain, theirs = (np.random.default_rng([seed, 9]) for _ in range(3))
        for rng in (mine, plain, theirs):
            rng.integers(0, 3, size=seed % 3)  # the 32-bit buffer full or empty, as quiz_draws may leave it

        def outcome(draw):
            try:
                return draw()
            except T.Resample:
                return "resample"

        want = outcome(lambda: numpy_random_rects(theirs, *call))
        with scalar_draws(mine) as draws:
            assert outcome(lambda: T.random_rects(draws, *call)) == want
        assert outcome(lambda: T.random_rects(plain, *call)) == want
        assert mine.bit_generator.state == theirs.bit_generator.state == plain.bit_generator.state
        outcomes.add(want == "resample")
    if call[1] == 6 and call[0] == 3 and call[5] == 1:
        assert outcomes == {True, False}  # cramped: some calls give up (Resample), others succeed


def test_a_grid_too_small_for_the_rectangles_is_named():
    with pytest.raises(ValueError, match="a 4x4 grid cannot hold a rectangle of side 3 kept 1 cells from its edges"):
        T.random_rects(np.random.default_rng(0), 2, 4, 4, 2, last_min=3, last_inset=1)
    with pytest.raises(ValueError, match="a 6x6 grid cannot hold a rectangle of side 7 kept 0 cells"):
        T.random_rect(np.random.default_rng(0), 6, 6, 7)
