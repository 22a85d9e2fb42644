"""Time to convert: converted attempts per histogram bucket, per funnel, minute and dims."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sinks.tables import TableSpec
from streams.outputs._funnel_rows import HEAD_COLUMNS, order_by, read_head, row_head
from streams.outputs.family import (
    AggregateFamily,
    Family,
    Row,
    RowContext,
    TotalOf,
    funnel_threshold,
)
from streams.state import Dims

TABLE = TableSpec(
    "funnel_ttc_minute",
    (*HEAD_COLUMNS, "le_seconds", "partition", "converted", "is_final", "version"),
    order_by=order_by("le_seconds"),
    version_column="version",
)
FAMILY = Family("funnel_ttc", TABLE)

# Histogram upper bounds, seconds (docs/semantics.md section 3).
TTC_BUCKETS_S: tuple[float, ...] = (
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    7200,
    86400,
    float("inf"),
)


def bucket_of(ttc_ms: int) -> float:
    seconds = ttc_ms / 1000
    for upper in TTC_BUCKETS_S:
        if seconds <= upper:
            return upper
    return TTC_BUCKETS_S[-1]


class FunnelTtcKey(NamedTuple):
    funnel: str
    window: int
    dims: Dims
    le_seconds: float  # one of TTC_BUCKETS_S
    breakdown: tuple[str, ...] = ()  # the funnel's breakdown values, if it has one
    family: Family = FAMILY

    @property
    def threshold(self) -> str:
        return funnel_threshold(self.funnel)

    @property
    def final_at(self) -> int:
        return self.window


def build_row(key: FunnelTtcKey, total: TotalOf, ctx: RowContext) -> Row:
    return (
        *row_head(key),
        key.le_seconds,
        ctx.partition,
        total(key),
        ctx.is_final,
        ctx.version,
    )


VALUE_COLUMNS = ("converted",)


def read_key(row: Sequence[Any]) -> FunnelTtcKey:
    funnel, window, dims, bucket, breakdown = read_head(row)
    return FunnelTtcKey(funnel, window, dims, float(bucket), breakdown)  # type: ignore[arg-type]


AGGREGATE = AggregateFamily(TABLE, FunnelTtcKey, build_row, VALUE_COLUMNS, read_key)
