"""The first step of a batch: decode each record, dead-letter the bad ones, sort out the
late ones, and keep the raw and late rows. What is left goes on to the visitors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from schemas.deadletter import DeadLetter
from schemas.model import Event
from schemas.reasons import Rejection
from streams.batch import BatchResult
from streams.outputs import dead_letters, late_events, raw_events
from streams.records import Record
from streams.state import Dims
from streams.watermarks import TopicPartitionClock


class Decoder(Protocol):
    def decode(self, raw: bytes, stream: str, now_ms: int) -> Event | Rejection: ...


class Classifier(Protocol):
    def classify(
        self, utm_source: str | None, utm_medium: str | None, referrer: str | None
    ) -> str: ...


@dataclass
class Pending:
    """An on-time event on its way to its visitor."""

    event: Event
    dims: Dims
    stream: str
    offset: int


class Intake:
    def __init__(
        self, partition: int, decoder: Decoder, channels: Classifier, topics: Mapping[str, str]
    ) -> None:
        self._partition = partition
        self._decoder = decoder
        self._channels = channels
        self._topics = dict(topics)

    def classify(
        self,
        stream: str,
        records: list[Record],
        tp_clock: TopicPartitionClock,
        partition_watermark: int | None,
        result: BatchResult,
        skip: Callable[[Event, int], bool] | None = None,
        skip_rejected: Callable[[Record], bool] | None = None,
    ) -> list[Pending]:
        """The batch's on-time events, in offset order; everything else goes to ``result``.

        An event is late when its input's own clock says so (beyond the allowed lateness)
        or when the partition's watermark has passed it (its window may be final).
        ``skip(event, appended_at)`` drops an event without a trace: a record of a
        forgotten person that was in flight when the request came (streams/forget.py);
        ``skip_rejected(record)`` does the same for a record that fails decoding.
        """
        topic = self._topics[stream]
        stats = result.stats
        raw_rows = result.rows.setdefault(raw_events.TABLE, [])
        pending: list[Pending] = []
        for record in records:
            stats.ingested[stream] += 1
            decoded = self._decoder.decode(record.value, stream, record.timestamp_ms)
            if isinstance(decoded, Rejection):
                if skip_rejected is not None and skip_rejected(record):
                    stats.forgotten += 1
                    continue
                self._dead_letter(decoded, stream, topic, record, result)
                continue
            event = decoded
            if skip is not None and skip(event, record.timestamp_ms):
                stats.forgotten += 1
                continue
            channel = self._channels.classify(event.utm_source, event.utm_medium, event.referrer)
            late_reason, watermark = _lateness(event, tp_clock, partition_watermark)
            raw_rows.append(
                raw_events.build_row(
                    event,
                    channel,
                    late_reason is not None,
                    topic,
                    self._partition,
                    record.offset,
                    record.timestamp_ms,
                )
            )
            if late_reason is not None:
                row = late_events.build_row(
                    event,
                    channel,
                    watermark or 0,
                    late_reason,
                    topic,
                    self._partition,
                    record.offset,
                    record.timestamp_ms,
                )
                result.add_row(late_events.TABLE, row)
                stats.late[(stream, late_reason)] += 1
                continue
            tp_clock.observe(event.event_time_ms)
            dims: Dims = (
                channel,
                event.utm_campaign or "",
                event.device,
                event.platform,
                event.country,
            )
            pending.append(Pending(event, dims, stream, record.offset))
        return pending

    def _dead_letter(
        self, rejection: Rejection, stream: str, topic: str, record: Record, result: BatchResult
    ) -> None:
        letter = DeadLetter.from_rejection(
            rejection,
            raw=record.value,
            source_topic=topic,
            source_partition=self._partition,
            source_offset=record.offset,
            key=record.key,
            received_at_ms=record.timestamp_ms,
        )
        result.dead_letters.append(letter)
        result.add_row(dead_letters.TABLE, dead_letters.build_row(letter))
        result.stats.dead_letters[(stream, letter.reason)] += 1


def _lateness(
    event: Event, tp_clock: TopicPartitionClock, partition_watermark: int | None
) -> tuple[str | None, int | None]:
    """Why ``event`` is late (None: on time), and the watermark it was late against."""
    if tp_clock.is_late(event.event_time_ms):
        return late_events.BEYOND_LATENESS, tp_clock.watermark
    if partition_watermark is not None and event.event_time_ms < partition_watermark:
        return late_events.WINDOW_CLOSED, partition_watermark
    return None, tp_clock.watermark
