"""When the worker counts as behind its input (the writer then inserts in bulk)."""

from __future__ import annotations

import pytest

from streams.backlog import Backlog, input_behind


@pytest.mark.parametrize(
    ("lag", "processed", "elapsed", "expected"),
    [
        (0, 0, 1.0, False),  # nothing to read
        (0, 50_000, 1.0, False),
        (-3, 10, 1.0, False),  # an end offset read before the last batch's
        (100, 0, 0.0, None),  # the first tick: no rate yet
        (100, 0, 1.0, True),  # records wait, none processed: start-up backlog, a stall
        (9_999, 10_000, 1.0, False),  # less than the horizon's work (1 s here)
        (10_000, 10_000, 1.0, False),
        (10_001, 10_000, 1.0, True),
        (15_000, 10_000, 2.0, True),  # 5,000/s: 3 s of work
        (4_000, 10_000, 2.0, False),
    ],
)
def test_behind_means_more_to_read_than_the_horizon_of_work(
    lag: int, processed: int, elapsed: float, expected: bool | None
) -> None:
    assert input_behind(lag, processed, elapsed, horizon_seconds=1.0) is expected


def test_the_horizon_scales_the_backlog_that_counts() -> None:
    assert input_behind(15_000, 10_000, 1.0, horizon_seconds=2.0) is False
    assert input_behind(25_000, 10_000, 1.0, horizon_seconds=2.0) is True


def test_behind_is_confirmed_by_two_ticks_and_caught_up_at_once() -> None:
    backlog = Backlog(horizon_seconds=1.0)
    assert backlog.observe(2_000, 0, 0.0) is False  # first tick: no rate
    assert backlog.observe(2_000, 58, 1.0) is False  # a live input's first fetch
    assert backlog.observe(0, 13_000, 1.0) is False  # worked off: never bulk
    assert backlog.observe(400_000, 20_000, 1.0) is False
    assert backlog.observe(380_000, 20_000, 1.0) is True  # the second tick in a row
    assert backlog.observe(360_000, 20_000, 1.0) is True
    assert backlog.observe(5_000, 20_000, 1.0) is False  # caught up: at once
    assert backlog.observe(100_000, 20_000, 1.0) is False  # a new streak starts over
    assert backlog.observe(100, 0, 0.0) is False  # no verdict keeps the mode
    assert backlog.observe(100_000, 20_000, 1.0) is True
    assert backlog.observe(100, 0, 0.0) is True
