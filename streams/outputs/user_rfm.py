"""RFM rows: each buyer's stage, recency, frequency and monetary value, newest wins."""

from __future__ import annotations

from sinks.tables import TableSpec
from streams.lives import Life
from streams.outputs.family import Row

TABLE = TableSpec(
    "user_rfm",
    (
        "anonymous_id",
        "user_id",
        "stage",
        "first_purchase_at",
        "last_purchase_at",
        "frequency",
        "monetary_minor",
        "currency",
        "channel",
        "as_of",
        "partition",
        "version",
    ),
    order_by=("anonymous_id",),
    version_column="version",
)


def build_row(
    anonymous_id: str,
    user_id: str | None,
    life: Life,
    stage: str,
    as_of: int,
    partition: int,
    version: int,
) -> Row:
    purchases = [p for p in life.purchases if p.t < as_of]  # as of the watermark
    currency = purchases[0].currency
    monetary = sum(p.value_minor for p in purchases if p.currency == currency)
    return (
        anonymous_id,
        user_id,
        stage,
        purchases[0].t,
        purchases[-1].t,
        len(purchases),
        monetary,
        currency,
        life.first.channel,
        as_of,
        partition,
        version,
    )
