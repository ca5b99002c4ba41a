"""The disk cache of generated puzzles, oracle masks and Othello games (verify.diskcache): an entry is
used only when it is the sound entry for its key, and the keys' versions are pinned to what they make."""

import numpy as np
import pytest

from verify import diskcache
from verify.culture import oracle as O
from verify.culture import tasks as T
from verify.culture.data import TASKS, row_hashes
from verify.culture.layout import REAL_LAYOUT, PuzzleLayout
from verify.othello import data as othello_data

TINY = PuzzleLayout(6, 6, 4, True)  # culture-tiny's grid


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(diskcache.ENV, str(tmp_path))
    return tmp_path


def counting(array):
    """A maker that returns `array` and counts its calls."""
    def make():
        make.calls += 1
        return array
    make.calls = 0
    return make


def test_an_entry_is_made_once_then_read(cache):
    make = counting(np.arange(6).reshape(2, 3))
    first = diskcache.cached_array("kind", {"seed": 1}, make)
    again = diskcache.cached_array("kind", {"seed": 1}, make)
    assert make.calls == 1 and (first == again).all() and again.dtype == first.dtype
    assert diskcache.entry_path("kind", {"seed": 1}).parent == cache / "kind"


def test_a_json_value_is_kept_and_one_that_fails_its_own_check_is_never_kept(cache):
    make = counting({"hooks": [2, 64]})
    valid = lambda v: isinstance(v, dict) and v.get("hooks") == [2, 64]  # noqa: E731
    assert diskcache.cached_json("records", {"n": 1}, make, valid) == {"hooks": [2, 64]}
    assert diskcache.cached_json("records", {"n": 1}, make, valid) == {"hooks": [2, 64]} and make.calls == 1
    with pytest.raises(ValueError, match="not one its check accepts"):  # it was kept, and returned as a marker object
        diskcache.cached_json("records", {"n": 2}, lambda: {"hooks": (2, 32)}, valid)
    assert not diskcache.entry_path("records", {"n": 2}).exists()


def test_another_key_is_another_entry():
    make = counting(np.zeros(3))
    diskcache.cached_array("kind", {"seed": 1}, make)
    diskcache.cached_array("kind", {"seed": 2}, make)
    assert make.calls == 2


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip a data byte", "another key's entry"])
def test_a_damaged_entry_is_made_again_and_never_trusted(damage):
    array = np.arange(1000, dtype=np.int64)
    diskcache.cached_array("kind", {"seed": 1}, counting(array))
    path = diskcache.entry_path("kind", {"seed": 1})
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x93NUMPY not an array")
    elif damage == "flip a data byte":  # the last element's low byte: a zip CRC or the stored sha256 catches it
        at = data.index((999).to_bytes(8, "little"))
        path.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :])
    else:
        diskcache.cached_array("kind", {"seed": 2}, counting(array + 1))
        path.write_bytes(diskcache.entry_path("kind", {"seed": 2}).read_bytes())
    remake = counting(array)
    assert (diskcache.cached_array("kind", {"seed": 1}, remake) == array).all()
    assert remake.calls == 1
    assert (diskcache.cached_array("kind", {"seed": 1}, remake) == array).all() and remake.calls == 1  # repaired


def test_an_unwritable_cache_still_returns_the_array(cache, monkeypatch):
    blocker = cache / "file"
    blocker.write_text("")
    monkeypatch.setenv(diskcache.ENV, str(blocker))  # a file where the folder should be
    make = counting(np.ones(2))
    assert (diskcache.cached_array("kind", {"seed": 1}, make) == 1).all()
    assert (diskcache.cached_array("kind", {"seed": 1}, make) == 1).all() and make.calls == 2


def test_cached_splits_are_the_generators_cold_and_warm():
    made = T.draw_split("grow", 5, 3, TINY)
    for _ in range(2):  # made, then read
        again = T.cached_split("grow", 5, 3, TINY)
        assert (again.tokens == made.tokens).all() and (again.shared, again.repeated) == (made.shared, made.repeated)
    assert not (T.cached_split("grow", 5, 4, TINY).tokens == made.tokens).all()
    held_out = T.cached_split("grow", 5, 3, TINY, held_out_from=made.tokens[:2])  # another key: other puzzles
    assert held_out.shared == 2 and (held_out.tokens[:3] == made.tokens[2:]).all()


def test_the_generator_version_pins_its_puzzles():
    """Fails when the generator's output changes: then bump GENERATOR_VERSION (stale cached puzzles
    would otherwise be read) and update these digests."""
    assert T.GENERATOR_VERSION == 2
    digests = {TINY: "696299ea65c6966e305d3e334407d22bf05ebd88881a628b55e14dc3c5e946e8",
               REAL_LAYOUT: "f3477e8ff76f8fbcd4d3b12318e4cf905bfa20cd3db3607b6ff837a28649b2dc"}
    for layout, expected in digests.items():
        rows = np.concatenate([T.generate_task(task, 4, 7, layout).numpy() for task in TASKS])
        assert diskcache.digest(rows) == expected
    # culture-tiny's grow confirmation split: 13 puzzles of the selection split and 2 repeats skipped
    selection = T.draw_split("grow", 400, 100, TINY)
    confirmation = T.draw_split("grow", 400, 101, TINY, frozenset(row_hashes(selection.tokens)))
    assert (selection.repeated, confirmation.shared, confirmation.repeated) == (2, 13, 2)
    assert diskcache.digest(confirmation.tokens.numpy()) == GROW_CONFIRMATION


# determined and not degenerate, 12 puzzles per task, seed 7, 6x6: a mix of both in contact and half_fill
COUNTED = {"contact": "110100010111", "corners": "111111111111", "detect": "111111111111", "frame": "111111111111",
           "grow": "111111111111", "half_fill": "001010110010", "replace_color": "111111111111", "translate": "011111111111"}


# counted (version 2), the first puzzles of culture-tiny's confirmation stream (seed 101): version 1
# counted corners 41 (a degenerate pair the noise hides) and 90 (determined on another answer) too
GROW_CONFIRMATION = "dcd508c255b66bdadf2026572d959145526e528bf0fedc26e0dd6b54cfcb78b5"
COUNTED_V2 = {"corners": (91, {41, 90}), "half_fill": (18, {17}), "contact": (34, {33})}


def test_the_oracle_version_pins_its_masks_and_the_cache_returns_them():
    """Fails when the oracle's verdicts change: then bump oracle.VERSION (stale cached masks would
    otherwise be read) and update COUNTED and COUNTED_V2."""
    assert O.VERSION == 2
    for task, expected in COUNTED.items():
        puzzles = T.generate_task(task, 12, 7, TINY)
        for _ in range(2):  # made, then read from the cache
            mask = O.counted(puzzles, task, TINY)
            assert "".join("1" if m else "0" for m in mask) == expected
    assert len(list(diskcache.cache_dir().glob("culture-counted/*.npz"))) == len(TASKS)
    for task, (n, not_counted) in COUNTED_V2.items():
        puzzles = T.generate_task(task, n, 101, TINY)
        mask = O.counted(puzzles[sorted(not_counted)], task, TINY)
        assert not mask.any() and O.determined(puzzles[sorted(not_counted)], task, TINY).all()
        assert not any(O.is_degenerate(puzzles[i], TINY) for i in not_counted)  # what version 1 counted


def test_cached_answer_grids_are_the_oracles_answers():
    for task in ("contact", "half_fill"):  # the tasks with undetermined 6x6 puzzles above
        for row in T.generate_task(task, 12, 7, TINY):
            expected = {a for a in O.valid_answers(row, task, TINY)}
            for _ in range(2):  # made, then read from the cache
                grids = O.answer_grids(row, task, TINY)
                assert grids.shape[1:] == (TINY.cells,) and {g.tobytes() for g in grids} == expected


def test_othello_games_version_pins_its_games_and_the_cache_returns_them(cache, monkeypatch):
    """Fails when the games change: then bump othello.data.GAMES_VERSION (stale cached games would
    otherwise be read) and update the digest. A second read comes from the cache, equal in every array."""
    assert othello_data.GAMES_VERSION == 1
    selection, _, _ = othello_data.cached_distinct_games(20, 7)
    confirmation, shared, repeated = othello_data.cached_distinct_games(20, 8, selection)
    assert diskcache.digest(np.concatenate([selection.squares, confirmation.squares])) == OTHELLO_GAMES
    assert len(list((cache / "othello-games-legal").glob("*.npz"))) == 2
    monkeypatch.setattr(othello_data, "distinct_games", None)  # read from the cache now, not made
    again, *counts = othello_data.cached_distinct_games(20, 8, selection)
    assert counts == [shared, repeated]
    for name in othello_data.GAME_ARRAYS:
        assert np.array_equal(getattr(again, name), getattr(confirmation, name)), name


OTHELLO_GAMES = "92cae1c7f4553c8b00e01bb33445c0a94110197eae7a55eb70da2726849f84ce"  # seeds 7 and 8, 20 games each
