"""An input partition with records to read that delivers nothing is read again.

The safety net for a partition that stops being consumed (docs/architecture.md,
"Partitions that stop being read"): after FUNNEL_INPUT_STALL_SECONDS of lag without a
processed record, counted only while the agent is free, the runtime asks the consumer to
read it again from the processed position. Driven without a broker, on a fake clock.
"""

from __future__ import annotations

import asyncio

import pytest

from streams.records import Record
from streams.runtime import TopicPosition
from streams.transport import RecordBatch
from tests.unit.test_runtime_idle_stop import TOPICS, Clock, Harness, clock  # noqa: F401

STALL = 30.0


class StallHarness(Harness):
    def __init__(self, clock: Clock) -> None:  # noqa: F811
        super().__init__(clock)
        self.runtime.stop_when_idle_seconds = None
        self.runtime.input_stall_seconds = STALL
        self.read_again: list[tuple[str, int, int, float]] = []
        self.flowing = True

        async def on_stall(stream: str, partition: int, offset: int) -> None:
            self.read_again.append((stream, partition, offset, clock.now))

        self.runtime.on_input_stall = on_stall
        self.runtime.inputs_flowing = lambda: self.flowing

    def consume_some(self, stream: str, count: int) -> None:
        position = self.runtime.positions.get((stream, 0))
        first = position.next_offset if position is not None else 0
        records = tuple(Record(o, b"k", b"v", 0) for o in range(first, first + count))
        asyncio.run(self.runtime.handle_batch(RecordBatch(TOPICS[stream], 0, records, first, 0)))

    def ticks(self, seconds: int) -> None:
        for _ in range(seconds):
            self.tick()


def test_a_lagging_input_that_processes_nothing_is_read_again_from_its_position(
    clock: Clock,  # noqa: F811
) -> None:
    h = StallHarness(clock)
    h.produce("clickstream", 100)
    h.consume_some("clickstream", 40)  # then nothing more arrives from the consumer
    h.tick()
    h.ticks(29)
    assert h.read_again == []
    h.ticks(1)
    assert [(s, p, o) for s, p, o, _ in h.read_again] == [("clickstream", 0, 40)]
    h.runtime.metrics.input_stalls.labels.assert_called_with("shop.clickstream")


def test_the_wait_doubles_after_each_attempt_and_resets_on_progress(
    clock: Clock,  # noqa: F811
) -> None:
    h = StallHarness(clock)
    h.produce("cart", 10)
    h.tick()
    h.ticks(30)
    h.ticks(60)
    h.ticks(120)
    times = [t - 1000.0 for *_, t in h.read_again]
    assert times == [31.0, 91.0, 211.0]
    h.consume_some("cart", 5)  # progress: the next stall waits the base time again
    h.ticks(30)
    assert len(h.read_again) == 3
    h.ticks(30)
    assert len(h.read_again) == 4 and h.read_again[-1][2] == 5


def test_an_input_that_keeps_processing_or_is_caught_up_never_stalls(
    clock: Clock,  # noqa: F811
) -> None:
    h = StallHarness(clock)
    h.produce("clickstream", 1000)
    for _ in range(100):  # a slow but moving backlog
        h.consume_some("clickstream", 5)
        h.tick()
    h.produce("orders", 3)
    h.consume("orders")  # caught up
    h.ticks(100)
    # Only once clickstream stopped moving (at 500 of 1,000): after 30 s, then 60 s more.
    assert [(s, o) for s, _, o, _ in h.read_again] == [("clickstream", 500)] * 2


def test_time_the_agent_is_busy_or_the_inputs_are_held_does_not_count(
    clock: Clock,  # noqa: F811
) -> None:
    h = StallHarness(clock)
    h.produce("orders", 10)
    h.tick()
    h.flowing = False  # a rebalance or table recovery holds the inputs
    h.ticks(100)
    h.flowing = True
    h.runtime._batches_running = 1  # a batch waits (e.g. on a ClickHouse outage)
    h.ticks(100)
    assert h.read_again == []
    h.runtime._batches_running = 0
    h.ticks(30)
    assert len(h.read_again) == 1


@pytest.mark.parametrize("processed", [True, False])
def test_the_stall_decision(processed: bool, clock: Clock) -> None:  # noqa: F811
    h = StallHarness(clock)
    position = TopicPosition()
    assert not h.runtime._stalled(position, lagging=True, processed=processed, free_seconds=29)
    fired = h.runtime._stalled(position, lagging=True, processed=processed, free_seconds=1)
    assert fired is (not processed)
