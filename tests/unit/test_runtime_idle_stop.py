"""`funnel worker --until-idle S` stops only once EVERY input has been quiet for S seconds.

Issue 19 §5: the stop clock ran from the first input to catch up, so empty cart and
orders partitions started it at launch and a worker exited while the simulator was still
sending clickstream. Runtime is driven here without a broker, on a controllable clock.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from unittest.mock import MagicMock, create_autospec

import pytest

import streams.runtime as runtime_module
from sinks.clickhouse import ClickHouseWriter
from streams.batch import BatchResult
from streams.processor import PartitionProcessor
from streams.records import Record
from streams.runtime import Runtime, TableStore
from streams.transport import RecordBatch

TOPICS = {"clickstream": "shop.clickstream", "cart": "shop.cart", "orders": "shop.orders"}
STOP_AFTER = 10.0

Offsets = dict[tuple[str, int], tuple[int | None, int | None]]


class Clock:
    """Stands in for the runtime module's ``time``: monotonic() is set by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()

    def perf_counter(self) -> float:
        return time.perf_counter()


class Harness:
    """One worker with partition 0 of the three inputs; the broker is the ``end`` dict."""

    def __init__(self, clock: Clock, idle_input_seconds: float = 60.0) -> None:
        self.clock = clock
        self.stops: list[float] = []
        processor = create_autospec(PartitionProcessor, instance=True)
        processor.partition = 0
        processor.process.return_value = BatchResult()
        processor.tick.return_value = BatchResult()
        processor.watermark.return_value = None
        processor.state_keys = processor.state_bytes = 0
        self.processor = processor
        self.runtime = Runtime(
            rules=MagicMock(),
            decoder=None,
            channels=None,
            topics_by_stream=TOPICS,
            store=create_autospec(TableStore, instance=True),
            writer=create_autospec(ClickHouseWriter, instance=True),
            metrics=MagicMock(),
            conversion=MagicMock(),
            dead_letters=MagicMock(),
            idle_input_seconds=idle_input_seconds,
            stop_when_idle_seconds=STOP_AFTER,
            on_idle_stop=lambda: self.stops.append(clock.now),
            processors={0: processor},
        )
        writer = self.runtime.writer
        writer.flush_seconds = 1.0
        writer.behind = False

        def set_behind(behind: bool) -> None:
            writer.behind = behind

        writer.set_behind.side_effect = set_behind
        self.end = dict.fromkeys(TOPICS, 0)  # each input's end offset (high watermark)

    @property
    def stopped(self) -> bool:
        return bool(self.stops)

    def produce(self, stream: str, count: int) -> None:
        self.end[stream] += count

    def consume(self, stream: str) -> None:
        """The agent processes everything the input has, before the next tick."""
        position = self.runtime.positions.get((stream, 0))
        first = position.next_offset if position is not None else 0
        records = tuple(Record(o, b"k", b"v", 0) for o in range(first, self.end[stream]))
        if records:
            batch = RecordBatch(TOPICS[stream], 0, records, first, 0)
            asyncio.run(self.runtime.handle_batch(batch))

    def tick(self, advance: float = 1.0) -> None:
        self.clock.now += advance
        offsets: Offsets = {(s, 0): (None, end) for s, end in self.end.items()}
        asyncio.run(self.runtime.tick(offsets))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    # Only the runtime module's view of `time`: asyncio keeps the real clock.
    fake_time = SimpleNamespace(
        monotonic=fake.monotonic, time=fake.time, perf_counter=fake.perf_counter
    )
    monkeypatch.setattr(runtime_module, "time", fake_time)
    return fake


def test_empty_inputs_do_not_start_the_stop_clock_while_another_is_fed(clock: Clock) -> None:
    """The drill: cart and orders empty from launch, clickstream fed for 3x the period.

    Each second's records are processed before the tick, so clickstream is caught up at
    every tick: only the records it processed show that it was not idle.
    """
    h = Harness(clock)
    h.tick()  # launch: everything caught up (cart and orders stay empty throughout)
    for _ in range(int(3 * STOP_AFTER)):
        h.produce("clickstream", 5)
        h.consume("clickstream")
        h.tick()
        assert not h.stopped, "stopped while clickstream was still receiving records"
    last_activity = clock.now
    for _ in range(int(STOP_AFTER) - 1):
        h.tick()
    assert not h.stopped, "stopped before every input was quiet for the whole period"
    h.tick()
    assert h.stops == [last_activity + STOP_AFTER]


def test_records_arriving_on_an_input_idle_since_launch_restart_the_clock(clock: Clock) -> None:
    h = Harness(clock)
    h.tick()
    for _ in range(int(STOP_AFTER) - 2):
        h.tick()  # all quiet, almost long enough
    h.produce("cart", 3)
    h.consume("cart")
    h.tick()
    cart_active_at = clock.now
    assert h.runtime.positions[("cart", 0)].caught_up_since == cart_active_at
    for _ in range(int(STOP_AFTER) - 1):
        h.tick()
    assert not h.stopped
    h.tick()
    assert h.stops == [cart_active_at + STOP_AFTER]


def test_records_waiting_to_be_read_hold_the_stop_off(clock: Clock) -> None:
    h = Harness(clock)
    h.tick()
    h.produce("orders", 1)  # arrived, never processed (e.g. the agent is stuck)
    for _ in range(int(3 * STOP_AFTER)):
        h.tick()
    assert not h.stopped
    h.consume("orders")
    h.tick()
    caught_up_at = clock.now
    for _ in range(int(STOP_AFTER)):
        h.tick()
    assert h.stops == [caught_up_at + STOP_AFTER]


def test_the_stop_fires_once(clock: Clock) -> None:
    h = Harness(clock)
    h.tick()
    launched = clock.now
    for _ in range(int(3 * STOP_AFTER)):
        h.tick()
    assert h.stops == [launched + STOP_AFTER]


def test_nothing_assigned_is_not_idle(clock: Clock) -> None:
    h = Harness(clock)
    for _ in range(int(3 * STOP_AFTER)):
        clock.now += 1
        asyncio.run(h.runtime.tick({}))
    assert not h.stopped


def test_an_input_fed_every_second_never_counts_as_idle_for_the_watermark(clock: Clock) -> None:
    """The same clock decides FUNNEL_IDLE_INPUT_SECONDS: "silent this long", not "caught up
    at every tick"; an input that keeps receiving records keeps holding the watermark."""
    h = Harness(clock, idle_input_seconds=5.0)
    h.tick()
    for _ in range(10):
        h.produce("clickstream", 2)
        h.consume("clickstream")
        h.tick()
    caught_up, idle = h.processor.tick.call_args.args
    assert caught_up == {"clickstream": 20, "cart": 0, "orders": 0}
    assert set(idle) == {"cart", "orders"}


def test_inputs_are_declared_finished_once_right_before_the_idle_stop(clock: Clock) -> None:
    """Issue #12 bug 5: a replay run with --until-idle ends with its inputs finished."""
    h = Harness(clock)
    h.runtime.finish_inputs_when_idle = True
    calls: list[object] = []

    def tick(*args: object, finished: bool = False) -> BatchResult:
        calls.append(("finished", args) if finished else "tick")
        return BatchResult()

    h.processor.tick.side_effect = tick
    h.runtime.on_idle_stop = lambda: calls.append("stop")
    h.produce("orders", 4)
    h.consume("orders")
    for _ in range(int(3 * STOP_AFTER)):
        h.tick()
    finished = [c for c in calls if isinstance(c, tuple)]
    assert finished == [
        (
            "finished",
            ({"clickstream": 0, "cart": 0, "orders": 4}, {"clickstream", "cart", "orders"}),
        )
    ]
    assert calls.index("stop") == calls.index(finished[0]) + 1
    assert calls.count("stop") == 1


def test_without_finishing_the_idle_stop_ticks_nothing_more(clock: Clock) -> None:
    h = Harness(clock)
    for _ in range(int(3 * STOP_AFTER)):
        h.tick()
    assert h.stopped
    assert all("finished" not in c.kwargs for c in h.processor.tick.call_args_list)


def test_a_restart_with_nothing_new_to_read_still_finishes_its_partitions(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker started with --until-idle on a group that has read everything gets no
    batch, so no partition was rebuilt from its state; the finish must rebuild them, or
    the sessions the last worker left open never close (found by the attribution e2e)."""
    h = Harness(clock)
    h.runtime.processors.clear()
    h.runtime.finish_inputs_when_idle = True
    h.processor.recover.return_value = BatchResult()
    h.processor.triggers_next_offset = 0
    h.processor.recovered_version = 0
    built: list[int] = []

    def build(partition: int, *args: object, **kwargs: object) -> object:
        built.append(partition)
        return h.processor

    h.runtime.new_processor = build  # type: ignore[assignment]
    h.end = dict.fromkeys(TOPICS, 7)  # committed by the last worker, nothing new
    flowing = [False]
    h.runtime.inputs_flowing = lambda: flowing[0]

    def tick() -> None:
        clock.now += 1.0
        offsets: Offsets = {(s, 0): (7, end) for s, end in h.end.items()}
        asyncio.run(h.runtime.tick(offsets))

    for _ in range(int(2 * STOP_AFTER)):
        tick()
    assert not h.stopped, "stopped while the table was still recovering"
    assert built == []
    flowing[0] = True
    tick()
    assert built == [0]
    assert h.stopped
    finished = [c for c in h.processor.tick.call_args_list if c.kwargs.get("finished")]
    assert len(finished) == 1
