"""Writing a batch's state records to the table's changelog as whole Kafka batches.

Faust's ``Table.__setitem__`` -> ``send_changelog`` path costs about 100 µs per record
(buffering, futures, callbacks). A batch of visitor states goes to one changelog
partition, so it is built as aiokafka record batches (``create_batch``/``send_batch``)
through the Faust app's own producer: the records land in the same changelog topic and
partition, in the same order, and Faust's recovery reads them exactly as its own.
Faust flushes that producer before every offset commit, so offsets never pass state
that is not durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

StateWrite = tuple[bytes, bytes | None]


class ChangelogWriter:
    def __init__(self, app: Any, table: Any) -> None:
        self._app = app
        self._table = table
        self._pending: list[asyncio.Future[Any]] = []

    @property
    def topic(self) -> str:
        return str(self._table.changelog_topic.get_topic_name())

    def _aiokafka_producer(self) -> Any | None:
        return getattr(self._app.producer, "_producer", None)

    async def write(self, partition: int, writes: Sequence[StateWrite]) -> int:
        """Send ``writes`` in order to the changelog partition; returns records sent."""
        if not writes:
            return 0
        producer = self._aiokafka_producer()
        if producer is None:  # not the aiokafka driver: Faust's per-record path
            for key, value in writes:
                self._table.send_changelog(partition, key, value)
            return len(writes)
        topic = self.topic
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
        self._pending = [f for f in self._pending if not f.done() or f.exception() is not None]
        return len(writes)

    async def wait_delivered(self) -> None:
        """Raise if any sent batch failed; called before offsets are committed."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
