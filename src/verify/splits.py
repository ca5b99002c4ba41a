"""Held out means held out: the first n distinct items of a seeded stream.

Every synthetic source draws its selection and confirmation splits from seeded streams. Two
streams may meet (a short game or a small puzzle drawn under both seeds) and one stream may repeat
itself; a confirmation item that discovery saw, or one counted twice, would overstate what the
claim confirms. Each source keeps the first n items whose key (the item's bytes or digest) is new
and not in the selection split's keys, and reports how many it skipped for each reason.
"""

from __future__ import annotations

from typing import Iterable


def first_distinct(keys: Iterable[bytes], n: int, exclude=frozenset()) -> tuple[list[int], int, int]:
    """(indices of the first n keys that repeat no earlier key and are not in `exclude`; how many
    keys were skipped as in `exclude`; how many as repeats). `keys` may be a lazy stream: nothing
    past the n-th kept key is read. Fewer than n indices when the keys run out."""
    keep: list[int] = []
    seen: set[bytes] = set()
    shared = repeated = 0
    if n <= 0:
        return keep, shared, repeated
    for i, key in enumerate(keys):
        if key in exclude:
            shared += 1
        elif key in seen:
            repeated += 1
        else:
            seen.add(key)
            keep.append(i)
            if len(keep) == n:
                break
    return keep, shared, repeated
