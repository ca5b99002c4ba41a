"""An Othello subject's data: its selection and confirmation games, made from the manifest's seeds."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from verify.othello import rules
from verify.splits import first_distinct


def split(subject, which: str) -> rules.Games:
    """The subject's selection or confirmation games, generated once per data spec: no game twice,
    and the confirmation games none of the selection games (`distinct_games`)."""
    data = subject.manifest.data

    def make() -> rules.Games:
        held_out_from = split(subject, "selection") if which == "confirmation" else None
        games, shared, repeated = distinct_games(data.size, data.seed(which), held_out_from)
        if shared or repeated:  # a warning where it happens (practically never: 60-move random games)
            warnings.warn(f"{subject.manifest.name}: {which} games drawn again to keep the split held out and free of "
                          f"repeats: {shared} in the selection split, {repeated} repeats", stacklevel=2)
        return games

    return subject.data(("games", which), make)


def distinct_games(n: int, seed: int, held_out_from: rules.Games | None = None,
                   batch: int | None = None) -> tuple[rules.Games, int, int]:
    """(n games of `generate_games`'s stream for (seed, batch: its default when None), skipping any
    game that repeats one taken before or is in `held_out_from`; how many were in `held_out_from`;
    how many repeated). The stream's first games do not depend on how many are asked for, so
    skipping draws further on."""
    exclude = {row.tobytes() for row in held_out_from.squares} if held_out_from is not None else set()
    wanted = n
    for _ in range(8):
        games = rules.generate_games(wanted, seed, **({} if batch is None else {"batch": batch}))
        keep, shared, repeated = first_distinct((row.tobytes() for row in games.squares), n, exclude)
        if len(keep) == n:
            return games.take(np.array(keep, dtype=np.int64)), shared, repeated
        wanted += 2 * (n - len(keep)) + 16
    raise ValueError(f"{n} distinct games not found in {wanted} games of seed {seed}")


def input_tokens(subject, games: rules.Games) -> torch.Tensor:
    return torch.from_numpy(games.tokens[:, : rules.MODEL_INPUT_LENGTH]).to(subject.device)


def positions(games: rules.Games, array: np.ndarray) -> np.ndarray:
    """Labels aligned with the 59 model positions: position t is the board after move t."""
    return array[:, : rules.MODEL_INPUT_LENGTH]
