"""Read-side queries over the ClickHouse views (used by `funnel report`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from reports.errors import ReportError


@dataclass(frozen=True, slots=True)
class FunnelStepRow:
    funnel: str
    step: int
    step_name: str
    entered: int
    conversion_from_previous: float | None
    conversion_from_first: float | None


@dataclass(frozen=True, slots=True)
class KpiRow:
    currency: str
    orders: int
    gmv_minor: int
    aov_minor: float | None
    refunds: int
    refunded_minor: int
    coupon_orders: int
    first_orders: int
    repeat_orders: int
    payment_failures: int


def funnel_steps(
    client: Any, funnel: str | None = None, channel: str | None = None
) -> list[FunnelStepRow]:
    """Entered per step over all stored windows, with step conversion."""
    where, params = [], {}
    if funnel:
        where.append("funnel = {funnel:String}")
        params["funnel"] = funnel
    if channel:
        where.append("channel = {channel:String}")
        params["channel"] = channel
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = client.query(
        f"""
        SELECT funnel, step, any(step_name), sum(entered) AS entered
        FROM funnel_steps_minute FINAL {clause}
        GROUP BY funnel, step ORDER BY funnel, step
        """,
        parameters=params,
    ).result_rows
    out: list[FunnelStepRow] = []
    first: dict[str, int] = {}
    previous: dict[str, int] = {}
    for name, step, step_name, entered in rows:
        entered = int(entered)
        if step == 1:
            first[name] = entered
        prev = previous.get(name)
        out.append(
            FunnelStepRow(
                name,
                int(step),
                step_name,
                entered,
                entered / prev if step > 1 and prev else None,
                entered / first[name] if step > 1 and first.get(name) else None,
            )
        )
        previous[name] = entered
    return out


def funnel_by_channel(client: Any, funnel: str) -> list[tuple[str, list[int]]]:
    rows = client.query(
        """
        SELECT channel, step, sum(entered) FROM funnel_steps_minute FINAL
        WHERE funnel = {funnel:String} GROUP BY channel, step ORDER BY channel, step
        """,
        parameters={"funnel": funnel},
    ).result_rows
    by_channel: dict[str, list[int]] = {}
    for channel, step, entered in rows:
        steps = by_channel.setdefault(channel, [])
        while len(steps) < step:
            steps.append(0)
        steps[step - 1] = int(entered)
    return sorted(by_channel.items(), key=lambda item: -(item[1][0] if item[1] else 0))


def kpis(client: Any) -> list[KpiRow]:
    rows = client.query(
        """
        SELECT currency, sum(orders), sum(gmv_minor), sum(refunds), sum(refunded_minor),
               sum(coupon_orders), sum(first_orders), sum(repeat_orders), sum(payment_failures)
        FROM kpi_minute FINAL GROUP BY currency ORDER BY sum(gmv_minor) DESC
        """
    ).result_rows
    return [
        KpiRow(
            currency or "-",
            int(o),
            int(g),
            (int(g) / int(o)) if o else None,
            int(r),
            int(rv),
            int(c),
            int(f),
            int(rp),
            int(pf),
        )
        for currency, o, g, r, rv, c, f, rp, pf in rows
    ]


def pipeline_counts(client: Any) -> dict[str, int]:
    queries = {
        "events (raw, unique)": "SELECT count() FROM events_raw FINAL",
        "late events": "SELECT count() FROM late_events FINAL",
        "dead letters": "SELECT count() FROM dead_letters FINAL",
    }
    return {label: int(client.query(sql).result_rows[0][0]) for label, sql in queries.items()}


# -- retention, lifecycle segments and triggers (docs/semantics.md §6-§8) ------------------

RETENTION_MAX_PERIOD: Final = {"day": 30, "week": 12, "month": 12}
STAGE_ORDER: Final = ("new", "active", "dormant", "churned")


@dataclass(frozen=True, slots=True)
class RetentionCohort:
    """One row of a retention triangle: ``users[n]`` active in period n (0 = the cohort's
    own period). Only periods that have started by the latest cohort are listed, so a
    young cohort has a short row instead of misleading zeros."""

    cohort_start: date
    cohort_size: int
    users: tuple[int, ...]

    def rate(self, period: int) -> float | None:
        if period >= len(self.users) or not self.cohort_size:
            return None
        return self.users[period] / self.cohort_size


def _periods_between(start: date, end: date, granularity: str) -> int:
    if granularity == "day":
        return (end - start).days
    if granularity == "week":
        return (end - start).days // 7
    return (end.year * 12 + end.month) - (start.year * 12 + start.month)


def retention_triangle(
    client: Any, cohort_kind: str, granularity: str, activity: str
) -> list[RetentionCohort]:
    """Cohorts (oldest first) of ``v_retention_triangle`` for one kind, granularity and
    activity, summed over channels and platforms. Every cohort is listed, also one with
    no row of ``activity`` (all zeros)."""
    if granularity not in RETENTION_MAX_PERIOD:
        raise ReportError(
            f"unknown retention granularity {granularity!r}: use one of "
            f"{', '.join(RETENTION_MAX_PERIOD)}"
        )
    params = {"kind": cohort_kind, "granularity": granularity, "activity": activity}
    latest_row = client.query(
        "SELECT max(cohort_start), count() FROM retention_cohorts "
        "WHERE granularity = {granularity:String}",
        parameters=params,
    ).result_rows[0]
    if not latest_row[1]:
        return []
    latest: date = latest_row[0]
    rows = client.query(
        """
        SELECT cohort_start, any(cohort_size),
               groupArrayIf((period, users), activity = {activity:String})
        FROM v_retention_triangle
        WHERE cohort_kind = {kind:String} AND granularity = {granularity:String}
        GROUP BY cohort_start ORDER BY cohort_start
        """,
        parameters=params,
    ).result_rows
    out: list[RetentionCohort] = []
    for cohort_start, size, cells in rows:
        started = _periods_between(cohort_start, latest, granularity)
        length = max(0, min(started, RETENTION_MAX_PERIOD[granularity])) + 1
        users = [0] * length
        for period, count in cells:
            if period < length:
                users[period] = int(count)
        out.append(RetentionCohort(cohort_start, int(size or 0), tuple(users)))
    return out


@dataclass(frozen=True, slots=True)
class DailySegments:
    """Buyers per lifecycle stage at the end of ``day`` (every stage present, 0 if none)."""

    day: date
    sizes: dict[str, int]


def segment_sizes(client: Any, days: int = 7) -> list[DailySegments]:
    """The latest ``days`` days with a stage transition, from ``v_segment_sizes_daily``.

    The view has a row only for the days a stage changed; the size of a stage on any
    other day is its latest earlier size, so each listed day shows every stage."""
    rows = client.query(
        "SELECT day, stage, users FROM v_segment_sizes_daily ORDER BY day, stage"
    ).result_rows
    current = dict.fromkeys(STAGE_ORDER, 0)
    by_day: list[DailySegments] = []
    for day, stage, users in rows:
        current[stage] = int(users)
        if by_day and by_day[-1].day == day:
            by_day[-1] = DailySegments(day, dict(current))
        else:
            by_day.append(DailySegments(day, dict(current)))
    return by_day[-days:] if days > 0 else []


@dataclass(frozen=True, slots=True)
class StageSummary:
    stage: str
    buyers: int
    share: float
    avg_frequency: float
    avg_recency_days: float


@dataclass(frozen=True, slots=True)
class ScoreCounts:
    """Buyers with this quintile score (5 = best) on each RFM axis."""

    score: int
    recency: int
    frequency: int
    monetary: int


@dataclass(frozen=True, slots=True)
class RfmSummary:
    buyers: int
    as_of: datetime | None
    stages: list[StageSummary]
    scores: list[ScoreCounts]


def rfm_summary(client: Any) -> RfmSummary:
    """Current buyers per lifecycle stage and the RFM quintile distribution
    (``user_rfm`` through ``v_rfm_scores``)."""
    total, as_of = client.query("SELECT count(), max(as_of) FROM user_rfm FINAL").result_rows[0]
    if not total:
        return RfmSummary(0, None, [], [])
    stage_rows = client.query(
        """
        SELECT stage, count(), avg(frequency), avg(recency_days)
        FROM v_rfm_scores GROUP BY stage
        """
    ).result_rows
    known = {row[0]: row for row in stage_rows}
    ordered = [s for s in STAGE_ORDER if s in known] + sorted(set(known) - set(STAGE_ORDER))
    stages = [
        StageSummary(
            stage,
            int(known[stage][1]),
            int(known[stage][1]) / int(total),
            float(known[stage][2]),
            float(known[stage][3]),
        )
        for stage in ordered
    ]
    score_rows = client.query(
        """
        SELECT s.score, countIf(r_score = s.score), countIf(f_score = s.score),
               countIf(m_score = s.score)
        FROM v_rfm_scores CROSS JOIN (SELECT arrayJoin([1, 2, 3, 4, 5]) AS score) AS s
        GROUP BY s.score ORDER BY s.score DESC
        """
    ).result_rows
    scores = [ScoreCounts(int(s), int(r), int(f), int(m)) for s, r, f, m in score_rows]
    return RfmSummary(int(total), as_of, stages, scores)


def trigger_counts(client: Any) -> dict[str, int]:
    """Marketing triggers written so far, per type."""
    rows = client.query(
        "SELECT trigger_type, count() FROM triggers FINAL GROUP BY trigger_type ORDER BY 1"
    ).result_rows
    return {str(kind): int(n) for kind, n in rows}


# -- funnel timing and breakdowns: exact SQL over funnel_attempts (docs/semantics.md 3) --

# Credited entities now: a superseded credit is a row with attempts = 0.
_ATTEMPTS = "SELECT * FROM funnel_attempts FINAL WHERE attempts > 0"


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds between two points of the credited attempts: how many, mean, median."""

    entities: int
    avg_s: float | None
    median_s: float | None


def _timing(count: Any, avg_ms: Any, median_ms: Any) -> Timing:
    n = int(count)
    if not n:
        return Timing(0, None, None)
    return Timing(n, float(avg_ms) / 1000, float(median_ms) / 1000)


def step_timings(client: Any, funnel: str | None = None) -> dict[tuple[str, int], Timing]:
    """Per (funnel, step k >= 2): time from step k-1 to step k over entities that reached
    step k. The median is the conventional one (mean of the two middle values)."""
    clause = "AND funnel = {funnel:String}" if funnel else ""
    rows = client.query(
        f"""
        SELECT funnel, k, count(), avg(d), quantileExactInclusive(0.5)(d)
        FROM (
            SELECT funnel, arrayJoin(arrayEnumerate(step_times)) AS k,
                   if(k = 1, 0, toUnixTimestamp64Milli(step_times[k])
                                - toUnixTimestamp64Milli(step_times[k - 1])) AS d
            FROM ({_ATTEMPTS} {clause})
        )
        WHERE k > 1
        GROUP BY funnel, k ORDER BY funnel, k
        """,
        parameters={"funnel": funnel} if funnel else {},
    ).result_rows
    return {(str(name), int(k)): _timing(n, avg, med) for name, k, n, avg, med in rows}


def time_to_convert(
    client: Any, funnel: str | None = None
) -> dict[tuple[str, tuple[str, ...]], Timing]:
    """Per (funnel, breakdown): time from step 1 to the last step of converted entities."""
    clause = "AND funnel = {funnel:String}" if funnel else ""
    rows = client.query(
        f"""
        SELECT funnel, breakdown, count(), avg(d), quantileExactInclusive(0.5)(d)
        FROM (
            SELECT funnel, breakdown,
                   toUnixTimestamp64Milli(step_times[-1])
                   - toUnixTimestamp64Milli(step_times[1]) AS d
            FROM ({_ATTEMPTS} AND outcome = 'converted' {clause})
        )
        GROUP BY funnel, breakdown ORDER BY funnel, breakdown
        """,
        parameters={"funnel": funnel} if funnel else {},
    ).result_rows
    return {
        (str(name), tuple(breakdown)): _timing(n, avg, med) for name, breakdown, n, avg, med in rows
    }


def time_to_convert_overall(client: Any, funnel: str) -> Timing:
    """Time from step 1 to the last step of ``funnel``'s converted entities."""
    ((n, avg, med),) = client.query(
        f"""
        SELECT count(), avg(d), quantileExactInclusive(0.5)(d)
        FROM (
            SELECT toUnixTimestamp64Milli(step_times[-1])
                   - toUnixTimestamp64Milli(step_times[1]) AS d
            FROM ({_ATTEMPTS} AND outcome = 'converted' AND funnel = {{funnel:String}})
        )
        """,
        parameters={"funnel": funnel},
    ).result_rows
    return _timing(n, avg, med)


def funnel_by_breakdown(client: Any, funnel: str) -> list[tuple[tuple[str, ...], list[int]]]:
    """Entered per step for each breakdown value of ``funnel`` (largest first)."""
    rows = client.query(
        """
        SELECT breakdown, step, sum(entered) FROM funnel_steps_minute FINAL
        WHERE funnel = {funnel:String} AND notEmpty(breakdown)
        GROUP BY breakdown, step ORDER BY breakdown, step
        """,
        parameters={"funnel": funnel},
    ).result_rows
    by_value: dict[tuple[str, ...], list[int]] = {}
    for breakdown, step, entered in rows:
        steps = by_value.setdefault(tuple(breakdown), [])
        while len(steps) < step:
            steps.append(0)
        steps[step - 1] = int(entered)
    return sorted(by_value.items(), key=lambda item: (-(item[1][0] if item[1] else 0), item[0]))
