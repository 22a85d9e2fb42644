"""Time between orders: repeat orders per day, channel and gap bucket (semantics §6)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sinks.tables import TableSpec
from streams.outputs.family import (
    AggregateFamily,
    Family,
    Row,
    RowContext,
    TotalOf,
    day_of_ms,
    ms_of_day,
)
from streams.retention import GAPS_FAMILY

TABLE = TableSpec(
    "order_gaps_daily",
    ("day", "channel", "le_days", "partition", "orders", "is_final", "version"),
    order_by=("day", "channel", "le_days", "partition"),
    version_column="version",
)
FAMILY = Family("order_gaps", TABLE)


class OrderGapKey(NamedTuple):
    day_ms: int
    channel: str
    le_days: float  # gap bucket upper bound
    family: Family = FAMILY

    @property
    def threshold(self) -> str:
        return GAPS_FAMILY

    @property
    def final_at(self) -> int:
        return self.day_ms


def build_row(key: OrderGapKey, total: TotalOf, ctx: RowContext) -> Row:
    return (
        day_of_ms(key.day_ms),
        key.channel,
        key.le_days,
        ctx.partition,
        total(key),
        ctx.is_final,
        ctx.version,
    )


VALUE_COLUMNS = ("orders",)


def read_key(row: Sequence[Any]) -> OrderGapKey:
    day, channel, bucket = row
    return OrderGapKey(ms_of_day(day), channel, float(bucket))


AGGREGATE = AggregateFamily(TABLE, OrderGapKey, build_row, VALUE_COLUMNS, read_key)
