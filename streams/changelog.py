"""Writing state records to the table's changelog as whole Kafka batches, off the hot path.

Faust's ``Table.__setitem__`` -> ``send_changelog`` path costs about 100 µs per record
(buffering, futures, callbacks). A batch of visitor states goes to one changelog
partition, so it is built as aiokafka record batches (``create_batch``/``send_batch``)
through the Faust app's own aiokafka producer (reached through
``streams/faust_private.py``): the records land in the same changelog topic and
partition, in the same order, and Faust's recovery reads them exactly as its own.

Sending happens in one background task per partition, in FIFO order, so processing never
waits for the previous batch of a partition to leave (aiokafka keeps one queued batch per
partition). An item may be preceded by a barrier (the ClickHouse flush that must finish
before a checkpoint is written). :meth:`ChangelogWriter.wait_delivered` is the commit
barrier: offsets are committed only after everything queued before is acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.faust_private import underlying_producer

log = logging.getLogger(__name__)

StateWrite = tuple[bytes, bytes | None]
Barrier = Callable[[], Awaitable[None]]
MAX_QUEUED_RECORDS = 200_000  # per partition; beyond it writers wait (backpressure)


@dataclass
class _Item:
    writes: Sequence[StateWrite]
    barrier: Barrier | None
    seq: int


@dataclass
class _PartitionQueue:
    items: deque[_Item] = field(default_factory=deque)
    queued_records: int = 0
    queued_seq: int = 0  # last item queued
    handed_seq: int = 0  # last item handed to the producer
    task: asyncio.Task[None] | None = None


class ChangelogWriter:
    def __init__(self, app: Any, table: Any) -> None:
        self._app = app
        self._table = table
        self._queues: dict[int, _PartitionQueue] = {}
        self._pending: list[asyncio.Future[Any]] = []
        self._failure: BaseException | None = None

    @property
    def topic(self) -> str:
        return str(self._table.changelog_topic.get_topic_name())

    def _aiokafka_producer(self) -> Any | None:
        return underlying_producer(self._app.producer)

    async def write(
        self, partition: int, writes: Sequence[StateWrite], barrier: Barrier | None = None
    ) -> int:
        """Queue ``writes`` for the partition, after everything queued before it (and after
        ``barrier`` completes, if given). Returns the number of records queued."""
        if self._failure is not None:
            raise self._failure
        if not writes:
            return 0
        producer = self._aiokafka_producer()
        if producer is None:  # not the aiokafka driver: Faust's per-record path
            if barrier is not None:
                await barrier()
            for key, value in writes:
                self._table.send_changelog(partition, key, value)
            return len(writes)
        queue = self._queues.get(partition)
        if queue is None:
            queue = self._queues[partition] = _PartitionQueue()
        while queue.queued_records > MAX_QUEUED_RECORDS and self._failure is None:
            await asyncio.sleep(0.01)
        queue.queued_seq += 1
        queue.items.append(_Item(list(writes), barrier, queue.queued_seq))
        queue.queued_records += len(writes)
        if queue.task is None or queue.task.done():
            queue.task = asyncio.ensure_future(self._drain(partition, queue, producer))
        return len(writes)

    async def _drain(self, partition: int, queue: _PartitionQueue, producer: Any) -> None:
        topic = self.topic
        try:
            while queue.items:
                item = queue.items[0]
                covered = item.seq
                if item.barrier is not None:
                    # A barrier waits for what was submitted before it is called, which
                    # covers every item queued so far (each item's rows are submitted
                    # before the item is queued): one wait serves them all.
                    covered = queue.queued_seq
                    await item.barrier()
                writes = list(item.writes)
                last = queue.items.popleft().seq
                # Merge the following items that need no (further) barrier into the batches.
                while queue.items and (
                    queue.items[0].barrier is None or queue.items[0].seq <= covered
                ):
                    following = queue.items.popleft()
                    writes.extend(following.writes)
                    last = following.seq
                await self._send(producer, topic, partition, writes)
                queue.queued_records -= len(writes)
                queue.handed_seq = last
                self._pending = [f for f in self._pending if not f.done() or f.exception()]
        except Exception as exc:  # surfaced by the next write or commit
            log.error("changelog writes for partition %d failed: %s", partition, exc)
            self._failure = exc

    async def _send(
        self, producer: Any, topic: str, partition: int, writes: Sequence[StateWrite]
    ) -> None:
        batch = producer.create_batch()
        for key, value in writes:
            if batch.append(key=key, value=value, timestamp=None) is None:
                self._pending.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(
                        f"state record of {len(value or b'')} bytes exceeds the producer batch size"
                    )
        self._pending.append(await producer.send_batch(batch, topic, partition=partition))

    async def wait_delivered(self) -> None:
        """Return once everything queued so far is acknowledged; raise if a send failed."""
        targets = [(queue, queue.queued_seq) for queue in self._queues.values()]
        for queue, target in targets:
            while queue.handed_seq < target and self._failure is None:
                await asyncio.sleep(0.002)
        if self._failure is not None:
            raise self._failure
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
