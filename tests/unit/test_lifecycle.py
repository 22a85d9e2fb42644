"""RFM stages, transitions, cart abandonment and retention periods (docs/semantics.md 6-8)."""

from __future__ import annotations

from datetime import date

import pytest

from streams.lifecycle import (
    DAY_MS,
    CartEvent,
    LifecycleRules,
    Purchase,
    abandoned_carts,
    cart_lines,
    lifecycle_triggers,
    stage_at,
    transitions_between,
)
from streams.retention import add_periods, order_gaps, period_index, period_start, retention_cells

RULES = LifecycleRules()
MIN = 60_000
T0 = 1_790_000_000_000


def buy(day: float, txn: str = "t") -> Purchase:
    return Purchase(T0 + int(day * DAY_MS), txn, 1000, "EUR", "email")


def test_stages_follow_the_thresholds() -> None:
    purchases = [buy(0, "a")]
    assert stage_at(purchases, T0 - 1, RULES) == "prospect"
    assert stage_at(purchases, T0, RULES) == "new"
    assert stage_at(purchases, T0 + 30 * DAY_MS - 1, RULES) == "new"
    assert stage_at(purchases, T0 + 30 * DAY_MS, RULES) == "active"
    assert stage_at(purchases, T0 + 60 * DAY_MS, RULES) == "dormant"
    assert stage_at(purchases, T0 + 180 * DAY_MS, RULES) == "churned"


def test_transitions_of_a_buyer_who_lapses_and_comes_back() -> None:
    purchases = [buy(0, "a"), buy(200, "b")]
    got = [
        (round((t.at - T0) / DAY_MS), t.from_stage, t.to_stage, t.transaction_id)
        for t in transitions_between(purchases, None, T0 + 300 * DAY_MS, RULES)
    ]
    assert got == [
        (0, "prospect", "new", "a"),
        (30, "new", "active", ""),
        (60, "active", "dormant", ""),
        (180, "dormant", "churned", ""),
        (200, "churned", "active", "b"),
        (260, "active", "dormant", ""),
    ]


def test_a_purchase_while_active_moves_the_dormancy_deadline() -> None:
    purchases = [buy(0, "a"), buy(40, "b")]
    changes = transitions_between(purchases, None, T0 + 150 * DAY_MS, RULES)
    assert [(round((t.at - T0) / DAY_MS), t.to_stage) for t in changes] == [
        (0, "new"),
        (30, "active"),
        (100, "dormant"),
    ]


def test_transition_windows_are_half_open_and_do_not_repeat() -> None:
    purchases = [buy(0, "a")]
    first = transitions_between(purchases, None, T0 + 30 * DAY_MS, RULES)
    second = transitions_between(purchases, T0 + 30 * DAY_MS, T0 + 61 * DAY_MS, RULES)
    assert [t.to_stage for t in first] == ["new"]  # 30 d is not before the watermark yet
    assert [t.to_stage for t in second] == ["active", "dormant"]


def test_lifecycle_triggers_name_the_change() -> None:
    purchases = [buy(0, "a"), buy(200, "b")]
    specs = lifecycle_triggers(
        transitions_between(purchases, None, T0 + 201 * DAY_MS, RULES), purchases
    )
    kinds = [s.trigger_type for s in specs]
    assert kinds.count("segment_changed") == 5
    assert {"first_purchase", "user_became_dormant", "user_churned", "user_reactivated"} <= set(
        kinds
    )


def cart(minute: float, kind: str, *lines: tuple[str, int, int], eid: str = "") -> CartEvent:
    return CartEvent(
        T0 + int(minute * MIN), eid or f"{kind}@{minute}", kind, tuple(lines), "EUR", "email"
    )


def test_abandoned_cart_fires_thirty_minutes_after_the_last_activity() -> None:
    events = [cart(0, "add_to_cart", ("sku", 2, 500)), cart(10, "view_cart")]
    specs = abandoned_carts(events, None, T0 + 60 * MIN, RULES)
    assert [(s.at, s.id_parts, s.cart) for s in specs] == [
        (T0 + 40 * MIN, ("view_cart@10",), (("sku", 2, 500),))
    ]
    assert abandoned_carts(events, None, T0 + 40 * MIN, RULES) == []  # not yet before the watermark


@pytest.mark.parametrize(
    "later",
    [
        cart(20, "begin_checkout"),
        cart(30, "purchase"),
        cart(5, "remove_from_cart", ("sku", 2, 500)),
    ],
)
def test_checkout_purchase_or_an_empty_cart_prevents_the_trigger(later: CartEvent) -> None:
    events = [cart(0, "add_to_cart", ("sku", 2, 500)), later]
    assert abandoned_carts(events, None, T0 + 90 * MIN, RULES) == []


def test_cart_lines_net_adds_and_removes_and_reset_on_checkout() -> None:
    events = [
        cart(0, "add_to_cart", ("a", 2, 100), ("b", 1, 50)),
        cart(1, "remove_from_cart", ("a", 1, 100)),
        cart(2, "begin_checkout"),
        cart(3, "add_to_cart", ("c", 1, 70)),
    ]
    assert cart_lines(events[:2]) == {"a": (1, 100), "b": (1, 50)}
    assert cart_lines(events) == {"c": (1, 70)}


def test_periods_use_iso_weeks_and_calendar_months() -> None:
    sunday = (date(2026, 11, 29) - date(1970, 1, 1)).days
    monday = sunday + 1
    assert period_start(sunday, "week") == date(2026, 11, 23)
    assert period_start(monday, "week") == date(2026, 11, 30)
    assert period_index(date(2026, 11, 23), monday, "week") == 1
    assert (
        period_index(date(2026, 11, 1), (date(2027, 1, 31) - date(1970, 1, 1)).days, "month") == 2
    )
    assert add_periods(date(2026, 11, 1), 13, "month") == date(2027, 12, 1)


def test_retention_cells_cover_each_active_period_within_the_limits() -> None:
    first = T0 - T0 % DAY_MS
    day0 = first // DAY_MS
    cells = retention_cells(first, [day0, day0 + 1, day0 + 8, day0 + 40], [], "email", "web")
    day_periods = sorted(
        n for kind, gran, _, activity, n, _ in cells if gran == "day" and activity == "visit"
    )
    assert day_periods == [0, 1, 8]  # day 40 is beyond day 30
    assert not [c for c in cells if c[0] == "first_purchase"]


def test_repeat_purchases_and_gaps() -> None:
    purchases = [buy(0, "a"), buy(2, "b"), buy(40, "c")]
    first = purchases[0].t
    cells = retention_cells(first, [first // DAY_MS], purchases, "email", "web")
    repeat_days = sorted(
        n
        for kind, gran, _, activity, n, _ in cells
        if kind == "first_purchase" and gran == "day" and activity == "repeat_purchase"
    )
    assert repeat_days == [2]
    assert [bucket for _, _, bucket in order_gaps(purchases)] == [3, 60]
