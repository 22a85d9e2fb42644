"""Types of the ground truth: rows shaped like the ClickHouse tables, and the funnels.

Rows are NamedTuples whose fields are the ClickHouse columns (``window_start_ms`` is
``window_start`` in epoch milliseconds), summed over Kafka partitions, with all-zero
rows left out, so a test can compare them with a ``GROUP BY`` over ``... FINAL``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple

FunnelScope = Literal["session", "user"]


@dataclass(frozen=True)
class FunnelSpec:
    """An ordered funnel (docs/semantics.md §3)."""

    name: str
    steps: tuple[str, ...]
    window_ms: int
    scope: FunnelScope = "session"


HOUR_MS: Final = 3_600_000
DEFAULT_FUNNELS: Final = (
    FunnelSpec(
        "shop",
        ("session_start", "view_item", "add_to_cart", "begin_checkout", "purchase"),
        HOUR_MS,
    ),
    FunnelSpec(
        "checkout",
        ("begin_checkout", "add_shipping_info", "add_payment_info", "purchase"),
        HOUR_MS,
    ),
)

# Upper bounds of the time-to-convert buckets, in seconds (semantics.md §3). Each
# converted entity is counted once, in the smallest bucket whose bound is >= its time.
TTC_BUCKETS_S: Final = (
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    86400.0,
    math.inf,
)

OUTCOMES: Final = ("converted", "dropped", "in_progress")


class Dims(NamedTuple):
    channel: str
    campaign: str
    device: str
    platform: str
    country: str


class FunnelStepRow(NamedTuple):
    funnel: str
    window_start_ms: int
    channel: str
    campaign: str
    device: str
    platform: str
    country: str
    step: int
    step_name: str
    entered: int


class FunnelOutcomeRow(NamedTuple):
    funnel: str
    window_start_ms: int
    channel: str
    campaign: str
    device: str
    platform: str
    country: str
    outcome: str
    entities: int


class FunnelTtcRow(NamedTuple):
    funnel: str
    window_start_ms: int
    channel: str
    campaign: str
    device: str
    platform: str
    country: str
    le_seconds: float
    converted: int


class KpiRow(NamedTuple):
    window_start_ms: int
    channel: str
    campaign: str
    device: str
    platform: str
    country: str
    currency: str
    orders: int
    gmv_minor: int
    items: int
    coupon_orders: int
    discount_minor: int
    first_orders: int
    repeat_orders: int
    refunds: int
    refunded_minor: int
    payment_failures: int
    cancellations: int


class RetentionRow(NamedTuple):
    """Visitors of a cohort (UTC day of their first counted event, first-touch channel)
    with a counted event on cohort day + ``day_offset``."""

    cohort_day: str
    channel: str
    day_offset: int
    users: int


class DeadLetterRow(NamedTuple):
    stream: str
    reason: str
    records: int


class ExperimentRow(NamedTuple):
    """Funnel entities by the variant on the credited step-1 event."""

    funnel: str
    experiment: str
    variant: str
    entities: int
    converted: int


@dataclass(frozen=True)
class Truth:
    """Everything docs/semantics.md defines, for one run's records."""

    lateness_ms: int
    session_timeout_ms: int
    window_ms: int
    funnels: tuple[FunnelSpec, ...]
    funnel_steps: tuple[FunnelStepRow, ...]
    funnel_outcomes: tuple[FunnelOutcomeRow, ...]
    funnel_ttc: tuple[FunnelTtcRow, ...]
    kpi: tuple[KpiRow, ...]
    retention: tuple[RetentionRow, ...]
    dead_letters: tuple[DeadLetterRow, ...]
    experiments: tuple[ExperimentRow, ...]
    late_event_ids: frozenset[str]
    # partition -> final watermark (ms) of its partition group; absent = no records.
    final_watermarks: dict[int, int]
    stats: dict[str, int]
    gmv_by_currency: dict[str, int]
    # Effects the simulator built in, e.g. {"checkout_button": 0.15} (relative lift).
    true_effects: dict[str, float] = field(default_factory=dict)
