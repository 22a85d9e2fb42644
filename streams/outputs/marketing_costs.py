"""Marketing costs per UTC day (migration 0010): every import's rows, and a marker row per
day record so that a record without rows still supersedes the day's earlier imports.

``v_marketing_costs`` reads the rows of each day's latest record (docs/semantics.md
section 10, "Marketing cost"). Rows are written once per Kafka record by the costs agent
(``streams/costs_agent.py``); the record's position is part of the sorting key, so a
replayed record replaces its own rows.
"""

from __future__ import annotations

from typing import Final

from schemas.costs import CostDay, CostRow
from sinks.tables import TableSpec
from streams.outputs.family import Row

TABLE = TableSpec(
    "marketing_costs",
    (
        "day",
        "channel",
        "utm_source",
        "utm_medium",
        "campaign",
        "currency",
        "cost_minor",
        "imported_at",
        "origin",
        "source_partition",
        "source_offset",
    ),
    order_by=(
        "day",
        "imported_at",
        "source_partition",
        "source_offset",
        "channel",
        "utm_source",
        "utm_medium",
        "campaign",
        "currency",
    ),
)
# The channel of a day record's marker row (never a real channel: those are validated).
MARKER_CHANNEL: Final = ""
_MARKER = CostRow(MARKER_CHANNEL, "", "", "", 0, "")


def build_row(day: CostDay, row: CostRow | None, source_partition: int, source_offset: int) -> Row:
    """One row of ``day``'s record at its Kafka position; ``row`` None: the marker row."""
    cost = _MARKER if row is None else row
    return (
        day.day_date,
        cost.channel,
        cost.utm_source,
        cost.utm_medium,
        cost.campaign,
        cost.currency,
        cost.cost_minor,
        day.imported_at_ms,
        day.origin,
        source_partition,
        source_offset,
    )


def build_rows(day: CostDay, source_partition: int, source_offset: int) -> list[Row]:
    """Everything one day record writes: its marker row, then one row per cost row."""
    return [
        build_row(day, None, source_partition, source_offset),
        *(build_row(day, row, source_partition, source_offset) for row in day.rows),
    ]
