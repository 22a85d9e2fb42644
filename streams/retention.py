"""Retention cohorts and time between orders (docs/semantics.md section 6).

A visitor contributes 1 to every (cohort, period N, activity) cell it is active in; the
partition's totals are the sums. Periods are UTC days, ISO weeks (Monday) and calendar
months, identified by the epoch milliseconds of their start.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

from streams.lifecycle import DAY_MS, Purchase

GRANULARITIES = ("day", "week", "month")
MAX_PERIOD = {"day": 30, "week": 12, "month": 12}
ACTIVITIES = ("visit", "purchase", "repeat_purchase")
GAP_BUCKETS_DAYS: tuple[float, ...] = (1, 3, 7, 14, 30, 60, 90, 180, float("inf"))
RETENTION_FAMILY = {g: f"retention:{g}" for g in GRANULARITIES}
GAPS_FAMILY = "order_gaps"


def day_of(t: int) -> int:
    """Epoch day number (UTC)."""
    return t // DAY_MS


def _date(day: int) -> date:
    return date(1970, 1, 1) + timedelta(days=day)


def date_ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * 1000


def period_start(day: int, granularity: str) -> date:
    d = _date(day)
    if granularity == "day":
        return d
    if granularity == "week":
        return d - timedelta(days=d.weekday())
    return d.replace(day=1)


def period_index(cohort: date, day: int, granularity: str) -> int:
    """How many periods after ``cohort`` the period holding ``day`` starts."""
    start = period_start(day, granularity)
    if granularity == "day":
        return (start - cohort).days
    if granularity == "week":
        return (start - cohort).days // 7
    return (start.year - cohort.year) * 12 + start.month - cohort.month


def add_periods(cohort: date, n: int, granularity: str) -> date:
    if granularity == "day":
        return cohort + timedelta(days=n)
    if granularity == "week":
        return cohort + timedelta(weeks=n)
    months = cohort.month - 1 + n
    return date(cohort.year + months // 12, months % 12 + 1, 1)


def current_period_ms(watermark: int, granularity: str) -> int:
    """Start of the period holding the watermark: earlier periods are final."""
    return date_ms(period_start(day_of(watermark), granularity))


def activity_days(visit_days: list[int], purchases: list[Purchase]) -> dict[str, set[int]]:
    ordered = sorted(purchases, key=lambda p: (p.t, p.transaction_id))
    return {
        "visit": set(visit_days),
        "purchase": {day_of(p.t) for p in ordered},
        "repeat_purchase": {day_of(p.t) for p in ordered[1:]},
    }


def retention_cells(
    first_visit_t: int | None,
    visit_days: list[int],
    purchases: list[Purchase],
    channel: str,
    platform: str,
) -> list[tuple[str, str, int, str, int, int]]:
    """(cohort kind, granularity, cohort start ms, activity, N, activity period start ms)."""
    if first_visit_t is None:
        return []
    days = activity_days(visit_days, purchases)
    anchors = {"first_visit": day_of(first_visit_t)}
    if purchases:
        anchors["first_purchase"] = day_of(min((p.t, p.transaction_id) for p in purchases)[0])
    cells: list[tuple[str, str, int, str, int, int]] = []
    for kind, anchor in anchors.items():
        for granularity in GRANULARITIES:
            cohort = period_start(anchor, granularity)
            cohort_ms = date_ms(cohort)
            limit = MAX_PERIOD[granularity]
            for activity in ACTIVITIES:
                periods = {period_index(cohort, d, granularity) for d in days[activity]}
                for n in sorted(p for p in periods if 0 <= p <= limit):
                    start_ms = date_ms(add_periods(cohort, n, granularity))
                    cells.append((kind, granularity, cohort_ms, activity, n, start_ms))
    return cells


def _gap_bucket(gap_ms: int) -> float:
    days = gap_ms / DAY_MS
    for upper in GAP_BUCKETS_DAYS:
        if days <= upper:
            return upper
    return GAP_BUCKETS_DAYS[-1]


def order_gaps(purchases: list[Purchase]) -> list[tuple[int, str, float]]:
    """(day start ms of the later purchase, its channel, gap bucket) per repeat purchase."""
    ordered = sorted(purchases, key=lambda p: (p.t, p.transaction_id))
    return [
        (day_of(later.t) * DAY_MS, later.channel, _gap_bucket(later.t - earlier.t))
        for earlier, later in itertools.pairwise(ordered)
    ]
