"""Othello: the game's rules and encodings (rules), the subjects' data splits (data), and the
findings checked on Othello-GPTs (findings: F3-F5; probe: the board-state probe)."""
