"""UTC calendar periods of semantics.md §6: days, ISO weeks (Monday 00:00) and months.

A period is an integer index so that "N periods after" is a subtraction:

- day: days since 1970-01-01 (``floor(t / 86_400_000)``);
- week: weeks since Monday 1969-12-29 (1970-01-01 was a Thursday, three days later);
- month: ``year * 12 + month - 1``.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache
from typing import Final, Literal

Granularity = Literal["day", "week", "month"]

GRANULARITIES: Final[tuple[Granularity, ...]] = ("day", "week", "month")
# The largest period N counted per granularity (N = 0 is the cohort's own period).
MAX_PERIOD: Final[dict[Granularity, int]] = {"day": 30, "week": 12, "month": 12}

DAY_MS: Final = 86_400_000
_EPOCH: Final = date(1970, 1, 1)
# Days from the Monday that starts week 0 to 1970-01-01.
_MONDAY_OFFSET: Final = 3


def utc_day(time_ms: int) -> int:
    return time_ms // DAY_MS


@cache
def _date_of(day: int) -> date:
    return _EPOCH + timedelta(days=day)


def period_of_day(day: int, granularity: Granularity) -> int:
    """The period index holding UTC day number ``day``."""
    if granularity == "day":
        return day
    if granularity == "week":
        return (day + _MONDAY_OFFSET) // 7
    moment = _date_of(day)
    return moment.year * 12 + moment.month - 1


def period_start(index: int, granularity: Granularity) -> str:
    """The first day of period ``index`` as 'YYYY-MM-DD' (a ClickHouse Date)."""
    if granularity == "day":
        return _date_of(index).isoformat()
    if granularity == "week":
        return _date_of(index * 7 - _MONDAY_OFFSET).isoformat()
    year, month0 = divmod(index, 12)
    return date(year, month0 + 1, 1).isoformat()


def day_text(day: int) -> str:
    return _date_of(day).isoformat()
