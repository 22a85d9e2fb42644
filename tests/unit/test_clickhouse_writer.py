"""The ClickHouse writer: batching, retry while ClickHouse is down, backpressure, flush barrier."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from sinks.clickhouse import ClickHouseWriter
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
        self, table: str, column_names: Sequence[str], *, column_oriented: bool
    ) -> FakeContext:
        assert column_oriented is True
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
