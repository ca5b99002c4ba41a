"""Grid puzzles of the culture GPTs: layout of a puzzle sequence and evaluation under hooks."""
