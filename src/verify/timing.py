"""Where a claim's time goes: named stages (load, data, forward, statistics), innermost wins.

`with stage("forward"):` around work adds its wall time to that stage of every active collector,
less the time of the stages nested inside it (so a data load inside a forward pass counts as
"data" only). `with collect() as seconds:` gathers the stages of the work inside its block into a
dict, and puts the block's time outside every stage under "other". Collectors nest: an inner one
sees the stages of its own block, an outer one sees them too, and neither hides time from the
other. Not thread-safe: stages opened by other threads would be mis-nested. `on_step(f)` calls f()
as each stage starts and before each batch of `steps(...)` inside one (an xdist worker takes its
share of the cores there: verify.coreshare).
"""

from __future__ import annotations

from contextlib import contextmanager
from time import perf_counter
from typing import Callable, Iterable, Iterator, TypeVar

STAGES = ("load", "data", "forward", "statistics")
OTHER = "other"  # a collector's time outside every stage

_collectors: list[dict[str, float]] = []
_open: list[list[float]] = []  # per open stage: [start, seconds spent in the stages nested inside it]
_on_step: list[Callable[[], None]] = []
T = TypeVar("T")


def on_step(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback()` as each stage starts and before each item of `steps`, until the returned
    function is called."""
    _on_step.append(callback)
    return lambda: _on_step.remove(callback)


def steps(items: Iterable[T]) -> Iterator[T]:
    """`items` (a forward's batches, say), running the `on_step` callbacks before each: a worker left
    alone in the middle of a long forward takes the cores freed at its next batch, not its next stage."""
    for item in items:
        for callback in _on_step:
            callback()
        yield item


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Count the block's wall time, less that of nested stages, as `name` for every active collector."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r} (stages: {', '.join(STAGES)})")
    for callback in _on_step:
        callback()
    if not _collectors:  # nobody listening: nothing to measure
        yield
        return
    entry = [perf_counter(), 0.0]
    _open.append(entry)
    try:
        yield
    finally:
        _open.pop()
        spent = perf_counter() - entry[0]
        if _open:
            _open[-1][1] += spent
        for seconds in _collectors:
            seconds[name] = seconds.get(name, 0.0) + spent - entry[1]


@contextmanager
def collect() -> Iterator[dict[str, float]]:
    """Yield a dict, filled while the block runs, of stage -> seconds spent in it; on exit the
    block's time outside every stage is added as "other"."""
    seconds: dict[str, float] = {}
    start = perf_counter()
    _collectors.append(seconds)
    try:
        yield seconds
    finally:
        _collectors.pop()  # ours: blocks nest
        other = perf_counter() - start - sum(seconds.values())
        seconds[OTHER] = seconds.get(OTHER, 0.0) + max(other, 0.0)
