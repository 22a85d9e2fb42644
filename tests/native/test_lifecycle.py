"""streams/lifecycle.py vs its Rust port (native/src/lifecycle.rs), and the decisions of
streams/lifecycle_rows.py::advance_lifecycle vs `lifecycle::advance_lifecycle`.

Hypothesis inputs (ties, times exactly at breakpoints and deadlines, i64 extremes, empty
carts, removals beyond the adds, mixed currencies) and every call the Python core makes
while processing simulated traffic; the Rust result must equal the Python one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import shopfunnel_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import state_memory
from streams import forget, lifecycle, lifecycle_rows, lives, processor, visitor
from streams.batch import BatchResult
from streams.lifecycle import (
    DAY_MS,
    CartEvent,
    LifecycleRules,
    Purchase,
    Transition,
    cart_order,
)
from streams.lives import add_activity
from streams.outputs.family import VersionClock
from streams.state import VisitorState
from tests.native.lifecycle_cases import (
    FUNCTIONS,
    I64_MAX,
    I64_MIN,
    AdvanceRecorder,
    Recorder,
    probe,
    python_call,
    run_interleaved,
    rust_call,
)

EXTREMES = [I64_MIN, I64_MIN + 1, -1, 0, 1, I64_MAX - 1, I64_MAX]
STAGES = ["prospect", "new", "active", "dormant", "churned", "forgotten"]
TEXT = st.sampled_from(["", "a", "b", "ab", "B", "é", "😀", "a\x00"]) | st.text(max_size=3)
CHANNELS = st.sampled_from(["", "email", "ads", "ñ"])
CURRENCIES = st.sampled_from(["", "EUR", "USD", "円"])
KINDS = ["add_to_cart", "remove_from_cart", "view_cart", "begin_checkout", "purchase"]


def same(name: str, **args: Any) -> Any:
    """Python lifecycle.<name>(**args) and its Rust port agree; the result (as JSON)."""
    encoded, expected = python_call(name, args)
    assert rust_call(name, encoded) == expected, (name, encoded)
    return expected


@st.composite
def domains(draw: st.DrawFn) -> tuple[st.SearchStrategy[int], LifecycleRules]:
    """Times and rules: small ones (ties, every breakpoint hit) or i64 extremes."""
    if draw(st.booleans()):
        durations = st.integers(0, 8)
        times = st.integers(-3, 30)
    else:
        durations = st.sampled_from([0, 1, 2**40, 2**62, I64_MAX])
        times = st.sampled_from(EXTREMES) | st.integers(I64_MIN, I64_MAX)
    fields = [f.name for f in dataclasses.fields(LifecycleRules)]
    rules = LifecycleRules(**{name: draw(durations) for name in fields})
    return times, rules


@st.composite
def purchase_lists(draw: st.DrawFn, times: st.SearchStrategy[int]) -> list[Purchase]:
    purchases = draw(
        st.lists(
            st.builds(Purchase, times, TEXT, st.integers(I64_MIN, I64_MAX), CURRENCIES, CHANNELS),
            max_size=6,
        )
    )
    return sorted(purchases) if draw(st.booleans()) else purchases  # the core keeps them sorted


@st.composite
def carts(draw: st.DrawFn, times: st.SearchStrategy[int]) -> list[CartEvent]:
    quantities = st.integers(-3, 6) | st.sampled_from([2**55, -(2**55)])
    prices = st.integers(0, 9) | st.integers(I64_MIN, I64_MAX)
    line = st.tuples(st.sampled_from(["i", "j", "ü"]), quantities, prices)
    event = st.builds(
        CartEvent,
        times,
        st.sampled_from(["e1", "e2", "", "é"]),
        st.sampled_from([*KINDS, "add_to_cart", "add_to_cart", "remove_from_cart", "other"]),
        st.lists(line, max_size=4).map(tuple),
        CURRENCIES,
        CHANNELS,
    )
    events = draw(st.lists(event, max_size=8))
    return sorted(events, key=cart_order) if draw(st.booleans()) else events


def near(draw: Callable[..., Any], points: list[int], times: st.SearchStrategy[int]) -> int:
    """A time exactly at one of ``points`` (or next to it), else any time; within i64."""
    inside = [p + d for p in points for d in (-1, 0, 1) if I64_MIN <= p + d <= I64_MAX]
    chosen: int = draw(st.sampled_from(inside) if inside and draw(st.booleans()) else times)
    return chosen


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_stages_transitions_and_stage_triggers(data: st.DataObject) -> None:
    times, rules = data.draw(domains())
    purchases = data.draw(purchase_lists(times))
    points = [at for at, _ in lifecycle._breakpoints(purchases, rules)]
    same("_breakpoints", purchases=purchases, rules=rules)
    for _ in range(3):
        same("stage_at", purchases=purchases, t=near(data.draw, points, times), rules=rules)
        after = data.draw(st.none() | st.just(near(data.draw, points, times)))
        until = near(data.draw, points, times)
        same("transitions_between", purchases=purchases, after=after, until=until, rules=rules)
        same("next_breakpoint", purchases=purchases, after=until, rules=rules)
    found = lifecycle.transitions_between(purchases, None, I64_MAX, rules)
    same("lifecycle_triggers", transitions=found, purchases=purchases)
    made_up = data.draw(
        st.lists(
            st.builds(Transition, times, st.sampled_from(STAGES), st.sampled_from(STAGES), TEXT),
            max_size=4,
        )
    )
    tagged = [
        tr._replace(transaction_id=p.transaction_id)
        for tr, p in zip(made_up, purchases, strict=False)
    ]
    same("lifecycle_triggers", transitions=made_up + tagged, purchases=purchases)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_carts(data: st.DataObject) -> None:
    times, rules = data.draw(domains())
    events = data.draw(carts(times))
    deadlines = [e.t + rules.cart_abandon_ms for e in events]
    for event in events:
        same("cart_order", event=event)
    ordered = sorted(events, key=cart_order)
    for end in range(len(ordered) + 1):
        same("cart_lines", events=ordered[:end])
        same("_cart_currency", events=ordered[:end])
    same("cart_lines", events=events)  # out of cart order, as the function allows
    for _ in range(3):
        after = data.draw(st.none() | st.just(near(data.draw, deadlines, times)))
        until = near(data.draw, deadlines, times)
        same("abandoned_carts", events=events, after=after, until=until, rules=rules)
        same("next_cart_deadline", events=events, after=until, rules=rules)
        same("prune_cart", events=events, watermark=near(data.draw, deadlines, times), rules=rules)


def test_cart_edge_cases() -> None:
    rules = LifecycleRules(cart_abandon_ms=10)
    add = CartEvent(0, "a", "add_to_cart", (("i", 2, 5), ("j", 1, 7)), "EUR", "ads")
    remove_more = CartEvent(1, "b", "remove_from_cart", (("i", 5, 0), ("x", 1, 1)), "USD", "")
    empty_add = CartEvent(2, "c", "add_to_cart", (), "", "email")
    readd = CartEvent(3, "d", "add_to_cart", (("i", 1, 9),), "", "email")
    for events in ([], [add, remove_more], [add, remove_more, empty_add, readd]):
        for until in (0, 10, 12, 13, 14, I64_MAX):
            got = same("abandoned_carts", events=events, after=None, until=until, rules=rules)
            if events and until == I64_MAX:
                assert got  # the cart was abandoned with something in it
    assert same("cart_lines", events=[add, remove_more, readd]) == [["j", 1, 7], ["i", 1, 9]]
    # An item added again keeps its place and takes the new price; a negative add that
    # leaves nothing changes nothing; a removal of everything drops it.
    more = CartEvent(4, "e", "add_to_cart", (("i", 1, 8), ("k", -1, 1), ("j", -1, 3)), "", "")
    assert same("cart_lines", events=[add, more]) == [["i", 3, 8], ["j", 1, 7]]
    drop = CartEvent(5, "f", "remove_from_cart", (("j", 1, 0),), "", "")
    assert same("cart_lines", events=[add, drop, more]) == [["i", 3, 8]]


def test_rules_from_json() -> None:
    for rules in (LifecycleRules(), LifecycleRules(new_ms=0, buyer_ttl_ms=I64_MAX)):
        as_json = dataclasses.asdict(rules)
        assert probe("lifecycle.rules", {"rules": as_json}) == as_json
    # A missing field takes the dataclass default.
    assert probe("lifecycle.rules", {"rules": {"churn_ms": 5}}) == dataclasses.asdict(
        LifecycleRules(churn_ms=5)
    )
    for bad in ({"nope_ms": 1}, {"new_ms": "1"}, {"new_ms": -1}, [1]):
        with pytest.raises(ValueError):
            shopfunnel_core.probe("lifecycle.rules", orjson.dumps({"rules": bad}))
    with pytest.raises(ValueError):
        shopfunnel_core.probe("lifecycle.stage_at", b'{"purchases": [[1]], "t": 0, "rules": {}}')


# -- advance_lifecycle's decisions -----------------------------------------------------------

HOUR = 3_600_000
T0 = 1_790_000_000_000


@st.composite
def visitor_states(draw: st.DrawFn) -> tuple[VisitorState, LifecycleRules]:
    """A state the core could hold: every purchase and cart event a counted event, times
    on an hour grid so that breakpoints, deadlines, TTLs and watermarks coincide."""
    hours = st.integers(0, 24 * 14).map(lambda k: T0 + k * HOUR)
    rules = LifecycleRules(
        new_ms=draw(st.integers(0, 48)) * HOUR,
        dormant_ms=draw(st.integers(0, 96)) * HOUR,
        churn_ms=draw(st.integers(0, 200)) * HOUR,
        cart_abandon_ms=draw(st.integers(0, 3)) * HOUR,
        anonymous_ttl_ms=draw(st.integers(1, 3)) * DAY_MS,
        buyer_ttl_ms=draw(st.integers(1, 6)) * DAY_MS,
    )
    state = VisitorState(0, "v")
    purchases = draw(
        st.lists(
            st.builds(Purchase, hours, TEXT, st.integers(0, 99), CURRENCIES, CHANNELS), max_size=5
        )
    )
    quantities = st.integers(0, 3)
    line = st.tuples(st.sampled_from(["i", "j"]), quantities, st.integers(0, 9))
    cart = draw(
        st.lists(
            st.builds(
                CartEvent,
                hours,
                st.sampled_from(["e1", "e2", "e3"]),
                st.sampled_from(KINDS),
                st.lists(line, max_size=2).map(tuple),
                CURRENCIES,
                CHANNELS,
            ),
            max_size=6,
        )
    )
    other = draw(st.lists(hours, max_size=4))
    for t, eid, channel in [
        *((p.t, p.transaction_id, p.channel) for p in purchases),
        *((e.t, e.event_id, e.channel) for e in cart),
        *((t, "x", "") for t in other),
    ]:
        add_activity(state.days, t, eid, channel, "web")
    state.purchases = sorted(purchases)
    state.cart = sorted(cart, key=cart_order)
    return state, rules


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_advance_decisions(data: st.DataObject) -> None:
    state, rules = data.draw(visitor_states())
    watermarks = data.draw(
        st.lists(st.integers(-1, 24 * 30).map(lambda k: T0 + k * HOUR), min_size=1, max_size=4)
    )
    recorder = AdvanceRecorder()
    with pytest.MonkeyPatch.context() as patch:
        recorder.install(patch)
        for watermark in watermarks:
            case = recorder.run(
                lifecycle_rows.advance_lifecycle,
                "v",
                state,
                watermark,
                rules,
                0,
                1,
                VersionClock(),
                BatchResult(),
            )
            recorder.cases.append(case)
    assert not recorder.mismatches()


# -- the Python core on simulated traffic ----------------------------------------------------

SHORT = LifecycleRules(
    new_ms=2 * DAY_MS,
    dormant_ms=4 * DAY_MS,
    churn_ms=9 * DAY_MS,
    cart_abandon_ms=10 * 60_000,
    anonymous_ttl_ms=6 * DAY_MS,
    buyer_ttl_ms=15 * DAY_MS,
)


@pytest.fixture(scope="module")
def traffic() -> list[tuple[str, bytes, bytes, int]]:
    return state_memory.partition_zero(6000, 60)


def record(
    monkeypatch: pytest.MonkeyPatch, rules: LifecycleRules
) -> tuple[Recorder, AdvanceRecorder]:
    monkeypatch.setattr(
        state_memory, "Rules", lambda funnels: visitor.Rules(funnels, lifecycle=rules)
    )
    calls = Recorder()
    calls.install(monkeypatch, [lifecycle, lifecycle_rows, visitor, forget, lives])
    advances = AdvanceRecorder()
    advances.install(monkeypatch)
    assert getattr(processor, "advance_lifecycle") is not lifecycle_rows.advance_lifecycle  # noqa: B009
    return calls, advances


def check(calls: Recorder, advances: AdvanceRecorder) -> list[dict[str, Any]]:
    for name in FUNCTIONS:
        assert calls.counts[name] > 0, name
    assert not calls.mismatches()
    assert not advances.mismatches()
    return [expected for _, expected in advances.cases if expected]


def test_real_calls_default_rules(
    traffic: list[tuple[str, bytes, bytes, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call the core makes in bench.state_memory.run_core over 60 days of simulated
    traffic, with the default rules (run_core's per-input batches leave the watermark to
    the last batch: each visitor is advanced once, from the start)."""
    calls, advances = record(monkeypatch, LifecycleRules())
    state_memory.run_core(traffic, 0)
    decided = check(calls, advances)
    assert len(decided) > 100
    assert sum(len(d["transitions"]) for d in decided) > 30
    assert sum(len(d["triggers"]) for d in decided) > 30
    assert any(d["rfm"] for d in decided)


def test_real_calls_short_rules_interleaved(
    traffic: list[tuple[str, bytes, bytes, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same traffic read as a worker reads it (all inputs at once, the watermark
    moving), with rules short enough that buyers go through every stage, come back, and
    lives end: visitors advanced many times, from a previous watermark."""
    calls, advances = record(monkeypatch, SHORT)
    assert run_interleaved(traffic, 1000) > 10
    decided = check(calls, advances)
    kinds = {(tr[1], tr[2]) for d in decided for tr in d["transitions"]}
    assert {("new", "active"), ("active", "dormant"), ("dormant", "churned")} <= kinds
    assert {("churned", "forgotten"), ("dormant", "active")} <= kinds
    arguments = [orjson.loads(encoded) for encoded, _ in advances.cases]
    assert sum(1 for a in arguments if a["as_of"] is not None) > 1000
    assert sum(1 for a in arguments if len(a["lives"]) > 1) > 10
    assert sum(1 for _, expected in advances.cases if expected is None) > 100
    triggers = {spec[0] for d in decided for spec in d["triggers"]}
    assert "user_reactivated" in triggers and "cart_abandoned" in triggers
