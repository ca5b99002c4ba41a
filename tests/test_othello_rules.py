"""Othello rules, encodings and the generator: properties and independently known facts."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verify.othello import rules as othello
from verify.othello.rules import BLACK, EMPTY, WHITE, Board


def random_game(seed: int, moves: int) -> list[tuple[np.ndarray, int, list[int], np.ndarray]]:
    """Play up to `moves` random legal moves with the reference Board: (before, square, flips, after)."""
    rng = np.random.default_rng(seed)
    board, steps = Board(), []
    for _ in range(moves):
        if board.game_over:
            break
        square = int(rng.choice(board.legal_moves()))
        before, player = board.state.copy(), board.player
        flipped = board.play(square)
        steps.append((before, square, flipped, board.state.copy(), player))
    return steps


# --- known facts -----------------------------------------------------------------------------------

def test_opening_position_and_black_first():
    board = Board()
    assert board.player == BLACK
    assert (board.state != EMPTY).sum() == 4
    assert board.state[27] == board.state[36] == WHITE and board.state[28] == board.state[35] == BLACK


def test_black_has_exactly_four_opening_moves_each_flipping_one_stone():
    # white D3, E4 / black D4, E3: black brackets D3 from D2 or C3, and E4 from E5 or F4
    board = Board()
    assert sorted(othello.square_label(s) for s in board.legal_moves()) == ["C3", "D2", "E5", "F4"]
    assert all(len(board.flips(s)) == 1 for s in board.legal_moves())


def test_first_move_flips_the_bracketed_stone():
    board = Board()
    assert board.play(othello.parse_square("C3")) == [othello.parse_square("D3")]


def test_squares_and_tokens():
    assert othello.square_label(0) == "A0" and othello.square_label(63) == "H7"
    assert othello.parse_square("E0") == 32 and othello.parse_square("e0") == 32
    assert othello.square_to_token(0) == 1 and othello.square_to_token(26) == 27 and othello.square_to_token(29) == 28
    assert othello.square_to_token(63) == 60
    assert sorted(othello.TOKEN_TO_SQUARE[1:]) == [s for s in range(64) if s not in othello.CENTRE_SQUARES]


@pytest.mark.parametrize("bad", ["I0", "A8", "E", "E10", "", "00"])
def test_bad_square_labels_are_named(bad):
    with pytest.raises(ValueError, match="unknown square"):
        othello.parse_square(bad)


@pytest.mark.parametrize("bad", [0, 61, -1])
def test_tokens_outside_moves_are_refused(bad):
    with pytest.raises(ValueError, match="not a move"):
        othello.token_to_square(bad)


def test_centre_squares_have_no_token():
    with pytest.raises(ValueError, match="centre"):
        othello.square_to_token(27)


def test_illegal_move_is_refused():
    with pytest.raises(ValueError, match="not a legal move"):
        Board().play(0)


# --- properties ------------------------------------------------------------------------------------

@given(st.integers(0, 2**32 - 1), st.integers(1, 60))
def test_stones_only_appear_or_flip(seed, moves):
    for before, square, flipped, after, player in random_game(seed, moves):
        placed = (before == EMPTY) & (after != EMPTY)
        assert placed.sum() == 1 and placed[square]  # exactly the played square appears
        assert not ((before != EMPTY) & (after == EMPTY)).any()  # nothing vanishes
        changed = np.flatnonzero((before != EMPTY) & (before != after))
        assert sorted(changed) == sorted(flipped) and len(flipped) >= 1  # a legal move flips >= 1
        assert (after[flipped] == player).all()


@given(st.integers(0, 63))
def test_square_label_round_trip(square):
    assert othello.parse_square(othello.square_label(square)) == square


@given(st.integers(1, 60))
def test_token_round_trip(token):
    assert othello.square_to_token(othello.token_to_square(token)) == token


@settings(max_examples=20)
@given(st.integers(0, 2**32 - 1))
def test_batched_generator_agrees_with_reference_board(seed):
    games = othello.generate_games(8, seed, batch=16)
    reference = othello.replay(games.squares)
    np.testing.assert_array_equal(games.states, reference.states)
    np.testing.assert_array_equal(games.legal, reference.legal)
    np.testing.assert_array_equal(games.next_player, reference.next_player)


@settings(max_examples=40)
@given(st.integers(0, 2**32 - 1))
def test_bitboard_rules_agree_with_reference_board_on_any_position(seed):
    """Arbitrary boards (not only reachable ones): stones on every edge and corner, where a shift
    that wrapped round a row would show."""
    rng = np.random.default_rng(seed)
    boards = rng.choice(np.array([EMPTY, BLACK, WHITE], dtype=np.int8), size=(16, 64), p=[0.3, 0.35, 0.35])
    players = rng.choice(np.array([BLACK, WHITE], dtype=np.int8), size=16)
    mine = np.array([othello.bits_of(b, p) for b, p in zip(boards, players)], dtype=np.uint64)
    theirs = np.array([othello.bits_of(b, -p) for b, p in zip(boards, players)], dtype=np.uint64)
    legal = othello.squares_of(othello.legal_bits(mine, theirs))
    for i, (board_state, player) in enumerate(zip(boards, players)):
        board = Board()
        board.state = board_state.copy()
        expected = board.legal_moves(int(player))
        assert np.flatnonzero(legal[i]).tolist() == expected
        for square in expected:
            played = np.array([np.uint64(1) << np.uint64(square)], dtype=np.uint64)
            flipped = othello.squares_of(othello.flipped_bits(played, mine[i : i + 1], theirs[i : i + 1]))[0]
            assert np.flatnonzero(flipped).tolist() == sorted(board.flips(square, int(player)))


def test_generator_makes_full_games_only_and_is_seeded():
    a, b, c = othello.generate_games(50, 7), othello.generate_games(50, 7), othello.generate_games(50, 8)
    assert a.squares.shape == (50, 60)
    np.testing.assert_array_equal(a.squares, b.squares)
    assert not np.array_equal(a.squares, c.squares)
    assert (np.abs(a.states[:, -1]).sum(-1) == 64).all()  # the board is full after move 60
    assert all(len(set(g)) == 60 for g in a.squares)  # every non-centre square played once
    assert (a.next_player[:, -1] == 0).all()  # game over after the last move


def test_mine_theirs_flips_with_the_player_to_move():
    games = othello.generate_games(5, 0)
    rel = games.relative_states
    # after black's first move white is to move: black stones are 'theirs' (-1)
    assert games.next_player[0, 0] == WHITE
    np.testing.assert_array_equal(rel[:, 0], -games.states[:, 0])


def test_passes_are_handled_like_the_reference():
    # find a generated game in which someone passes (the same player moves twice) and replay it
    games = othello.generate_games(400, 3)
    movers = np.concatenate([np.full((len(games), 1), BLACK), games.next_player[:, :-1]], 1)
    with_pass = np.flatnonzero((movers[:, 1:] == movers[:, :-1]).any(1))
    assert len(with_pass) > 0, "no pass in 400 random games: the generator never lets a player pass"
    ref = othello.replay(games.squares[with_pass[:3]])
    np.testing.assert_array_equal(ref.next_player, games.next_player[with_pass[:3]])
