"""Late events: events not counted because their window had closed, and why."""

from __future__ import annotations

from schemas.model import Event
from sinks.tables import TableSpec
from streams.outputs.family import Row

TABLE = TableSpec(
    "late_events",
    (
        "event_id",
        "event_type",
        "event_time",
        "watermark",
        "reason",
        "anonymous_id",
        "session_id",
        "channel",
        "source_topic",
        "source_partition",
        "source_offset",
        "ingested_at",
    ),
    order_by=("source_topic", "event_id", "source_partition", "source_offset"),
)
BEYOND_LATENESS = "beyond_lateness"  # older than its input's allowed lateness
WINDOW_CLOSED = "window_closed"  # behind the partition's watermark


def build_row(
    event: Event,
    channel: str,
    watermark: int,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    now_ms: int,
) -> Row:
    return (
        event.event_id,
        event.event_type,
        event.event_time_ms,
        watermark,
        reason,
        event.anonymous_id,
        event.session_id,
        channel,
        topic,
        partition,
        offset,
        now_ms,
    )
