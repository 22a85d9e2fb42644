"""An experiment's sufficient statistics, by SQL over the counted events (issue #14).

Everything the readout needs, per experiment and variant, is computed by ClickHouse from
``events_raw`` (the counted events of docs/semantics.md §1: on time, one copy per
``event_id``, a purchase only in its earliest copy per transaction) and, for a
funnel-step primary metric, ``funnel_attempts`` (the credited attempts of §3). The
definitions are those of docs/semantics.md §3b; ``simulator/truth_experiments.py`` is the
independent oracle the tests compare these numbers with.

Being SQL over the stored events, the readout is exact under duplicates, late events and
crashes exactly when those tables are, and any number of it can be recomputed by hand
(``funnel report experiments --sql`` prints the queries).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from streams.experiment_stats import (
    DEFAULT_MIXING,
    AlwaysValidResult,
    CovariateStats,
    Decision,
    FixedHorizonResult,
    Guardrail,
    MeanStats,
    Moments,
    ProportionStats,
    SrmResult,
    Verdict,
    accumulate,
    always_valid_test,
    cuped_adjust,
    decide,
    significant_direction,
    srm_chi_square,
    srm_sequential,
    two_proportion_z_test,
    welch_z_test,
)
from streams.experiments import ExperimentDef, FunnelStepMetric, RevenuePerUser

# The counted events of §1 over all stored time (reports/exploration.py has the same rule
# over a time range), with the experiment's value on each event that carries it.
_VISITORS: Final = """
WITH
counted AS (
    SELECT anonymous_id, event_id, event_type, toUnixTimestamp64Milli(event_time) AS t,
           experiments, currency, ifNull(value_minor, 0) AS value_minor
    FROM events_raw FINAL
    WHERE is_late = 0
      AND (event_type != 'purchase' OR (anonymous_id, event_id) IN (
          SELECT anonymous_id, argMin(event_id, (event_time, event_id))
          FROM events_raw FINAL
          WHERE is_late = 0 AND event_type = 'purchase'
          GROUP BY anonymous_id, transaction_id))
),
carrying AS (
    SELECT anonymous_id, t, event_id, experiments[{experiment:String}] AS value,
           has({variants:Array(String)}, value) AS known,
           ({exposure_event:String} = '' OR event_type = {exposure_event:String}) AS exposing
    FROM counted
    WHERE mapContains(experiments, {experiment:String})
),
per_value AS (
    -- Per visitor and value of the experiment (rarely more than one): whether the value
    -- is a variant, its first exposing event and its last event, e = (t, event_id).
    -- Aggregating here, not collecting each visitor's events, keeps the query's memory
    -- to one row per visitor and value (issue #16: with an array of every event per
    -- visitor, and joins hashing every event, an evaluation took +1.2 GB of RSS at 4.4 M
    -- events; BENCHMARKS.md).
    SELECT anonymous_id, value, any(known) AS known, countIf(exposing) > 0 AS exposes,
           minIf((t, event_id), exposing) AS first_exposing, max((t, event_id)) AS last
    FROM carrying
    GROUP BY anonymous_id, value
),
visitors AS (
    -- v = (first_exposing, value, known, exposes, last): the exposure is the earliest
    -- first exposing event of a known value; a visitor is mixed when another value has
    -- an event at or after it; its unknown values are those exposing before it.
    SELECT anonymous_id,
           groupArray((first_exposing, value, known, exposes, last)) AS vals,
           arraySort(arrayFilter(v -> v.3 AND v.4, vals)) AS exposing_known,
           notEmpty(exposing_known) AS exposed,
           exposing_known[1].2 AS variant,
           exposing_known[1].1 AS at,
           exposed AND arrayExists(v -> v.2 != variant AND v.5 >= at, vals) AS mixed,
           arrayMap(
               v -> v.2,
               arrayFilter(v -> v.4 AND NOT v.3 AND (NOT exposed OR v.1 < at), vals)
           ) AS unknown_values
    FROM per_value
    GROUP BY anonymous_id
),
units AS (
    SELECT anonymous_id, variant, at FROM visitors WHERE exposed AND NOT mixed
)
"""

_STATUS: Final = (
    _VISITORS
    + """
SELECT variant, exposed, mixed, count() AS visitors,
       countIf(notEmpty(unknown_values)) AS with_unknown,
       sumMap(unknown_values, arrayMap(v -> toUInt64(1), unknown_values)) AS per_value
FROM visitors
GROUP BY variant, exposed, mixed
"""
)

# Per exposed visitor: its counted events at or after the exposure.
_AFTER: Final = """,
after AS (
    SELECT u.anonymous_id AS anonymous_id, u.variant AS variant, c.event_type AS event_type,
           c.currency AS currency, c.value_minor AS value_minor
    FROM counted AS c
    INNER JOIN units AS u ON u.anonymous_id = c.anonymous_id
    WHERE (c.t, c.event_id) >= u.at
)
"""

# The purchases are picked before the join, which then probes only them.
_REVENUE: Final = (
    _VISITORS
    + """
SELECT variant, currency, sum(revenue) AS total, sum(toInt128(revenue) * revenue) AS total_sq,
       sum(purchases) AS orders
FROM (
    SELECT u.variant AS variant, u.anonymous_id AS anonymous_id, c.currency AS currency,
           sum(c.value_minor) AS revenue, count() AS purchases
    FROM (SELECT * FROM counted WHERE event_type = 'purchase' AND currency != '') AS c
    INNER JOIN units AS u ON u.anonymous_id = c.anonymous_id
    WHERE (c.t, c.event_id) >= u.at
    GROUP BY u.variant, u.anonymous_id, c.currency
)
GROUP BY variant, currency
"""
)

# Per visitor the highest step its credited attempts started at or after the exposure
# reached; visitors per (variant, highest step).
_REACHED: Final = (
    _VISITORS
    + """
SELECT variant, level, count() AS visitors
FROM (
    SELECT u.variant AS variant, u.anonymous_id AS anonymous_id, max(a.level) AS level
    FROM (
        SELECT anonymous_id, toUnixTimestamp64Milli(step_times[1]) AS start_t, start_event_id,
               level
        FROM funnel_attempts FINAL
        WHERE attempts > 0 AND funnel = {funnel:String}
    ) AS a
    INNER JOIN units AS u ON u.anonymous_id = a.anonymous_id
    WHERE (a.start_t, a.start_event_id) >= u.at
    GROUP BY u.variant, u.anonymous_id
)
GROUP BY variant, level
"""
)


# CUPED (docs/semantics.md §3b): per exposed visitor the primary's value y and the
# pre-exposure covariate x (its counted events, or its purchases' value in y's currency,
# in the lookback before the exposure), summed per variant (and currency) with squares
# and cross products.
_PER_VISITOR_CUPED: Final = """,
per_visitor AS (
    SELECT u.anonymous_id AS anonymous_id, u.variant AS variant,
           countIf(c.t >= tupleElement(u.at, 1) - {lookback:Int64} AND (c.t, c.event_id) < u.at)
               AS activity,
           sumMapIf([c.currency], [c.value_minor],
                    c.event_type = 'purchase' AND c.currency != '' AND (c.t, c.event_id) >= u.at)
               AS post,
           sumMapIf([c.currency], [c.value_minor],
                    c.event_type = 'purchase' AND c.currency != ''
                    AND c.t >= tupleElement(u.at, 1) - {lookback:Int64}
                    AND (c.t, c.event_id) < u.at)
               AS pre
    FROM counted AS c
    INNER JOIN units AS u ON u.anonymous_id = c.anonymous_id
    GROUP BY u.anonymous_id, u.variant
)
"""
_CUPED_SUMS: Final = """
SELECT variant, currency, count() AS n, sum(y), sum(toInt128(y) * y), sum(x),
       sum(toInt128(x) * x), sum(toInt128(x) * y)
"""
_CUPED_FUNNEL: Final = (
    _VISITORS
    + _PER_VISITOR_CUPED
    + _CUPED_SUMS
    + """
FROM (
    SELECT variant, '' AS currency, activity AS x,
           toInt64(anonymous_id IN (
               SELECT u.anonymous_id
               FROM (
                   SELECT anonymous_id, toUnixTimestamp64Milli(step_times[1]) AS start_t,
                          start_event_id
                   FROM funnel_attempts FINAL
                   WHERE attempts > 0 AND funnel = {funnel:String} AND level >= {step:UInt32}
               ) AS a
               INNER JOIN units AS u ON u.anonymous_id = a.anonymous_id
               WHERE (a.start_t, a.start_event_id) >= u.at)) AS y
    FROM per_visitor
)
GROUP BY variant, currency
"""
)


def _cuped_revenue(covariate: str, fixed_currency: bool) -> str:
    currencies = (
        "[{currency:String}]"
        if fixed_currency
        else "(SELECT groupUniqArrayArray(tupleElement(post, 1)) FROM per_visitor)"
    )
    x = (
        "activity"
        if covariate == "pre_exposure_activity"
        else "if(indexOf(tupleElement(pre, 1), currency) = 0, 0, "
        "tupleElement(pre, 2)[indexOf(tupleElement(pre, 1), currency)])"
    )
    return (
        _VISITORS
        + _PER_VISITOR_CUPED
        + _CUPED_SUMS
        + f"""
FROM (
    SELECT variant, currency, toInt64({x}) AS x,
           toInt64(if(indexOf(tupleElement(post, 1), currency) = 0, 0,
                      tupleElement(post, 2)[indexOf(tupleElement(post, 1), currency)])) AS y
    FROM per_visitor
    ARRAY JOIN {currencies} AS currency
)
GROUP BY variant, currency
"""
    )


def _per_visitor_counts(guardrails: int) -> str:
    """Orders and, per guardrail ``g``, its numerator and denominator events per visitor,
    then their sums, squares and cross products per variant."""
    inner = ["countIf(event_type = 'purchase') AS orders"]
    outer = ["sum(orders) AS orders"]
    for g in range(guardrails):
        inner.append(f"countIf(has({{num_{g}:Array(String)}}, event_type)) AS num_{g}")
        inner.append(f"countIf(has({{den_{g}:Array(String)}}, event_type)) AS den_{g}")
        outer.append(
            f"sum(num_{g}), sum(den_{g}), sum(toInt128(num_{g}) * num_{g}), "
            f"sum(toInt128(den_{g}) * den_{g}), sum(toInt128(num_{g}) * den_{g})"
        )
    return (
        _VISITORS
        + _AFTER
        + f"""
SELECT variant, {", ".join(outer)}
FROM (
    SELECT variant, anonymous_id, {", ".join(inner)}
    FROM after
    GROUP BY variant, anonymous_id
)
GROUP BY variant
"""
    )


@dataclass(frozen=True, slots=True)
class RatioSums:
    """A guardrail of one variant: numerator and denominator events of its ``n`` exposed
    visitors, with the per-visitor squares and cross products (the delta method's input)."""

    n: int
    numerator: int
    denominator: int
    numerator_sq: int
    denominator_sq: int
    cross: int


@dataclass(frozen=True, slots=True)
class RevenueSums:
    """Revenue per exposed visitor in one currency: ``n`` visitors (zeros included), the
    sum and the sum of squares of their post-exposure revenue in minor units, and the
    purchases in that currency (``total / orders`` is the AOV)."""

    n: int
    total: int
    total_sq: int
    orders: int = 0

    @property
    def aov(self) -> float | None:
        return self.total / self.orders if self.orders else None


@dataclass(frozen=True, slots=True)
class CovariateSums:
    """CUPED's input in one variant (and currency): per exposed visitor the primary's
    value ``y`` and the pre-exposure covariate ``x``, summed with squares and products."""

    n: int
    total_y: int
    total_y_sq: int
    total_x: int
    total_x_sq: int
    total_xy: int


@dataclass(frozen=True, slots=True)
class VariantSums:
    variant: str
    exposed: int  # exposed and not mixed
    converted: int | None  # None unless the primary metric is a funnel step
    orders: int
    revenue: Mapping[str, RevenueSums]  # every currency seen in the experiment
    # Every guardrail metric by name (ExperimentDef.rates): the configured guardrails with
    # their events, the others with their default events (reported, never deciding).
    guardrails: Mapping[str, RatioSums]
    # Visitors whose credited attempt of the primary funnel, started at or after their
    # exposure, reached step k (index k - 1; up to the highest step reached). Funnel-step
    # primary only.
    reached: tuple[int, ...] = ()
    # With ``cuped`` configured: by currency ('' for a funnel-step primary).
    cuped: Mapping[str, CovariateSums] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExperimentSums:
    """One experiment's sufficient statistics, every configured variant in file order."""

    name: str
    variants: Mapping[str, VariantSums]
    mixed: int
    unknown: int
    unknown_values: Mapping[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Exposed, non-mixed visitors per variant: the sample-ratio check's input."""
        return {name: v.exposed for name, v in self.variants.items()}


def parameters(exp: ExperimentDef) -> dict[str, Any]:
    params: dict[str, Any] = {
        "experiment": exp.name,
        "variants": list(exp.variant_names),
        "exposure_event": exp.exposure.event or "",
    }
    if isinstance(exp.primary, FunnelStepMetric):
        params["funnel"] = exp.primary.funnel
        params["step"] = exp.primary.step
    if exp.cuped is not None:
        params["lookback"] = exp.cuped.lookback_ms
    if isinstance(exp.primary, RevenuePerUser) and exp.primary.currency is not None:
        params["currency"] = exp.primary.currency
    for g, guard in enumerate(exp.rates):
        params[f"num_{g}"] = list(guard.numerator_events)
        params[f"den_{g}"] = list(guard.denominator_events)
    return params


def queries(exp: ExperimentDef) -> dict[str, str]:
    """The SQL of each part of the readout (bound with :func:`parameters`)."""
    out = {
        "status": _STATUS,
        "counts": _per_visitor_counts(len(exp.rates)),
        "revenue": _REVENUE,
    }
    if isinstance(exp.primary, FunnelStepMetric):
        out["reached"] = _REACHED
    if exp.cuped is not None:
        out["cuped"] = (
            _CUPED_FUNNEL
            if isinstance(exp.primary, FunnelStepMetric)
            else _cuped_revenue(exp.cuped.covariate, exp.primary.currency is not None)
        )
    return out


def _reached(highest: Counter[int]) -> tuple[int, ...]:
    """Visitors reaching step k (any highest step >= k), k = 1 .. the highest reached."""
    top = max(highest, default=0)
    return tuple(sum(n for level, n in highest.items() if level >= k) for k in range(1, top + 1))


# Every join above is written with the exposed visitors (``units``) on the right, the side
# ClickHouse builds its hash table from. From 25.x the planner may swap the sides by its
# row estimates, and it put the funnel's attempts there instead: at 4.4 M events the
# ``reached`` query held 324 MB with the swap and 244 MB without (BENCHMARKS.md, "the
# monitors' reads bounded"). Servers from before the setting never swap; a read-only
# reader (the worker's SQL endpoint) may change no setting, and gets the planner's choice.
JOINS_AS_WRITTEN: Final[dict[str, Any]] = {"query_plan_join_swap_table": "false"}
_KNOWS_JOIN_SWAP: Final = (
    "SELECT count() FROM system.settings WHERE name = 'query_plan_join_swap_table' AND readonly = 0"
)


def join_settings(client: Any) -> dict[str, Any]:
    """``JOINS_AS_WRITTEN`` where the server has the setting and lets this client change
    it; none otherwise (an unknown or read-only setting would fail the query)."""
    known = int(client.query(_KNOWS_JOIN_SWAP).result_rows[0][0])
    return dict(JOINS_AS_WRITTEN) if known else {}


def experiment_sums(client: Any, exp: ExperimentDef) -> ExperimentSums:
    """Read one experiment's sufficient statistics from ClickHouse (``client``: a
    clickhouse-connect client on the pipeline's database)."""
    params = parameters(exp)
    sql = queries(exp)
    settings = join_settings(client)

    def rows(part: str) -> list[tuple[Any, ...]]:
        result = client.query(sql[part], parameters=params, settings=settings)
        return [tuple(r) for r in result.result_rows]

    exposed: Counter[str] = Counter()
    mixed = unknown = 0
    per_value: Counter[str] = Counter()
    for variant, is_exposed, is_mixed, visitors, with_unknown, (values, ns) in rows("status"):
        if is_exposed and not is_mixed:
            exposed[variant] += int(visitors)
        elif is_exposed:
            mixed += int(visitors)
        unknown += int(with_unknown)
        per_value.update(dict(zip(values, (int(n) for n in ns), strict=True)))
    unknown_values = {value: n for value, n in per_value.items() if n}
    counts = {row[0]: [int(v) for v in row[1:]] for row in rows("counts")}
    revenue: dict[tuple[str, str], tuple[int, int, int]] = {
        (variant, currency): (int(total), int(total_sq), int(orders))
        for variant, currency, total, total_sq, orders in rows("revenue")
    }
    currencies = sorted({currency for _, currency in revenue})
    highest: dict[str, Counter[int]] = {}
    if "reached" in sql:
        for variant, level, visitors in rows("reached"):
            highest.setdefault(variant, Counter())[int(level)] += int(visitors)
    cuped: dict[str, dict[str, CovariateSums]] = {}
    if "cuped" in sql:
        for variant, currency, *numbers in rows("cuped"):
            cuped.setdefault(variant, {})[currency] = CovariateSums(*(int(x) for x in numbers))
    variants: dict[str, VariantSums] = {}
    for name in exp.variant_names:
        n = exposed[name]
        sums = counts.get(name, [0] * (1 + 5 * len(exp.rates)))
        guards: dict[str, RatioSums] = {
            guard.metric: RatioSums(n, *sums[1 + 5 * g : 6 + 5 * g])
            for g, guard in enumerate(exp.rates)
        }
        reached = _reached(highest.get(name, Counter()))
        converted = None
        if isinstance(exp.primary, FunnelStepMetric):
            step = exp.primary.step
            converted = reached[step - 1] if len(reached) >= step else 0
        variants[name] = VariantSums(
            variant=name,
            exposed=n,
            converted=converted,
            reached=reached,
            orders=sums[0],
            revenue={c: RevenueSums(n, *revenue.get((name, c), (0, 0, 0))) for c in currencies},
            guardrails=guards,
            cuped=dict(sorted(cuped.get(name, {}).items())),
        )
    return ExperimentSums(
        name=exp.name,
        variants=variants,
        mixed=mixed,
        unknown=unknown,
        unknown_values=dict(sorted(unknown_values.items())),
    )


# -- the readout: what the statistics engine makes of the sums ----------------------------

# A sample-ratio mismatch stops the readout at this sequential p-value (GrowthBook and
# Optimizely use 0.001 too: a broken split must be certain, a false alarm stops a test).
SRM_ALPHA: Final = 0.001


@dataclass(frozen=True, slots=True)
class MetricReadout:
    """One metric of one treatment against the control: the always-valid result (running
    over every evaluation when ``previous`` results are folded in) and the fixed-horizon
    test of the same numbers, shown for comparison only."""

    metric: str  # primary | revenue_per_user (+ _cuped when adjusted) | a guardrail name
    currency: str  # revenue_per_user only
    always_valid: AlwaysValidResult
    fixed_horizon: FixedHorizonResult


@dataclass(frozen=True, slots=True)
class ExperimentReadout:
    exp: ExperimentDef
    sums: ExperimentSums
    srm_chi_square: SrmResult
    srm_sequential: SrmResult
    metrics: Mapping[str, tuple[MetricReadout, ...]]  # per treatment variant
    decision: Decision

    def key_of(self, variant: str, m: MetricReadout) -> tuple[str, str, str]:
        return (variant, m.metric, m.currency)


def ratio_moments(r: RatioSums) -> Moments:
    """A ratio of sums with the visitor as the unit (delta method): mean R = num / den,
    variance of the linearised per-visitor value (num_i - R den_i) / mean(den)."""
    n = r.n
    if r.denominator == 0:
        return Moments(n, 0.0, 0.0)
    ratio = r.numerator / r.denominator
    if n < 2:
        return Moments(n, ratio, 0.0)
    mean_den = r.denominator / n
    var_num = (r.numerator_sq - r.numerator**2 / n) / (n - 1)
    var_den = (r.denominator_sq - r.denominator**2 / n) / (n - 1)
    cov = (r.cross - r.numerator * r.denominator / n) / (n - 1)
    variance = (var_num - 2 * ratio * cov + ratio * ratio * var_den) / mean_den**2
    return Moments(n, ratio, max(variance, 0.0))


def _primary_stats(exp: ExperimentDef, v: VariantSums) -> dict[str, ProportionStats | MeanStats]:
    """The primary's input per currency ('' for a funnel step)."""
    if isinstance(exp.primary, FunnelStepMetric):
        return {"": ProportionStats(v.exposed, v.converted or 0)}
    currencies = [exp.primary.currency] if exp.primary.currency is not None else sorted(v.revenue)
    out: dict[str, ProportionStats | MeanStats] = {}
    for currency in currencies:
        r = v.revenue.get(currency, RevenueSums(v.exposed, 0, 0))
        out[currency] = MeanStats(r.n, float(r.total), float(r.total_sq))
    return out


def _compare(
    metric: str,
    currency: str,
    control: ProportionStats | MeanStats | Moments,
    treatment: ProportionStats | MeanStats | Moments,
    alpha: float,
    previous: AlwaysValidResult | None,
) -> MetricReadout:
    if isinstance(control, ProportionStats) and isinstance(treatment, ProportionStats):
        fixed = two_proportion_z_test(control, treatment, alpha)
    else:
        assert not isinstance(control, ProportionStats)
        assert not isinstance(treatment, ProportionStats)
        fixed = welch_z_test(control, treatment, alpha)
    current = always_valid_test(control, treatment, alpha, DEFAULT_MIXING)
    return MetricReadout(metric, currency, accumulate(previous, current), fixed)


def _breached(exp: ExperimentDef, readouts: tuple[MetricReadout, ...]) -> list[Guardrail]:
    """Guardrails significantly worse (beyond their threshold, if any), as ``decide``
    takes them."""
    out = []
    for guard in exp.guardrails:
        m = next(r for r in readouts if r.metric == guard.metric)
        side = significant_direction(m.always_valid, float(exp.alpha))
        if side is None or (guard.direction == "increase" and side != "increase"):
            continue
        rel = m.always_valid.relative_ci
        if guard.threshold is not None:
            beyond = rel is not None and (
                rel.low > guard.threshold if side == "increase" else rel.high < -guard.threshold
            )
            if not beyond:
                continue
        out.append(Guardrail(guard.metric, m.always_valid, side))
    return out


def _cuped_moments(sums: ExperimentSums) -> dict[str, dict[str, Moments]]:
    """Per currency ('' for a funnel step): every variant's CUPED-adjusted moments."""
    by_currency: dict[str, dict[str, CovariateStats]] = {}
    for name, v in sums.variants.items():
        for currency, c in v.cuped.items():
            by_currency.setdefault(currency, {})[name] = CovariateStats(
                c.n,
                float(c.total_y),
                float(c.total_y_sq),
                float(c.total_x),
                float(c.total_x_sq),
                float(c.total_xy),
            )
    return {
        currency: dict(cuped_adjust(variants).adjusted)
        for currency, variants in by_currency.items()
    }


def readout(
    exp: ExperimentDef,
    sums: ExperimentSums,
    previous: Mapping[tuple[str, str, str], AlwaysValidResult] | None = None,
    previous_srm_p: float = 1.0,
) -> ExperimentReadout:
    """Every treatment against the control. ``previous``: the last evaluation's
    always-valid results by (variant, metric, currency), folded in (running minimum
    p-value, intersected intervals); ``previous_srm_p``: the sequential SRM's last p."""
    alpha = float(exp.alpha)
    weights = {v.name: float(v.weight) for v in exp.variants}
    counts = sums.counts()
    chi = srm_chi_square(counts, weights)
    seq = srm_sequential(counts, weights, previous_p_value=max(previous_srm_p, 1e-300))
    control = sums.variants[exp.control]
    metrics: dict[str, tuple[MetricReadout, ...]] = {}
    decisions = []
    for name in exp.treatments:
        v = sums.variants[name]
        prev = previous or {}
        rows: list[MetricReadout] = []
        control_primary = _primary_stats(exp, control)
        treatment_primary = _primary_stats(exp, v)
        metric = "primary" if isinstance(exp.primary, FunnelStepMetric) else "revenue_per_user"
        for currency in sorted(set(control_primary) | set(treatment_primary)):
            empty = MeanStats(0, 0.0, 0.0)
            rows.append(
                _compare(
                    metric,
                    currency,
                    control_primary.get(currency, empty),
                    treatment_primary.get(currency, empty),
                    alpha,
                    prev.get((name, metric, currency)),
                )
            )
        primaries = list(rows)
        if exp.cuped is not None:
            # The adjusted primary decides; the raw one stays beside it.
            primaries = [
                _compare(
                    f"{metric}_cuped",
                    currency,
                    adjusted[exp.control],
                    adjusted[name],
                    alpha,
                    prev.get((name, f"{metric}_cuped", currency)),
                )
                for currency, adjusted in _cuped_moments(sums).items()
                if exp.control in adjusted and name in adjusted
            ] or primaries
            rows.extend(p for p in primaries if p.metric.endswith("_cuped"))
        for guard in exp.guardrails:
            rows.append(
                _compare(
                    guard.metric,
                    "",
                    ratio_moments(control.guardrails[guard.metric]),
                    ratio_moments(v.guardrails[guard.metric]),
                    alpha,
                    prev.get((name, guard.metric, "")),
                )
            )
        metrics[name] = tuple(rows)
        breached = _breached(exp, metrics[name])
        # With revenue per user in several currencies, the first currency (by code) with
        # a significant result decides; else the first one's "no decision yet".
        per_currency = [
            decide(
                variant=name,
                primary=p.always_valid,
                alpha=alpha,
                primary_metric=p.metric if not p.currency else f"{p.metric}:{p.currency}",
                guardrails=breached,
                srm=seq,
                srm_alpha=SRM_ALPHA,
            )
            for p in primaries
        ] or [
            Decision(Verdict.NONE, name, None, "no primary data yet"),
        ]
        decisions.append(
            next((d for d in per_currency if d.verdict != Verdict.NONE), per_currency[0])
        )
    order = [Verdict.SRM, Verdict.GUARDRAIL_BREACH, Verdict.LOSE, Verdict.WIN, Verdict.NONE]
    decision = (
        min(decisions, key=lambda d: order.index(d.verdict))
        if decisions
        else Decision(Verdict.NONE, None, None, "no treatment variant")
    )
    return ExperimentReadout(exp, sums, chi, seq, metrics, decision)
