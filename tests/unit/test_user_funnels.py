"""User-scope funnels: each funnel's rows do not depend on which other funnels are defined.

Regression tests for issue #12's bugs 1 and 2, and the property that would have caught
them: a funnel's step and outcome counts are the same whether it is defined alone or with
any other funnels (sharing event types, user or session scope), and equal the
simulator's independent truth. The pipeline side runs the visitor logic of
``streams/visitor.py`` event by event, closing expired entities as the watermark moves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.model import Event
from simulator.truth import compute_truth
from simulator.truth_model import FunnelSpec
from streams.funnels import FunnelDef
from streams.outputs.funnel_outcomes import FunnelOutcomeKey
from streams.outputs.funnel_steps import FunnelStepKey
from streams.state import VisitorState, decode_state, encode_state
from streams.visitor import Rules, apply_event, close_expired, contributions, expired
from tests.unit.truth_builders import (
    DAY,
    HOUR,
    LATENESS,
    MIN,
    T0,
    TIMEOUT,
    ev,
    rec,
    watermark_ticks,
)

DIMS = ("direct", "", "desktop", "web", "CN")
# Not page_view / add_shipping_info / payment_failed: the truth's watermark ticks use those.
TYPES = ("sign_up", "view_item", "add_to_cart", "login", "search")

Counts = tuple[Counter[tuple[str, int, int]], Counter[tuple[str, int, str]]]


def pipeline_counts(events: Sequence[Event], funnels: Sequence[FunnelDef]) -> Counts:
    """(steps entered, outcomes) per (funnel, window, step/outcome), every entity closed.

    The state goes through encode/decode after every event, as it does between batches.
    """
    rules = Rules(tuple(funnels), lateness_ms=LATENESS, session_timeout_ms=TIMEOUT)
    state = VisitorState(0)
    offsets: Counter[str] = Counter()
    ordered = sorted(events, key=lambda e: (e.event_time_ms, e.event_id))
    for event in ordered:
        apply_event(state, event, DIMS, event.stream, offsets[event.stream], rules)
        offsets[event.stream] += 1
        close_expired(state, event.event_time_ms - LATENESS, rules)
        state = decode_state(encode_state(state))
    close_expired(state, ordered[-1].event_time_ms + 60 * DAY, rules)
    steps: Counter[tuple[str, int, int]] = Counter()
    outcomes: Counter[tuple[str, int, str]] = Counter()
    for key, value in contributions(state, rules, {}).items():
        if isinstance(key, FunnelStepKey):
            steps[(key.funnel, key.window, key.step)] += value
        elif isinstance(key, FunnelOutcomeKey):
            outcomes[(key.funnel, key.window, key.outcome)] += value
    return +steps, +outcomes


def truth_counts(events: Sequence[Event], funnels: Sequence[FunnelDef]) -> Counts:
    """The same counts from the simulator's truth (docs/semantics.md section 3)."""
    ticks = watermark_ticks(max(e.event_time_ms for e in events) + 60 * DAY)
    truth = compute_truth(
        [rec(e) for e in sorted([*events, *ticks], key=lambda e: e.event_time_ms)],
        lateness_ms=LATENESS,
        session_timeout_ms=TIMEOUT,
        funnels=[FunnelSpec(f.name, f.steps, f.window_ms, f.scope) for f in funnels],
    )
    steps: Counter[tuple[str, int, int]] = Counter()
    outcomes: Counter[tuple[str, int, str]] = Counter()
    for row in truth.funnel_steps:
        steps[(row.funnel, row.window_start_ms, row.step)] += row.entered
    for o in truth.funnel_outcomes:
        outcomes[(o.funnel, o.window_start_ms, o.outcome)] += o.entities
    return +steps, +outcomes


def only(counts: Counts, funnel: str) -> Counts:
    steps, outcomes = counts
    return (
        Counter({k: v for k, v in steps.items() if k[0] == funnel}),
        Counter({k: v for k, v in outcomes.items() if k[0] == funnel}),
    )


def test_bug1_a_short_user_funnel_does_not_take_a_long_ones_step_1() -> None:
    """[sign_up, add_to_cart] over 7 days and [sign_up, view_item] over 60 s share sign_up:
    the short one closing its group must not delete the sign_up the long one needs."""
    long = FunnelDef("long", ("sign_up", "add_to_cart"), "user", 7 * DAY)
    short = FunnelDef("short", ("sign_up", "view_item"), "user", 60_000)
    events = [
        ev("sign_up", T0, "e1"),
        ev("view_item", T0 + 10_000, "e2"),
        ev("add_to_cart", T0 + 2 * DAY, "e3"),
    ]
    for funnels in ([long, short], [short, long]):
        counts = pipeline_counts(events, funnels)
        window = T0 - T0 % MIN
        assert only(counts, "long")[1] == Counter({("long", window, "converted"): 1})
        assert only(counts, "short")[1] == Counter({("short", window, "converted"): 1})
        assert counts == truth_counts(events, funnels)


def test_bug2_closing_a_group_keeps_the_next_groups_events() -> None:
    """W = 1 day: a group that starts 36 h or 48 h after the previous one (inside
    (low + W, low + 2W]) is counted after the first group closes."""
    funnel = FunnelDef("signup_cart", ("sign_up", "add_to_cart"), "user", DAY)
    for gap in (36 * HOUR, 48 * HOUR):
        events = [
            ev("sign_up", T0, "g1"),
            ev("sign_up", T0 + gap, "g2"),
            ev("add_to_cart", T0 + gap + HOUR, "g3"),
        ]
        steps, outcomes = pipeline_counts(events, [funnel])
        second = T0 + gap - (T0 + gap) % MIN
        assert outcomes == Counter(
            {("signup_cart", T0, "dropped"): 1, ("signup_cart", second, "converted"): 1}
        ), f"gap {gap / HOUR:.0f} h"
        assert steps[("signup_cart", second, 2)] == 1
        assert (steps, outcomes) == truth_counts(events, [funnel])


windows = st.sampled_from([60_000, 10 * MIN, HOUR, DAY, 7 * DAY])
funnel_defs = st.builds(
    lambda steps, scope, window: (tuple(steps), scope, window),
    st.lists(st.sampled_from(TYPES), min_size=2, max_size=3),
    st.sampled_from(["user", "user", "session"]),
    windows,
)
event_lists = st.lists(
    st.tuples(st.sampled_from(TYPES), st.integers(0, 4 * 24 * 12)),  # 5-minute slots, 4 days
    min_size=1,
    max_size=14,
)


@settings(max_examples=60, deadline=None)
@given(defs=st.lists(funnel_defs, min_size=2, max_size=4), raw=event_lists)
def test_every_funnel_counts_the_same_alone_and_with_others(
    defs: list[tuple[tuple[str, ...], str, int]], raw: list[tuple[str, int]]
) -> None:
    funnels = [
        FunnelDef(f"f{i}", steps, scope, window)  # type: ignore[arg-type]
        for i, (steps, scope, window) in enumerate(defs)
    ]
    events = [
        ev(event_type, T0 + slot * 5 * MIN + i, f"e{i:02d}")
        for i, (event_type, slot) in enumerate(raw)
    ]
    together = pipeline_counts(events, funnels)
    for funnel in funnels:
        alone = pipeline_counts(events, [funnel])
        assert only(together, funnel.name) == alone, funnel
    assert together == truth_counts(events, funnels)


def test_states_written_before_user_consumed_still_decode() -> None:
    """The per-funnel consumed times were appended to the state record: a record written
    by the previous version (one element shorter) reads back with none. The anonymous id
    is the table key, not stored in the value: the reader passes it."""
    state = VisitorState(3, "anon-7")
    state.user_consumed = {"signup_cart": T0}
    payload = orjson.loads(encode_state(state))[:20]  # as written before touchpoints
    assert payload[-1] == {"signup_cart": T0}
    assert "anon-7" not in payload
    again = decode_state(encode_state(state), "anon-7")
    assert again.user_consumed == {"signup_cart": T0} and again.anonymous_id == "anon-7"
    older = decode_state(orjson.dumps(payload[:-1]), "anon-7")
    assert older.user_consumed == {} and older.partition == 3


def _visitor_after(events: Sequence[Event], funnels: Sequence[FunnelDef], watermark: int) -> Any:
    rules = Rules(tuple(funnels), lateness_ms=LATENESS, session_timeout_ms=TIMEOUT)
    state = VisitorState(0, "a1")
    for offset, event in enumerate(sorted(events, key=lambda e: (e.event_time_ms, e.event_id))):
        apply_event(state, event, DIMS, "clickstream", offset, rules)
    close_expired(state, watermark, rules)
    return state, rules


def test_events_that_start_no_user_group_are_dropped_behind_the_watermark() -> None:
    """A purchase with no sign_up before it can join no group of [sign_up, purchase]: once
    the watermark passes it, the visitor keeps no user events (they used to stay for the
    visitor's whole life, and kept it from ever expiring)."""
    funnel = FunnelDef("signup_buy", ("sign_up", "add_to_cart"), "user", DAY)
    events = [ev("add_to_cart", T0, "c1"), ev("add_to_cart", T0 + HOUR, "c2")]
    state, rules = _visitor_after(events, [funnel], T0 + HOUR - 1)
    assert [e.event_id for e in state.user_events] == ["c2"]  # c2 may still join a group
    close_expired(state, T0 + 2 * HOUR, rules)
    assert state.user_events == []
    assert not expired(state, T0 + 2 * HOUR, rules)  # the visitor's life is not over
    assert expired(state, T0 + 40 * DAY, rules)


def test_a_strict_user_funnel_keeps_every_event_only_while_a_group_can_use_it() -> None:
    strict = FunnelDef("strict", ("sign_up", "add_to_cart"), "user", HOUR, mode="strict")
    events = [
        ev("view_item", T0, "v0"),
        ev("sign_up", T0 + MIN, "s1"),
        ev("search", T0 + 2 * MIN, "x1"),
        ev("login", T0 + 3 * HOUR, "l1"),
    ]
    state, rules = _visitor_after(events, [strict], T0 + 2 * MIN)
    # Every type is kept for a strict funnel, from the open group's start on.
    assert [e.event_id for e in state.user_events] == ["s1", "x1", "l1"]
    close_expired(state, T0 + 4 * HOUR, rules)  # the group closed (t0 + 2W passed)
    assert state.user_events == []
    assert [(c.funnel, c.level) for c in state.closed] == [("strict", 1)]
