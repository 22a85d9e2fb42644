"""The worker's funnel evaluation against answers computed by hand from docs/semantics.md
section 3: modes (ordered, strict, unordered), step filters, per-step windows,
exclusions, credit, and user attempt groups. Brute-force references (every chain, every
matching) check the ordered and unordered levels on generated entities.
"""

from __future__ import annotations

from itertools import permutations
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.funnel_eval import Credit, FunnelEvent, evaluate, is_start, user_group_ranges
from streams.funnels import FunnelDef, parse_funnels

MIN = 60_000
SEC = 1000
Props = tuple[tuple[str, str], ...]


def define(steps: list[Any], window: str = "10m", **fields: Any) -> FunnelDef:
    """A funnel through the real parser (so filters, within and exclusions are as a file
    would give them)."""
    raw = {"name": "f", "steps": steps, "window": window, **fields}
    (funnel,) = parse_funnels(yaml.safe_dump({"funnels": [raw]}), "test.yaml")
    return funnel


def entity(*spec: tuple[int, str] | tuple[int, str, Props]) -> list[FunnelEvent]:
    """Events ``(t, type[, props])`` with ids e00, e01, ... in the given order, sorted."""
    out = []
    for i, item in enumerate(spec):
        t, kind, *rest = item
        props: Props = rest[0] if rest else ()
        out.append(FunnelEvent(t, f"e{i:02d}", kind, i, props))
    return sorted(out)


def level(funnel: FunnelDef, events: list[FunnelEvent]) -> int | None:
    credit = evaluate(funnel, events)
    return None if credit is None else credit.level


def step_ids(credit: Credit | None) -> list[str]:
    assert credit is not None
    return [e.event_id for e in credit.steps]


VIEW_CART_BUY = ["view_item", "add_to_cart", "purchase"]


# -- the worked examples of section 3 ---------------------------------------------------------


def test_strict_versus_ordered_with_an_event_in_between() -> None:
    evs = entity((0, "view_item"), (1, "page_view"), (2, "add_to_cart"), (3, "purchase"))
    assert level(define(VIEW_CART_BUY, mode="strict"), evs) == 1
    assert level(define(VIEW_CART_BUY, mode="ordered"), evs) == 3


def test_strict_and_ordered_agree_on_consecutive_steps() -> None:
    evs = entity((0, "view_item"), (1, "add_to_cart"), (2, "purchase"))
    for mode in ("strict", "ordered"):
        credit = evaluate(define(VIEW_CART_BUY, mode=mode), evs)
        assert credit == Credit(3, 0, "e00", 0, 2, tuple(evs))


ABC = ["view_item", "add_to_cart", "begin_checkout"]  # A, B, C


def test_unordered_b_c_a_converts_from_the_attempt_at_b() -> None:
    evs = entity((0, "add_to_cart"), (1 * MIN, "begin_checkout"), (2 * MIN, "view_item"))
    credit = evaluate(define(ABC, mode="unordered"), evs)
    assert credit is not None
    assert (credit.level, credit.start_t, credit.start_event_id) == (3, 0, "e00")
    assert credit.time_to_convert_ms == 2 * MIN
    assert step_ids(credit) == ["e00", "e01", "e02"]


def test_unordered_c_then_a_out_of_the_window_is_level_one() -> None:
    evs = entity((0, "begin_checkout"), (20 * MIN, "view_item"))
    credit = evaluate(define(ABC, mode="unordered"), evs)
    assert credit is not None
    assert (credit.level, credit.start_t, credit.time_to_convert_ms) == (1, 0, None)


REMOVE_2_3 = [{"event": "remove_from_cart", "from_step": 2, "to_step": 3}]


def test_exclusion_between_the_steps_disqualifies_the_only_attempt() -> None:
    evs = entity((0, "view_item"), (1, "add_to_cart"), (2, "remove_from_cart"), (3, "purchase"))
    assert evaluate(define(VIEW_CART_BUY, exclusions=REMOVE_2_3), evs) is None
    # Without the exclusion, the same events convert.
    assert level(define(VIEW_CART_BUY), evs) == 3


def test_exclusion_does_not_touch_an_attempt_that_did_not_reach_its_end_step() -> None:
    evs = entity((0, "view_item"), (1, "add_to_cart"), (2, "remove_from_cart"))
    credit = evaluate(define(VIEW_CART_BUY, exclusions=REMOVE_2_3), evs)
    assert credit is not None and (credit.level, step_ids(credit)) == (2, ["e00", "e01"])


# -- ordered and strict, further --------------------------------------------------------------


def test_strict_with_a_per_step_window() -> None:
    funnel = define(
        ["view_item", {"event": "add_to_cart", "within": "1m"}, "purchase"], mode="strict"
    )
    on_time = entity((0, "view_item"), (MIN, "add_to_cart"), (5 * MIN, "purchase"))
    assert level(funnel, on_time) == 3  # within is inclusive; step 3 has none
    late = entity((0, "view_item"), (MIN + 1, "add_to_cart"), (MIN + 2, "purchase"))
    assert level(funnel, late) == 1
    # Strict: the very next event must be the step, even when a matching one follows.
    other_first = entity((0, "view_item"), (1, "add_to_cart"), (2, "search"), (3, "purchase"))
    assert level(funnel, other_first) == 2


def test_strict_window_from_step_one_is_inclusive() -> None:
    funnel = define(VIEW_CART_BUY, mode="strict", window="10m")
    evs = entity((0, "view_item"), (5 * MIN, "add_to_cart"), (10 * MIN, "purchase"))
    assert level(funnel, evs) == 3
    evs = entity((0, "view_item"), (5 * MIN, "add_to_cart"), (10 * MIN + 1, "purchase"))
    assert level(funnel, evs) == 2


def test_strict_tries_every_step_one_event() -> None:
    funnel = define(VIEW_CART_BUY, mode="strict")
    evs = entity((0, "view_item"), (1, "view_item"), (2, "add_to_cart"), (3, "purchase"))
    credit = evaluate(funnel, evs)
    assert credit is not None and (credit.level, credit.start_event_id) == (3, "e01")


def test_ordered_within_breaks_the_first_chain_and_a_later_attempt_converts() -> None:
    funnel = define(["view_item", {"event": "add_to_cart", "within": "2m"}, "purchase"])
    evs = entity(
        (0, "view_item"),  # attempt 1: the cart is 6 min later, more than 2 min
        (5 * MIN, "view_item"),  # attempt 2: cart 1 min later
        (6 * MIN, "add_to_cart"),
        (7 * MIN, "purchase"),
    )
    credit = evaluate(funnel, evs)
    assert credit is not None
    assert (credit.level, credit.start_t, credit.time_to_convert_ms) == (3, 5 * MIN, 2 * MIN)
    assert step_ids(credit) == ["e01", "e02", "e03"]
    # Without the within, attempt 1 converts and wins the tie as the earliest.
    credit = evaluate(define(VIEW_CART_BUY), evs)
    assert credit is not None and (credit.start_t, credit.time_to_convert_ms) == (0, 7 * MIN)


def test_ordered_chain_is_greedy_even_when_within_would_allow_a_later_choice() -> None:
    # The spec builds the chain greedily: step 2 takes the first cart, so step 3's
    # within counts from it (a chain through the second cart would convert).
    funnel = define(["view_item", "add_to_cart", {"event": "purchase", "within": "2m"}])
    evs = entity(
        (0, "view_item"), (MIN, "add_to_cart"), (5 * MIN, "add_to_cart"), (6 * MIN, "purchase")
    )
    credit = evaluate(funnel, evs)
    assert credit is not None and (credit.level, step_ids(credit)) == (2, ["e00", "e01"])


def test_ordered_skips_events_of_other_types_and_takes_the_first_match() -> None:
    evs = entity(
        (0, "view_item"),
        (1, "search"),
        (2, "add_to_cart"),
        (3, "add_to_cart"),
        (4, "purchase"),
        (5, "purchase"),
    )
    credit = evaluate(define(VIEW_CART_BUY), evs)
    assert step_ids(credit) == ["e00", "e02", "e04"]
    assert credit is not None and credit.time_to_convert_ms == 4


# -- unordered, further -----------------------------------------------------------------------


def test_unordered_repeated_step_type_needs_two_distinct_events() -> None:
    funnel = define(["view_item", "view_item", "purchase"], mode="unordered")
    assert level(funnel, entity((0, "view_item"), (1, "purchase"))) == 2
    assert level(funnel, entity((0, "view_item"), (1, "purchase"), (2, "view_item"))) == 3


def test_unordered_kth_step_events_and_times() -> None:
    funnel = define(["add_to_cart", "view_item", "view_item"], mode="unordered")
    evs = entity(
        (0, "add_to_cart"),  # 1 step
        (10 * SEC, "add_to_cart"),  # the cart step is taken: still 1
        (20 * SEC, "view_item"),  # 2
        (30 * SEC, "search"),
        (40 * SEC, "view_item"),  # 3
        (50 * SEC, "view_item"),  # nothing left
    )
    credit = evaluate(funnel, evs)
    assert credit is not None
    assert step_ids(credit) == ["e00", "e02", "e04"]
    assert [e.t for e in credit.steps] == [0, 20 * SEC, 40 * SEC]
    assert credit.time_to_convert_ms == 40 * SEC


def test_unordered_counts_a_maximum_matching_not_a_greedy_one() -> None:
    # Step 1: a view of shoes or hats; step 2: a view of shoes. The first view (shoes)
    # can fill either; the second (hats) only step 1, so the shoes view must move over.
    funnel = define(
        [
            {"event": "view_item", "where": {"item_category": ["shoes", "hats"]}},
            {"event": "view_item", "where": {"item_category": "shoes"}},
        ],
        mode="unordered",
    )
    evs = entity(
        (0, "view_item", (("item_category", "shoes"),)),
        (1, "view_item", (("item_category", "hats"),)),
    )
    credit = evaluate(funnel, evs)
    assert credit is not None
    assert (credit.level, step_ids(credit), credit.time_to_convert_ms) == (2, ["e00", "e01"], 1)


def test_unordered_attempt_uses_only_events_after_its_start() -> None:
    funnel = define(ABC, mode="unordered", window="10m")
    evs = entity(
        (0, "view_item"),
        (9 * MIN, "add_to_cart"),
        (12 * MIN, "begin_checkout"),  # out of the attempt at 0, inside the one at 9
    )
    credit = evaluate(funnel, evs)
    assert credit is not None
    assert (credit.level, credit.start_t, step_ids(credit)) == (2, 0, ["e00", "e01"])
    evs.append(FunnelEvent(13 * MIN, "e03", "view_item", 3))
    credit = evaluate(funnel, evs)
    assert credit is not None
    assert (credit.level, credit.start_t, credit.time_to_convert_ms) == (3, 9 * MIN, 4 * MIN)


# -- filters ----------------------------------------------------------------------------------

CATEGORIES: Props = (("item_category", "shoes"), ("item_category", "hats"))
PRICES: Props = (("price_minor", "1000"), ("price_minor", "10000"))


@pytest.mark.parametrize(
    ("condition", "props", "holds"),
    [
        # eq / in: any value
        ({"item_category": "hats"}, CATEGORIES, True),
        ({"item_category": "bags"}, CATEGORIES, False),
        ({"item_category": ["bags", "hats"]}, CATEGORIES, True),
        ({"item_category": {"in": ["bags", "socks"]}}, CATEGORIES, False),
        ({"item_category": "Shoes"}, CATEGORIES, False),  # case matters
        # ne / not_in: no value equals
        ({"item_category": {"ne": "hats"}}, CATEGORIES, False),
        ({"item_category": {"ne": "bags"}}, CATEGORIES, True),
        ({"item_category": {"not_in": ["bags", "shoes"]}}, CATEGORIES, False),
        ({"item_category": {"not_in": ["bags", "socks"]}}, CATEGORIES, True),
        # comparisons: any value, as decimals (10000 > 9000 although "10000" < "9000")
        ({"price_minor": {"gte": 9000}}, PRICES, True),
        ({"price_minor": {"gt": 10000}}, PRICES, False),
        ({"price_minor": {"gte": 10000}}, PRICES, True),
        ({"price_minor": {"gt": 9999.5}}, PRICES, True),
        ({"price_minor": {"lt": 1000}}, PRICES, False),
        ({"price_minor": {"lte": 1000}}, PRICES, True),
        ({"price_minor": {"lt": "1e4"}}, PRICES, True),
        ({"price_minor": {"lte": 999}}, PRICES, False),
        ({"price_minor": {"gt": -1}}, PRICES, True),
        # the property is missing: only ne / not_in hold
        ({"coupon": "SALE10"}, CATEGORIES, False),
        ({"coupon": ["SALE10"]}, CATEGORIES, False),
        ({"value_minor": {"gt": 0}}, CATEGORIES, False),
        ({"value_minor": {"lte": 0}}, CATEGORIES, False),
        ({"coupon": {"ne": "SALE10"}}, CATEGORIES, True),
        ({"coupon": {"not_in": ["SALE10"]}}, CATEGORIES, True),
        # every condition must hold
        ({"item_category": "hats", "price_minor": {"gt": 0}}, CATEGORIES + PRICES, True),
        ({"item_category": "hats", "price_minor": {"gt": 10000}}, CATEGORIES + PRICES, False),
    ],
)
def test_step_filter(condition: dict[str, Any], props: Props, holds: bool) -> None:
    funnel = define(["view_item", {"event": "add_to_cart", "where": condition}])
    evs = entity((0, "view_item"), (1, "add_to_cart", props))
    assert level(funnel, evs) == (2 if holds else 1)


@pytest.mark.parametrize(
    ("values", "holds"),
    [
        (("NaN",), False),
        (("nan", "sNaN", "Infinity", "-inf"), False),
        ((" 7", "7 ", "1_0", "0x10", "", "seven"), False),
        (("NaN", "7"), True),  # another value is a number and satisfies it
        (("+7",), True),
        (("6.5e0",), True),
        ((".6e1",), True),
    ],
)
def test_values_that_are_not_numbers_never_satisfy_a_comparison(
    values: tuple[str, ...], holds: bool
) -> None:
    # A custom property is any text a producer sends; none of it may stop the worker.
    funnel = define(
        ["view_item", {"event": "add_to_cart", "where": {"properties.size": {"gt": 5}}}]
    )
    props = tuple(("properties.size", v) for v in values)
    assert level(funnel, entity((0, "view_item"), (1, "add_to_cart", props))) == (2 if holds else 1)


def test_a_filter_on_step_one_limits_which_events_start_attempts() -> None:
    funnel = define([{"event": "view_item", "where": {"item_category": "shoes"}}, "purchase"])
    evs = entity(
        (0, "view_item", (("item_category", "hats"),)),
        (1, "view_item", (("item_category", "shoes"),)),
        (2, "purchase"),
    )
    credit = evaluate(funnel, evs)
    assert credit is not None and (credit.start_event_id, credit.level) == ("e01", 2)
    assert [is_start(funnel, e) for e in evs] == [False, True, False]


# -- exclusions and credit --------------------------------------------------------------------


def test_the_best_qualifying_attempt_is_credited_when_a_higher_one_is_excluded() -> None:
    funnel = define(VIEW_CART_BUY, window="5m", exclusions=REMOVE_2_3)
    evs = entity(
        (0, "view_item"),  # attempt 1: level 3, excluded
        (MIN, "add_to_cart"),
        (2 * MIN, "remove_from_cart"),
        (3 * MIN, "purchase"),
        (20 * MIN, "view_item"),  # attempt 2: level 1
        (40 * MIN, "view_item"),  # attempt 3: level 2, qualifies
        (41 * MIN, "add_to_cart"),
    )
    credit = evaluate(funnel, evs)
    assert credit is not None
    assert (credit.level, credit.start_t, credit.time_to_convert_ms) == (2, 40 * MIN, None)
    assert step_ids(credit) == ["e05", "e06"]


def test_exclusion_outside_its_step_range_does_not_disqualify() -> None:
    funnel = define(VIEW_CART_BUY, exclusions=REMOVE_2_3)
    # remove_from_cart between steps 1 and 2 is outside 2..3.
    evs = entity((0, "view_item"), (1, "remove_from_cart"), (2, "add_to_cart"), (3, "purchase"))
    assert level(funnel, evs) == 3


def test_exclusion_applies_to_each_attempt_with_its_own_step_events() -> None:
    funnel = define(VIEW_CART_BUY, exclusions=REMOVE_2_3)
    evs = entity(
        (0, "view_item"),
        (1, "add_to_cart"),
        (2, "remove_from_cart"),
        (3, "view_item"),  # attempt 2's own chain: view@3, cart@4, purchase@5
        (4, "add_to_cart"),
        (5, "purchase"),
    )
    # Attempt 1 (view@0, cart@1, purchase@5) has the remove between its steps 2 and 3.
    credit = evaluate(funnel, evs)
    assert credit is not None
    assert (credit.level, credit.start_event_id, step_ids(credit)) == (
        3,
        "e03",
        ["e03", "e04", "e05"],
    )


def test_exclusion_event_that_is_itself_a_chain_step_does_not_exclude() -> None:
    socks = {"item_category": "socks"}
    funnel = define(
        ["view_item", {"event": "add_to_cart", "where": socks}, "purchase"],
        exclusions=[{"event": "add_to_cart", "where": socks, "from_step": 1, "to_step": 3}],
    )
    cart = (("item_category", "socks"),)
    evs = entity((0, "view_item"), (1, "add_to_cart", cart), (2, "purchase"))
    assert level(funnel, evs) == 3
    # A second socks cart between steps 1 and 3 is not a step event: excluded.
    evs = entity(
        (0, "view_item"), (1, "add_to_cart", cart), (2, "add_to_cart", cart), (3, "purchase")
    )
    assert evaluate(funnel, evs) is None


def test_exclusion_where_filters_the_excluding_events() -> None:
    funnel = define(
        VIEW_CART_BUY,
        exclusions=[{"event": "view_item", "where": {"item_category": "hats"}, "from_step": 2}],
    )
    hats = (("item_category", "hats"),)
    shoes = (("item_category", "shoes"),)
    evs = entity((0, "view_item"), (1, "add_to_cart"), (2, "view_item", shoes), (3, "purchase"))
    assert level(funnel, evs) == 3
    evs = entity((0, "view_item"), (1, "add_to_cart"), (2, "view_item", hats), (3, "purchase"))
    # Attempt 1 is excluded; the hats view starts attempt 2, which has no cart after it.
    credit = evaluate(funnel, evs)
    assert credit is not None and (credit.level, credit.start_event_id) == (1, "e02")


def test_entity_without_a_start_event_is_not_in_the_funnel() -> None:
    evs = entity((0, "add_to_cart"), (1, "purchase"))
    assert evaluate(define(VIEW_CART_BUY), evs) is None
    assert evaluate(define(VIEW_CART_BUY, mode="strict"), evs) is None
    assert evaluate(define(VIEW_CART_BUY), []) is None


def test_credit_dims_come_from_the_credited_start_event() -> None:
    evs = entity((0, "view_item"), (30 * MIN, "view_item"), (31 * MIN, "add_to_cart"))
    credit = evaluate(define(VIEW_CART_BUY, window="10m"), evs)
    assert credit is not None and (credit.dims, credit.start_event_id) == (1, "e01")


# -- user attempt groups ----------------------------------------------------------------------


def test_user_groups_with_unordered_start_events() -> None:
    evs = entity(
        (0, "page_view"),  # starts nothing
        (2 * MIN, "purchase"),  # a step: opens group [2, 12]
        (5 * MIN, "view_item"),
        (12 * MIN, "purchase"),  # still in the group (inclusive)
        (13 * MIN, "view_item"),  # opens [13, 23]
        (30 * MIN, "add_to_cart"),  # not a step: nothing
        (31 * MIN, "purchase"),  # opens [31, 41]
    )
    unordered = define(["view_item", "purchase"], mode="unordered", scope="user")
    assert user_group_ranges(unordered, evs) == [
        (2 * MIN, 12 * MIN),
        (13 * MIN, 23 * MIN),
        (31 * MIN, 41 * MIN),
    ]
    # Ordered: only view_item starts attempts.
    ordered = define(["view_item", "purchase"], scope="user")
    assert user_group_ranges(ordered, evs) == [(5 * MIN, 15 * MIN)]
    # Each unordered group is credited from its own start events.
    first = evaluate(unordered, evs, (2 * MIN, 12 * MIN))
    assert first is not None and (first.level, first.start_t) == (2, 2 * MIN)
    assert step_ids(first) == ["e01", "e02"]
    last = evaluate(unordered, evs, (31 * MIN, 41 * MIN))
    assert last is not None and (last.level, last.start_t) == (1, 31 * MIN)


def test_user_group_start_events_respect_step_filters() -> None:
    funnel = define(
        [{"event": "view_item", "where": {"item_category": "shoes"}}, "purchase"],
        mode="unordered",
        scope="user",
    )
    evs = entity(
        (0, "view_item", (("item_category", "hats"),)),  # matches no step
        (MIN, "view_item", (("item_category", "shoes"),)),
    )
    assert user_group_ranges(funnel, evs) == [(MIN, 11 * MIN)]


# -- brute-force references -------------------------------------------------------------------

TYPES = ("view_item", "add_to_cart", "purchase")
CATEGORY_SETS = (None, ("shoes",), ("hats",), ("shoes", "hats"))


@st.composite
def raw_events(draw: st.DrawFn, categories: bool) -> list[FunnelEvent]:
    n = draw(st.integers(0, 8))
    out = []
    for i in range(n):
        t = draw(st.integers(0, 12))  # small: many equal times and window edges
        kind = draw(st.sampled_from(TYPES))
        props: Props = ()
        if categories:
            chosen = draw(st.sampled_from((("shoes",), ("hats",), ("shoes", "hats"), ())))
            props = tuple(("item_category", c) for c in chosen)
        out.append(FunnelEvent(t, f"e{i:02d}", kind, i, props))
    return sorted(out)


def _max_chain(
    steps: tuple[str, ...], events: list[FunnelEvent], window: int, start: int
) -> tuple[int, int | None]:
    """(max level, min time of step n among full chains) over every chain from ``start``:
    distinct events, step k+1's time >= step k's, all within ``window`` of step 1."""
    t1 = events[start].t
    levels = [1]
    full_times: list[int] = []

    def extend(k: int, previous_t: int, used: frozenset[int]) -> None:
        if k == len(steps):
            full_times.append(previous_t - t1)
            return
        for position, event in enumerate(events):
            if (
                position not in used
                and event.event_type == steps[k]
                and previous_t <= event.t <= t1 + window
            ):
                levels.append(k + 1)
                extend(k + 1, event.t, used | {position})

    extend(1, t1, frozenset({start}))
    return max(levels), min(full_times, default=None)


@settings(max_examples=400, deadline=None)
@given(
    steps=st.lists(st.sampled_from(TYPES), min_size=2, max_size=4).map(tuple),
    events=raw_events(categories=False),
    window=st.integers(1, 12),
)
def test_ordered_level_equals_the_best_of_every_chain(
    steps: tuple[str, ...], events: list[FunnelEvent], window: int
) -> None:
    funnel = FunnelDef("f", steps, "session", window)
    credit = evaluate(funnel, events)
    starts = [p for p, e in enumerate(events) if e.event_type == steps[0]]
    if not starts:
        assert credit is None
        return
    results = [(_max_chain(steps, events, window, s), s) for s in starts]
    top = max(level for (level, _), _ in results)
    # Ties go to the earliest attempt.
    (expected_level, expected_ttc), start = next(r for r in results if r[0][0] == top)
    assert credit is not None
    assert credit.level == expected_level
    assert credit.start_event_id == events[start].event_id
    assert credit.time_to_convert_ms == (expected_ttc if top == len(steps) else None)
    # The credited chain is a valid chain of the reported level.
    assert len(credit.steps) == credit.level
    assert len({e.event_id for e in credit.steps}) == credit.level
    assert [e.event_type for e in credit.steps] == list(steps[: credit.level])
    times = [e.t for e in credit.steps]
    assert times == sorted(times) and times[-1] - times[0] <= window


def _matches(step: tuple[str, tuple[str, ...] | None], event: FunnelEvent) -> bool:
    kind, categories = step
    if event.event_type != kind:
        return False
    return categories is None or any(v in categories for v in event.values("item_category"))


def _max_matching(
    steps: list[tuple[str, tuple[str, ...] | None]], events: list[FunnelEvent]
) -> int:
    """Most steps that distinct events can fill, by trying every assignment."""
    best = 0
    k = min(len(steps), len(events))
    for size in range(k, 0, -1):
        for chosen in permutations(range(len(events)), size):
            for step_order in permutations(range(len(steps)), size):
                if all(
                    _matches(steps[s], events[e]) for s, e in zip(step_order, chosen, strict=True)
                ):
                    return size
    return best


def _where(step: tuple[str, tuple[str, ...] | None]) -> Any:
    kind, categories = step
    if categories is None:
        return kind
    return {"event": kind, "where": {"item_category": list(categories)}}


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(TYPES[:2]), st.sampled_from(CATEGORY_SETS)),
        min_size=2,
        max_size=3,
    ),
    events=raw_events(categories=True),
    window=st.integers(1, 12),
)
def test_unordered_level_and_step_times_equal_a_brute_force_matching(
    steps: list[tuple[str, tuple[str, ...] | None]], events: list[FunnelEvent], window: int
) -> None:
    funnel = define([_where(s) for s in steps], mode="unordered", window=f"{window}s")
    window_ms = window * SEC
    events = [e._replace(t=e.t * SEC) for e in events]
    credit = evaluate(funnel, events)
    starts = [p for p, e in enumerate(events) if any(_matches(s, e) for s in steps)]
    if not starts:
        assert credit is None
        return

    def kth_step_positions(start: int) -> list[int]:
        usable = [
            p for p in range(start, len(events)) if events[p].t - events[start].t <= window_ms
        ]
        out: list[int] = []
        for i, position in enumerate(usable):
            if _max_matching(steps, [events[p] for p in usable[: i + 1]]) > len(out):
                out.append(position)
        return out

    attempts = [kth_step_positions(s) for s in starts]
    top = max(len(a) for a in attempts)
    expected = next(a for a in attempts if len(a) == top)
    assert credit is not None
    assert credit.level == top
    assert step_ids(credit) == [events[p].event_id for p in expected]
    assert credit.start_event_id == events[expected[0]].event_id
    ttc = events[expected[-1]].t - events[expected[0]].t if top == len(steps) else None
    assert credit.time_to_convert_ms == ttc


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.sampled_from(TYPES), min_size=2, max_size=4).map(tuple),
    events=raw_events(categories=False),
    window=st.integers(1, 12),
)
def test_strict_level_is_the_longest_run_of_consecutive_steps(
    steps: tuple[str, ...], events: list[FunnelEvent], window: int
) -> None:
    funnel = FunnelDef("f", steps, "session", window, mode="strict")
    best: tuple[int, int] | None = None  # (level, start position)
    for start, event in enumerate(events):
        if event.event_type != steps[0]:
            continue
        run = 1
        while (
            run < len(steps)
            and start + run < len(events)
            and events[start + run].event_type == steps[run]
            and events[start + run].t - event.t <= window
        ):
            run += 1
        if best is None or run > best[0]:
            best = (run, start)
    credit = evaluate(funnel, events)
    if best is None:
        assert credit is None
    else:
        assert credit is not None
        assert (credit.level, credit.start_event_id) == (best[0], events[best[1]].event_id)
