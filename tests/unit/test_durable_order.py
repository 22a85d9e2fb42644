"""Rows that recovery cannot rebuild are durable before the state that implies them.

Issue #19: a SIGKILL storm lost ``user_rfm``, ``segment_transitions`` and ``triggers``
rows. The runtime queued the visitor state for the changelog before handing the rows to
the writer, which flushes about once a second; a kill in between left a recovered state
that already counted the transition and no row for it. These tests pin the order the
fix relies on, without a broker; the kill tests check the outcome end to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from unittest.mock import create_autospec

import pytest

from sinks.metrics import PipelineMetrics
from sinks.tables import TableSpec
from streams.batch import BatchResult
from streams.changelog import ChangelogWriter
from streams.conversion import ConversionTracker
from streams.outputs.kpi import TABLE as KPI_MINUTE
from streams.outputs.raw_events import TABLE as EVENTS_RAW
from streams.outputs.segment_transitions import TABLE as SEGMENT_TRANSITIONS
from streams.outputs.triggers import TABLE as TRIGGERS
from streams.outputs.user_rfm import TABLE as USER_RFM
from streams.processor import PartitionProcessor
from streams.runtime import Runtime
from streams.visitor import Rules

TOPICS = {"clickstream": "shop.clickstream", "cart": "shop.cart", "orders": "shop.orders"}


class Journal:
    """One ordered log of what the writer and the store were asked to do."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Any]] = []


class RecordingWriter:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def submit(self, table: TableSpec, rows: Any) -> None:
        self.journal.entries.append(("rows", table.name))

    async def flush(self) -> None:
        self.journal.entries.append(("flush", None))

    async def wait_written(self) -> None:
        self.journal.entries.append(("wait_written", None))


class RecordingStore:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def write_many(
        self, partition: int, writes: list[tuple[bytes, bytes | None]], barrier: Any = None
    ) -> None:
        name = getattr(barrier, "__name__", None)
        self.journal.entries.append(("state", (tuple(k for k, _ in writes), name)))


def _runtime(journal: Journal) -> Runtime:
    return Runtime(
        rules=create_autospec(Rules, instance=True),
        decoder=None,
        channels=None,
        topics_by_stream=TOPICS,
        store=RecordingStore(journal),
        writer=RecordingWriter(journal),  # type: ignore[arg-type]
        metrics=create_autospec(PipelineMetrics, instance=True),
        conversion=create_autospec(ConversionTracker, instance=True),
        dead_letters=None,
    )


def _processor() -> PartitionProcessor:
    processor = create_autospec(PartitionProcessor, instance=True)
    processor.partition = 0
    processor.meta_record.return_value = b"{}"
    return processor


@pytest.mark.parametrize("table", [SEGMENT_TRANSITIONS, TRIGGERS, USER_RFM])
def test_state_waits_for_rows_no_recovery_can_rebuild(table: TableSpec) -> None:
    journal = Journal()
    result = BatchResult(rows={EVENTS_RAW: [("e",)], table: [("x",)]})
    result.state_writes[b"visitor"] = b"state"
    asyncio.run(_runtime(journal)._apply(_processor(), result))
    names = [entry for entry in journal.entries]
    state_at = names.index(("state", ((b"visitor",), "wait_written")))
    rows_at = names.index(("rows", table.name))
    assert rows_at < state_at, journal.entries


def test_state_of_rebuildable_rows_does_not_wait() -> None:
    journal = Journal()
    result = BatchResult(rows={EVENTS_RAW: [("e",)], KPI_MINUTE: [("k",)]})
    result.state_writes[b"visitor"] = b"state"
    asyncio.run(_runtime(journal)._apply(_processor(), result))
    assert ("state", ((b"visitor",), None)) in journal.entries
    assert journal.entries.index(("rows", "kpi_minute")) < journal.entries.index(
        ("state", ((b"visitor",), None))
    )


# -- the changelog queue: one barrier wait covers everything queued before it -------------


class FakeBatch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []

    def append(self, *, key: bytes, value: bytes | None, timestamp: Any) -> object:
        self.records.append((key, value))
        return object()


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[list[tuple[bytes, bytes | None]]] = []

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        self.sent.append(batch.records)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class FakeApp:
    def __init__(self) -> None:
        self.producer = type("P", (), {})()
        self.producer._producer = FakeProducer()


class FakeTable:
    class changelog_topic:  # mimics Faust's attribute
        @staticmethod
        def get_topic_name() -> str:
            return "state-changelog"


def _barrier(calls: list[str], name: str, gate: asyncio.Event) -> Callable[[], Awaitable[None]]:
    async def wait() -> None:
        calls.append(name)
        await gate.wait()

    return wait


def test_one_barrier_wait_serves_every_item_queued_before_it() -> None:
    async def scenario() -> tuple[list[str], list[list[tuple[bytes, bytes | None]]]]:
        app = FakeApp()
        writer = ChangelogWriter(app, FakeTable())
        calls: list[str] = []
        gate = asyncio.Event()
        await writer.write(0, [(b"a", b"1")], _barrier(calls, "first", gate))
        await writer.write(0, [(b"b", b"2")], _barrier(calls, "second", gate))
        await writer.write(0, [(b"c", b"3")])
        await asyncio.sleep(0.01)
        assert calls == ["first"], "the first barrier is waited on; nothing is sent yet"
        assert app.producer._producer.sent == []
        gate.set()
        await writer.wait_delivered()
        return calls, app.producer._producer.sent

    calls, sent = asyncio.run(scenario())
    assert calls == ["first"], "items queued before the wait began need no wait of their own"
    assert sent == [[(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]]


def test_a_barrier_queued_after_the_wait_began_is_waited_on() -> None:
    async def scenario() -> tuple[list[str], list[list[tuple[bytes, bytes | None]]]]:
        app = FakeApp()
        writer = ChangelogWriter(app, FakeTable())
        calls: list[str] = []
        gate = asyncio.Event()
        await writer.write(0, [(b"a", b"1")], _barrier(calls, "first", gate))
        await asyncio.sleep(0.01)  # the drain is now waiting on the first barrier
        await writer.write(0, [(b"b", b"2")], _barrier(calls, "later", gate))
        gate.set()
        await writer.wait_delivered()
        return calls, app.producer._producer.sent

    calls, sent = asyncio.run(scenario())
    assert calls == ["first", "later"]
    assert sent == [[(b"a", b"1")], [(b"b", b"2")]]
