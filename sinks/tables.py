"""ClickHouse tables the pipeline writes, with their insert column order."""

from __future__ import annotations

from dataclasses import dataclass

DIMENSIONS = ("channel", "campaign", "device", "platform", "country")


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    columns: tuple[str, ...]


EVENTS_RAW = TableSpec(
    "events_raw",
    (
        "event_id",
        "event_type",
        "stream",
        "event_time",
        "sent_time",
        "anonymous_id",
        "user_id",
        "session_id",
        "platform",
        "device",
        "country",
        "channel",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "utm_term",
        "referrer",
        "page_url",
        "referral_code",
        "experiments",
        "item_ids",
        "item_prices_minor",
        "item_quantities",
        "cart_id",
        "transaction_id",
        "currency",
        "value_minor",
        "tax_minor",
        "shipping_minor",
        "discount_minor",
        "coupon",
        "payment_type",
        "refund_reason",
        "payment_error_code",
        "is_late",
        "source_topic",
        "source_partition",
        "source_offset",
        "ingested_at",
        "version",
    ),
)
LATE_EVENTS = TableSpec(
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
)
DEAD_LETTERS = TableSpec(
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
)
FUNNEL_STEPS = TableSpec(
    "funnel_steps_minute",
    (
        "funnel",
        "window_start",
        *DIMENSIONS,
        "step",
        "step_name",
        "partition",
        "entered",
        "is_final",
        "version",
    ),
)
FUNNEL_OUTCOMES = TableSpec(
    "funnel_outcomes_minute",
    (
        "funnel",
        "window_start",
        *DIMENSIONS,
        "outcome",
        "partition",
        "entities",
        "is_final",
        "version",
    ),
)
FUNNEL_TTC = TableSpec(
    "funnel_ttc_minute",
    (
        "funnel",
        "window_start",
        *DIMENSIONS,
        "le_seconds",
        "partition",
        "converted",
        "is_final",
        "version",
    ),
)
KPI_MINUTE = TableSpec(
    "kpi_minute",
    (
        "window_start",
        *DIMENSIONS,
        "currency",
        "partition",
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
        "is_final",
        "version",
    ),
)

FIRST_TABLES: tuple[TableSpec, ...] = (
    EVENTS_RAW,
    LATE_EVENTS,
    DEAD_LETTERS,
    FUNNEL_STEPS,
    FUNNEL_OUTCOMES,
    FUNNEL_TTC,
    KPI_MINUTE,
)

RETENTION_COHORTS = TableSpec(
    "retention_cohorts",
    (
        "cohort_kind",
        "granularity",
        "cohort_start",
        "activity",
        "period",
        "channel",
        "platform",
        "partition",
        "users",
        "is_final",
        "version",
    ),
)
ORDER_GAPS = TableSpec(
    "order_gaps_daily", ("day", "channel", "le_days", "partition", "orders", "is_final", "version")
)
USER_RFM = TableSpec(
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
)
SEGMENT_TRANSITIONS = TableSpec(
    "segment_transitions", ("anonymous_id", "at", "from_stage", "to_stage", "partition", "version")
)
TRIGGERS = TableSpec(
    "triggers",
    (
        "trigger_id",
        "trigger_type",
        "anonymous_id",
        "user_id",
        "occurred_at",
        "emitted_at",
        "cart_value_minor",
        "currency",
        "channel",
        "segment",
        "previous_segment",
        "partition",
    ),
)

ALL_TABLES: tuple[TableSpec, ...] = (
    *FIRST_TABLES,
    RETENTION_COHORTS,
    ORDER_GAPS,
    USER_RFM,
    SEGMENT_TRANSITIONS,
    TRIGGERS,
)
