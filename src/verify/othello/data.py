"""An Othello subject's data: its selection and confirmation games, made from the manifest's seeds."""

from __future__ import annotations

import numpy as np
import torch

from verify.othello import rules


def split(subject, which: str) -> rules.Games:
    """The subject's selection or confirmation games, generated once per data spec."""
    data = subject.manifest.data
    return subject.data(("games", which), lambda: rules.generate_games(data.size, data.seed(which)))


def input_tokens(subject, games: rules.Games) -> torch.Tensor:
    return torch.from_numpy(games.tokens[:, : rules.MODEL_INPUT_LENGTH]).to(subject.device)


def positions(games: rules.Games, array: np.ndarray) -> np.ndarray:
    """Labels aligned with the 59 model positions: position t is the board after move t."""
    return array[:, : rules.MODEL_INPUT_LENGTH]
