"""Dead letters: records that could not be decoded or validated, and rows ClickHouse refused."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

from schemas.deadletter import DeadLetter
from sinks.clickhouse import RejectedRowTarget
from sinks.tables import TableSpec
from streams.outputs.family import Row

TABLE = TableSpec(
    "dead_letters",
    (
        "source_topic",
        "source_partition",
        "source_offset",
        "record_key",
        "raw",
        "reason",
        "detail",
        "received_at",
    ),
    order_by=("source_topic", "source_partition", "source_offset"),
)
REJECTED_REASON = "rejected_by_clickhouse"


def build_row(dl: DeadLetter) -> Row:
    return (
        dl.source_topic,
        dl.source_partition,
        dl.source_offset,
        (dl.key or b"").decode("utf-8", "replace"),
        dl.raw.decode("utf-8", "replace") if _is_text(dl.raw) else dl.raw.hex(),
        dl.reason,
        dl.detail,
        dl.received_at_ms,
    )


def _is_text(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def rejected_row(spec: TableSpec, row: Sequence[Any], error: str) -> Row:
    """A dead letter for a row ClickHouse refused: the table, the reason, the row.

    The source is ``clickhouse.<table>``; the offset is a hash of the row, so the same
    rejected row written again after a restart replaces itself instead of adding a copy.
    """
    values = dict(zip(spec.columns, row, strict=False))
    raw = json.dumps(values, default=str, sort_keys=True, ensure_ascii=False)
    digest = hashlib.blake2b(raw.encode(), digest_size=8).digest()
    partition = values.get("partition", 0)
    return (
        f"clickhouse.{spec.name}",
        partition if isinstance(partition, int) and 0 <= partition < 65536 else 0,
        int.from_bytes(digest, "big") >> 1,
        "",
        raw,
        REJECTED_REASON,
        f"ClickHouse rejected a row for table {spec.name}: {error}; the row is kept here "
        "and was not written (a pipeline bug or an input the validation lets through: "
        "report it with this row)",
        int(time.time() * 1000),
    )


# Where the ClickHouse writer keeps the rows it could not insert.
REJECTED_ROWS = RejectedRowTarget(TABLE, rejected_row)
