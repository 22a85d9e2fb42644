"""The truth's funnel definition language (docs/semantics.md §3): strict and unordered
modes, property filters, per-step ``within``, exclusions, breakdowns, custom events and
the ``funnel_attempts`` rows. Every expected value is computed by hand from the page."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from schemas.model import STREAM_OF_EVENT, Event, Item
from simulator.errors import SimConfigError
from simulator.records import SimRecord
from simulator.truth import compute_truth, read_truth, write_truth
from simulator.truth_funnel import EntityEvents
from simulator.truth_model import (
    ExclusionSpec,
    FunnelAttemptRow,
    FunnelSpec,
    StepMatcher,
    Truth,
    funnel_specs,
)
from streams.funnels import parse_funnels

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
LATENESS = 5 * MIN
TIMEOUT = 30 * MIN
T0 = 1_793_491_200_000  # 2026-11-01T00:00Z, a minute boundary
# Far-ahead events of another visitor on all three topics: the final watermark passes
# every entity's close. No funnel below uses these types.
TICKS = ("review_submitted", "view_cart", "order_cancelled")


def ev(event_type: str, t: int, event_id: str, **fields: Any) -> Event:
    """An event at T0 + t; ``anon`` / ``session`` default to a1 / s1. ``custom:<name>``
    types are clickstream events."""
    anon = fields.pop("anon", "a1")
    session = fields.pop("session", "s1")
    stream = "clickstream" if event_type.startswith("custom:") else STREAM_OF_EVENT[event_type]
    return Event(
        stream=stream,  # type: ignore[arg-type]
        event_type=event_type,
        event_id=event_id,
        event_time_ms=T0 + t,
        sent_time_ms=T0 + t,
        anonymous_id=anon,
        session_id=session,
        **fields,
    )


def items(*lines: tuple[str, int]) -> tuple[Item, ...]:
    """Items of (item_category, price_minor)."""
    return tuple(
        Item(f"SKU-{n}", price, item_category=category) for n, (category, price) in enumerate(lines)
    )


def rec(event: Event) -> SimRecord:
    return SimRecord(
        stream=event.stream,
        partition=0,
        key=event.anonymous_id.encode(),
        value=b"",
        send_time_ms=event.event_time_ms,
        event=event,
        malformed_reason=None,
        is_duplicate=False,
        intended_late=False,
    )


def funnels(text: str) -> tuple[FunnelSpec, ...]:
    """FunnelSpecs of a ``funnels:`` YAML list (parsed and validated by streams.funnels)."""
    return funnel_specs(parse_funnels("funnels:\n" + text))


def truth_of(events: Sequence[Event], specs: Sequence[FunnelSpec], *, close: bool = True) -> Truth:
    everything = list(events)
    if close:
        late = max(e.event_time_ms for e in events) - T0 + 10 * DAY
        everything += [ev(t, late, f"tick-{t}", anon="zz-ticks") for t in TICKS]
    everything.sort(key=lambda e: e.event_time_ms)
    return compute_truth(
        [rec(e) for e in everything],
        lateness_ms=LATENESS,
        session_timeout_ms=TIMEOUT,
        funnels=specs,
    )


def entered(truth: Truth, funnel: str) -> dict[int, int]:
    counts: Counter[int] = Counter()
    for row in truth.funnel_steps:
        if row.funnel == funnel:
            counts[row.step] += row.entered
    return dict(counts)


def attempts(truth: Truth, funnel: str) -> list[FunnelAttemptRow]:
    return [row for row in truth.funnel_attempts if row.funnel == funnel]


def only_attempt(truth: Truth, funnel: str) -> FunnelAttemptRow:
    (row,) = attempts(truth, funnel)
    return row


THREE = "steps: [view_item, add_to_cart, purchase]"


def buy(t: int, event_id: str, **fields: Any) -> Event:
    fields.setdefault("transaction_id", f"T-{event_id}")
    fields.setdefault("currency", "CNY")
    fields.setdefault("value_minor", 1000)
    return ev("purchase", t, event_id, **fields)


# -- strict ------------------------------------------------------------------------------------


def test_strict_worked_example_any_event_in_between_ends_the_chain() -> None:
    specs = funnels(
        f"  - {{name: strict, mode: strict, {THREE}}}\n  - {{name: ordered, {THREE}}}\n"
    )
    gap = [ev("view_item", 0, "v"), ev("page_view", MIN, "pv")]
    gap += [ev("add_to_cart", 2 * MIN, "c"), buy(3 * MIN, "p")]
    truth = truth_of(gap, specs)
    assert entered(truth, "strict") == {1: 1}
    assert entered(truth, "ordered") == {1: 1, 2: 1, 3: 1}
    assert only_attempt(truth, "strict").outcome == "dropped"

    direct = [ev("view_item", 0, "v"), ev("add_to_cart", MIN, "c"), buy(2 * MIN, "p")]
    truth = truth_of(direct, specs)
    assert entered(truth, "strict") == {1: 1, 2: 1, 3: 1}
    assert entered(truth, "ordered") == {1: 1, 2: 1, 3: 1}
    row = only_attempt(truth, "strict")
    assert (row.outcome, row.level, row.step_times_ms) == (
        "converted",
        3,
        (T0, T0 + MIN, T0 + 2 * MIN),
    )


def test_strict_respects_the_window_and_within() -> None:
    specs = funnels(
        "  - name: strict\n    mode: strict\n    window: 10m\n"
        "    steps: [view_item, {event: add_to_cart, within: 2m}, purchase]\n"
    )
    ok = [ev("view_item", 0, "v"), ev("add_to_cart", 2 * MIN, "c"), buy(10 * MIN, "p")]
    assert entered(truth_of(ok, specs), "strict") == {1: 1, 2: 1, 3: 1}
    slow_step = [ev("view_item", 0, "v"), ev("add_to_cart", 2 * MIN + 1, "c")]
    assert entered(truth_of(slow_step, specs), "strict") == {1: 1}
    out_of_window = [ev("view_item", 0, "v"), ev("add_to_cart", MIN, "c"), buy(10 * MIN + 1, "p")]
    assert entered(truth_of(out_of_window, specs), "strict") == {1: 1, 2: 1}


def test_strict_user_scope_next_event_is_any_event_of_the_user() -> None:
    steps = "steps: [sign_up, login]"
    specs = funnels(
        f"  - {{name: user_strict, scope: user, mode: strict, {steps}}}\n"
        f"  - {{name: session_strict, mode: strict, {steps}}}\n"
    )
    events = [
        ev("sign_up", 0, "su", session="s1"),
        ev("page_view", MIN, "pv", session="s2"),  # another session, the user's next event
        ev("login", 2 * MIN, "li", session="s1"),
    ]
    truth = truth_of(events, specs)
    assert entered(truth, "user_strict") == {1: 1}
    assert entered(truth, "session_strict") == {1: 1, 2: 1}


def test_strict_picks_the_best_attempt_of_the_entity() -> None:
    specs = funnels(f"  - {{name: strict, mode: strict, {THREE}}}\n")
    events = [
        ev("view_item", 0, "v1"),
        ev("search", MIN, "s"),
        ev("view_item", 2 * MIN, "v2"),
        ev("add_to_cart", 3 * MIN, "c"),
        ev("search", 4 * MIN, "s2"),
        buy(5 * MIN, "p"),
    ]
    row = only_attempt(truth_of(events, specs), "strict")
    assert (row.start_event_id, row.level, row.window_start_ms) == ("v2", 2, T0 + 2 * MIN)


# -- unordered --------------------------------------------------------------------------------

ABC = (
    "  - name: abc\n    mode: unordered\n    window: 10m\n"
    "    steps: [view_item, add_to_cart, begin_checkout]\n"
)
A, B, C = "view_item", "add_to_cart", "begin_checkout"


def test_unordered_worked_example_b_c_a() -> None:
    events = [ev(B, 0, "b"), ev(C, MIN, "c"), ev(A, 2 * MIN, "a")]
    truth = truth_of(events, funnels(ABC))
    assert entered(truth, "abc") == {1: 1, 2: 1, 3: 1}
    row = only_attempt(truth, "abc")
    assert (row.start_event_id, row.outcome, row.level) == ("b", "converted", 3)
    assert row.step_times_ms == (T0, T0 + MIN, T0 + 2 * MIN)
    assert [(r.le_seconds, r.converted) for r in truth.funnel_ttc] == [(120.0, 1)]


def test_unordered_worked_example_out_of_window() -> None:
    events = [ev(C, 0, "c"), ev(A, 20 * MIN, "a")]
    truth = truth_of(events, funnels(ABC))
    assert entered(truth, "abc") == {1: 1}
    row = only_attempt(truth, "abc")
    # Both attempts reach level 1: the earliest is credited.
    assert (row.start_event_id, row.level, row.outcome) == ("c", 1, "dropped")
    assert row.window_start_ms == T0


def test_unordered_repeated_step_counts_once_and_times_are_when_k_steps_were_done() -> None:
    events = [ev(A, 0, "a1"), ev(A, MIN, "a2"), ev(C, 3 * MIN, "c"), ev(B, 11 * MIN, "b")]
    truth = truth_of(events, funnels(ABC))
    # From a1: a2 fills nothing new, c makes 2; b is past the 10 min window (level 2).
    # From a2: c (2), b at 11 min <= 1 + 10 (3): the later attempt converts.
    row = only_attempt(truth, "abc")
    assert (row.start_event_id, row.level) == ("a2", 3)
    assert row.step_times_ms == (T0 + MIN, T0 + 3 * MIN, T0 + 11 * MIN)
    assert [r.le_seconds for r in truth.funnel_ttc] == [600.0]


def test_unordered_counts_a_maximum_matching_not_a_first_fit() -> None:
    # view(shoes) matches both steps; the hats view only step 1. Filling step 1 with the
    # shoes view first would leave 1 step; the maximum matching does 2.
    spec = funnels(
        "  - name: views\n    mode: unordered\n"
        "    steps: [view_item, {event: view_item, where: {item_category: shoes}}]\n"
    )
    both = [ev(A, 0, "v1", items=items(("shoes", 100))), ev(A, MIN, "v2", items=items(("hats", 1)))]
    row = only_attempt(truth_of(both, spec), "views")
    assert (row.start_event_id, row.level, row.step_times_ms) == ("v1", 2, (T0, T0 + MIN))
    hats = [ev(A, 0, "v1", items=items(("hats", 1))), ev(A, MIN, "v2", items=items(("hats", 1)))]
    assert only_attempt(truth_of(hats, spec), "views").level == 1


def test_unordered_user_scope_groups_start_at_any_step() -> None:
    steps = "steps: [sign_up, login]"
    specs = funnels(
        f"  - {{name: unordered, scope: user, mode: unordered, {steps}}}\n"
        f"  - {{name: ordered, scope: user, {steps}}}\n"
    )
    events = [
        ev("login", 0, "l1", session="s1"),
        ev("sign_up", 30 * MIN, "su", session="s2"),
        ev("login", 2 * HOUR, "l2", session="s3"),
    ]
    truth = truth_of(events, specs)
    # Unordered: start events l1, su, l2; groups [l1, su] (su <= 0 + 1 h) and [l2].
    rows = attempts(truth, "unordered")
    assert [(r.start_event_id, r.entity, r.level, r.outcome) for r in rows] == [
        ("l1", "", 2, "converted"),
        ("l2", "", 1, "dropped"),
    ]
    assert rows[0].step_times_ms == (T0, T0 + 30 * MIN)
    assert [(r.le_seconds, r.converted) for r in truth.funnel_ttc if r.funnel == "unordered"] == [
        (1800.0, 1)
    ]
    # Ordered: only sign_up starts; login at 2 h is 90 min after it (out of the window).
    assert [(r.start_event_id, r.level) for r in attempts(truth, "ordered")] == [("su", 1)]


def test_unordered_level_matches_brute_force() -> None:
    """The incremental matching against trying every assignment of events to steps."""
    spec = FunnelSpec("u", ("s0", "s1", "s2", "s3"), HOUR, "session", "unordered")
    rng = random.Random(7)
    for _ in range(300):
        length = rng.randint(1, 7)
        masks = [rng.randint(1, 15) for _ in range(length)]
        entity = EntityEvents([ev("page_view", i, f"e{i}") for i in range(length)], spec)
        entity.masks = masks  # matches set by hand: bit k = matches step k
        done = entity.attempt(0).step_positions
        for prefix in range(1, length + 1):
            expected = _brute_force(masks[:prefix])
            assert sum(1 for p in done if p < prefix) == expected, (masks, prefix)


def _brute_force(masks: Sequence[int]) -> int:
    """Most distinct steps the events can fill, the first event always filling one."""
    best = 0
    options = [[None, *[k for k in range(4) if m >> k & 1]] for m in masks]
    options[0] = options[0][1:]
    for choice in itertools.product(*options):
        chosen = [k for k in choice if k is not None]
        if len(chosen) == len(set(chosen)):
            best = max(best, len(chosen))
    return best


# -- exclusions -------------------------------------------------------------------------------

EXCLUDED = (
    f"  - name: excl\n    {THREE}\n"
    "    exclusions: [{event: remove_from_cart, from_step: 2, to_step: 3}]\n"
)


def test_exclusion_worked_example_disqualifies_the_converting_attempt() -> None:
    events = [
        ev("view_item", 0, "v"),
        ev("add_to_cart", MIN, "c"),
        ev("remove_from_cart", 2 * MIN, "r"),
        buy(3 * MIN, "p"),
    ]
    truth = truth_of(events, funnels(EXCLUDED))
    # Its only attempt is disqualified: the session is not in the funnel at all.
    assert entered(truth, "excl") == {}
    assert truth.funnel_outcomes == ()
    assert truth.funnel_attempts == ()


def test_exclusion_worked_example_an_attempt_short_of_step_b_qualifies() -> None:
    events = [ev("view_item", 0, "v"), ev("add_to_cart", MIN, "c")]
    events.append(ev("remove_from_cart", 2 * MIN, "r"))
    truth = truth_of(events, funnels(EXCLUDED))
    assert entered(truth, "excl") == {1: 1, 2: 1}
    assert only_attempt(truth, "excl").outcome == "dropped"


def test_exclusion_outside_the_steps_range_does_not_disqualify() -> None:
    events = [
        ev("view_item", 0, "v"),
        ev("remove_from_cart", MIN, "r"),  # between steps 1 and 2, the range is 2..3
        ev("add_to_cart", 2 * MIN, "c"),
        buy(3 * MIN, "p"),
        ev("remove_from_cart", 4 * MIN, "r2"),  # after step 3
    ]
    assert entered(truth_of(events, funnels(EXCLUDED)), "excl") == {1: 1, 2: 1, 3: 1}


def test_a_disqualified_attempt_leaves_the_credit_to_a_later_one() -> None:
    events = [
        ev("view_item", 0, "v1", device="desktop"),
        ev("add_to_cart", MIN, "c1"),
        ev("remove_from_cart", 2 * MIN, "r"),
        ev("view_item", 3 * MIN, "v2", device="mobile"),
        ev("add_to_cart", 4 * MIN, "c2"),
        buy(5 * MIN, "p"),
    ]
    truth = truth_of(events, funnels(EXCLUDED))
    # v1: c1, p (level 3) with r between c1 and p: out. v2: c2, p, nothing between.
    row = only_attempt(truth, "excl")
    assert (row.start_event_id, row.device, row.window_start_ms) == ("v2", "mobile", T0 + 3 * MIN)
    assert (row.level, row.step_times_ms) == (3, (T0 + 3 * MIN, T0 + 4 * MIN, T0 + 5 * MIN))
    assert {(r.device, r.step) for r in truth.funnel_steps} == {
        ("mobile", 1),
        ("mobile", 2),
        ("mobile", 3),
    }


def test_an_exclusion_matching_a_step_event_of_the_attempt_does_not_count() -> None:
    spec = funnels(
        "  - name: two_carts\n"
        "    steps: [view_item, add_to_cart, add_to_cart, purchase]\n"
        "    exclusions:\n"
        "      - {event: add_to_cart, from_step: 1, to_step: 4, where: {item_category: hats}}\n"
    )
    own = [
        ev("view_item", 0, "v"),
        ev("add_to_cart", MIN, "c1", items=items(("hats", 100))),  # step 2 itself
        ev("add_to_cart", 2 * MIN, "c2", items=items(("shoes", 100))),
        buy(3 * MIN, "p"),
    ]
    assert entered(truth_of(own, spec), "two_carts") == {1: 1, 2: 1, 3: 1, 4: 1}
    extra = [
        ev("view_item", 0, "v"),
        ev("add_to_cart", MIN, "c1", items=items(("shoes", 100))),
        ev("add_to_cart", 2 * MIN, "c2", items=items(("shoes", 100))),
        ev("add_to_cart", 2 * MIN + 1, "c3", items=items(("hats", 100))),  # not a step
        buy(3 * MIN, "p"),
    ]
    assert entered(truth_of(extra, spec), "two_carts") == {}
    no_hats = [*extra[:3], ev("add_to_cart", 2 * MIN + 1, "c3", items=items(("bags", 1))), extra[4]]
    assert entered(truth_of(no_hats, spec), "two_carts") == {1: 1, 2: 1, 3: 1, 4: 1}


# -- filters ----------------------------------------------------------------------------------


def _second_step_level(where: str, event: Event) -> int:
    spec = funnels(
        f"  - name: f\n    steps: [view_item, {{event: '{event.event_type}', where: {where}}}]\n"
    )
    truth = truth_of([ev("view_item", 0, "v"), event], spec)
    return only_attempt(truth, "f").level


CART = "add_to_cart"


@pytest.mark.parametrize(
    ("where", "event", "level"),
    [
        # eq: any item's category
        ("{item_category: shoes}", ev(CART, MIN, "c", items=items(("hats", 1), ("shoes", 1))), 2),
        ("{item_category: shoes}", ev(CART, MIN, "c", items=items(("hats", 1))), 1),
        ("{item_category: shoes}", ev(CART, MIN, "c"), 1),  # no items: no value
        # in: the event's coupon or an item's
        ("{coupon: [SALE10, SALE20]}", ev(CART, MIN, "c", coupon="SALE20"), 2),
        (
            "{coupon: {in: [SALE10, SALE20]}}",
            ev(CART, MIN, "c", items=(Item("S", 1, coupon="SALE10"),)),
            2,
        ),
        ("{coupon: [SALE10, SALE20]}", ev(CART, MIN, "c", coupon="OTHER"), 1),
        # not_in / ne: no value may equal; no value at all holds
        ("{coupon: {not_in: [SALE10]}}", ev(CART, MIN, "c"), 2),
        ("{coupon: {not_in: [SALE10]}}", ev(CART, MIN, "c", coupon="X"), 2),
        (
            "{coupon: {not_in: [SALE10]}}",
            ev(CART, MIN, "c", coupon="X", items=(Item("S", 1, coupon="SALE10"),)),
            1,
        ),
        ("{country: {ne: CN}}", ev(CART, MIN, "c", country="CN"), 1),
        ("{country: {ne: CN}}", ev(CART, MIN, "c", country="US"), 2),
        ("{country: {ne: CN}}", ev(CART, MIN, "c", country=""), 2),
        # numbers: any item's price, compared as decimals
        ("{price_minor: {gte: 5000}}", ev(CART, MIN, "c", items=items(("a", 100), ("b", 5000))), 2),
        ("{price_minor: {gte: 5000}}", ev(CART, MIN, "c", items=items(("a", 4999))), 1),
        ("{price_minor: {gt: 4999.5}}", ev(CART, MIN, "c", items=items(("a", 5000))), 2),
        ("{price_minor: {lt: 100}}", ev(CART, MIN, "c", items=items(("a", 100), ("b", 99))), 2),
        ("{price_minor: {lte: 99}}", ev(CART, MIN, "c", items=items(("a", 100))), 1),
        ("{price_minor: {gte: 1}}", ev(CART, MIN, "c"), 1),  # no value
        # several conditions: all must hold
        (
            "{item_category: shoes, price_minor: {gte: 5000}}",
            ev(CART, MIN, "c", items=items(("shoes", 100), ("hats", 6000))),
            2,  # any value per condition: shoes (100) and a 6000 item
        ),
        (
            "{item_category: shoes, coupon: SALE10}",
            ev(CART, MIN, "c", items=items(("shoes", 100))),
            1,
        ),
    ],
)
def test_step_filters(where: str, event: Event, level: int) -> None:
    assert _second_step_level(where, event) == level


SIZE = "custom:size_guide_opened"


@pytest.mark.parametrize(
    ("where", "properties", "level"),
    [
        ("{properties.size: '42'}", {"size": "42"}, 2),
        ("{properties.size: '42'}", {"size": "43"}, 1),
        ("{properties.size: '42'}", {}, 1),  # without the property
        ("{properties.size: {ne: '42'}}", {}, 2),
        ("{properties.size: {not_in: ['42']}}", {"size": "42"}, 1),
        ("{properties.size: {gt: 41}}", {"size": "41.5"}, 2),
        ("{properties.size: {gt: 41}}", {"size": "41"}, 1),
        ("{properties.size: {gt: 41}}", {"size": "XL"}, 1),  # not a number
        ("{properties.size: {gt: 41}}", {}, 1),
    ],
)
def test_custom_property_filters(where: str, properties: dict[str, str], level: int) -> None:
    assert _second_step_level(where, ev(SIZE, MIN, "g", properties=properties)) == level


def test_custom_event_steps() -> None:
    spec = funnels(
        "  - name: sizes\n"
        "    steps: [view_item, {event: 'custom:size_guide_opened', where: {properties.size: "
        "'42'}}, purchase]\n"
    )
    events = [
        ev("view_item", 0, "v"),
        ev(SIZE, MIN, "g1", properties={"size": "40"}),
        ev("custom:other", 2 * MIN, "o", properties={"size": "42"}),
        ev(SIZE, 3 * MIN, "g2", properties={"size": "42"}),
        buy(4 * MIN, "p"),
    ]
    row = only_attempt(truth_of(events, spec), "sizes")
    assert (row.level, row.step_times_ms) == (3, (T0, T0 + 3 * MIN, T0 + 4 * MIN))


def test_a_filter_on_step_1_decides_the_start_events() -> None:
    spec = funnels(
        "  - name: shoes\n"
        "    steps: [{event: view_item, where: {item_category: shoes}}, add_to_cart]\n"
    )
    events = [
        ev("view_item", 0, "hats", items=items(("hats", 1))),
        ev("view_item", MIN, "shoes", items=items(("shoes", 1))),
        ev("add_to_cart", 2 * MIN, "c"),
    ]
    row = only_attempt(truth_of(events, spec), "shoes")
    assert (row.start_event_id, row.window_start_ms, row.level) == ("shoes", T0 + MIN, 2)
    none = [ev("view_item", 0, "hats", items=items(("hats", 1))), ev("add_to_cart", MIN, "c")]
    assert truth_of(none, spec).funnel_attempts == ()


# -- within -----------------------------------------------------------------------------------

WITHIN = (
    "  - name: w\n    window: 1h\n"
    "    steps: [view_item, {event: add_to_cart, within: 10m}, {event: purchase, within: 10m}]\n"
)


def test_within_is_inclusive_and_from_the_previous_step() -> None:
    events = [ev("view_item", 0, "v"), ev("add_to_cart", 10 * MIN, "c"), buy(20 * MIN, "p")]
    row = only_attempt(truth_of(events, funnels(WITHIN)), "w")
    assert (row.level, row.outcome) == (3, "converted")
    late = [ev("view_item", 0, "v"), ev("add_to_cart", 10 * MIN, "c"), buy(20 * MIN + 1, "p")]
    assert only_attempt(truth_of(late, funnels(WITHIN)), "w").level == 2


def test_within_makes_a_later_attempt_the_best() -> None:
    events = [
        ev("view_item", 0, "v1"),
        ev("view_item", 5 * MIN, "v2"),
        ev("add_to_cart", 11 * MIN, "c"),  # 11 min after v1, 6 after v2
    ]
    row = only_attempt(truth_of(events, funnels(WITHIN)), "w")
    assert (row.start_event_id, row.level, row.window_start_ms) == ("v2", 2, T0 + 5 * MIN)


def test_within_skips_to_a_later_matching_event_only_if_in_time() -> None:
    # The greedy takes the earliest add_to_cart within 10 min of step 1.
    events = [
        ev("view_item", 0, "v"),
        ev("add_to_cart", 2 * MIN, "c1"),
        ev("add_to_cart", 9 * MIN, "c2"),
        buy(15 * MIN, "p"),  # 13 min after c1: too late for the chain through c1
    ]
    row = only_attempt(truth_of(events, funnels(WITHIN)), "w")
    assert (row.level, row.step_times_ms) == (2, (T0, T0 + 2 * MIN))


# -- breakdown --------------------------------------------------------------------------------


def _breakdown_spec(attribution: str) -> tuple[FunnelSpec, ...]:
    return funnels(
        f"  - name: b\n    {THREE}\n"
        "    breakdown:\n"
        "      dimensions: [channel, experiment:checkout_button, tier]\n"
        f"      attribution: '{attribution}'\n"
    )


def _breakdown_events(*, purchase: bool = True) -> list[Event]:
    events = [
        ev(
            "view_item",
            0,
            "v",
            utm_source="baidu",
            utm_medium="cpc",
            experiments={"checkout_button": "green"},
            properties={"membership_tier": "gold"},
        ),
        ev(
            "add_to_cart",
            MIN,
            "c",
            utm_source="newsletter",
            utm_medium="email",
            experiments={"checkout_button": "blue"},
        ),
    ]
    if purchase:
        events.append(buy(2 * MIN, "p"))
    return events


@pytest.mark.parametrize(
    ("attribution", "purchase", "expected"),
    [
        ("first_touch", True, ("paid_search", "green", "gold")),
        ("last_touch", True, ("direct", "", "")),
        ("last_touch", False, ("email", "blue", "")),
        ("step:2", True, ("email", "blue", "")),
        ("step:3", True, ("direct", "", "")),
        ("step:3", False, ("", "", "")),  # step 3 not reached
    ],
)
def test_breakdown_attribution(attribution: str, purchase: bool, expected: tuple[str, ...]) -> None:
    truth = truth_of(_breakdown_events(purchase=purchase), _breakdown_spec(attribution))
    level = 3 if purchase else 2
    row = only_attempt(truth, "b")
    assert (row.breakdown, row.level) == (expected, level)
    # The dimension columns stay the start event's, whatever the attribution.
    assert row.channel == "paid_search"
    assert {(r.step, r.breakdown, r.channel) for r in truth.funnel_steps} == {
        (k, expected, "paid_search") for k in range(1, level + 1)
    }
    assert [(r.outcome, r.breakdown) for r in truth.funnel_outcomes] == [
        ("converted" if purchase else "dropped", expected)
    ]
    assert [r.breakdown for r in truth.funnel_ttc] == ([expected] if purchase else [])


def test_breakdown_of_properties_takes_the_first_value() -> None:
    spec = funnels(
        "  - name: b\n    steps: [view_item, add_to_cart]\n"
        "    breakdown: {dimensions: [item_category, coupon, device], attribution: last_touch}\n"
    )
    cart = ev(
        "add_to_cart",
        MIN,
        "c",
        device="mobile",
        items=(
            Item("S1", 1),  # no category, an item coupon
            Item("S2", 1, item_category="shoes", coupon="I1"),
            Item("S3", 1, item_category="hats"),
        ),
        coupon="ORDER",
    )
    truth = truth_of([ev("view_item", 0, "v"), cart], spec)
    assert only_attempt(truth, "b").breakdown == ("shoes", "ORDER", "mobile")
    assert only_attempt(truth, "b").device == "desktop"  # the start event's


def test_no_breakdown_means_an_empty_tuple_everywhere() -> None:
    events = [ev("view_item", 0, "v"), ev("add_to_cart", MIN, "c"), buy(2 * MIN, "p")]
    truth = truth_of(events, funnels(f"  - {{name: plain, {THREE}}}\n"))
    breakdowns = [r.breakdown for r in truth.funnel_steps]
    breakdowns += [r.breakdown for r in truth.funnel_outcomes]
    breakdowns += [r.breakdown for r in truth.funnel_ttc]
    breakdowns += [r.breakdown for r in truth.funnel_attempts]
    assert breakdowns == [()] * 6


# -- funnel_attempts --------------------------------------------------------------------------


def test_attempt_rows_name_later_segments_and_carry_the_start_dimensions() -> None:
    spec = funnels(f"  - {{name: f, {THREE}}}\n")
    events = [
        ev("view_item", 0, "v1", country="CN"),
        # 31 min later: a second segment of session s1.
        ev("view_item", 31 * MIN, "v2", country="US", utm_source="douyin", utm_medium="kol"),
        ev("add_to_cart", 32 * MIN, "c"),
        buy(40 * MIN, "p"),
        ev("view_item", 0, "x1", anon="a2", session="t1"),
    ]
    rows = attempts(truth_of(events, spec), "f")
    # Sorted as tuples: country '' before 'CN'.
    assert rows == [
        FunnelAttemptRow(
            "f", T0, "direct", "", "desktop", "web", "", (), "a2", f"t1@{T0}", "x1", "dropped", 1,
            (T0,),
        ),
        FunnelAttemptRow(
            "f", T0, "direct", "", "desktop", "web", "CN", (), "a1", f"s1@{T0}", "v1", "dropped", 1,
            (T0,),
        ),
        FunnelAttemptRow(
            "f", T0 + 31 * MIN, "kol", "", "desktop", "web", "US", (), "a1",
            f"s1@{T0 + 31 * MIN}", "v2",
            "converted", 3, (T0 + 31 * MIN, T0 + 32 * MIN, T0 + 40 * MIN),
        ),
    ]  # fmt: skip


def test_attempt_rows_stay_in_progress_until_the_entity_closes() -> None:
    spec = funnels(f"  - {{name: f, {THREE}}}\n")
    events = [ev("view_item", 0, "v"), ev("add_to_cart", MIN, "c")]
    row = only_attempt(truth_of(events, spec, close=False), "f")
    assert (row.outcome, row.level, row.step_times_ms) == ("in_progress", 2, (T0, T0 + MIN))


# -- the spec and the truth file --------------------------------------------------------------


def test_plain_funnel_spec_is_still_positional() -> None:
    plain = FunnelSpec("f", ("view_item", "add_to_cart"), HOUR, "user")
    (parsed,) = funnels("  - {name: f, scope: user, steps: [view_item, add_to_cart]}\n")
    assert plain == parsed
    assert plain.mode == "ordered"
    assert plain.step_matchers == (StepMatcher("view_item"), StepMatcher("add_to_cart"))


def test_the_spec_refuses_what_the_page_refuses() -> None:
    with pytest.raises(SimConfigError, match="unordered"):
        FunnelSpec(
            "u",
            ("view_item", "add_to_cart"),
            HOUR,
            mode="unordered",
            exclusions=(ExclusionSpec("remove_from_cart", 1, 2),),
        )
    with pytest.raises(SimConfigError, match="exclusion"):
        FunnelSpec("o", ("view_item", "add_to_cart"), HOUR, exclusions=(ExclusionSpec("x", 2, 3),))


def test_truth_file_round_trip_with_the_new_columns(tmp_path: Path) -> None:
    specs = (
        *_breakdown_spec("step:2"),
        *funnels(EXCLUDED.replace("name: excl", "name: ex2")),
        *funnels(WITHIN),
        *funnels(ABC),
    )
    truth = truth_of(_breakdown_events(), specs)
    assert truth.funnel_attempts and all(r.breakdown for r in attempts(truth, "b"))
    path = tmp_path / "truth.json"
    write_truth(truth, path)
    assert read_truth(path) == truth
