"""KPIs per minute, dimensions and currency: orders, GMV, refunds, failures, ..."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sinks.tables import TableSpec
from streams.outputs.family import (
    DIMENSIONS,
    KPI_THRESHOLD,
    AggregateFamily,
    Family,
    Row,
    RowContext,
    TotalOf,
    ms_of_datetime,
)
from streams.state import Dims

METRICS: tuple[str, ...] = (
    "orders",
    "gmv_minor",
    "items",
    "coupon_orders",
    "discount_minor",
    "first_orders",
    "repeat_orders",
    "refunds",
    "refunded_minor",
    "payment_failures",
    "cancellations",
)
# Metric numbers in KpiCellKey (plain ints: they are hashed for every order counted).
(
    ORDERS,
    GMV,
    ITEMS,
    COUPON_ORDERS,
    DISCOUNT,
    FIRST_ORDERS,
    REPEAT_ORDERS,
    REFUNDS,
    REFUNDED,
    PAYMENT_FAILURES,
    CANCELLATIONS,
) = range(len(METRICS))

TABLE = TableSpec(
    "kpi_minute",
    (
        "window_start",
        *DIMENSIONS,
        "currency",
        "partition",
        *METRICS,
        "is_final",
        "version",
    ),
    order_by=("window_start", *DIMENSIONS, "currency", "partition"),
    version_column="version",
)
FAMILY = Family("kpi", TABLE)
CELLS = Family("kpi_cells", TABLE)


class KpiKey(NamedTuple):
    """One ``kpi_minute`` row: a minute, its dimensions and a currency."""

    window: int
    dims: Dims
    currency: str
    family: Family = FAMILY

    @property
    def threshold(self) -> str:
        return KPI_THRESHOLD

    @property
    def final_at(self) -> int:
        return self.window

    def cells(self) -> list[KpiCellKey]:
        return [KpiCellKey(self.window, self.dims, self.currency, m) for m in range(len(METRICS))]


class KpiCellKey(NamedTuple):
    """One metric of a ``kpi_minute`` row (the unit visitors contribute to)."""

    window: int
    dims: Dims
    currency: str
    metric: int  # index into METRICS
    family: Family = CELLS

    @property
    def threshold(self) -> str:
        return KPI_THRESHOLD

    @property
    def final_at(self) -> int:
        return self.window

    @property
    def row(self) -> KpiKey:
        return KpiKey(self.window, self.dims, self.currency)


def build_row(key: KpiKey, total: TotalOf, ctx: RowContext) -> Row:
    return (
        key.window // 1000,
        *key.dims,
        key.currency,
        ctx.partition,
        *(total(cell) for cell in key.cells()),
        ctx.is_final,
        ctx.version,
    )


VALUE_COLUMNS = METRICS


def read_key(row: Sequence[Any]) -> KpiKey:
    window, *dims, currency = row
    return KpiKey(ms_of_datetime(window), tuple(dims), currency)


AGGREGATE = AggregateFamily(TABLE, KpiKey, build_row, VALUE_COLUMNS, read_key)
