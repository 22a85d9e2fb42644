"""The paced producer reports how far it fell behind its schedule.

A paced run (the bench's latency passes, ``funnel simulate --rate``) should hand the
worker a steady input. When the sending process stalls, the records it owed go out late
and as a burst; ``max_behind`` is how late the latest of them was, so a report shows
whether the input was the fixed rate it names (BENCHMARKS.md, "The bench's own pauses").
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich.console import Console

from simulator.config import SimConfig
from simulator.generate import generate
from simulator.produce import ProduceReport, _Pacer
from simulator.summary import RunFacts, summary_table
from simulator.truth import compute_truth


class FakeTime:
    """A clock that moves only when the pacer sleeps or the test stalls the sender."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _send(pacer: _Pacer, time: FakeTime, indexes: range, stall_before: int | None) -> None:
    async def run() -> None:
        for index in indexes:
            if index == stall_before:
                time.now += 0.5  # the sending process stops (a long collection, say)
            await pacer.wait(index, send_time_ms=0)

    asyncio.run(run())


def test_a_steady_sender_is_never_behind_and_sleeps_to_the_rate() -> None:
    time = FakeTime()
    pacer = _Pacer(speedup=None, rate=100.0, clock=time.clock, sleep=time.sleep)
    _send(pacer, time, range(20), stall_before=None)
    assert pacer.max_behind == 0.0
    assert time.now - 1000.0 == pytest.approx(0.19)  # record 19 goes out at 19 / 100 s


def test_a_stalled_sender_reports_the_latest_record_it_owed() -> None:
    time = FakeTime()
    pacer = _Pacer(speedup=None, rate=100.0, clock=time.clock, sleep=time.sleep)
    _send(pacer, time, range(100), stall_before=10)
    # Record 10 was due at 0.10 s and went out at 0.59 s; the 49 after it go out at once
    # (the burst), each less late, until the schedule catches up at record 59.
    assert pacer.max_behind == pytest.approx(0.49)
    assert time.now - 1000.0 == pytest.approx(0.99)


def test_an_unpaced_sender_reports_nothing() -> None:
    time = FakeTime()
    pacer = _Pacer(speedup=None, rate=None, clock=time.clock, sleep=time.sleep)
    _send(pacer, time, range(10), stall_before=3)
    assert pacer.max_behind == 0.0
    assert time.slept == []


def _summary_text(report: ProduceReport) -> str:
    config = SimConfig(seed=3, users=5, days=0.1, partitions=1)
    truth = compute_truth(
        generate(config),
        lateness_ms=config.lateness_ms,
        session_timeout_ms=config.session_timeout_ms,
        window_ms=config.window_ms,
    )
    facts = RunFacts(0.1, 0.1, 0, None, None, Path("truth.json"), Path("costs.csv"))
    console = Console(width=200, record=True)
    console.print(summary_table(config, truth, facts, report))
    return console.export_text()


def test_the_summary_names_how_far_behind_a_paced_run_fell() -> None:
    late = ProduceReport(records=10, bytes=100, wall_seconds=1.0, max_behind_seconds=1.234)
    steady = ProduceReport(records=10, bytes=100, wall_seconds=1.0)
    assert "most behind its pace" in _summary_text(late)
    assert "1,234 ms" in _summary_text(late)
    assert "most behind its pace" not in _summary_text(steady)
