"""Types of the ground truth: rows shaped like the ClickHouse tables, and the funnels.

Rows are NamedTuples whose fields are the ClickHouse columns (``window_start_ms`` is
``window_start`` in epoch milliseconds), summed over Kafka partitions, with all-zero
rows left out, so a test can compare them with a ``GROUP BY`` over ``... FINAL``.

The funnels are the worker's: their definitions (names, steps, scope, window) are read
from ``streams/funnels.yaml`` through :mod:`streams.funnels`, the one list of funnels,
and become :class:`FunnelSpec`; how the truth counts them owes nothing to ``streams/``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple

from schemas.triggers import TriggerItem
from simulator.errors import SimConfigError
from streams.funnels import FunnelDef, load_funnels

FunnelScope = Literal["session", "user"]


@dataclass(frozen=True)
class FunnelSpec:
    """An ordered funnel (docs/semantics.md §3)."""

    name: str
    steps: tuple[str, ...]
    window_ms: int
    scope: FunnelScope = "session"


def funnel_specs(definitions: Iterable[FunnelDef] | None = None) -> tuple[FunnelSpec, ...]:
    """``definitions`` (None: the worker's default ``streams/funnels.yaml``) as FunnelSpecs."""
    chosen = load_funnels() if definitions is None else definitions
    return tuple(FunnelSpec(f.name, f.steps, f.window_ms, f.scope) for f in chosen)


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

DAY_MS: Final = 86_400_000
# Upper bounds of the time-between-orders buckets, in days (semantics.md §6).
ORDER_GAP_BUCKETS_DAYS: Final = (1.0, 3.0, 7.0, 14.0, 30.0, 60.0, 90.0, 180.0, math.inf)


@dataclass(frozen=True)
class LifecycleParams:
    """Thresholds of semantics.md §6-§8 in milliseconds (the settings give them in days
    and minutes; tests use minutes-scale values). Defaults are the documented ones."""

    anonymous_ttl_ms: int = 35 * DAY_MS
    buyer_ttl_ms: int = 400 * DAY_MS
    rfm_new_ms: int = 30 * DAY_MS
    rfm_dormant_ms: int = 60 * DAY_MS
    rfm_churn_ms: int = 180 * DAY_MS
    cart_abandon_ms: int = 30 * 60_000

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value <= 0:
                raise SimConfigError(
                    f"lifecycle threshold {name} must be a positive number of milliseconds, "
                    f"got {value!r}"
                )

    @classmethod
    def from_days(
        cls,
        *,
        anonymous_ttl_days: float = 35,
        buyer_ttl_days: float = 400,
        rfm_new_days: float = 30,
        rfm_dormant_days: float = 60,
        rfm_churn_days: float = 180,
        cart_abandon_minutes: float = 30,
    ) -> LifecycleParams:
        """The same thresholds in the units of the ``FUNNEL_*`` settings."""
        return cls(
            anonymous_ttl_ms=round(anonymous_ttl_days * DAY_MS),
            buyer_ttl_ms=round(buyer_ttl_days * DAY_MS),
            rfm_new_ms=round(rfm_new_days * DAY_MS),
            rfm_dormant_ms=round(rfm_dormant_days * DAY_MS),
            rfm_churn_ms=round(rfm_churn_days * DAY_MS),
            cart_abandon_ms=round(cart_abandon_minutes * 60_000),
        )


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
    """A ``retention_cohorts`` row summed over partitions (semantics.md §6): visitors of
    the cohort (``cohort_start`` is the first day of its period, 'YYYY-MM-DD') with at
    least one ``activity`` in period ``period`` after it. ``channel`` and ``platform`` are
    the acquisition ones (first counted event), for both cohort kinds."""

    cohort_kind: str  # first_visit | first_purchase
    granularity: str  # day | week | month
    cohort_start: str
    activity: str  # visit | purchase | repeat_purchase
    period: int
    channel: str
    platform: str
    users: int


class OrderGapRow(NamedTuple):
    """An ``order_gaps_daily`` row: repeat purchases on UTC ``day`` (of the later
    purchase) by its ``channel`` whose gap to the previous purchase is at most ``le_days``
    and more than the next smaller bound."""

    day: str
    channel: str
    le_days: float
    orders: int


class RfmRow(NamedTuple):
    """A buyer's ``user_rfm`` values as of ``as_of_ms`` (semantics.md §7)."""

    anonymous_id: str
    stage: str
    first_purchase_ms: int
    last_purchase_ms: int
    frequency: int
    monetary_minor: int
    currency: str  # of the first purchase; monetary counts only purchases in it
    channel: str  # acquisition channel (first counted event)
    as_of_ms: int


class TransitionRow(NamedTuple):
    """A ``segment_transitions`` row."""

    anonymous_id: str
    at_ms: int
    from_stage: str
    to_stage: str


class TriggerRow(NamedTuple):
    """One expected trigger of semantics.md §8 (the truth-side of ``schemas.triggers``).

    ``segment``/``previous_segment`` are the stage after/before for the stage triggers
    (None for ``cart_abandoned``); the cart fields are None for every other type."""

    trigger_id: str
    trigger_type: str
    anonymous_id: str
    occurred_at_ms: int
    cart_value_minor: int | None = None
    currency: str | None = None
    items: tuple[TriggerItem, ...] = ()
    segment: str | None = None
    previous_segment: str | None = None


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
    # §6-§8 (simulator/truth_retention.py, truth_lifecycle.py, truth_carts.py).
    lifecycle: LifecycleParams = field(default_factory=LifecycleParams)
    order_gaps: tuple[OrderGapRow, ...] = ()
    rfm: tuple[RfmRow, ...] = ()
    transitions: tuple[TransitionRow, ...] = ()
    triggers: tuple[TriggerRow, ...] = ()
