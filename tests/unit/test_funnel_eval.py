"""Funnel semantics (docs/semantics.md section 3) on hand-made event lists."""

from __future__ import annotations

import pytest

from streams.funnel_eval import Credit, FunnelEvent, evaluate, user_group_ranges
from streams.funnels import FunnelDef

MIN = 60_000
SHOP = FunnelDef(
    "shop",
    ("session_start", "view_item", "add_to_cart", "begin_checkout", "purchase"),
    "session",
    60 * MIN,
)


def events(*spec: tuple[int, str]) -> list[FunnelEvent]:
    return sorted(FunnelEvent(t, f"e{i:03d}", kind, 0) for i, (t, kind) in enumerate(spec))


def test_full_conversion_reports_time_to_convert() -> None:
    evs = events(
        (0, "session_start"),
        (10, "view_item"),
        (20, "add_to_cart"),
        (30, "begin_checkout"),
        (45, "purchase"),
    )
    assert evaluate(SHOP, evs) == Credit(5, 0, "e000", 0, 45, tuple(evs))


def test_no_step_one_means_not_in_funnel() -> None:
    assert evaluate(SHOP, events((0, "view_item"), (5, "add_to_cart"))) is None


def test_equal_timestamps_count_as_in_order() -> None:
    # The later step's event sorts before step 1 by id but has the same time: it counts.
    evs = [FunnelEvent(100, "b", "session_start", 0), FunnelEvent(100, "a", "view_item", 0)]
    credit = evaluate(SHOP, sorted(evs))
    assert credit is not None and credit.level == 2


def test_out_of_order_events_earn_no_credit() -> None:
    evs = events((0, "session_start"), (5, "add_to_cart"), (10, "view_item"))
    credit = evaluate(SHOP, evs)
    assert credit is not None and credit.level == 2  # add_to_cart came before view_item


def test_window_is_inclusive_from_step_one() -> None:
    two = FunnelDef("two", ("session_start", "purchase"), "session", 10 * MIN)
    assert evaluate(two, events((0, "session_start"), (10 * MIN, "purchase"))).level == 2  # type: ignore[union-attr]
    assert evaluate(two, events((0, "session_start"), (10 * MIN + 1, "purchase"))).level == 1  # type: ignore[union-attr]


def test_one_event_never_fills_two_steps_of_the_same_type() -> None:
    twice = FunnelDef("twice", ("view_item", "view_item", "purchase"), "session", 60 * MIN)
    assert evaluate(twice, events((0, "view_item"), (5, "purchase"))).level == 1  # type: ignore[union-attr]
    assert evaluate(twice, events((0, "view_item"), (3, "view_item"), (5, "purchase"))).level == 3  # type: ignore[union-attr]


def test_furthest_attempt_is_credited_and_ties_go_to_the_earliest() -> None:
    short = FunnelDef("short", SHOP.steps, "session", 50)  # attempts cannot reach each other
    evs = events(
        (0, "session_start"),
        (1, "view_item"),  # attempt 1: level 2
        (100, "session_start"),
        (101, "view_item"),
        (102, "add_to_cart"),  # attempt 2: level 3
        (200, "session_start"),
        (201, "view_item"),
        (202, "add_to_cart"),  # attempt 3: level 3
    )
    credit = evaluate(short, evs)
    assert credit is not None and (credit.level, credit.start_t) == (3, 100)
    # With a long window, attempt 1 chains through the later events and wins the tie.
    credit = evaluate(SHOP, evs)
    assert credit is not None and (credit.level, credit.start_t) == (3, 0)


def test_breakdown_comes_from_the_credited_step_one_event() -> None:
    evs = sorted(
        [
            FunnelEvent(0, "a", "session_start", 7),
            FunnelEvent(50, "b", "session_start", 9),
            FunnelEvent(60, "c", "view_item", 9),
        ]
    )
    credit = evaluate(FunnelDef("short", SHOP.steps, "session", 40), evs)
    assert credit is not None and credit.dims == 9 and credit.start_t == 50


def test_time_to_convert_comes_from_the_converting_attempt() -> None:
    two = FunnelDef("two", ("session_start", "purchase"), "session", 10 * MIN)
    evs = events((0, "session_start"), (20 * MIN, "session_start"), (21 * MIN, "purchase"))
    credit = evaluate(two, evs)
    assert credit is not None and credit.start_t == 20 * MIN and credit.time_to_convert_ms == MIN


@pytest.mark.parametrize(
    ("starts", "expected"),
    [
        ([0], [(0, 10)]),
        ([0, 5, 10], [(0, 10)]),
        ([0, 11, 15, 22], [(0, 10), (11, 21), (22, 32)]),
    ],
)
def test_user_attempt_groups_span_the_window(
    starts: list[int], expected: list[tuple[int, int]]
) -> None:
    funnel = FunnelDef("u", ("session_start", "purchase"), "user", 10)
    assert user_group_ranges(funnel, events(*((s, "session_start") for s in starts))) == expected


def test_user_group_start_filter_limits_attempts() -> None:
    funnel = FunnelDef("u", ("session_start", "purchase"), "user", 10)
    evs = events((0, "session_start"), (15, "session_start"), (20, "purchase"))
    assert evaluate(funnel, evs, (0, 10)).level == 1  # type: ignore[union-attr]
    assert evaluate(funnel, evs, (11, 21)).level == 2  # type: ignore[union-attr]
