"""The truth of `funnel query paths` and `funnel query retention` (docs/semantics.md §3a).

Plain Python over the simulator's events, independent of ``reports/exploration.py`` (no
SQL, no import of ``reports/`` or ``streams/``). The events are the *counted events* of
§1, taken from the truth's own intake (:class:`simulator.truth._Intake`: late records by
each topic-partition's watermark, event_id duplicates per visitor, and a purchase only in
its earliest (event_time, event_id) copy per (anonymous_id, transaction_id), chosen over
all the emitted time), then restricted to ``[from_ms, to_ms)``.

Results are plain tuples a test compares with ``run_paths`` / ``run_retention`` rows:
:class:`PathLink` ``(step, source, target, sessions)`` and :class:`CohortRow`
``(cohort, size, returned)``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from schemas.model import Event
from simulator.records import SimRecord
from simulator.truth import _Intake
from simulator.truth_funnel import event_order

__all__ = [
    "CohortRow",
    "PathLink",
    "counted_events",
    "in_range",
    "paths",
    "period_index",
    "period_start",
    "retention",
]


class PathLink(NamedTuple):
    """Sessions whose path goes from ``source`` (k-1 events from the anchor) to
    ``target`` (k events away); for 'before', source is the earlier event."""

    step: int
    source: str
    target: str
    sessions: int


class CohortRow(NamedTuple):
    """A cohort (the first day of its period), its size and, per period 0..P-1, the
    people who returned (None: the period starts at or after ``to``)."""

    cohort: date
    size: int
    returned: tuple[int | None, ...]


def counted_events(records: Iterable[SimRecord], lateness_ms: int) -> list[Event]:
    """§1's counted events of ``records`` (in send order), by the truth's own intake."""
    intake = _Intake(lateness_ms)
    for record in records:
        intake.add(record)
    return [item.event for item in intake.counted_events()]


def in_range(events: Iterable[Event], from_ms: int, to_ms: int) -> list[Event]:
    return [e for e in events if from_ms <= e.event_time_ms < to_ms]


# -- paths ------------------------------------------------------------------------------


def paths(
    counted: Iterable[Event],
    anchor: str,
    direction: str,
    from_ms: int,
    to_ms: int,
    depth: int = 3,
    limit: int | None = None,
) -> list[PathLink]:
    """Per step, the links of the sessions' paths from their first ``anchor``
    (``direction='after'``) or to their last one (``'before'``), most common first (then
    by source, target); ``limit``: at most that many links per step."""
    if direction not in ("after", "before"):
        raise ValueError(f"direction {direction!r}: 'after' or 'before'")
    sessions: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for event in in_range(counted, from_ms, to_ms):
        sessions[(event.anonymous_id, event.session_id)].append(event)
    links: Counter[tuple[int, str, str]] = Counter()
    for session_events in sessions.values():
        seq = [e.event_type for e in sorted(session_events, key=event_order)]
        if anchor not in seq:
            continue
        if direction == "after":
            at = seq.index(anchor)
            path = seq[at : at + depth + 1]  # path[k]: k events after the anchor
            for k in range(1, len(path)):
                links[(k, path[k - 1], path[k])] += 1
        else:
            at = len(seq) - 1 - seq[::-1].index(anchor)
            back = seq[max(0, at - depth) : at + 1][::-1]  # back[k]: k events before
            for k in range(1, len(back)):
                links[(k, back[k], back[k - 1])] += 1
    by_step: dict[int, list[PathLink]] = defaultdict(list)
    for (step, source, target), n in links.items():
        by_step[step].append(PathLink(step, source, target, n))
    out: list[PathLink] = []
    for step in sorted(by_step):
        rows = sorted(by_step[step], key=lambda r: (-r.sessions, r.source, r.target))
        out.extend(rows if limit is None else rows[:limit])
    return out


# -- retention --------------------------------------------------------------------------


def _day(time_ms: int) -> date:
    return datetime.fromtimestamp(time_ms / 1000, UTC).date()


def period_start(day: date, period: str) -> date:
    """The first day of ``day``'s period: itself, its ISO week's Monday, its month's 1st."""
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    raise ValueError(f"period {period!r}: day, week or month")


def period_index(cohort: date, day: date, period: str) -> int:
    """How many periods ``day``'s period is after ``cohort`` (a period's first day)."""
    if period == "month":
        return (day.year - cohort.year) * 12 + day.month - cohort.month
    days = (period_start(day, period) - cohort).days
    return days // 7 if period == "week" else days


def _nth_period(cohort: date, period: str, k: int) -> date:
    if period == "day":
        return cohort + timedelta(days=k)
    if period == "week":
        return cohort + timedelta(weeks=k)
    months = cohort.year * 12 + cohort.month - 1 + k
    return date(months // 12, months % 12 + 1, 1)


def retention(
    counted: Iterable[Event],
    start: str,
    returning: str,
    period: str,
    periods: int,
    from_ms: int,
    to_ms: int,
) -> list[CohortRow]:
    """Cohorts by the period of each person's first ``start`` event in the range; period
    k holds the people with a ``returning`` event in the cohort's period + k (k = 0: at
    or after that first start event). Sorted by cohort."""
    people: dict[str, list[Event]] = defaultdict(list)
    for event in in_range(counted, from_ms, to_ms):
        people[event.anonymous_id].append(event)
    sizes: Counter[date] = Counter()
    returned: dict[date, Counter[int]] = defaultdict(Counter)
    for events in people.values():
        starts = [e.event_time_ms for e in events if e.event_type == start]
        if not starts:
            continue
        t0 = min(starts)
        cohort = period_start(_day(t0), period)
        sizes[cohort] += 1
        indexes = set()
        for e in events:
            if e.event_type != returning:
                continue
            k = period_index(cohort, _day(e.event_time_ms), period)
            if 0 <= k < periods and (k > 0 or e.event_time_ms >= t0):
                indexes.add(k)
        returned[cohort].update(indexes)
    end = _day(to_ms)
    end_exact = to_ms % 86_400_000 == 0

    def blank(cohort: date, k: int) -> bool:
        # The period starts at or after --to (both as instants, at 00:00 UTC).
        first = _nth_period(cohort, period, k)
        return first > end or (first == end and end_exact)

    return [
        CohortRow(
            cohort,
            sizes[cohort],
            tuple(None if blank(cohort, k) else returned[cohort][k] for k in range(periods)),
        )
        for cohort in sorted(sizes)
    ]
