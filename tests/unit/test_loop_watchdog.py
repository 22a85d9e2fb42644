"""streams.loop_watchdog: a stall of the event loop is measured and its stack caught."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from streams.loop_watchdog import LoopWatchdog, StallLog, log_stall


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_late_beat_reports_how_late_it_was_with_the_stack_taken_meanwhile() -> None:
    clock, stalls = Clock(), list[tuple[float, str]]()
    dog = LoopWatchdog(lambda s, stack: stalls.append((s, stack)), 0.5, 0.05, clock)
    dog._last_beat = clock.now
    clock.now += 0.3
    dog.check()  # not late enough: no stack taken
    assert dog._stack == ""
    clock.now += 0.3
    dog.check()  # 0.55 s late: the stack of the (unknown here) loop thread
    assert dog._stack == "  (no stack)"
    clock.now += 1.0
    dog.beat()
    [(seconds, stack)] = stalls
    assert seconds == pytest.approx(1.55) and stack == "  (no stack)"
    assert dog._stack == ""  # the next stall takes its own
    clock.now += 0.05
    dog.beat()  # on time: nothing
    assert len(stalls) == 1


def test_a_blocked_loop_is_logged_with_what_blocked_it(caplog: pytest.LogCaptureFixture) -> None:
    observed: list[float] = []
    dog = LoopWatchdog(log_stall(observed.append), threshold=0.2, interval=0.02)

    def slow_part_of_the_batch() -> None:
        time.sleep(0.6)  # holds the loop, as a slow callback would

    async def main() -> None:
        dog.start(asyncio.get_running_loop())
        await asyncio.sleep(0.1)
        slow_part_of_the_batch()
        await asyncio.sleep(0.1)  # the next beat reports the stall
        dog.stop()

    with caplog.at_level(logging.WARNING, logger="streams.loop_watchdog"):
        asyncio.run(main())
    assert len(observed) == 1 and observed[0] >= 0.4
    [message] = [r.getMessage() for r in caplog.records]
    assert "the event loop was blocked for" in message
    assert "in slow_part_of_the_batch" in message


def test_the_interval_must_be_shorter_than_the_threshold() -> None:
    with pytest.raises(ValueError, match="interval"):
        LoopWatchdog(lambda s, stack: None, threshold=0.1, interval=0.1)


def test_stalls_are_all_observed_but_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, observed = Clock(), list[float]()
    report = StallLog(observed.append, every=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="streams.loop_watchdog"):
        report(0.7, "  a.py:1 in first")
        clock.now += 10
        report(1.9, "  b.py:2 in second")
        clock.now += 10
        report(0.6, "  c.py:3 in third")
        clock.now += 41
        report(0.8, "  d.py:4 in fourth")
    assert observed == [0.7, 1.9, 0.6, 0.8]
    first, second = [r.getMessage() for r in caplog.records]
    assert "blocked for 0.70 s;" in first and "in first" in first
    assert "blocked for 0.80 s (2 more since the last such line, the longest 1.90 s)" in second
    assert "in fourth" in second
