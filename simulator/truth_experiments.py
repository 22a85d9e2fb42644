"""The truth of live experiment readouts (issue #14, docs/semantics.md §3b), per experiment
and variant: the sufficient statistics :mod:`streams.experiment_stats` consumes.

Plain Python over the simulator's events, independent of the streaming readout: from
``streams/`` only the experiment definitions (:mod:`streams.experiments`: dataclasses and
loader) and, through :func:`simulator.truth_model.funnel_specs`, the funnel definitions
are read; funnels are evaluated by the truth's own engine (:mod:`simulator.truth_funnel`).
The events are the *counted events* of §1 from the truth's own intake
(:class:`simulator.truth._Intake`: late records by each topic-partition's watermark,
event_id duplicates per visitor, a purchase only in its earliest (event_time, event_id)
copy per (anonymous_id, transaction_id)).

Definitions implemented, per experiment ``X`` (all orders are (event_time, event_id)):

- **Exposure.** A visitor (anonymous_id) is exposed at its first counted event that
  carries ``X`` in ``experiments`` (``exposure: first_event``) or, with
  ``exposure: {event: T}``, its first counted event of type ``T`` carrying ``X``, whose
  value is one of the configured variants. The variant is that value (sticky).
- **Unknown.** An event that would expose the visitor but whose value is not a
  configured variant exposes nobody; ``unknown`` counts the visitors with at least one
  such event before their exposure (or with no exposure at all).
- **Mixed.** An exposed visitor with a counted event at or after its exposure (the
  exposure event included, any type) carrying another value of ``X`` (another variant or
  an unknown value) is mixed: counted in ``mixed`` and left out of every statistic of
  ``X`` (exposed counts, primary, revenue, guardrails). Events before the exposure never
  make a visitor mixed. This is the end-of-data state: the live readout excludes the
  visitor from the moment the second value is seen.
- **Primary, funnel step** ``{funnel: F, step: S}`` (:class:`FunnelStepMetric`): the
  visitor converted when one of its entities' *credited* attempts of ``F`` (§3: the
  ``funnel_attempts`` rows, for every scope and mode: session scope per session segment,
  user scope per attempt group) starts at or after its exposure (by (event_time,
  event_id) of the attempt's start event) and reaches level >= S. The credited attempt is
  the one the funnel report counts, so the experiment's conversions reconcile with the
  funnel's; an entity whose credit went to an attempt started before the exposure does
  not convert the visitor, even if a later attempt of the same entity also reaches S.
- **Revenue per user** (:class:`RevenuePerUser`), computed for every experiment: per
  currency, over *all* exposed non-mixed visitors of the variant (zeros included, also
  for visitors who paid only in another currency), the sum of ``value_minor`` (minor
  units, exact integers) of their counted purchases at or after exposure: ``n``, ``total``
  and ``total_sq``. ``orders``: those purchases (a purchase without currency counts as an
  order but in no currency's revenue).
- **Guardrails**: per guardrail of the experiment, the visitor's counted events at or
  after exposure of the guardrail's numerator and denominator types
  (:data:`streams.experiments.GUARDRAIL_EVENTS`), summed per variant, with the
  per-visitor squares and cross products: a ratio of sums whose unit is the visitor
  (:meth:`RatioSums.moments`, the delta method), or, treating events as trials,
  :meth:`RatioSums.as_proportion`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from schemas.model import Event
from simulator.records import SimRecord
from simulator.truth import _Intake
from simulator.truth_funnel import (
    EntityEvents,
    event_order,
    split_segments,
    user_attempt_groups,
)
from simulator.truth_model import FunnelSpec, funnel_specs
from streams.experiments import ExperimentDef, FunnelStepMetric, RevenuePerUser

__all__ = [
    "CovariateTruth",
    "ExperimentTruth",
    "MeanSums",
    "ProportionCounts",
    "RatioSums",
    "VariantTruth",
    "experiment_truth",
    "experiment_truth_of_events",
]


@dataclass(frozen=True, slots=True)
class ProportionCounts:
    """``ProportionStats(n, conversions)``: exposed visitors and those who converted."""

    n: int
    conversions: int

    @property
    def rate(self) -> float:
        return self.conversions / self.n if self.n else 0.0


@dataclass(frozen=True, slots=True)
class MeanSums:
    """``MeanStats(n, total, total_sq)`` of a per-visitor value (zeros included)."""

    n: int
    total: int
    total_sq: int


@dataclass(frozen=True, slots=True)
class RatioSums:
    """A ratio of sums over ``n`` visitors: ``numerator / denominator`` events, with the
    per-visitor sums of squares and cross products (for the delta method)."""

    n: int
    numerator: int
    denominator: int
    numerator_sq: int
    denominator_sq: int
    cross: int

    @property
    def rate(self) -> float:
        return self.numerator / self.denominator if self.denominator else 0.0

    def moments(self) -> tuple[int, float, float]:
        """``Moments(n, mean, variance)`` with the visitor as the unit: the mean is the
        ratio R, the variance that of the linearised per-visitor value
        ``(num_i - R den_i) / mean(den)`` (sample variances, n - 1), so that
        ``variance / n`` is the delta-method variance of R. (0, 0, 0) without data."""
        n = self.n
        if n < 2 or self.denominator == 0:
            return (n, self.rate, 0.0)
        r = self.numerator / self.denominator
        mean_den = self.denominator / n
        var_num = (self.numerator_sq - self.numerator**2 / n) / (n - 1)
        var_den = (self.denominator_sq - self.denominator**2 / n) / (n - 1)
        cov = (self.cross - self.numerator * self.denominator / n) / (n - 1)
        variance = (var_num - 2 * r * cov + r * r * var_den) / mean_den**2
        return (n, r, max(variance, 0.0))

    def as_proportion(self) -> ProportionCounts:
        """Events as trials: ``ProportionStats(denominator, numerator)`` (ignores that one
        visitor's events are not independent; needs numerator <= denominator)."""
        return ProportionCounts(self.denominator, self.numerator)


@dataclass(frozen=True, slots=True)
class CovariateTruth:
    """CUPED: over ``n`` exposed visitors, the primary's per-visitor value ``y`` and the
    pre-exposure covariate ``x``, summed with squares and products."""

    n: int
    total_y: int
    total_y_sq: int
    total_x: int
    total_x_sq: int
    total_xy: int


@dataclass(frozen=True, slots=True)
class VariantTruth:
    variant: str
    exposed: int  # exposed, not mixed
    primary: ProportionCounts | None  # None when the primary is revenue_per_user
    revenue: Mapping[str, MeanSums]  # per currency
    orders: int
    # Per guardrail metric name: every metric of ExperimentDef.rates (the configured
    # guardrails, then the others with their default events).
    guardrails: Mapping[str, RatioSums]
    # Purchases at or after exposure per currency (AOV = revenue total / these).
    orders_by_currency: Mapping[str, int] = field(default_factory=dict)
    # Visitors whose credited attempt started at or after exposure reached step k
    # (index k - 1, up to the highest step any reached); funnel-step primary only.
    reached: tuple[int, ...] = ()
    # With cuped configured, per currency ('' for a funnel-step primary).
    cuped: Mapping[str, CovariateTruth] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExperimentTruth:
    name: str
    variants: Mapping[str, VariantTruth]  # every configured variant, in file order
    weights: Mapping[str, float]  # the configured split
    mixed: int
    unknown: int
    unknown_values: Mapping[str, int] = field(default_factory=dict)  # visitors per value

    def counts(self) -> dict[str, int]:
        """Exposed, non-mixed visitors per variant: the sample-ratio check's input."""
        return {name: v.exposed for name, v in self.variants.items()}


def experiment_truth(
    records: Iterable[SimRecord],
    experiments: Sequence[ExperimentDef],
    *,
    lateness_ms: int,
    session_timeout_ms: int,
    funnels: Sequence[FunnelSpec] | None = None,
) -> dict[str, ExperimentTruth]:
    """The readouts' truth of ``records`` (in send order), per experiment name."""
    intake = _Intake(lateness_ms)
    for record in records:
        intake.add(record)
    counted = [item.event for item in intake.counted_events()]
    return experiment_truth_of_events(
        counted, experiments, session_timeout_ms=session_timeout_ms, funnels=funnels
    )


def experiment_truth_of_events(
    counted: Iterable[Event],
    experiments: Sequence[ExperimentDef],
    *,
    session_timeout_ms: int,
    funnels: Sequence[FunnelSpec] | None = None,
) -> dict[str, ExperimentTruth]:
    """The same from §1's counted events (any order)."""
    specs = {f.name: f for f in (funnel_specs() if funnels is None else funnels)}
    by_visitor: dict[str, list[Event]] = defaultdict(list)
    for event in counted:
        by_visitor[event.anonymous_id].append(event)
    for events in by_visitor.values():
        events.sort(key=event_order)
    return {
        exp.name: _Readout(exp, specs, session_timeout_ms).run(by_visitor) for exp in experiments
    }


class _Readout:
    def __init__(
        self, exp: ExperimentDef, specs: Mapping[str, FunnelSpec], session_timeout_ms: int
    ) -> None:
        self.exp = exp
        self.timeout_ms = session_timeout_ms
        self.funnel: FunnelSpec | None = None
        self.step = 0
        self.step_types: frozenset[str] = frozenset()
        self.first_type = self.target_type = ""
        if isinstance(exp.primary, FunnelStepMetric):
            if exp.primary.funnel not in specs:
                raise ValueError(
                    f"experiment {exp.name}: no funnel {exp.primary.funnel!r} in {sorted(specs)}"
                )
            self.funnel = specs[exp.primary.funnel]
            self.step = exp.primary.step
            matchers = self.funnel.step_matchers
            self.step_types = frozenset(m.event for m in matchers)
            self.first_type = matchers[0].event
            self.target_type = matchers[self.step - 1].event
        names = exp.variant_names
        self.exposed: Counter[str] = Counter()
        self.converted: Counter[str] = Counter()
        self.orders: Counter[str] = Counter()
        self.orders_by_currency: Counter[tuple[str, str]] = Counter()
        self.reached: Counter[tuple[str, int]] = Counter()  # (variant, step) -> visitors
        # (variant, currency) -> [total, total_sq]; per-visitor values are summed first.
        self.revenue: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        self.currencies: set[str] = set()
        # (variant, guardrail) -> [num, den, num_sq, den_sq, cross]
        self.guard: dict[tuple[str, str], list[int]] = {
            (v, g.metric): [0, 0, 0, 0, 0] for v in names for g in exp.rates
        }
        self.mixed = 0
        self.unknown = 0
        self.unknown_values: Counter[str] = Counter()
        # CUPED: per exposed visitor (variant, activity, pre and post revenue, converted).
        self.covariates: list[tuple[str, int, Counter[str], Counter[str], bool]] = []

    def run(self, by_visitor: Mapping[str, Sequence[Event]]) -> ExperimentTruth:
        for events in by_visitor.values():
            self.visitor(events)
        exp = self.exp
        variants: dict[str, VariantTruth] = {}
        for name in exp.variant_names:
            n = self.exposed[name]
            revenue = {}
            for currency in sorted(self.currencies):
                total, total_sq = self.revenue.get((name, currency), (0, 0))
                revenue[currency] = MeanSums(n, total, total_sq)
            guards: dict[str, RatioSums] = {
                g.metric: RatioSums(n, *self.guard[(name, g.metric)]) for g in exp.rates
            }
            variants[name] = VariantTruth(
                variant=name,
                exposed=n,
                primary=None if self.funnel is None else ProportionCounts(n, self.converted[name]),
                revenue=revenue,
                orders=self.orders[name],
                orders_by_currency={
                    c: self.orders_by_currency[(name, c)] for c in sorted(self.currencies)
                },
                reached=self._reached(name),
                guardrails=guards,
                cuped=self.cuped_sums(name),
            )
        return ExperimentTruth(
            name=exp.name,
            variants=variants,
            weights={v.name: float(v.weight) for v in exp.variants},
            mixed=self.mixed,
            unknown=self.unknown,
            unknown_values=dict(sorted(self.unknown_values.items())),
        )

    def _reached(self, variant: str) -> tuple[int, ...]:
        steps = [n for (v, _), n in sorted(self.reached.items()) if v == variant]
        return tuple(steps)

    def cuped_sums(self, variant: str) -> dict[str, CovariateTruth]:
        """Per currency ('' for a funnel step): y is the conversion (0/1) or the
        post-exposure revenue in that currency; x the pre-exposure events in the lookback,
        or (pre_exposure_revenue) the revenue in that currency in the lookback."""
        exp = self.exp
        if exp.cuped is None:
            return {}
        if self.funnel is not None:
            currencies = [""]
        elif isinstance(exp.primary, RevenuePerUser) and exp.primary.currency is not None:
            currencies = [exp.primary.currency]
        else:
            currencies = sorted(self.currencies)
        out: dict[str, CovariateTruth] = {}
        for currency in currencies:
            sums = [0, 0, 0, 0, 0, 0]
            for name, activity, pre, post, converted in self.covariates:
                if name != variant:
                    continue
                y = int(converted) if self.funnel is not None else post[currency]
                x = activity if exp.cuped.covariate == "pre_exposure_activity" else pre[currency]
                for i, value in enumerate((1, y, y * y, x, x * x, x * y)):
                    sums[i] += value
            if sums[0]:
                out[currency] = CovariateTruth(*sums)
        return out

    def visitor(self, events: Sequence[Event]) -> None:
        """One visitor's counted events, in order."""
        exp = self.exp
        known = exp.variant_names
        exposure: int | None = None
        unknown: set[str] = set()
        for position, event in enumerate(events):
            value = event.experiments.get(exp.name)
            if value is None:
                continue
            if exp.exposure.event is not None and event.event_type != exp.exposure.event:
                continue
            if value in known:
                exposure = position
                break
            unknown.add(value)
        self.unknown += bool(unknown)
        for value in unknown:
            self.unknown_values[value] += 1
        if exposure is None:
            return
        variant = events[exposure].experiments[exp.name]
        after = events[exposure:]
        if any(e.experiments.get(exp.name, variant) != variant for e in after):
            self.mixed += 1
            return
        self.exposed[variant] += 1
        start_order = event_order(events[exposure])
        highest = 0 if self.funnel is None else self.highest_step(events, start_order)
        converted = self.funnel is not None and highest >= self.step
        if converted:
            self.converted[variant] += 1
        for level in range(1, highest + 1):
            self.reached[(variant, level)] += 1
        if exp.cuped is not None:
            since = events[exposure].event_time_ms - exp.cuped.lookback_ms
            before = [e for e in events[:exposure] if e.event_time_ms >= since]
            pre: Counter[str] = Counter()
            post: Counter[str] = Counter()
            for part, events_of in ((pre, before), (post, after)):
                for e in events_of:
                    if e.event_type == "purchase" and e.currency is not None:
                        part[e.currency] += e.value_minor or 0
            self.covariates.append((variant, len(before), pre, post, converted))
        by_currency: Counter[str] = Counter()
        for event in after:
            if event.event_type != "purchase":
                continue
            self.orders[variant] += 1
            if event.currency is not None:
                self.orders_by_currency[(variant, event.currency)] += 1
                by_currency[event.currency] += event.value_minor or 0
                self.currencies.add(event.currency)
        for currency, amount in by_currency.items():
            sums = self.revenue[(variant, currency)]
            sums[0] += amount
            sums[1] += amount * amount
        if exp.rates:
            types = Counter(e.event_type for e in after)
            for guard in exp.rates:
                num = sum(types[t] for t in guard.numerator_events)
                den = sum(types[t] for t in guard.denominator_events)
                sums = self.guard[(variant, guard.metric)]
                sums[0] += num
                sums[1] += den
                sums[2] += num * num
                sums[3] += den * den
                sums[4] += num * den

    def highest_step(self, events: Sequence[Event], start_order: tuple[int, str]) -> int:
        """The highest level among the visitor's credited attempts (§3) that start at or
        after the exposure (0: none)."""
        funnel = self.funnel
        assert funnel is not None
        # Shortcut: an attempt needs an event of step 1's type after the exposure
        # (unordered mode: of any step's type).
        after = [e.event_type for e in events if event_order(e) >= start_order]
        if funnel.mode == "unordered":
            if not any(t in self.step_types for t in after):
                return 0
        elif self.first_type not in after:
            return 0
        if funnel.scope == "user":
            entity = EntityEvents(events, funnel)
            groups = user_attempt_groups(entity.start_positions(), events, funnel.window_ms)
            return max((self._credit_level(entity, g, start_order) for g in groups), default=0)
        sessions: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            sessions[event.session_id].append(event)
        best = 0
        for session_events in sessions.values():
            if event_order(session_events[-1]) < start_order:
                continue
            for _, segment in split_segments(session_events, self.timeout_ms):
                if event_order(segment[-1]) < start_order:
                    continue
                entity = EntityEvents(segment, funnel)
                best = max(best, self._credit_level(entity, entity.start_positions(), start_order))
        return best

    def _credit_level(
        self, entity: EntityEvents, starts: Sequence[int], start_order: tuple[int, str]
    ) -> int:
        """The level of the entity's credited attempt (§3) if it starts at or after the
        exposure, else 0."""
        attempt = entity.credited(starts)
        if attempt is None or event_order(entity.events[attempt.start]) < start_order:
            return 0
        return attempt.level
