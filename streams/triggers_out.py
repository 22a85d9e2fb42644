"""Publishing marketing triggers exactly once per trigger id.

A batch's triggers are sent and acknowledged *before* the batch's state records are
written, so a crash can lose nothing: either the state that marks a trigger as emitted
is durable (then it is not derived again), or it is not (then the trigger is derived
again on replay). The second case could send a copy, so at recovery the worker reads
its triggers partition from the offset its last durable metadata recorded and skips ids
already there. The triggers partition equals the visitor's partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.codec import EventCodec
from schemas.triggers import Trigger
from streams.errors import StreamError
from streams.faust_private import underlying_producer

log = logging.getLogger(__name__)


class TriggerPublisher:
    def __init__(self, app: Any, topic: str, codec: EventCodec, bootstrap: str) -> None:
        self._app = app
        self._topic = topic
        self._codec = codec
        self._bootstrap = bootstrap
        self._already_sent: dict[int, set[str]] = {}

    async def recover(self, partition: int, from_offset: int | None) -> int:
        """Remember the trigger ids in the partition from ``from_offset`` to its end."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        seen: set[str] = set()
        try:
            tp = TopicPartition(self._topic, partition)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            start = from_offset if from_offset is not None else max(0, end - 10_000)
            if start < end:
                consumer.seek(tp, start)
                while (await consumer.position(tp)) < end:
                    batch = await consumer.getmany(tp, timeout_ms=2000)
                    for record in batch.get(tp, []):
                        seen.add(self._codec.decode_trigger(record.value).trigger_id)
        finally:
            await consumer.stop()
        self._already_sent[partition] = seen
        if seen:
            log.info(
                "partition %d: %d triggers already published since the last checkpoint",
                partition,
                len(seen),
            )
        return len(seen)

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._already_sent.pop(partition, None)

    async def publish(self, partition: int, triggers: list[Trigger]) -> int | None:
        """Send and await acknowledgement; returns the next offset, or None if none sent."""
        sent_before = self._already_sent.setdefault(partition, set())
        fresh = [t for t in triggers if t.trigger_id not in sent_before]
        if not fresh:
            return None
        producer = underlying_producer(self._app.producer)
        if producer is None:
            raise StreamError("the app's Kafka producer is not started; triggers cannot be sent")
        futures = [
            await producer.send(
                self._topic,
                self._codec.encode_trigger(t),
                key=t.anonymous_id.encode(),
                partition=partition,
            )
            for t in fresh
        ]
        metadata = await asyncio.gather(*futures)
        # Not added to ``sent_before``: the state written right after this records them,
        # so this process never derives them again; only triggers found at recovery need
        # remembering, and those are few (one checkpoint interval), so memory stays flat.
        return int(max(m.offset for m in metadata)) + 1
