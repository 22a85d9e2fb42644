"""Rows for the ClickHouse tables in ``sinks/tables.py``, built from events and totals."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, date, timedelta
from typing import Any

from schemas.deadletter import DeadLetter
from schemas.model import Event
from schemas.triggers import Trigger, TriggerItem, trigger_id
from sinks.tables import (
    DIMENSIONS,
    FUNNEL_OUTCOMES,
    FUNNEL_STEPS,
    FUNNEL_TTC,
    KPI_MINUTE,
    ORDER_GAPS,
    RETENTION_COHORTS,
    TableSpec,
)
from streams.aggregates import PartitionAggregates
from streams.lifecycle import TriggerSpec
from streams.lives import Life
from streams.retention import add_periods
from streams.visitor import KPI_METRICS, Key, Rules

Row = tuple[Any, ...]


class VersionClock:
    """Strictly increasing row versions (nanoseconds since epoch), newest write wins."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        now = time.time_ns()
        self._last = now if now > self._last else self._last + 1
        return self._last


def raw_event_row(
    event: Event, channel: str, is_late: bool, topic: str, partition: int, offset: int, now_ms: int
) -> Row:
    return (
        event.event_id,
        event.event_type,
        event.stream,
        event.event_time_ms,
        event.sent_time_ms,
        event.anonymous_id,
        event.user_id,
        event.session_id,
        event.platform,
        event.device,
        event.country,
        channel,
        event.utm_source or "",
        event.utm_medium or "",
        event.utm_campaign or "",
        event.utm_content or "",
        event.utm_term or "",
        event.referrer or "",
        event.page_url or "",
        event.referral_code or "",
        dict(event.experiments),
        [i.item_id for i in event.items],
        [i.price_minor for i in event.items],
        [i.quantity for i in event.items],
        event.cart_id or "",
        event.transaction_id or "",
        event.currency or "",
        event.value_minor,
        event.tax_minor,
        event.shipping_minor,
        event.discount_minor,
        event.coupon or "",
        event.payment_type or "",
        event.refund_reason or "",
        event.payment_error_code or "",
        1 if is_late else 0,
        topic,
        partition,
        offset,
        now_ms,
        0 if is_late else 1,
    )


def late_event_row(
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


def dead_letter_row(dl: DeadLetter) -> Row:
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


def aggregate_rows(
    aggregates: PartitionAggregates,
    keys: Iterable[Key],
    partition: int,
    rules: Rules,
    is_final: bool,
    version: int,
) -> dict[TableSpec, list[Row]]:
    out: dict[TableSpec, list[Row]] = {}
    final = 1 if is_final else 0
    for key in keys:
        kind = key[0]
        if kind == "kpi":
            _, window, dims, currency = key
            values = [aggregates.value((*key, metric)) for metric in range(len(KPI_METRICS))]
            row: Row = (window // 1000, *dims, currency, partition, *values, final, version)  # type: ignore[operator, misc]
            out.setdefault(KPI_MINUTE, []).append(row)
            continue
        if kind == "ret":
            _, cohort_kind, granularity, cohort_ms, activity, n, _start, channel, platform = key
            out.setdefault(RETENTION_COHORTS, []).append(
                (
                    cohort_kind,
                    granularity,
                    _day(cohort_ms),
                    activity,
                    n,
                    channel,
                    platform,
                    partition,
                    aggregates.value(key),
                    final,
                    version,
                )
            )
            continue
        if kind == "gap":
            _, day_ms, channel, bucket = key
            out.setdefault(ORDER_GAPS, []).append(
                (_day(day_ms), channel, bucket, partition, aggregates.value(key), final, version)
            )
            continue
        _, funnel, window, dims, detail = key
        value = aggregates.value(key)
        head = (funnel, window // 1000, *dims)  # type: ignore[operator, misc]
        if kind == "fs":
            step_name = rules.steps_by_funnel[str(funnel)][int(detail) - 1]  # type: ignore[call-overload]
            out.setdefault(FUNNEL_STEPS, []).append(
                (*head, detail, step_name, partition, value, final, version)
            )
        elif kind == "fo":
            out.setdefault(FUNNEL_OUTCOMES, []).append(
                (*head, detail, partition, value, final, version)
            )
        elif kind == "ft":
            out.setdefault(FUNNEL_TTC, []).append((*head, detail, partition, value, final, version))
    return out


def merge_rows(target: dict[TableSpec, list[Row]], more: dict[TableSpec, list[Row]]) -> None:
    for spec, rows in more.items():
        target.setdefault(spec, []).extend(rows)


def _day(t_ms: Any) -> date:
    return date(1970, 1, 1) + timedelta(days=int(t_ms) // 86_400_000)


def _date_to_ms(value: date) -> int:
    return (value - date(1970, 1, 1)).days * 86_400_000


def row_key_from_clickhouse(spec: TableSpec, row: tuple[Any, ...]) -> Key:
    """The aggregate row key of a ClickHouse row read with :data:`KEY_COLUMNS` columns."""
    if spec is RETENTION_COHORTS:
        cohort_kind, granularity, cohort_start, activity, n, channel, platform = row
        start = add_periods(cohort_start, int(n), granularity)
        return (
            "ret",
            cohort_kind,
            granularity,
            _date_to_ms(cohort_start),
            activity,
            int(n),
            _date_to_ms(start),
            channel,
            platform,
        )
    if spec is ORDER_GAPS:
        day, channel, bucket = row
        return ("gap", _date_to_ms(day), channel, float(bucket))
    if spec is KPI_MINUTE:
        window, *dims, currency = row
        return ("kpi", _epoch_ms(window), tuple(dims), currency)
    funnel, window, *rest = row
    *dims, detail = rest
    kind = {FUNNEL_STEPS: "fs", FUNNEL_OUTCOMES: "fo", FUNNEL_TTC: "ft"}[spec]
    if spec is FUNNEL_STEPS:
        detail = int(detail)
    elif spec is FUNNEL_TTC:
        detail = float(detail)
    return (kind, funnel, _epoch_ms(window), tuple(dims), detail)


def _epoch_ms(value: Any) -> int:
    if isinstance(value, int):
        return value * 1000
    return int(value.replace(tzinfo=value.tzinfo or UTC).timestamp()) * 1000


# Key columns of each aggregate table, in the order row_key_from_clickhouse expects.
KEY_COLUMNS: dict[TableSpec, tuple[str, ...]] = {
    FUNNEL_STEPS: ("funnel", "window_start", *DIMENSIONS, "step"),
    FUNNEL_OUTCOMES: ("funnel", "window_start", *DIMENSIONS, "outcome"),
    FUNNEL_TTC: ("funnel", "window_start", *DIMENSIONS, "le_seconds"),
    KPI_MINUTE: ("window_start", *DIMENSIONS, "currency"),
    RETENTION_COHORTS: (
        "cohort_kind",
        "granularity",
        "cohort_start",
        "activity",
        "period",
        "channel",
        "platform",
    ),
    ORDER_GAPS: ("day", "channel", "le_days"),
}
VALUE_COLUMNS: dict[TableSpec, tuple[str, ...]] = {
    FUNNEL_STEPS: ("entered",),
    FUNNEL_OUTCOMES: ("entities",),
    FUNNEL_TTC: ("converted",),
    KPI_MINUTE: tuple(KPI_METRICS),
    RETENTION_COHORTS: ("users",),
    ORDER_GAPS: ("orders",),
}


# A cart's units and value grow across events, so validation cannot bound them: a
# trigger carries them saturated at its field types (Avro long / Int64, Avro int).
CART_VALUE_MAX = 2**63 - 1
CART_ITEM_QUANTITY_MAX = 2**31 - 1


def to_trigger(spec: TriggerSpec, anonymous_id: str, user_id: str | None, now_ms: int) -> Trigger:
    value = (
        min(CART_VALUE_MAX, sum(quantity * price for _, quantity, price in spec.cart))
        if spec.cart
        else None
    )
    return Trigger(
        trigger_id=trigger_id(spec.trigger_type, anonymous_id, *spec.id_parts),
        trigger_type=spec.trigger_type,
        anonymous_id=anonymous_id,
        occurred_at_ms=spec.at,
        emitted_at_ms=now_ms,
        user_id=user_id,
        cart_value_minor=value,
        currency=spec.currency or None,
        items=tuple(
            TriggerItem(item, min(quantity, CART_ITEM_QUANTITY_MAX), price)
            for item, quantity, price in spec.cart
        ),
        channel=spec.channel or None,
        segment=spec.segment or None,
        previous_segment=spec.previous_segment or None,
    )


def trigger_row(trigger: Trigger, partition: int) -> Row:
    return (
        trigger.trigger_id,
        trigger.trigger_type,
        trigger.anonymous_id,
        trigger.user_id,
        trigger.occurred_at_ms,
        trigger.emitted_at_ms,
        trigger.cart_value_minor,
        trigger.currency or "",
        trigger.channel or "",
        trigger.segment or "",
        trigger.previous_segment or "",
        partition,
    )


def user_rfm_row(
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
