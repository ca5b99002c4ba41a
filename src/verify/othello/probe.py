"""F6, the Othello "world model": a linear probe reads every square's state from the residual stream.

Li et al. (2023) found Othello-GPT's board state decodable from its activations; Nanda (2023) showed
it is *linear* once the labels are relative to the player to move (empty / mine / theirs) rather
than colours (empty / black / white). The claim: a linear probe (verify.linear_probe) on the
declared hook, fitted on the selection split's games, predicts each square's state on the
confirmation split with an accuracy inside the declared bounds; it beats the same probe fitted the
same way on a randomly initialised model of the same architecture, and the mine/theirs probe beats
the black/white one. Accuracy is over every (game, position, square) cell; intervals resample games.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from verify import stats
from verify.activations import hook_activations
from verify.interventions import random_model_like
from verify.linear_probe import fit_linear_probe
from verify.othello import rules
from verify.othello.data import input_tokens, positions, split
from verify.othello.findings import competence, games_activations
from verify.params import Fraction, VectorHook
from verify.registry import Claim, register_claim
from verify.verdicts import Check, Note

LABELS = {"mine/theirs": "empty / mine / theirs (the player to move next)", "black/white": "empty / black / white"}


@dataclass(frozen=True)
class BoardProbe:
    hook: VectorHook
    min_accuracy: Fraction
    max_accuracy: Fraction = 1.0
    min_margin_over_random: float = 0.0  # over the same probe on a randomly initialised model
    min_margin_over_colour: float = 0.0  # mine/theirs accuracy minus black/white accuracy
    random_seed: int = 0  # seeds the randomly initialised model


def board_labels(games: rules.Games, frame: str) -> torch.Tensor:
    """(games, 59, 64) class per square after each input move: 0 empty, 1 mine/black, 2 theirs/white."""
    board = games.relative_states if frame == "mine/theirs" else games.states
    board = positions(games, board).astype(np.int64)
    return torch.from_numpy(np.where(board == 0, 0, np.where(board > 0, 1, 2)))


def probe_right(train_acts: torch.Tensor, train_labels: torch.Tensor, test_acts: torch.Tensor, test_labels: torch.Tensor) -> np.ndarray:
    """(test games, cells) bool: the probe fitted on the train split is right at this cell."""
    right = fit_linear_probe(train_acts, train_labels, 3).predict(test_acts).cpu() == test_labels
    return right.reshape(len(right), -1).numpy()


@dataclass(frozen=True)
class BoardProbeResult:
    accuracy: stats.Estimate  # mine/theirs probe on the subject's model
    colour_accuracy: stats.Estimate  # black/white probe on the subject's model
    random_accuracy: stats.Estimate  # mine/theirs probe on a randomly initialised model
    margin_over_random: stats.Estimate
    margin_over_colour: stats.Estimate
    empty_accuracy: stats.Estimate  # the mine/theirs probe on empty cells alone


def compare_probes(subject, hook: str, train: rules.Games, test: rules.Games, names: tuple[str, str], random_seed: int) -> BoardProbeResult:
    """Fit the probes on `train` and score them on `test` (activations cached under `names`)."""

    fresh = subject.cached(("random model", random_seed), lambda: random_model_like(subject.model, random_seed))

    def random_model_acts(games, name):
        return subject.cached(("probe acts", name, hook), lambda: hook_activations(fresh, input_tokens(subject, games), hook))

    ours_train, ours_test = games_activations(subject, train, names[0], hook), games_activations(subject, test, names[1], hook)
    base_train = random_model_acts(train, f"{names[0]}, random model {random_seed}")
    base_test = random_model_acts(test, f"{names[1]}, random model {random_seed}")
    mine_train, mine_test = board_labels(train, "mine/theirs"), board_labels(test, "mine/theirs")

    cells = np.full(len(test), float(mine_test[0].numel()))
    right = probe_right(ours_train, mine_train, ours_test, mine_test)
    ours = right.sum(1).astype(np.float64)
    colour = probe_right(ours_train, board_labels(train, "black/white"), ours_test, board_labels(test, "black/white")).sum(1).astype(np.float64)
    base = probe_right(base_train, mine_train, base_test, mine_test).sum(1).astype(np.float64)
    empty = (mine_test == 0).reshape(len(test), -1).numpy()

    difference = lambda t: stats.ratio(t[..., :2]) - stats.ratio(t[..., 2:])  # noqa: E731
    return BoardProbeResult(
        accuracy=stats.ratio_estimate(ours, cells),
        colour_accuracy=stats.ratio_estimate(colour, cells),
        random_accuracy=stats.ratio_estimate(base, cells),
        margin_over_random=stats.cluster_bootstrap(np.stack([ours, cells, base, cells], -1), difference),
        margin_over_colour=stats.cluster_bootstrap(np.stack([ours, cells, colour, cells], -1), difference),
        empty_accuracy=stats.ratio_estimate((right & empty).sum(1).astype(np.float64), empty.sum(1).astype(np.float64)),
    )


def measure_board_probe(subject, p: BoardProbe) -> BoardProbeResult:
    """Probes fitted on the selection split, scored on the confirmation split."""
    return compare_probes(subject, p.hook, split(subject, "selection"), split(subject, "confirmation"),
                          ("selection", "confirmation"), p.random_seed)


def judge_board_probe(m: BoardProbeResult, p: BoardProbe) -> list:
    return [
        Check(f"linear probe accuracy, {LABELS['mine/theirs']}, {p.hook}", m.accuracy, p.min_accuracy, p.max_accuracy),
        Check("margin over the same probe on a randomly initialised model", m.margin_over_random, p.min_margin_over_random),
        Check("margin of mine/theirs over black/white labels", m.margin_over_colour, p.min_margin_over_colour),
        Note("baseline: probe accuracy on a randomly initialised model", m.random_accuracy),
        Note(f"probe accuracy, {LABELS['black/white']}", m.colour_accuracy),
        Note("probe accuracy on empty squares alone", m.empty_accuracy),
    ]


register_claim(Claim("board_probe", "othello", BoardProbe, measure_board_probe, judge_board_probe, version=1,
                     summary="F6: a linear probe reads each square as empty / mine / theirs from a residual hook",
                     preconditions=competence, rests_on=("legal_move_rate",)))
