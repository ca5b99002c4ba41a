"""The disk cache of generated puzzles and oracle masks (verify.diskcache): an entry is used only
when it is the sound entry for its key, and the keys' versions are pinned to what they make."""

import numpy as np
import pytest

from verify import diskcache
from verify.culture import oracle as O
from verify.culture import tasks as T
from verify.culture.data import TASKS
from verify.culture.layout import REAL_LAYOUT, PuzzleLayout

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


def test_cached_puzzles_are_the_generators_cold_and_warm():
    made = T.generate_task("grow", 5, 3, TINY)
    assert (T.cached_task("grow", 5, 3, TINY) == made).all()
    assert (T.cached_task("grow", 5, 3, TINY) == made).all()
    assert not (T.cached_task("grow", 5, 4, TINY) == made).all()


def test_the_generator_version_pins_its_puzzles():
    """Fails when the generator's output changes: then bump GENERATOR_VERSION (stale cached puzzles
    would otherwise be read) and update these digests."""
    assert T.GENERATOR_VERSION == 1
    digests = {TINY: "696299ea65c6966e305d3e334407d22bf05ebd88881a628b55e14dc3c5e946e8",
               REAL_LAYOUT: "f3477e8ff76f8fbcd4d3b12318e4cf905bfa20cd3db3607b6ff837a28649b2dc"}
    for layout, expected in digests.items():
        rows = np.concatenate([T.generate_task(task, 4, 7, layout).numpy() for task in TASKS])
        assert diskcache.digest(rows) == expected


# determined and not degenerate, 12 puzzles per task, seed 7, 6x6: a mix of both in contact and half_fill
COUNTED = {"contact": "110100010111", "corners": "111111111111", "detect": "111111111111", "frame": "111111111111",
           "grow": "111111111111", "half_fill": "001010110010", "replace_color": "111111111111", "translate": "011111111111"}


def test_the_oracle_version_pins_its_masks_and_the_cache_returns_them():
    """Fails when the oracle's verdicts change: then bump oracle.VERSION (stale cached masks would
    otherwise be read) and update COUNTED."""
    assert O.VERSION == 1
    for task, expected in COUNTED.items():
        puzzles = T.generate_task(task, 12, 7, TINY)
        for _ in range(2):  # made, then read from the cache
            mask = O.determined_not_degenerate(puzzles, task, TINY)
            assert "".join("1" if m else "0" for m in mask) == expected
    assert len(list(diskcache.cache_dir().glob("culture-determined/*.npz"))) == len(TASKS)


def test_cached_answer_grids_are_the_oracles_answers():
    for task in ("contact", "half_fill"):  # the tasks with undetermined 6x6 puzzles above
        for row in T.generate_task(task, 12, 7, TINY):
            expected = {a for a in O.valid_answers(row, task, TINY)}
            for _ in range(2):  # made, then read from the cache
                grids = O.answer_grids(row, task, TINY)
                assert grids.shape[1:] == (TINY.cells,) and {g.tobytes() for g in grids} == expected
