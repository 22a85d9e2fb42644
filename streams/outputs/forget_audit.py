"""The forget audit: one row per forget request and Kafka partition (issue #17, GDPR).

Each partition's worker writes its row when it starts a request, when its corrections are
written and when the person's rows are deleted (``phase``: started, corrected, done); the
newest version wins. The row holds no personal data: ``request_id`` is the requester's
reference, not the person's id, and the counts say how much was forgotten, never what.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sinks.tables import TableSpec
from streams.outputs.family import Row
from streams.outputs.funnel_attempts import datetime64_ms

TABLE = TableSpec(
    "forget_audit",
    (
        "request_id",
        "partition",
        "phase",
        "requested_at",
        "processed_at",
        "range_from",
        "range_to",
        "base_version",
        "thresholds",
        "events_forgotten",
        "rows_corrected",
        "rows_deleted",
        "duration_ms",
        "version",
    ),
    order_by=("request_id", "partition"),
    version_column="version",
)

PHASES = ("started", "corrected", "done")


@dataclass(frozen=True, slots=True)
class ForgetAudit:
    """One partition's account of one forget request. Times are epoch milliseconds (UTC)."""

    request_id: str
    partition: int
    phase: str  # started | corrected | done
    requested_at: int
    processed_at: int
    range_from: int | None  # None with range_to None: the person's whole life
    range_to: int | None
    base_version: int  # the row version the corrections were computed against
    thresholds: dict[str, int]  # {finality group: ms} as of base_version
    events_forgotten: int
    rows_corrected: int
    rows_deleted: int
    duration_ms: int
    version: int


def build_row(audit: ForgetAudit) -> Row:
    return (
        audit.request_id,
        audit.partition,
        audit.phase,
        audit.requested_at,  # DateTime64(3): integers are milliseconds
        audit.processed_at,
        audit.range_from,
        audit.range_to,
        audit.base_version,
        json.dumps(audit.thresholds, sort_keys=True, separators=(",", ":")),
        audit.events_forgotten,
        audit.rows_corrected,
        audit.rows_deleted,
        audit.duration_ms,
        audit.version,
    )


def read_audit(row: Sequence[Any]) -> ForgetAudit:
    """The inverse of :func:`build_row`, for a row read back (all of ``TABLE.columns``)."""
    (
        request_id,
        partition,
        phase,
        requested_at,
        processed_at,
        range_from,
        range_to,
        base_version,
        thresholds,
        events_forgotten,
        rows_corrected,
        rows_deleted,
        duration_ms,
        version,
    ) = row
    return ForgetAudit(
        str(request_id),
        int(partition),
        str(phase),
        datetime64_ms(requested_at),
        datetime64_ms(processed_at),
        None if range_from is None else datetime64_ms(range_from),
        None if range_to is None else datetime64_ms(range_to),
        int(base_version),
        {str(k): int(v) for k, v in json.loads(thresholds).items()},
        int(events_forgotten),
        int(rows_corrected),
        int(rows_deleted),
        int(duration_ms),
        int(version),
    )
