"""verify.timing: stages attribute time to the innermost stage, collectors nest and see it all."""

import pytest

from verify import timing


@pytest.fixture
def clock(monkeypatch):
    """A fake perf_counter that advances only when told, so the attributions are exact."""
    now = [0.0]
    monkeypatch.setattr(timing, "perf_counter", lambda: now[0])

    def advance(seconds: float) -> None:
        now[0] += seconds

    return advance


def test_collector_returns_the_stages_and_the_rest_as_other(clock):
    with timing.collect() as seconds:
        clock(1)
        with timing.stage("data"):
            clock(2)
        with timing.stage("forward"):
            clock(3)
        with timing.stage("data"):
            clock(4)
    assert seconds == {"data": 6, "forward": 3, "other": 1}


def test_nested_time_counts_for_the_innermost_stage_only(clock):
    with timing.collect() as seconds:
        with timing.stage("forward"):
            clock(1)
            with timing.stage("data"):
                clock(2)
                with timing.stage("statistics"):
                    clock(4)
            clock(8)
    assert seconds == {"forward": 9, "data": 2, "statistics": 4, "other": 0}


def test_collectors_nest_and_the_outer_one_sees_everything(clock):
    with timing.collect() as outer:
        with timing.stage("load"):
            clock(1)
            with timing.collect() as inner:
                clock(2)  # inside the outer's "load" stage, outside every stage of the inner block
                with timing.stage("data"):
                    clock(4)
    assert inner == {"data": 4, "other": 2}
    assert outer == {"load": 3, "data": 4, "other": 0}


def test_stages_without_a_collector_record_nothing(clock):
    with timing.stage("forward"):
        clock(1)
    with timing.collect() as seconds:
        clock(2)
    assert seconds == {"other": 2}


def test_a_stage_left_by_an_exception_is_still_counted(clock):
    with timing.collect() as seconds:
        with pytest.raises(RuntimeError):
            with timing.stage("forward"):
                clock(5)
                raise RuntimeError
    assert seconds == {"forward": 5, "other": 0}


def test_an_unknown_stage_name_is_refused():
    with pytest.raises(ValueError, match="unknown stage 'fwd'"):
        with timing.stage("fwd"):
            pass


def test_step_callbacks_run_at_each_stage_and_before_each_batch_until_removed():
    calls = []
    stop = timing.on_step(lambda: calls.append(len(calls)))
    try:
        with timing.stage("forward"):
            seen = [i for i in timing.steps(range(3))]
        assert seen == [0, 1, 2] and calls == [0, 1, 2, 3]  # the stage's start, then each batch
    finally:
        stop()
    list(timing.steps(range(2)))
    with timing.stage("data"):
        pass
    assert calls == [0, 1, 2, 3]
