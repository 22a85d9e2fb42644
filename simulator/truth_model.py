"""Types of the ground truth: rows shaped like the ClickHouse tables, and the funnels.

Rows are NamedTuples whose fields are the ClickHouse columns (``window_start_ms`` is
``window_start`` in epoch milliseconds), summed over Kafka partitions, with all-zero
rows left out, so a test can compare them with a ``GROUP BY`` over ``... FINAL``.

The funnels are the worker's: their definitions (names, steps, filters, scope, window,
mode, exclusions, breakdown) are read from ``streams/funnels.yaml`` through
:mod:`streams.funnels`, the one list of funnels, and become :class:`FunnelSpec`; how the
truth counts them (filters included) owes nothing to ``streams/``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

from schemas.triggers import TriggerItem
from simulator.errors import SimConfigError
from streams.funnels import FunnelDef, load_funnels

FunnelScope = Literal["session", "user"]
FunnelMode = Literal["ordered", "strict", "unordered"]
FUNNEL_MODES: Final = ("ordered", "strict", "unordered")
CONDITION_OPS: Final = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte")


@dataclass(frozen=True)
class Condition:
    """``prop op values`` of a step's or exclusion's ``where`` (semantics.md §3)."""

    prop: str
    op: str  # one of CONDITION_OPS
    values: tuple[str, ...]


@dataclass(frozen=True)
class StepMatcher:
    """A step: an event type (built-in or ``custom:<name>``), conditions that must all
    hold, and the optional per-step ``within`` (ms after the previous step's event)."""

    event: str
    conditions: tuple[Condition, ...] = ()
    within_ms: int | None = None


@dataclass(frozen=True)
class ExclusionSpec:
    """An event matching ``event``/``conditions`` strictly between the attempt's events of
    steps ``from_step`` and ``to_step`` (1-based) disqualifies the attempt."""

    event: str
    from_step: int
    to_step: int
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class BreakdownSpec:
    """Breakdown dimensions (1-3) and the attributed step: first_touch, last_touch, step:N."""

    dimensions: tuple[str, ...]
    attribution: str = "first_touch"

    @property
    def attributed_step(self) -> int | None:
        """N of ``step:N``; None for first_touch / last_touch."""
        if self.attribution.startswith("step:"):
            return int(self.attribution[len("step:") :])
        return None


@dataclass(frozen=True)
class FunnelSpec:
    """A funnel (docs/semantics.md §3). ``steps`` are the step names (labels) of the rows.

    ``FunnelSpec(name, steps, window_ms, scope)`` is the plain form: each step is the event
    type of the same name, without conditions, in ordered mode.
    """

    name: str
    steps: tuple[str, ...]
    window_ms: int
    scope: FunnelScope = "session"
    mode: FunnelMode = "ordered"
    step_matchers: tuple[StepMatcher, ...] = ()
    exclusions: tuple[ExclusionSpec, ...] = ()
    breakdown: BreakdownSpec | None = None

    def __post_init__(self) -> None:
        if not self.step_matchers:
            object.__setattr__(self, "step_matchers", tuple(StepMatcher(s) for s in self.steps))
        problem = self._problem()
        if problem:
            raise SimConfigError(f"funnel {self.name}: {problem}")

    def _problem(self) -> str | None:
        n = len(self.steps)
        if self.mode not in FUNNEL_MODES:
            return f"mode must be one of {list(FUNNEL_MODES)}, got {self.mode!r}"
        if len(self.step_matchers) != n:
            return f"{len(self.step_matchers)} step matchers for {n} steps"
        for matcher in self.step_matchers:
            for condition in matcher.conditions:
                if condition.op not in CONDITION_OPS or not condition.values:
                    return f"bad condition {condition}"
        if self.mode == "unordered" and (
            self.exclusions or any(m.within_ms is not None for m in self.step_matchers)
        ):
            return "within and exclusions need an order; unordered mode refuses them"
        for exclusion in self.exclusions:
            if not 1 <= exclusion.from_step < exclusion.to_step <= n:
                return f"exclusion {exclusion} has steps out of 1..{n}"
        breakdown = self.breakdown
        if breakdown is not None:
            step = re.fullmatch(r"step:([0-9]+)", breakdown.attribution)
            if not breakdown.dimensions or not (
                breakdown.attribution in ("first_touch", "last_touch")
                or (step is not None and 1 <= int(step.group(1)) <= n)
            ):
                return f"bad breakdown {breakdown}"
        return None


def funnel_specs(definitions: Iterable[FunnelDef] | None = None) -> tuple[FunnelSpec, ...]:
    """``definitions`` (None: the worker's default ``streams/funnels.yaml``) as FunnelSpecs.

    Only the definitions' fields are read (``streams.funnels`` parses and validates the
    file); evaluating them is the truth's own work (:mod:`simulator.truth_funnel`)."""
    chosen = load_funnels() if definitions is None else definitions
    return tuple(_spec_of(f) for f in chosen)


def _conditions(filters: Iterable[Any]) -> tuple[Condition, ...]:
    return tuple(Condition(f.prop, str(f.op), tuple(f.values)) for f in filters)


def _spec_of(definition: FunnelDef) -> FunnelSpec:
    breakdown = definition.breakdown
    return FunnelSpec(
        definition.name,
        tuple(definition.steps),
        definition.window_ms,
        definition.scope,
        definition.mode,
        tuple(
            StepMatcher(s.event, _conditions(s.filters), s.within_ms) for s in definition.step_defs
        ),
        tuple(
            ExclusionSpec(x.event, x.from_step, x.to_step, _conditions(x.filters))
            for x in definition.exclusions
        ),
        None
        if breakdown is None
        else BreakdownSpec(tuple(breakdown.dimensions), breakdown.attribution),
    )


def _conditions_json(conditions: tuple[Condition, ...]) -> list[list[Any]]:
    return [[c.prop, c.op, list(c.values)] for c in conditions]


def _conditions_from_json(raw: Iterable[Any]) -> tuple[Condition, ...]:
    return tuple(Condition(str(p), str(op), tuple(str(v) for v in values)) for p, op, values in raw)


def funnel_to_json(funnel: FunnelSpec) -> dict[str, Any]:
    """``funnel`` as a JSON object (the truth file), read back by :func:`funnel_from_json`."""
    return {
        "name": funnel.name,
        "steps": list(funnel.steps),
        "window_ms": funnel.window_ms,
        "scope": funnel.scope,
        "mode": funnel.mode,
        "step_matchers": [
            {"event": m.event, "where": _conditions_json(m.conditions), "within_ms": m.within_ms}
            for m in funnel.step_matchers
        ],
        "exclusions": [
            {
                "event": x.event,
                "from_step": x.from_step,
                "to_step": x.to_step,
                "where": _conditions_json(x.conditions),
            }
            for x in funnel.exclusions
        ],
        "breakdown": None
        if funnel.breakdown is None
        else {
            "dimensions": list(funnel.breakdown.dimensions),
            "attribution": funnel.breakdown.attribution,
        },
    }


def funnel_from_json(raw: Mapping[str, Any]) -> FunnelSpec:
    breakdown = raw.get("breakdown")
    return FunnelSpec(
        str(raw["name"]),
        tuple(str(s) for s in raw["steps"]),
        int(raw["window_ms"]),
        raw["scope"],
        raw.get("mode", "ordered"),
        tuple(
            StepMatcher(
                str(m["event"]),
                _conditions_from_json(m["where"]),
                None if m["within_ms"] is None else int(m["within_ms"]),
            )
            for m in raw.get("step_matchers", ())
        ),
        tuple(
            ExclusionSpec(
                str(x["event"]),
                int(x["from_step"]),
                int(x["to_step"]),
                _conditions_from_json(x["where"]),
            )
            for x in raw.get("exclusions", ())
        ),
        None
        if breakdown is None
        else BreakdownSpec(
            tuple(str(d) for d in breakdown["dimensions"]), str(breakdown["attribution"])
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
    breakdown: tuple[str, ...]  # () without a breakdown
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
    breakdown: tuple[str, ...]  # () without a breakdown
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
    breakdown: tuple[str, ...]  # () without a breakdown
    le_seconds: float
    converted: int


class FunnelAttemptRow(NamedTuple):
    """A ``funnel_attempts`` row: one per credited entity (semantics.md §3). The five
    dimensions are the credited attempt's start event's; ``entity`` is the session
    segment id (``session_id``, ``session_id#n``) or '' for user scope; ``step_times_ms``
    are the times of steps 1..level (unordered: when the k-th step was done)."""

    funnel: str
    window_start_ms: int
    channel: str
    campaign: str
    device: str
    platform: str
    country: str
    breakdown: tuple[str, ...]
    anonymous_id: str
    entity: str
    start_event_id: str
    outcome: str
    level: int
    step_times_ms: tuple[int, ...]


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


class AttributionRow(NamedTuple):
    """An ``order_attribution`` row (docs/semantics.md 10) with its share in millionths."""

    window_start_ms: int
    order_time_ms: int
    anonymous_id: str
    transaction_id: str
    currency: str
    value_minor: int
    is_first: int
    model: str
    channel: str
    source: str
    medium: str
    campaign: str
    kol: str
    share_micro: int


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
    # §3 funnel_attempts: one row per credited entity, sorted.
    funnel_attempts: tuple[FunnelAttemptRow, ...] = ()
    # §10 order_attribution: one row per counted order, model and touchpoint key.
    order_attribution: tuple[AttributionRow, ...] = ()
