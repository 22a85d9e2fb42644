"""The ClickHouse writer: batching, retry while ClickHouse is down, backpressure, flush barrier."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from funnel.errors import ConfigError
from funnel.settings import load_settings
from sinks.clickhouse import INSERT_SETTINGS, ClickHouseWriter
from sinks.tables import TableSpec

T = TableSpec("t", ("k", "v"))
U = TableSpec("u", ("x",))


class FakeContext:
    def __init__(self, table: str) -> None:
        self.table = table
        self.data: Any = None


class FakeClient:
    """Records inserts; fails while ``down`` is set, like an unreachable server."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        self.inserts = 0
        self.failures = 0
        self.down = threading.Event()

    def create_insert_context(
        self,
        table: str,
        column_names: Sequence[str],
        *,
        column_oriented: bool,
        settings: dict[str, Any] | None = None,
    ) -> FakeContext:
        assert column_oriented is True
        assert settings == INSERT_SETTINGS
        return FakeContext(table)

    def insert(self, *, context: FakeContext, data: Sequence[Sequence[Any]]) -> None:
        if self.down.is_set():
            self.failures += 1
            raise ConnectionError("ClickHouse is down")
        self.inserts += 1
        self.rows.setdefault(context.table, []).extend(zip(*data, strict=True))


def writer_for(client: FakeClient, **kw: Any) -> ClickHouseWriter:
    writer = ClickHouseWriter(lambda: client, retry_max_seconds=0.05, **kw)
    writer.start()
    return writer


def test_flush_returns_after_every_submitted_row_is_written() -> None:
    client = FakeClient()
    writer = writer_for(client, flush_seconds=30)
    for i in range(5):
        writer.submit_nowait(T, [(i, i * 10)])
    writer.submit_nowait(U, [("a",)])
    asyncio.run(writer.flush())
    assert client.rows["t"] == [(i, i * 10) for i in range(5)]
    assert client.rows["u"] == [("a",)]
    writer.stop()


def test_rows_are_batched_per_table() -> None:
    client = FakeClient()
    writer = writer_for(client, flush_seconds=30, batch_rows=1000)
    for i in range(300):
        writer.submit_nowait(T, [(i, i)])
    asyncio.run(writer.flush())
    assert client.inserts == 1
    writer.stop()


def test_outage_keeps_rows_and_catches_up() -> None:
    client = FakeClient()
    client.down.set()
    writer = writer_for(client, flush_seconds=0.01)
    writer.submit_nowait(T, [(1, 1), (2, 2)])

    async def flush_during_outage() -> bool:
        task = asyncio.create_task(writer.flush())
        await asyncio.sleep(0.3)
        blocked = not task.done()
        client.down.clear()
        await asyncio.wait_for(task, 10)
        return blocked

    assert asyncio.run(flush_during_outage()), "flush must wait while ClickHouse is down"
    assert client.failures >= 2
    assert client.rows["t"] == [(1, 1), (2, 2)]
    assert writer.last_error is None
    writer.stop()


def test_full_queue_applies_backpressure_instead_of_dropping() -> None:
    client = FakeClient()
    client.down.set()
    writer = writer_for(client, flush_seconds=0.01, max_queue_rows=10)

    async def submit_beyond_limit() -> float:
        await writer.submit(T, [(i, i) for i in range(10)])
        started = time.monotonic()
        threading.Timer(0.3, client.down.clear).start()
        await writer.submit(T, [(99, 99)])  # waits until the outage ends and rows drain
        return time.monotonic() - started

    waited = asyncio.run(submit_beyond_limit())
    assert waited >= 0.25
    asyncio.run(writer.flush())
    assert len(client.rows["t"]) == 11
    writer.stop()


@pytest.mark.parametrize("rows", [0, 1, 25_000])
def test_stop_writes_what_is_pending(rows: int) -> None:
    client = FakeClient()
    writer = writer_for(client, flush_seconds=30, batch_rows=10_000)
    if rows:
        writer.submit_nowait(T, [(i, i) for i in range(rows)])
    writer.stop()
    assert len(client.rows.get("t", [])) == rows


class FakeClock:
    """A monotonic clock the test moves; an insert can take 'time' by advancing it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlowClient(FakeClient):
    """Each insert advances the fake clock by ``insert_seconds`` (no real waiting)."""

    def __init__(self, clock: FakeClock, insert_seconds: float) -> None:
        super().__init__()
        self.clock = clock
        self.insert_seconds = insert_seconds

    def insert(self, *, context: FakeContext, data: Sequence[Sequence[Any]]) -> None:
        self.clock.now += self.insert_seconds
        super().insert(context=context, data=data)


def timed_writer(
    insert_seconds: float, **kw: Any
) -> tuple[ClickHouseWriter, SlowClient, FakeClock]:
    clock = FakeClock()
    client = SlowClient(clock, insert_seconds)
    writer = ClickHouseWriter(lambda: client, retry_max_seconds=0.05, clock=clock, **kw)
    writer.start()
    return writer, client, clock


def test_light_load_inserts_after_the_minimum_wait() -> None:
    writer, _, clock = timed_writer(0.01, flush_seconds=1.0, min_flush_seconds=0.2)
    assert writer.insert_due_at() is None  # nothing queued
    writer.submit_nowait(T, [(1, 1)])
    assert writer.insert_due_at() == pytest.approx(clock.now + 0.2)
    asyncio.run(writer.flush())
    assert writer.insert_due_at() is None
    # Short inserts (10 ms, doubled: 20 ms) keep the wait at its minimum.
    clock.now += 5.0
    writer.submit_nowait(T, [(2, 2)])
    assert writer.insert_due_at() == pytest.approx(clock.now + 0.2)
    writer.stop()


def test_the_wait_is_counted_from_the_oldest_queued_row() -> None:
    writer, _, clock = timed_writer(0.01, flush_seconds=1.0, min_flush_seconds=0.2)
    first = clock.now
    writer.submit_nowait(T, [(1, 1)])
    clock.now += 0.15
    writer.submit_nowait(U, [("a",)])  # a later row does not push the insert back
    assert writer.insert_due_at() == pytest.approx(first + 0.2)
    writer.stop()


@pytest.mark.parametrize(
    ("busy_ratio", "expected"),
    [
        (None, [0.2, 0.2, 0.225, 0.2625, 0.2812, 0.2906]),  # the default: 1
        (2.0, [0.2, 0.3, 0.45, 0.525, 0.5625, 0.5812]),
    ],
)
def test_slow_inserts_stretch_the_wait_up_to_flush_seconds(
    busy_ratio: float | None, expected: list[float]
) -> None:
    # Inserts of 0.3 s: the moving average of cycle time rises (0.15, 0.225, ...), the
    # wait is busy_ratio times it, within [0.2, 1.0].
    kw = {} if busy_ratio is None else {"busy_ratio": busy_ratio}
    writer, _, clock = timed_writer(0.3, flush_seconds=1.0, min_flush_seconds=0.2, **kw)
    waits = []
    for i in range(6):
        writer.submit_nowait(T, [(i, i)])
        due = writer.insert_due_at()
        assert due is not None
        waits.append(round(due - clock.now, 4))
        asyncio.run(writer.flush())
    assert waits == expected
    writer.stop()

    writer, _, clock = timed_writer(2.0, flush_seconds=1.0, min_flush_seconds=0.2)
    writer.submit_nowait(T, [(1, 1)])
    asyncio.run(writer.flush())
    writer.submit_nowait(T, [(2, 2)])
    assert writer.insert_due_at() == pytest.approx(clock.now + 1.0)  # capped
    writer.stop()


def test_a_full_batch_is_inserted_without_waiting() -> None:
    # The clock never moves, so only the batch size can start the insert.
    writer, client, _ = timed_writer(0.0, flush_seconds=1.0, min_flush_seconds=1.0, batch_rows=50)
    writer.submit_nowait(T, [(i, i) for i in range(49)])
    time.sleep(0.05)
    assert client.inserts == 0
    writer.submit_nowait(T, [(49, 49)])
    deadline = time.monotonic() + 10
    while client.inserts == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert client.inserts == 1
    assert len(client.rows["t"]) == 50
    writer.stop()


def test_rows_are_not_inserted_before_they_are_due() -> None:
    # Frozen clock: rows stay queued (one insert later carries them all) until it moves.
    writer, client, clock = timed_writer(0.0, flush_seconds=1.0, min_flush_seconds=0.2)
    for i in range(3):
        writer.submit_nowait(T, [(i, i)])
    time.sleep(0.05)
    assert client.inserts == 0
    clock.now += 0.2  # due now: the writer sees it when its (real, <= 0.2 s) wait ends
    deadline = time.monotonic() + 10
    while client.inserts == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert client.inserts == 1
    assert client.rows["t"] == [(i, i) for i in range(3)]
    writer.stop()


def test_min_flush_is_capped_at_flush_seconds() -> None:
    writer, _, clock = timed_writer(0.0, flush_seconds=0.05, min_flush_seconds=0.2)
    writer.submit_nowait(T, [(1, 1)])
    assert writer.insert_due_at() == pytest.approx(clock.now + 0.05)
    writer.stop()
    with pytest.raises(ValueError):
        ClickHouseWriter(lambda: FakeClient(), busy_ratio=-1)


def test_the_flush_settings_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from funnel.settings import Settings

    defaults = Settings()
    assert (defaults.sink_flush_min_seconds, defaults.sink_flush_seconds) == (0.2, 1.0)
    assert defaults.sink_batch_rows == 100_000
    monkeypatch.setenv("FUNNEL_SINK_FLUSH_MIN_SECONDS", "0.05")
    assert Settings().sink_flush_min_seconds == 0.05
    for bad in ("0", "-1", "61"):
        monkeypatch.setenv("FUNNEL_SINK_FLUSH_MIN_SECONDS", bad)
        with pytest.raises(ValidationError):
            Settings()
    monkeypatch.setenv("FUNNEL_SINK_FLUSH_MIN_SECONDS", "0.2")
    assert Settings().sink_behind_flush_seconds == 5.0
    monkeypatch.setenv("FUNNEL_SINK_BEHIND_FLUSH_SECONDS", "0.5")  # below sink_flush_seconds
    with pytest.raises(ConfigError, match=r"sink_behind_flush_seconds: .*at least sink_flush"):
        load_settings()
    lenient = ClickHouseWriter(lambda: FakeClient(), flush_seconds=1.0, behind_flush_seconds=0.5)
    lenient.set_behind(True)
    assert lenient.linger_seconds() == 1.0  # never shorter than the live wait


def _wait_for_inserts(client: SlowClient, count: int) -> None:
    deadline = time.monotonic() + 10
    while client.inserts < count and time.monotonic() < deadline:
        time.sleep(0.005)


def test_behind_the_writer_waits_longer_and_commits_do_not_cut_inserts_short() -> None:
    # (The writer's waits are real seconds on the fake clock: the bulk wait is kept short.)
    writer, client, clock = timed_writer(
        0.0, flush_seconds=0.5, min_flush_seconds=0.2, behind_flush_seconds=1.0
    )
    writer.submit_nowait(U, [("live",)])
    assert writer.insert_due_at() == pytest.approx(clock.now + 0.2)
    asyncio.run(asyncio.wait_for(writer.settled(), 10))  # keeping up: inserts at once
    assert client.inserts == 1
    writer.set_behind(True)
    assert writer.behind
    writer.submit_nowait(T, [(1, 1)])
    assert writer.insert_due_at() == pytest.approx(clock.now + 1.0)

    async def settle_while_clock_moves() -> int:
        # The commit's barrier: it must not insert early, so the rows wait for their time.
        settled = asyncio.ensure_future(writer.settled())
        await asyncio.sleep(0.05)
        inserts_before_due = client.inserts
        assert not settled.done()
        clock.now += 1.0
        await asyncio.wait_for(settled, 10)
        return inserts_before_due

    assert asyncio.run(settle_while_clock_moves()) == 1  # nothing inserted before due
    assert client.inserts == 2
    # A flush (a new partition's recovery, a forget, a report) still inserts at once.
    writer.submit_nowait(T, [(2, 2)])
    asyncio.run(asyncio.wait_for(writer.flush(), 10))
    assert client.inserts == 3
    assert client.rows["t"] == [(1, 1), (2, 2)]
    writer.stop()


def test_catching_up_shortens_a_wait_already_under_way() -> None:
    writer, client, clock = timed_writer(0.0, flush_seconds=1.0, min_flush_seconds=0.2)
    writer.set_behind(True)
    writer.submit_nowait(T, [(1, 1)])
    clock.now += 0.5  # past the live wait, not the bulk one
    time.sleep(0.05)
    assert client.inserts == 0
    writer.set_behind(False)  # wakes the writer: the rows are due now
    _wait_for_inserts(client, 1)
    assert client.inserts == 1
    # Caught up, a commit's barrier asks for an insert at once again.
    writer.submit_nowait(T, [(2, 2)])
    asyncio.run(asyncio.wait_for(writer.settled(), 10))
    assert client.inserts == 2
    writer.stop()


def test_a_shutdown_ends_the_bulk_mode_for_good() -> None:
    writer, client, clock = timed_writer(0.0, flush_seconds=1.0, min_flush_seconds=0.2)
    writer.set_behind(True)
    writer.submit_nowait(T, [(1, 1)])
    clock.now += 0.5  # due at the live pace, not in bulk
    time.sleep(0.05)
    assert client.inserts == 0
    writer.begin_shutdown(30.0)  # wakes the writer at the live pace
    _wait_for_inserts(client, 1)
    assert client.inserts == 1
    assert not writer.behind
    writer.set_behind(True)  # a tick during the grace period
    assert not writer.behind
    writer.stop()
