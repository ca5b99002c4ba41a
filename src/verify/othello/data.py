"""An Othello subject's data: its selection and confirmation games, made from the manifest's seeds
and kept in the disk cache (verify.diskcache) between sessions, since they depend on no weights."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from verify import diskcache
from verify.othello import rules
from verify.splits import first_distinct

# bump when distinct_games (or rules.generate_games) returns other games for the same arguments:
# cached games are found by this version, so a changed generator never reads stale ones
GAMES_VERSION = 1
GAME_ARRAYS = ("squares", "states", "next_player", "legal")


def split(subject, which: str) -> rules.Games:
    """The subject's selection or confirmation games, generated once per data spec: no game twice,
    and the confirmation games none of the selection games (`distinct_games`)."""
    data = subject.manifest.data

    def make() -> rules.Games:
        held_out_from = split(subject, "selection") if which == "confirmation" else None
        games, shared, repeated = cached_distinct_games(data.size, data.seed(which), held_out_from)
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


def cached_distinct_games(n: int, seed: int, held_out_from: rules.Games | None = None) -> tuple[rules.Games, int, int]:
    """`distinct_games`' result, from the disk cache when a sound entry for these arguments is there."""
    key = {"games": GAMES_VERSION, "n": n, "seed": seed,
           "excluding": None if held_out_from is None else diskcache.digest(held_out_from.squares)}
    made: list[tuple[rules.Games, int, int]] = []

    def make() -> tuple[rules.Games, int, int]:
        if not made:
            made.append(distinct_games(n, seed, held_out_from))
        return made[0]

    arrays = {name: diskcache.cached_array(f"othello-games-{name}", key, lambda name=name: getattr(make()[0], name))
              for name in GAME_ARRAYS}
    skipped = diskcache.cached_array("othello-games-skipped", key, lambda: np.array([make()[1], make()[2]]))
    if len({len(a) for a in arrays.values()}) != 1 or len(arrays["squares"]) != n:  # entries of different makes
        arrays = {name: getattr(make()[0], name) for name in GAME_ARRAYS}
    return rules.Games(**arrays), int(skipped[0]), int(skipped[1])


def input_tokens(subject, games: rules.Games) -> torch.Tensor:
    return torch.from_numpy(games.tokens[:, : rules.MODEL_INPUT_LENGTH]).to(subject.device)


def positions(games: rules.Games, array: np.ndarray) -> np.ndarray:
    """Labels aligned with the 59 model positions: position t is the board after move t."""
    return array[:, : rules.MODEL_INPUT_LENGTH]
