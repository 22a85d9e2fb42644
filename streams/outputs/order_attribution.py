"""Order attribution: one row per counted order, model and touchpoint key
(docs/semantics.md section 10).

The value is the key's share of the order in millionths. Like a funnel attempt, a row is
an aggregate: when an order's credit changes (a late touchpoint, an earlier copy of the
order, a first order that stops being first) the old key's total becomes 0 and a new
key appears. Readers take ``FINAL`` rows with ``share_micro > 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sinks.tables import TableSpec
from streams.outputs.family import (
    KPI_THRESHOLD,
    AggregateFamily,
    Family,
    Row,
    RowContext,
    TotalOf,
    ms_of_datetime,
)
from streams.outputs.funnel_attempts import datetime64_ms

KEY_COLUMNS = (
    "window_start",
    "anonymous_id",
    "transaction_id",
    "model",
    "channel",
    "source",
    "medium",
    "campaign",
    "kol",
    "order_time",
    "currency",
    "value_minor",
    "is_first",
)
TABLE = TableSpec(
    "order_attribution",
    (*KEY_COLUMNS, "partition", "share_micro", "is_final", "version"),
    order_by=(*KEY_COLUMNS, "partition"),
    version_column="version",
)
FAMILY = Family("order_attribution", TABLE)


class OrderAttributionKey(NamedTuple):
    """One touchpoint key's credit for one order under one model."""

    window: int  # the order's minute window, epoch ms
    anonymous_id: str
    transaction_id: str
    model: str
    channel: str
    source: str
    medium: str
    campaign: str
    kol: str
    order_time: int  # epoch ms
    currency: str
    value_minor: int
    is_first: int
    family: Family = FAMILY

    @property
    def threshold(self) -> str:
        return KPI_THRESHOLD  # final with the order's KPI window

    @property
    def final_at(self) -> int:
        return self.window


def build_row(key: OrderAttributionKey, total: TotalOf, ctx: RowContext) -> Row:
    return (
        key.window // 1000,
        *key[1:9],
        key.order_time,  # DateTime64(3): integers are milliseconds
        key.currency,
        key.value_minor,
        key.is_first,
        ctx.partition,
        total(key),
        ctx.is_final,
        ctx.version,
    )


VALUE_COLUMNS = ("share_micro",)


def read_key(row: Sequence[Any]) -> OrderAttributionKey:
    """A key from its key columns: order_by without the partition."""
    window, anonymous_id, transaction_id, model, channel, source, medium, campaign, kol = row[:9]
    order_time, currency, value_minor, is_first = row[9:]
    return OrderAttributionKey(
        ms_of_datetime(window),
        str(anonymous_id),
        str(transaction_id),
        str(model),
        str(channel),
        str(source),
        str(medium),
        str(campaign),
        str(kol),
        datetime64_ms(order_time),
        str(currency),
        int(value_minor),
        int(is_first),
    )


AGGREGATE = AggregateFamily(TABLE, OrderAttributionKey, build_row, VALUE_COLUMNS, read_key)
