"""The §6 ground truth on hand-made events: periods, cohorts, activities, N limits,
forgetting visitors and time between orders."""

from __future__ import annotations

import math

from simulator.truth_model import LifecycleParams, Truth
from tests.unit.truth_builders import DAY, MIN, T0, at, buy, ev, truth_of

NEVER_FORGET = LifecycleParams(anonymous_ttl_ms=5000 * DAY, buyer_ttl_ms=5000 * DAY)


def periods(truth: Truth, kind: str, granularity: str, activity: str) -> list[tuple[str, int]]:
    """(cohort_start, N) of the rows of one triangle, each with one user."""
    rows = [
        r
        for r in truth.retention
        if (r.cohort_kind, r.granularity, r.activity) == (kind, granularity, activity)
    ]
    assert all(r.users == 1 for r in rows)
    return sorted((r.cohort_start, r.period) for r in rows)


def test_iso_weeks_start_on_monday_and_days_are_utc() -> None:
    events = [
        ev("session_start", at("2026-11-01T23:59:59.999Z"), "e1"),  # Sunday
        ev("page_view", at("2026-11-02T00:00:00Z"), "e2"),  # Monday: next day, next week
    ]
    truth = truth_of(events)
    assert periods(truth, "first_visit", "day", "visit") == [("2026-11-01", 0), ("2026-11-01", 1)]
    assert periods(truth, "first_visit", "week", "visit") == [("2026-10-26", 0), ("2026-10-26", 1)]
    assert periods(truth, "first_visit", "month", "visit") == [("2026-11-01", 0)]


def test_month_boundaries_and_weeks_across_months() -> None:
    events = [
        ev("session_start", at("2026-11-30T23:00:00Z"), "e1"),  # Monday
        ev("page_view", at("2026-12-01T00:00:00Z"), "e2"),
        ev("page_view", at("2027-01-03T12:00:00Z"), "e3"),  # Sunday of the week of 12-28
    ]
    truth = truth_of(events, NEVER_FORGET)
    assert periods(truth, "first_visit", "month", "visit") == [
        ("2026-11-01", 0),
        ("2026-11-01", 1),
        ("2026-11-01", 2),
    ]
    assert periods(truth, "first_visit", "week", "visit") == [("2026-11-30", 0), ("2026-11-30", 4)]
    assert periods(truth, "first_visit", "day", "visit") == [("2026-11-30", 0), ("2026-11-30", 1)]


def test_period_limits_are_30_days_12_weeks_12_months() -> None:
    monday = at("2026-11-02T10:00:00Z")
    events = [
        ev("session_start", monday, "e0"),
        ev("page_view", monday + 30 * DAY, "d30"),
        ev("page_view", monday + 31 * DAY, "d31"),
        ev("page_view", monday + 12 * 7 * DAY, "w12"),
        ev("page_view", monday + 13 * 7 * DAY, "w13"),
        ev("page_view", at("2027-11-15T00:00:00Z"), "m12"),
        ev("page_view", at("2027-12-15T00:00:00Z"), "m13"),
    ]
    truth = truth_of(events, NEVER_FORGET)
    assert periods(truth, "first_visit", "day", "visit") == [("2026-11-02", 0), ("2026-11-02", 30)]
    weeks = [n for _, n in periods(truth, "first_visit", "week", "visit")]
    assert weeks == [0, 4, 12]  # d30 (Wed) and d31 (Thu) are in week 4; w13 is beyond
    months = [n for _, n in periods(truth, "first_visit", "month", "visit")]
    assert months == [0, 1, 2, 3, 12]


def test_first_purchase_cohorts_purchases_and_repeat_purchases() -> None:
    events = [
        ev("session_start", T0, "e0"),
        buy(T0 + 2 * DAY, "T1"),
        buy(T0 + 2 * DAY + MIN, "T2"),  # a repeat purchase on the cohort's own day
        ev("page_view", T0 + 3 * DAY, "e3"),
        buy(T0 + 9 * DAY, "T3"),
    ]
    truth = truth_of(events)
    fp = "2026-11-03"
    assert periods(truth, "first_purchase", "day", "visit") == [(fp, 0), (fp, 1), (fp, 7)]
    assert periods(truth, "first_purchase", "day", "purchase") == [(fp, 0), (fp, 7)]
    assert periods(truth, "first_purchase", "day", "repeat_purchase") == [(fp, 0), (fp, 7)]
    # The visit before the first purchase would be N < 0: not counted.
    assert periods(truth, "first_visit", "day", "purchase") == [
        ("2026-11-01", 2),
        ("2026-11-01", 9),
    ]
    assert periods(truth, "first_visit", "day", "repeat_purchase") == [
        ("2026-11-01", 2),
        ("2026-11-01", 9),
    ]
    # Weeks: Sun 11-01 is in the week of 10-26; Tue 11-03 and Tue 11-10 in the next two.
    assert periods(truth, "first_visit", "week", "purchase") == [
        ("2026-10-26", 1),
        ("2026-10-26", 2),
    ]
    assert periods(truth, "first_purchase", "week", "purchase") == [
        ("2026-11-02", 0),
        ("2026-11-02", 1),
    ]


def test_a_repeat_purchase_is_any_purchase_but_the_first_by_time_then_transaction() -> None:
    events = [buy(T0, "T2"), buy(T0, "T1", anon="a1"), ev("page_view", T0 + DAY, "e1")]
    truth = truth_of(events)
    # Both purchases are in one millisecond: T1 is the first, T2 a repeat on day 0.
    assert periods(truth, "first_purchase", "day", "repeat_purchase") == [("2026-11-01", 0)]
    (gap,) = truth.order_gaps
    assert (gap.day, gap.le_days, gap.orders) == ("2026-11-01", 1.0, 1)


def test_acquisition_channel_and_platform_come_from_the_first_visit_for_both_kinds() -> None:
    events = [
        ev("session_start", T0, "e1", utm_source="newsletter", utm_medium="email", platform="app"),
        buy(T0 + DAY, "T1", utm_source="google", utm_medium="cpc", platform="web"),
    ]
    assert {(r.cohort_kind, r.channel, r.platform) for r in truth_of(events).retention} == {
        ("first_visit", "email", "app"),
        ("first_purchase", "email", "app"),
    }
    (buyer,) = truth_of(events, watermark=T0 + 2 * DAY).rfm
    assert buyer.channel == "email"


def test_zero_rows_are_left_out_and_each_visitor_counts_once_per_period() -> None:
    events = [ev("session_start", T0 + i * MIN, f"e{i}") for i in range(5)]
    events.append(ev("session_start", T0, "b1", anon="b"))
    truth = truth_of(events)
    # Two visitors, one row per (kind, granularity, activity): visit only, N = 0.
    assert len(truth.retention) == 3
    assert {(r.activity, r.period, r.users) for r in truth.retention} == {("visit", 0, 2)}


# -- forgetting ------------------------------------------------------------------------------


def test_a_visitor_without_purchase_is_new_after_a_gap_longer_than_the_anonymous_ttl() -> None:
    ttl = LifecycleParams().anonymous_ttl_ms
    exactly = truth_of([ev("session_start", T0, "e1"), ev("page_view", T0 + ttl, "e2")])
    assert exactly.stats["visitor_lives"] == 1
    assert periods(exactly, "first_visit", "week", "visit") == [
        ("2026-10-26", 0),
        ("2026-10-26", 5),
    ]
    longer = truth_of([ev("session_start", T0, "e1"), ev("page_view", T0 + ttl + 1, "e2")])
    assert longer.stats["visitor_lives"] == 2
    assert periods(longer, "first_visit", "day", "visit") == [("2026-11-01", 0), ("2026-12-06", 0)]


def test_a_buyer_is_kept_for_the_buyer_ttl_and_then_starts_over() -> None:
    params = LifecycleParams()
    kept = truth_of([buy(T0, "T1"), ev("page_view", T0 + 36 * DAY, "e2")])
    assert kept.stats["visitor_lives"] == 1
    back = T0 + params.buyer_ttl_ms + 1
    split = truth_of([buy(T0, "T1"), buy(back, "T2")], watermark=back + DAY)
    assert split.stats["visitor_lives"] == 3  # the tick visitor is the third
    # The second life is a new buyer: its own first purchase, no repeat purchase, no gap.
    assert not [r for r in split.retention if r.activity == "repeat_purchase"]
    assert split.order_gaps == ()
    firsts = [t for t in split.triggers if t.trigger_type == "first_purchase"]
    assert [t.occurred_at_ms for t in firsts] == [T0, back]
    (rfm,) = split.rfm
    assert (rfm.first_purchase_ms, rfm.frequency) == (back, 1)


def test_the_ttl_that_applies_is_the_one_after_the_earlier_event() -> None:
    # Bought before the long gap: kept. Browsing only before it: forgotten, even though
    # the visitor buys right after coming back.
    bought_first = [ev("session_start", T0, "e1"), buy(T0 + DAY, "T1")]
    bought_first.append(ev("page_view", T0 + 50 * DAY, "e3"))
    assert truth_of(bought_first).stats["visitor_lives"] == 1
    browsed_first = [ev("session_start", T0, "e1"), buy(T0 + 40 * DAY, "T1")]
    truth = truth_of(browsed_first)
    assert truth.stats["visitor_lives"] == 2
    assert periods(truth, "first_purchase", "day", "purchase") == [("2026-12-11", 0)]
    assert periods(truth, "first_visit", "day", "purchase") == [("2026-12-11", 0)]


# -- time between orders ---------------------------------------------------------------------


def test_order_gap_buckets_are_inclusive_upper_bounds_by_day_and_channel_of_the_later() -> None:
    events = [
        buy(T0, "T1"),
        buy(T0 + DAY, "T2", utm_source="newsletter", utm_medium="email"),  # exactly 1 day
        buy(T0 + 2 * DAY + 1, "T3"),  # 1 day + 1 ms
        buy(T0 + 2 * DAY + 1 + 200 * DAY, "T4"),  # beyond 180 days
    ]
    truth = truth_of(events, NEVER_FORGET)
    assert [tuple(r) for r in truth.order_gaps] == [
        ("2026-11-02", "email", 1.0, 1),
        ("2026-11-03", "direct", 3.0, 1),
        ("2027-05-22", "direct", math.inf, 1),
    ]
