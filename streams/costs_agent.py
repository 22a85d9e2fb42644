"""The worker's marketing-cost input: one Faust agent on ``shop.marketing_costs``.

Each record is one UTC day of costs (``schemas/costs.py``). A valid record becomes rows of
``marketing_costs`` (its marker row plus one per cost row, ``streams/outputs/
marketing_costs.py``); an invalid one goes to the dead-letter topic and ``dead_letters``
exactly as a bad input event does (``streams/intake.py``). Nothing is kept in state: the
day's latest record wins in ClickHouse (``v_marketing_costs``), so records may be read
again, in any order, by any worker.

Durability: the rows are handed to the ClickHouse writer (and a dead letter to the
producer) before the agent takes the next record, so before Faust acks this one; the
worker's commit barrier (``flush_before_commit`` in ``streams/app.py``) flushes the writer
and Faust flushes the producer before any offset is committed.

The topic is a plain Faust topic, record by record (raw key and value), not one of the
batch-delivered visitor inputs; it plays no part in watermarks or the idle stop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from schemas.costs import CostCodec, CostDay
from schemas.deadletter import DeadLetter
from schemas.reasons import Rejection
from sinks.tables import TableSpec
from streams.outputs import dead_letters as dead_letter_rows
from streams.outputs import marketing_costs

if TYPE_CHECKING:
    import faust

    from funnel.settings import Settings
    from sinks.metrics import PipelineMetrics

log = logging.getLogger(__name__)

AGENT_NAME = "marketing-costs"


class CostDecoder(Protocol):
    def decode(self, raw: bytes, now_ms: int) -> CostDay | Rejection: ...


class RowWriter(Protocol):
    """What the agent uses of :class:`sinks.clickhouse.ClickHouseWriter`."""

    async def submit(self, table: TableSpec, rows: Sequence[Sequence[Any]]) -> None: ...


class DeadLetterSender(Protocol):
    """What the agent uses of ``streams.app.FaustDeadLetters``."""

    async def send(self, letter: DeadLetter) -> None: ...


@dataclass
class CostIntake:
    """Decode, check and route one cost record; the agent calls :meth:`handle` per record."""

    topic: str
    decoder: CostDecoder
    writer: RowWriter
    dead_letters: DeadLetterSender
    metrics: PipelineMetrics | None = None
    days_written: int = field(default=0, init=False)
    rejected: int = field(default=0, init=False)

    async def handle(
        self,
        raw: bytes | None,
        key: bytes | None,
        partition: int,
        offset: int,
        timestamp_ms: int,
    ) -> CostDay | DeadLetter:
        """Route the record at ``partition``/``offset``; returns what it became.

        ``timestamp_ms`` is the record's Kafka timestamp (the broker's append time on
        topics created by ``funnel topics``): ``imported_at_ms`` may not be later.
        """
        value = raw if raw is not None else b""  # a tombstone is not a cost record
        if self.metrics is not None:
            self.metrics.events_ingested.labels(self.topic).inc()
        decoded = self.decoder.decode(value, timestamp_ms)
        if isinstance(decoded, Rejection):
            letter = DeadLetter.from_rejection(
                decoded,
                raw=value,
                source_topic=self.topic,
                source_partition=partition,
                source_offset=offset,
                key=key,
                received_at_ms=timestamp_ms,
            )
            await self.dead_letters.send(letter)
            await self.writer.submit(dead_letter_rows.TABLE, [dead_letter_rows.build_row(letter)])
            if self.metrics is not None:
                self.metrics.dead_letters.labels(self.topic, letter.reason).inc()
            self.rejected += 1
            log.warning(
                "%s[%d]@%d: cost record dead-lettered (%s): %s",
                self.topic,
                partition,
                offset,
                letter.reason,
                letter.detail,
            )
            return letter
        await self.writer.submit(
            marketing_costs.TABLE, marketing_costs.build_rows(decoded, partition, offset)
        )
        self.days_written += 1
        log.info(
            "%s[%d]@%d: costs of %s from %r imported at %d: %d rows, %s",
            self.topic,
            partition,
            offset,
            decoded.day,
            decoded.origin,
            decoded.imported_at_ms,
            len(decoded.rows),
            ", ".join(f"{c} {v}" for c, v in sorted(decoded.totals().items())) or "empty",
        )
        return decoded


def cost_codec(settings: Settings) -> CostCodec:
    """The decoder the worker uses: ``imported_at_ms`` may lead the record's timestamp by
    at most ``FUNNEL_MAX_FUTURE_SECONDS`` (as an event time may)."""
    return CostCodec(max_future_ms=settings.max_future_seconds * 1000)


def attach_costs_agent(
    app: faust.App,
    settings: Settings,
    decoder: CostDecoder | None,
    writer: RowWriter,
    dead_letters: DeadLetterSender,
    metrics: PipelineMetrics | None = None,
) -> CostIntake:
    """Define the agent that reads ``settings.topics.marketing_costs`` on ``app``.

    ``decoder`` None: :func:`cost_codec` of ``settings``. ``dead_letters`` sends to the
    DLQ topic (``FaustDeadLetters``), ``writer`` is the worker's ClickHouse writer, whose
    flush the commit barrier awaits. Returns the intake (its counters are for tests).
    """
    topic_name = settings.topics.marketing_costs
    topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw", acks=True)
    intake = CostIntake(
        topic=topic_name,
        decoder=decoder if decoder is not None else cost_codec(settings),
        writer=writer,
        dead_letters=dead_letters,
        metrics=metrics,
    )

    @app.agent(topic, name=AGENT_NAME, concurrency=1)
    async def ingest_costs(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            await intake.handle(
                event.value,
                message.key,
                message.partition,
                message.offset,
                round(message.timestamp * 1000),
            )

    return intake
