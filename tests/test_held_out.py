"""Held out means held out: every synthetic split of an embedded subject (culture puzzles, Othello
games, token sequences) holds no item twice, and its confirmation split shares none with its
selection split, at the declared size. Only the seeds and the manifest's [data] are read (no weights)."""

import pytest
import torch

from tests.conftest import SUBJECTS_DIR
from verify.culture import findings as culture
from verify.culture.data import TASKS, row_hashes, without_repeats
from verify.othello import data as othello
from verify.plugin import subjects
from verify.tokens import data as tokens
from verify.manifest import load_manifest
from verify.subjects import Subject, manifest_paths

SYNTHETIC = {"culture-synthetic", "othello-synthetic", "tokens-synthetic"}
MANIFESTS = [p for p in manifest_paths(SUBJECTS_DIR) if load_manifest(p).data.source in SYNTHETIC]


def items(subject: Subject, which: str) -> dict[str, list[bytes]]:
    """Group (a task, or all games) -> a digest per item of the split."""
    if subject.manifest.domain == "culture":
        return {task: row_hashes(culture.puzzles(subject, task, which)) for task in TASKS}
    if subject.manifest.domain == "tokens":  # tokens.data.split's synthetic path, without the model's vocabulary check
        d = subject.manifest.data
        made = subject.data(("held-out test", "selection"), lambda: tokens.synthetic_split(d.options, d.size, d.seed("selection"), None))
        if which == "confirmation":
            made = tokens.synthetic_split(d.options, d.size, d.seed(which), made)
        return {"sequences": [row.tobytes() for row in made.tokens]}
    return {"games": [row.tobytes() for row in othello.split(subject, which).squares]}


def test_the_embedded_subjects_include_every_synthetic_source():
    assert {load_manifest(p).data.source for p in MANIFESTS} == SYNTHETIC


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_a_synthetic_split_holds_no_repeat_and_shares_nothing_with_the_other(path, pytestconfig):
    m = load_manifest(path)
    # the session's data cache: a claims run in the same session makes these splits once
    subject = Subject(m, model=None, saes={}, device="cpu", data_cache=subjects(pytestconfig).data_cache)
    selection, confirmation = items(subject, "selection"), items(subject, "confirmation")
    for group in selection:
        chosen, held_out = selection[group], confirmation[group]
        assert len(chosen) == len(held_out) == m.data.size, group
        assert len(set(chosen)) == len(chosen) and len(set(held_out)) == len(held_out), f"{group}: a repeated item"
        assert not set(chosen) & set(held_out), f"{group}: an item in both splits"


def test_culture_tinys_grow_split_says_what_it_drew_again():
    """culture-tiny's grow streams meet 13 selection puzzles and 2 repeats in the confirmation stream
    (and 2 repeats in the selection stream): drawn again, counted, and printed by the solved-rate claim."""
    subject = Subject(load_manifest(SUBJECTS_DIR / "culture-tiny.toml"), model=None, saes={}, device="cpu")
    held_out = culture.split(subject, "grow")
    assert (held_out.shared, held_out.repeated, culture.split(subject, "grow", "selection").repeated) == (13, 2, 2)
    [note] = culture.redrawn_note(subject, "grow")
    assert note.estimate.value == 15 and "(13 in the selection split, 2 repeats; selection split: 2 repeats drawn again)" in note.what
    assert culture.redrawn_note(subject, "translate") == []


def test_a_datasets_repeated_rows_are_removed_and_counted():
    rows = torch.tensor([[1, 2], [3, 4], [1, 2], [5, 6], [3, 4]])
    kept = without_repeats(rows)
    assert kept.tokens.tolist() == [[1, 2], [3, 4], [5, 6]] and (kept.shared, kept.repeated) == (0, 2)


def test_othello_games_met_in_the_selection_split_are_drawn_again():
    selection, shared, repeated = othello.distinct_games(30, 5, batch=32)
    again, shared, repeated = othello.distinct_games(20, 5, held_out_from=selection.take(slice(0, 10)), batch=32)
    assert (shared, repeated) == (10, 0) and (again.squares == selection.squares[10:30]).all()
