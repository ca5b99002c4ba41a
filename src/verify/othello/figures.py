"""The Othello claims' pictures for the report: data only (verify.ledger figures), drawn elsewhere.

F3: the declared feature's correlation with every square's emptiness (the declared square should
stand out: a feature that tracks the game's progress lights up the whole board), and its
activation spectrum split by whether the declared square is empty. F4: the neuron's firing rate
given each current move (selective: one bright square).
All on the confirmation split, with the same definitions as the claims.
"""

from __future__ import annotations

import numpy as np

from verify.activations import sae_feature_acts
from verify.ledger import BoardFigure, HistogramFigure
from verify.othello import rules as othello
from verify.othello.data import input_tokens, positions, split
from verify.othello.findings import split_activations, within_position

BINS = 40


def board_values(values: np.ndarray) -> list[list[float | None]]:
    """64 values by square index -> 8 rows of 8 (nan as None)."""
    return [[None if not np.isfinite(v) else float(v) for v in values[r * 8 : r * 8 + 8]] for r in range(8)]


def feature_figures(subject, p, measured) -> list:
    games = split(subject, "confirmation")
    hook = subject.manifest.saes[p.sae].hook
    acts = sae_feature_acts(subject.saes[p.sae], split_activations(subject, "confirmation", hook))[..., p.feature]
    acts = acts.double().cpu().numpy()
    empty = positions(games, games.states == othello.EMPTY).astype(np.float64)  # (games, 59, 64)
    x = within_position(acts).reshape(-1)
    y = within_position(empty).reshape(-1, 64)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (x @ y) / (np.linalg.norm(x) * np.linalg.norm(y, axis=0))  # centre squares: 0/0 -> nan
    square = othello.parse_square(p.square)
    is_empty = empty[..., square].astype(bool)
    edges = np.histogram_bin_edges(acts, bins=BINS)
    return [
        BoardFigure(title=f"r(feature {p.feature}, square empty | move number) for every square; {p.square} outlined",
                    values=board_values(corr), marked=[p.square], label="correlation"),
        HistogramFigure(title=f"feature {p.feature} activation when {p.square} is empty or occupied",
                        edges=edges.tolist(), label=f"feature {p.feature} activation",
                        series={"empty": np.histogram(acts[is_empty], edges)[0].tolist(),
                                "occupied": np.histogram(acts[~is_empty], edges)[0].tolist()}),
    ]


def neuron_figures(subject, p, measured) -> list:
    games = split(subject, "confirmation")
    tokens = input_tokens(subject, games).cpu().numpy()
    fires = (split_activations(subject, "confirmation", p.hook)[..., p.neuron] > 0).cpu().numpy()
    moves = othello.TOKEN_TO_SQUARE[tokens]  # (games, 59) square of the current move
    rate = np.full(64, np.nan)
    for square in range(64):
        here = moves == square
        if here.any():
            rate[square] = fires[here].mean()
    return [BoardFigure(title=f"P({p.hook}[{p.neuron}] fires | current move) per square; {p.move} outlined",
                        values=board_values(rate), marked=[p.move], label="firing rate")]
