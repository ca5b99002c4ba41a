"""Othello: rules, encodings, a seeded synthetic-game generator and per-position labels.

Conventions (those of Othello-GPT and its published checkpoints):
- squares 0..63, index = 8 * row + col, named A0..H7 (row letter, column digit);
- board values +1 black, -1 white, 0 empty; black moves first;
- tokens 1..60 are the 60 non-centre squares in row-major order, token 0 is pass/padding;
- a player with no legal move passes; passes never appear in move sequences.

Two implementations of the rules live here on purpose: `Board` is the plain one-game reference,
`generate_games` is a batched bitboard version used to make data fast. Tests check they agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verify import timing

EMPTY, BLACK, WHITE = 0, 1, -1
CENTRE_SQUARES = (27, 28, 35, 36)
ROWS = "ABCDEFGH"
DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
GAME_LENGTH = 60  # a full game: every non-centre square gets a stone
MODEL_INPUT_LENGTH = 59  # the model sees the first 59 moves and predicts the next at each one

TOKEN_TO_SQUARE = np.array([-1] + [s for s in range(64) if s not in CENTRE_SQUARES])
SQUARE_TO_TOKEN = np.zeros(64, dtype=np.int64)
SQUARE_TO_TOKEN[TOKEN_TO_SQUARE[1:]] = np.arange(1, 61)
SQUARE_TO_TOKEN[list(CENTRE_SQUARES)] = -1


def square_label(square: int) -> str:
    if not 0 <= square < 64:
        raise ValueError(f"square index {square} is outside 0..63")
    return f"{ROWS[square // 8]}{square % 8}"


def parse_square(label: str) -> int:
    """'E0' -> 32. Raises ValueError naming the bad label."""
    if len(label) != 2 or label[0].upper() not in ROWS or not label[1].isdigit() or int(label[1]) > 7:
        raise ValueError(f"unknown square {label!r}: expected a row letter A-H and a column digit 0-7, e.g. 'E0'")
    return 8 * ROWS.index(label[0].upper()) + int(label[1])


def square_to_token(square: int) -> int:
    if not 0 <= square < 64 or square in CENTRE_SQUARES:
        raise ValueError(f"square {square} has no token (centre squares 27, 28, 35, 36 are never played)")
    return int(SQUARE_TO_TOKEN[square])


def token_to_square(token: int) -> int:
    if not 1 <= token <= 60:
        raise ValueError(f"token {token} is not a move: moves are tokens 1..60 (0 is pass)")
    return int(TOKEN_TO_SQUARE[token])


def initial_board() -> np.ndarray:
    board = np.zeros(64, dtype=np.int8)
    board[[27, 36]] = WHITE
    board[[28, 35]] = BLACK
    return board


class Board:
    """One game in progress: the reference implementation of the rules."""

    def __init__(self) -> None:
        self.state = initial_board()
        self.player = BLACK
        self.moves: list[int] = []

    def flips(self, square: int, player: int | None = None) -> list[int]:
        """Squares that `player` would flip by playing `square` (empty list: not a legal move)."""
        player = self.player if player is None else player
        if self.state[square] != EMPTY:
            return []
        row, col = divmod(square, 8)
        flipped: list[int] = []
        for dr, dc in DIRECTIONS:
            run: list[int] = []
            r, c = row + dr, col + dc
            while 0 <= r < 8 and 0 <= c < 8 and self.state[8 * r + c] == -player:
                run.append(8 * r + c)
                r, c = r + dr, c + dc
            if run and 0 <= r < 8 and 0 <= c < 8 and self.state[8 * r + c] == player:
                flipped.extend(run)
        return flipped

    def legal_moves(self, player: int | None = None) -> list[int]:
        return [s for s in range(64) if self.flips(s, player)]

    @property
    def game_over(self) -> bool:
        return not self.legal_moves(BLACK) and not self.legal_moves(WHITE)

    def play(self, square: int) -> list[int]:
        """Play `square` for the player to move; returns the flipped squares. Handles passes."""
        flipped = self.flips(square)
        if not flipped:
            raise ValueError(f"{square_label(square)} is not a legal move for {'black' if self.player == BLACK else 'white'}")
        self.state[square] = self.player
        self.state[flipped] = self.player
        self.moves.append(square)
        if self.legal_moves(-self.player):
            self.player = -self.player
        # else: the opponent passes and the same player moves again (or the game is over)
        return flipped


# --- batched generator: bitboards --------------------------------------------------------------

# A bitboard holds one player's stones of a game in a uint64, bit s for square s; a batch of games is
# a (B,) uint64 array per player, so each rule below is a few dozen numpy operations on B numbers.
# (Gathering every square's eight rays as (B, 64, 8, 7) arrays took 39 ms per batch of 4096 and step.)
ALL_SQUARES = np.uint64(2**64 - 1)


def _landing(dc: int) -> np.uint64:
    """The squares a one-step shift along a direction may land on: a step east must not wrap from
    column 7 onto column 0 of the next row, nor a step west from column 0 onto column 7."""
    wrapped = {1: 0, -1: 7}.get(dc)
    column = 0 if wrapped is None else sum(1 << (8 * row + wrapped) for row in range(8))
    return np.uint64(~column & (2**64 - 1))


STEPS = tuple((8 * dr + dc, _landing(dc)) for dr, dc in DIRECTIONS)  # (shift, landing squares) per direction


def _step(bits: np.ndarray, shift: int, lands: np.uint64) -> np.ndarray:
    return ((bits << np.uint64(shift)) if shift > 0 else (bits >> np.uint64(-shift))) & lands


def _runs(seed: np.ndarray, theirs: np.ndarray, shift: int, lands: np.uint64) -> np.ndarray:
    """From each seed square, the run of opponent stones that starts one step away (at most 6)."""
    run = _step(seed, shift, lands) & theirs
    for _ in range(5):
        run |= _step(run, shift, lands) & theirs
    return run


def legal_bits(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """(B,) bitboards of the empty squares from which a run of opponent stones ends at a stone of mine."""
    empty = ~(mine | theirs)
    legal = np.zeros_like(mine)
    for shift, lands in STEPS:
        legal |= _step(_runs(mine, theirs, shift, lands), shift, lands) & empty
    return legal


def flipped_bits(move: np.ndarray, mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """(B,) bitboards of the stones that playing `move` (one bit, or none) flips."""
    flipped = np.zeros_like(mine)
    for shift, lands in STEPS:
        run = _runs(move, theirs, shift, lands)
        flipped |= np.where((_step(run, shift, lands) & mine) != 0, run, np.uint64(0))
    return flipped


def squares_of(bits: np.ndarray) -> np.ndarray:
    """(B, 64) bool: the squares set in each bitboard."""
    little = np.ascontiguousarray(bits, dtype="<u8").view(np.uint8).reshape(len(bits), 8)
    return np.unpackbits(little, axis=1, bitorder="little").astype(bool)


def bits_of(board: np.ndarray, colour: int) -> np.uint64:
    return np.uint64(sum(1 << int(s) for s in np.flatnonzero(board == colour)))


@dataclass(frozen=True)
class Games:
    """Full 60-move games and per-position labels (position t = after move t)."""

    squares: np.ndarray  # (N, 60) square index of each move
    states: np.ndarray  # (N, 60, 64) board after each move: +1 black, -1 white, 0 empty
    next_player: np.ndarray  # (N, 60) who moves after move t (+1/-1; 0 once the game is over)
    legal: np.ndarray  # (N, 60, 64) legal moves of the next player after move t

    @property
    def tokens(self) -> np.ndarray:
        """(N, 60) token ids 1..60."""
        return SQUARE_TO_TOKEN[self.squares]

    @property
    def relative_states(self) -> np.ndarray:
        """(N, 60, 64) board from the view of the player to move: +1 mine, -1 theirs, 0 empty."""
        return self.states * self.next_player[..., None]

    def __len__(self) -> int:
        return len(self.squares)

    def take(self, index: slice) -> Games:
        """The games at `index` (e.g. a half of a split)."""
        return Games(self.squares[index], self.states[index], self.next_player[index], self.legal[index])


@timing.stage("data")
def generate_games(n_games: int, seed: int, batch: int = 4096) -> Games:
    """`n_games` full 60-move games with uniformly random legal moves, reproducible from `seed`.

    Games that end before 60 moves are dropped (as in the synthetic Othello-GPT corpus), so more
    games are played than returned; the result depends only on (n_games, seed, batch).
    """
    if n_games < 0:
        raise ValueError(f"n_games must be >= 0, got {n_games}")
    rng = np.random.default_rng(seed)
    parts: list[Games] = []
    kept = 0
    while kept < n_games:
        g = _play_batch(batch, rng)
        parts.append(g)
        kept += len(g)
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])[:n_games]  # noqa: E731
    return Games(cat("squares"), cat("states"), cat("next_player"), cat("legal"))


def _play_batch(batch: int, rng: np.random.Generator) -> Games:
    black = np.full(batch, bits_of(initial_board(), BLACK), dtype=np.uint64)
    white = np.full(batch, bits_of(initial_board(), WHITE), dtype=np.uint64)
    players = np.full(batch, BLACK, dtype=np.int8)
    alive = np.ones(batch, dtype=bool)
    squares = np.zeros((batch, GAME_LENGTH), dtype=np.int64)
    states = np.zeros((batch, GAME_LENGTH, 64), dtype=np.int8)
    next_player = np.zeros((batch, GAME_LENGTH), dtype=np.int8)
    legal = np.zeros((batch, GAME_LENGTH, 64), dtype=bool)
    can = legal_bits(black, white)
    for t in range(GAME_LENGTH):
        alive &= can != 0
        # a uniformly random legal move: argmax of random scores over the legal squares
        move = np.argmax(np.where(squares_of(can), rng.random((batch, 64)), -1.0), axis=-1)
        played = np.where(alive, np.uint64(1) << move.astype(np.uint64), np.uint64(0))
        is_black = players == BLACK
        mine, theirs = np.where(is_black, black, white), np.where(is_black, white, black)
        flipped = flipped_bits(played, mine, theirs)
        mine, theirs = mine | played | flipped, theirs & ~flipped
        black, white = np.where(is_black, mine, theirs), np.where(is_black, theirs, mine)
        squares[:, t] = move
        states[:, t] = squares_of(black).astype(np.int8) - squares_of(white).astype(np.int8)
        # whose turn next: the opponent, unless they must pass
        theirs_legal, mine_legal = legal_bits(theirs, mine), legal_bits(mine, theirs)
        has_opp = theirs_legal != 0
        can = np.where(has_opp, theirs_legal, mine_legal)
        players = np.where(has_opp, -players, players).astype(np.int8)
        next_player[:, t] = np.where(can == 0, 0, players)
        legal[:, t] = squares_of(can)
    keep = alive & ((black | white) == ALL_SQUARES)
    return Games(squares[keep], states[keep], next_player[keep], legal[keep])


def replay(squares) -> Games:
    """Labels for given move sequences via the reference `Board` (slow; for checks and small sets)."""
    squares = np.asarray(squares, dtype=np.int64)
    n, length = squares.shape
    states = np.zeros((n, length, 64), dtype=np.int8)
    next_player = np.zeros((n, length), dtype=np.int8)
    legal = np.zeros((n, length, 64), dtype=bool)
    for i in range(n):
        board = Board()
        for t in range(length):
            board.play(int(squares[i, t]))
            states[i, t] = board.state
            over = board.game_over
            next_player[i, t] = 0 if over else board.player
            legal[i, t, board.legal_moves()] = not over
    return Games(squares, states, next_player, legal)
