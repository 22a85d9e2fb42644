"""Everything the HTML report shows, read from the store once.

The numbers come from the report readers the terminal reports use
(``reports/queries.py``, ``reports/attribution.py``, ``reports/experiment_readout.py``).
Four small readers are added here for what no terminal report shows yet, each one query
over a table or view of the migrations: conversion per time bucket
(``v_funnel_steps_hour`` / ``v_funnel_steps_day``), the time-to-convert histogram
(``funnel_ttc_minute``), stage-to-stage flows (``segment_transitions``), dead letters
per reason and late events per time bucket.

A section whose tables cannot be read (a store migrated before them, an engine error) is
left empty with the reason in :attr:`ReportData.problems`; the page says so where the
section would be.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, Final, Literal, TypeVar

from reports import attribution as attr
from reports import queries
from reports.experiment_readout import ExperimentReadout, experiment_sums, readout
from streams.experiments import ExperimentDef
from streams.funnels import Breakdown

Bucket = Literal["hour", "day"]
T = TypeVar("T")

# Histogram upper bounds of funnel_ttc_minute (streams/outputs/funnel_ttc.py), seconds.
TTC_BUCKETS_S: Final = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 86400, math.inf)
RETENTION_COHORTS: Final = 14  # the latest cohorts shown
RETENTION_PERIODS: Final = 15  # periods 0 .. 14
SEGMENT_DAYS: Final = 60
ATTRIBUTION_DAYS: Final = 30
# Above this span of event time the time series are per day, else per hour.
HOURLY_UP_TO: Final = timedelta(days=3)


def _utc(value: datetime | date) -> datetime:
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- the readers added here -----------------------------------------------------------------

SPAN_SQL: Final = "SELECT min(window_start), max(window_start), count() FROM funnel_steps_minute"

CONVERSION_SQL: Final = {
    "hour": """
        SELECT funnel, hour AS bucket, step, sum(entered)
        FROM v_funnel_steps_hour GROUP BY funnel, bucket, step ORDER BY funnel, bucket, step
    """,
    "day": """
        SELECT funnel, day AS bucket, step, sum(entered)
        FROM v_funnel_steps_day GROUP BY funnel, bucket, step ORDER BY funnel, bucket, step
    """,
}

TTC_SQL: Final = """
SELECT funnel, le_seconds, sum(converted)
FROM funnel_ttc_minute FINAL
GROUP BY funnel, le_seconds ORDER BY funnel, le_seconds
"""

FLOWS_SQL: Final = """
SELECT from_stage, to_stage, count()
FROM segment_transitions FINAL
GROUP BY from_stage, to_stage ORDER BY count() DESC, from_stage, to_stage
"""

DEAD_LETTERS_SQL: Final = """
SELECT reason, count() FROM dead_letters FINAL GROUP BY reason ORDER BY count() DESC, reason
"""

LATE_EVENTS_SQL: Final = {
    "hour": "SELECT toStartOfHour(event_time) AS bucket, count() FROM late_events FINAL "
    "GROUP BY bucket ORDER BY bucket",
    "day": "SELECT toDate(event_time) AS bucket, count() FROM late_events FINAL "
    "GROUP BY bucket ORDER BY bucket",
}


FIRST_DAY_SQL: Final = "SELECT min(day) FROM v_attribution_daily"


def attribution_days(client: Any) -> attr.DayRange | None:
    """Every day with an attributed order, refund or cost, the latest ATTRIBUTION_DAYS
    at most (None: no such day)."""
    newest = attr.newest_day(client)
    if newest is None:
        return None
    latest = attr.day_range(None, None, newest, ATTRIBUTION_DAYS)
    assert latest is not None
    first = client.query(FIRST_DAY_SQL).result_rows[0][0]
    return attr.DayRange(max(latest.start, first), latest.end)


def time_bucket(client: Any) -> Bucket:
    """Per hour when the funnels span at most three days of event time, else per day."""
    low, high, count = client.query(SPAN_SQL).result_rows[0]
    if not count:
        return "hour"
    return "hour" if _utc(high) - _utc(low) <= HOURLY_UP_TO else "day"


@dataclass(frozen=True, slots=True)
class ConversionPoint:
    """Entities of one time bucket (by the minute of their step 1) entering the first
    and the last step; ``rate`` None: nobody entered."""

    bucket: datetime
    entered: int
    converted: int

    @property
    def rate(self) -> float | None:
        return self.converted / self.entered if self.entered else None


def conversion_over_time(
    client: Any, bucket: Bucket, last_step: Mapping[str, int]
) -> dict[str, list[ConversionPoint]]:
    """Per funnel (of ``last_step``: each funnel's number of steps), a point per bucket
    with any entity, in time order."""
    cells: dict[str, dict[datetime, list[int]]] = {}
    for funnel, at, step, entered in client.query(CONVERSION_SQL[bucket]).result_rows:
        name = str(funnel)
        if name not in last_step:
            continue
        cell = cells.setdefault(name, {}).setdefault(_utc(at), [0, 0])
        if int(step) == 1:
            cell[0] += int(entered)
        if int(step) == last_step[name]:
            cell[1] += int(entered)
    return {
        name: [ConversionPoint(at, first, last) for at, (first, last) in sorted(points.items())]
        for name, points in sorted(cells.items())
    }


def ttc_histogram(client: Any) -> dict[str, list[tuple[float, int]]]:
    """Per funnel: converted entities per time-to-convert bucket (upper bound, seconds),
    every bucket from the first to the last one with an entity."""
    counts: dict[str, dict[float, int]] = {}
    for funnel, le, converted in client.query(TTC_SQL).result_rows:
        counts.setdefault(str(funnel), {})[float(le)] = int(converted)
    out: dict[str, list[tuple[float, int]]] = {}
    for funnel, by_le in sorted(counts.items()):
        used = [i for i, le in enumerate(TTC_BUCKETS_S) if by_le.get(float(le), 0)]
        if not used:
            continue
        out[funnel] = [
            (float(le), by_le.get(float(le), 0)) for le in TTC_BUCKETS_S[used[0] : used[-1] + 1]
        ]
    return out


def stage_flows(client: Any) -> list[tuple[str, str, int]]:
    """(from stage, to stage, buyers moved) over all stored time, the largest first."""
    return [(str(a), str(b), int(n)) for a, b, n in client.query(FLOWS_SQL).result_rows]


def dead_letter_reasons(client: Any) -> list[tuple[str, int]]:
    return [(str(r), int(n)) for r, n in client.query(DEAD_LETTERS_SQL).result_rows]


def late_events_over_time(client: Any, bucket: Bucket) -> list[tuple[datetime, int]]:
    """Late events per bucket of their event time, every bucket from the first to the
    last (0 where none)."""
    rows = [(_utc(at), int(n)) for at, n in client.query(LATE_EVENTS_SQL[bucket]).result_rows]
    if not rows:
        return []
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    found = dict(rows)
    out, at = [], rows[0][0]
    while at <= rows[-1][0]:
        out.append((at, found.get(at, 0)))
        at += step
    return out


# -- what the page shows --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FunnelData:
    name: str
    steps: list[queries.FunnelStepRow]
    overall: queries.Timing
    breakdown: Breakdown | None
    by_breakdown: list[tuple[tuple[str, ...], list[int]]]
    by_channel: list[tuple[str, list[int]]]
    ttc: list[tuple[float, int]]


@dataclass(frozen=True, slots=True)
class RetentionData:
    cohort_kind: str
    granularity: str
    activity: str
    cohorts: list[queries.RetentionCohort]


@dataclass(frozen=True, slots=True)
class LifecycleData:
    rfm: queries.RfmSummary
    daily: list[queries.DailySegments]
    flows: list[tuple[str, str, int]]
    triggers: dict[str, int]


@dataclass(frozen=True, slots=True)
class AttributionData:
    model: str
    days: attr.DayRange | None
    roas: list[attr.ChannelRoas]


@dataclass
class ReportData:
    source: str
    generated_at: datetime
    bucket: Bucket = "hour"
    kpis: list[queries.KpiRow] = field(default_factory=list)
    pipeline: dict[str, int] = field(default_factory=dict)
    funnels: list[FunnelData] = field(default_factory=list)
    conversion: dict[str, list[ConversionPoint]] = field(default_factory=dict)
    retention: RetentionData | None = None
    lifecycle: LifecycleData | None = None
    experiments: list[ExperimentReadout] = field(default_factory=list)
    attribution: AttributionData | None = None
    dead_letters: list[tuple[str, int]] = field(default_factory=list)
    late_events: list[tuple[datetime, int]] = field(default_factory=list)
    # section -> why it could not be read (the page shows it in the section's place)
    problems: dict[str, str] = field(default_factory=dict)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def retention_granularity(client: Any, cohort_kind: str) -> str:
    """``day`` when there are at most RETENTION_COHORTS daily cohorts, else ``week``
    (``month`` beyond as many weeks)."""
    for granularity in ("day", "week"):
        count = client.query(
            "SELECT uniqExact(cohort_start) FROM retention_cohorts "
            "WHERE cohort_kind = {kind:String} AND granularity = {g:String}",
            parameters={"kind": cohort_kind, "g": granularity},
        ).result_rows[0][0]
        if int(count) <= RETENTION_COHORTS:
            return granularity
    return "month"


def _readout(client: Any, exp: ExperimentDef) -> ExperimentReadout:
    return readout(exp, experiment_sums(client, exp))


def collect(
    client: Any,
    *,
    source: str,
    breakdowns: Mapping[str, Breakdown] | None = None,
    experiments: Sequence[ExperimentDef] = (),
    model: str = attr.DEFAULT_MODEL,
    cohort_kind: str = "first_visit",
    granularity: str | None = None,
    activity: str | None = None,
    now: datetime | None = None,
) -> ReportData:
    """Read every section. ``granularity`` None: :func:`retention_granularity`;
    ``activity`` None: visit for first-visit cohorts, purchase for first-purchase ones."""
    attr.check_model(model)
    data = ReportData(source=source, generated_at=now or datetime.now(UTC))
    known = dict(breakdowns or {})

    def section(name: str, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except Exception as exc:  # a store without the tables yet, or an engine error
            data.problems[name] = _first_line(exc)
            return None

    data.bucket = section("funnels", lambda: time_bucket(client)) or "hour"

    def overview() -> None:
        data.kpis = queries.kpis(client)
        data.pipeline = queries.pipeline_counts(client)

    section("overview", overview)

    def funnels() -> None:
        rows = queries.funnel_steps(client)
        histograms = ttc_histogram(client)
        for name in sorted({r.funnel for r in rows}):
            data.funnels.append(
                FunnelData(
                    name=name,
                    steps=[r for r in rows if r.funnel == name],
                    overall=queries.time_to_convert_overall(client, name),
                    breakdown=known.get(name),
                    by_breakdown=queries.funnel_by_breakdown(client, name),
                    by_channel=queries.funnel_by_channel(client, name),
                    ttc=histograms.get(name, []),
                )
            )
        last = {f.name: max(r.step for r in f.steps) for f in data.funnels}
        data.conversion = conversion_over_time(client, data.bucket, last)

    section("funnels", funnels)

    def retention() -> RetentionData:
        chosen = activity or ("visit" if cohort_kind == "first_visit" else "purchase")
        gran = granularity or retention_granularity(client, cohort_kind)
        cohorts = queries.retention_triangle(client, cohort_kind, gran, chosen)
        return RetentionData(cohort_kind, gran, chosen, cohorts[-RETENTION_COHORTS:])

    data.retention = section("retention", retention)

    def lifecycle() -> LifecycleData:
        return LifecycleData(
            queries.rfm_summary(client),
            queries.segment_sizes(client, SEGMENT_DAYS),
            stage_flows(client),
            queries.trigger_counts(client),
        )

    data.lifecycle = section("lifecycle", lifecycle)

    for exp in experiments:
        result = section(f"experiment {exp.name}", partial(_readout, client, exp))
        if result is not None:
            data.experiments.append(result)

    def attribution() -> AttributionData:
        days = attribution_days(client)
        roas = attr.roas_by_channel(client, days) if days is not None else []
        return AttributionData(model, days, roas)

    data.attribution = section("attribution", attribution)
    data.dead_letters = section("dead letters", lambda: dead_letter_reasons(client)) or []
    data.late_events = (
        section("late events", lambda: late_events_over_time(client, data.bucket)) or []
    )
    return data
