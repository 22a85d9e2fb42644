"""Retention cohorts and time between orders (docs/semantics.md section 6).

A visitor contributes 1 to every (cohort, period N, activity) cell it is active in; the
partition's totals are the sums. Periods are UTC days, ISO weeks (Monday) and calendar
months, identified by the epoch milliseconds of their start.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

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
    ordered = sorted(purchases, key=lambda p: (p.t, p.transaction_id))
    purchase_days = tuple([day_of(p.t) for p in ordered])
    return list(_cells_of_days(day_of(first_visit_t), tuple(visit_days), purchase_days))


@lru_cache(maxsize=4096)
def _cells_of_days(
    first_visit_day: int, visit_days: tuple[int, ...], purchase_days: tuple[int, ...]
) -> tuple[tuple[str, str, int, str, int, int], ...]:
    """:func:`retention_cells` from the days alone (purchase days in purchase order):
    visitors active on the same days have the same cells."""
    days = {
        "visit": set(visit_days),
        "purchase": set(purchase_days),
        "repeat_purchase": set(purchase_days[1:]),
    }
    anchors = {"first_visit": first_visit_day}
    if purchase_days:
        anchors["first_purchase"] = purchase_days[0]
    cells: list[tuple[str, str, int, str, int, int]] = []
    for kind, anchor in anchors.items():
        for granularity in GRANULARITIES:
            # Epoch-day arithmetic, equal to period_start/period_index/add_periods/date_ms
            # (tests/unit/test_retention_days.py).
            limit = MAX_PERIOD[granularity]
            if granularity == "day":
                cohort_ms = anchor * DAY_MS
                for activity in ACTIVITIES:
                    periods = {d - anchor for d in days[activity]}
                    for n in sorted(p for p in periods if 0 <= p <= limit):
                        cells.append(
                            (kind, granularity, cohort_ms, activity, n, (anchor + n) * DAY_MS)
                        )
            elif granularity == "week":
                cohort_day = anchor - (anchor + 3) % 7  # epoch day 0 is a Thursday
                cohort_ms = cohort_day * DAY_MS
                for activity in ACTIVITIES:
                    periods = {(d - cohort_day) // 7 for d in days[activity]}
                    for n in sorted(p for p in periods if 0 <= p <= limit):
                        start_ms = (cohort_day + 7 * n) * DAY_MS
                        cells.append((kind, granularity, cohort_ms, activity, n, start_ms))
            else:
                cohort_month = month_of_day(anchor)
                cohort_ms = month_start_day(cohort_month) * DAY_MS
                for activity in ACTIVITIES:
                    periods = {month_of_day(d) - cohort_month for d in days[activity]}
                    for n in sorted(p for p in periods if 0 <= p <= limit):
                        start_ms = month_start_day(cohort_month + n) * DAY_MS
                        cells.append((kind, granularity, cohort_ms, activity, n, start_ms))
    return tuple(cells)


@lru_cache(maxsize=8192)
def month_of_day(day: int) -> int:
    """``year * 12 + month - 1`` of an epoch day (UTC, proleptic Gregorian)."""
    # Days to civil date (H. Hinnant's algorithm), exact integer arithmetic.
    z = day + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year * 12 + month - 1


@lru_cache(maxsize=8192)
def month_start_day(month_index: int) -> int:
    """Epoch day of the first day of month ``year * 12 + month - 1``."""
    year, month = divmod(month_index, 12)
    month += 1
    y = year - (1 if month <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


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
