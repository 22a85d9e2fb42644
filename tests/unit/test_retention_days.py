"""Retention cells by epoch-day arithmetic equal the datetime definition (streams/retention.py).

``reference_cells`` is the datetime-based ``retention_cells`` as it was before the
epoch-day version: same cells, same order, over any years (leap years, ISO week 53,
month and year ends).
"""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.lifecycle import DAY_MS, LifecycleRules, Purchase
from streams.lives import DayActivity
from streams.retention import (
    ACTIVITIES,
    GAPS_FAMILY,
    GRANULARITIES,
    MAX_PERIOD,
    RETENTION_FAMILY,
    activity_days,
    add_periods,
    date_ms,
    day_of,
    month_of_day,
    month_start_day,
    period_index,
    period_start,
    retention_cells,
)
from streams.state import VisitorState
from streams.visitor import RetentionInputs, live_only, retention_contributions
from streams.visitor_cache import CachedVisitor

EPOCH = date(1970, 1, 1)
FIRST_DAY = (date(1, 1, 1) - EPOCH).days
LAST_DAY = (date(9999, 11, 30) - EPOCH).days  # room for 12 months after a cohort


def reference_cells(
    first_visit_t: int | None,
    visit_days: list[int],
    purchases: list[Purchase],
    channel: str,
    platform: str,
) -> list[tuple[str, str, int, str, int, int]]:
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


@settings(max_examples=1500, deadline=None)
@given(st.integers(FIRST_DAY, LAST_DAY))
def test_month_helpers_equal_the_calendar(day: int) -> None:
    d = EPOCH + timedelta(days=day)
    assert month_of_day(day) == d.year * 12 + d.month - 1
    start = d.replace(day=1)
    assert month_start_day(month_of_day(day)) == (start - EPOCH).days
    assert month_start_day(month_of_day(day)) * DAY_MS == date_ms(start)


def test_month_helpers_at_calendar_edges() -> None:
    for d in [
        date(1970, 1, 1),
        date(1969, 12, 31),
        date(2000, 2, 29),
        date(1900, 2, 28),
        date(1900, 3, 1),
        date(2024, 2, 29),
        date(2026, 12, 31),
        date(2027, 1, 1),
        date(9999, 12, 31),
        date(1, 1, 1),
    ]:
        day = (d - EPOCH).days
        assert month_of_day(day) == d.year * 12 + d.month - 1
        assert month_start_day(month_of_day(day)) == (d.replace(day=1) - EPOCH).days


# A life spans at most ~400 days after its first visit; cover up to two years of activity.
anchors = st.integers(FIRST_DAY + 10, LAST_DAY - 800)
offsets = st.lists(st.integers(-3, 800), max_size=12)


@settings(max_examples=800, deadline=None)
@given(
    anchors,
    st.integers(0, DAY_MS - 1),
    offsets,
    st.lists(
        st.tuples(st.integers(-3, 800), st.integers(0, DAY_MS - 1), st.text("ab", max_size=2))
    ),
)
def test_retention_cells_equal_the_datetime_definition(
    anchor: int,
    ms_in_day: int,
    visit_offsets: list[int],
    purchase_at: list[tuple[int, int, str]],
) -> None:
    first_t = anchor * DAY_MS + ms_in_day
    visit_days = sorted({anchor + o for o in visit_offsets} | {anchor})
    purchases = sorted(
        Purchase((anchor + o) * DAY_MS + ms, txn, 100, "CNY", "direct")
        for o, ms, txn in purchase_at
    )
    assert retention_cells(first_t, visit_days, purchases, "direct", "web") == reference_cells(
        first_t, visit_days, purchases, "direct", "web"
    )


def test_retention_cells_around_iso_week_53_and_leap_days() -> None:
    for first in [date(2020, 12, 28), date(2026, 12, 28), date(2024, 2, 29), date(2015, 12, 31)]:
        anchor = (first - EPOCH).days
        visit_days = [anchor + o for o in range(0, 400, 3)]
        purchases = [Purchase((anchor + o) * DAY_MS + 5, "t", 1, "", "") for o in (0, 6, 35)]
        got = retention_cells(anchor * DAY_MS + 7, visit_days, purchases, "c", "p")
        assert got == reference_cells(anchor * DAY_MS + 7, visit_days, purchases, "c", "p")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 120), min_size=1, max_size=15),
    st.lists(st.integers(0, 120), max_size=4),
    st.lists(st.integers(-5, 130), min_size=4, max_size=4),
    st.integers(0, 40),
)
def test_lazy_retention_equals_early_retention_filtered_later(
    visit_offsets: list[int], purchase_offsets: list[int], raise_days: list[int], bump: int
) -> None:
    """CachedVisitor.retention computed late, under risen thresholds, equals the
    contributions computed at load and filtered by live_only then (the processor's old
    path)."""
    base = (date(2026, 3, 1) - EPOCH).days
    state = VisitorState(0, "a")
    state.days = [
        DayActivity(
            base + o, (base + o) * DAY_MS + 5, f"e{o}", "direct", "web", (base + o) * DAY_MS + 9
        )
        for o in sorted(set(visit_offsets))
    ]
    state.purchases = sorted(
        Purchase((base + o) * DAY_MS + 7, f"t{i}", 100, "CNY", "direct")
        for i, o in enumerate(purchase_offsets)
    )
    families = [*RETENTION_FAMILY.values(), GAPS_FAMILY]
    early = {f: (base + d) * DAY_MS for f, d in zip(families, raise_days, strict=True)}
    late = {f: t + bump * DAY_MS for f, t in early.items()}
    rules = LifecycleRules()
    inputs = RetentionInputs.of(state)
    expected_early = retention_contributions(inputs, early, rules)
    lazy = CachedVisitor(state, 0, {}, inputs, ())
    assert lazy.retention(late, rules) == live_only(expected_early, late)
    assert list(lazy.retention(late, rules)) == list(live_only(expected_early, late))
    eager = CachedVisitor(state, 0, {}, inputs, (), expected_early)
    assert eager.retention(late, rules) == live_only(expected_early, late)
    fresh = CachedVisitor(state, 0, {}, inputs, ())
    assert fresh.retention(early, rules) == expected_early
