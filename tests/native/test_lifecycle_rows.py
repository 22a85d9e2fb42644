"""streams/lifecycle_rows.py::advance_lifecycle vs its Rust port
(native/src/lifecycle_rows.rs), with the rows it emits: segment_transitions, triggers
(``to_trigger`` and the table row) and user_rfm, the transition counters, the
VersionClock and the trigger ids (uuid5).

Each call is compared whole: the state before (``encode_state``), the watermark, rules,
partition, wall time and the clock; after it, the state (as its encoded bytes), every row,
trigger and counter it added, and the clock. The Python clock reads ``time.time_ns``
through a fake wall clock so that the Rust clock can be stopped at the same time.

Rows are compared as JSON lists of their columns (ints, strings, None); a Trigger as the
list of its dataclass fields, items as [item_id, quantity, price_minor] and detail as an
object; the counters as sorted [from, to, count] lists.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import orjson
import pytest
import shopfunnel_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import state_memory
from schemas.triggers import Trigger, trigger_id
from streams import lifecycle, lifecycle_rows, processor, visitor
from streams.batch import BatchResult
from streams.lifecycle import DAY_MS, CartEvent, LifecycleRules, Purchase, cart_order
from streams.lives import add_activity, split_lives
from streams.outputs import family, segment_transitions, triggers, user_rfm
from streams.outputs.family import VersionClock
from streams.state import VisitorState, encode_state
from tests.native.lifecycle_cases import rules_json, run_interleaved

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
TABLES = {
    "transition_rows": segment_transitions.TABLE,
    "trigger_rows": triggers.TABLE,
    "rfm_rows": user_rfm.TABLE,
}


def probe(name: str, args: dict[str, Any]) -> Any:
    return orjson.loads(shopfunnel_core.probe(name, orjson.dumps(args)))


def trigger_json(t: Trigger) -> list[Any]:
    return [
        t.trigger_id,
        t.trigger_type,
        t.anonymous_id,
        t.occurred_at_ms,
        t.emitted_at_ms,
        t.user_id,
        t.cart_value_minor,
        t.currency,
        [[i.item_id, i.quantity, i.price_minor] for i in t.items],
        t.channel,
        t.segment,
        t.previous_segment,
        dict(t.detail),
    ]


def row_json(row: tuple[Any, ...]) -> list[Any]:
    for value in row:  # the rows hold only these
        assert value is None or type(value) in (int, str), row
    return list(row)


class WallClock:
    """Stands for the ``time`` module in streams.outputs.family: time_ns() reads ``now``."""

    def __init__(self) -> None:
        self.now = time.time_ns()

    def time_ns(self) -> int:
        return self.now


class Calls:
    """Every advance_lifecycle call: (the Rust probe's arguments, the Python outcome)."""

    def __init__(self) -> None:
        self.cases: list[tuple[bytes, dict[str, Any]]] = []
        self.wall = WallClock()
        self._tick = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(family, "time", self.wall)
        original = lifecycle_rows.advance_lifecycle

        def advance(*args: Any) -> None:
            self.run(original, *args)

        monkeypatch.setattr(processor, "advance_lifecycle", advance)

    def next_wall(self) -> int:
        """Wall times ahead of the clock, and now and then behind it (then the clock
        counts on from its last version)."""
        self._tick += 1
        if self._tick % 3 == 0:
            return self._tick  # far behind any version
        return time.time_ns() + self._tick * 1000

    def run(
        self,
        original: Any,
        anonymous_id: str,
        state: VisitorState,
        watermark: int,
        rules: LifecycleRules,
        partition: int,
        now_ms: int,
        versions: VersionClock,
        result: BatchResult,
    ) -> None:
        self.wall.now = self.next_wall()
        args = orjson.dumps(
            {
                "anonymous_id": anonymous_id,
                "state": orjson.loads(encode_state(state)),
                "watermark": watermark,
                "rules": rules_json(rules),
                "partition": partition,
                "now_ms": now_ms,
                "versions_last": versions._last,
                "now_ns": self.wall.now,
            }
        )
        counts = {k: len(result.rows.get(t, ())) for k, t in TABLES.items()}
        n_triggers = len(result.triggers)
        stats = Counter(result.stats.transitions)
        original(anonymous_id, state, watermark, rules, partition, now_ms, versions, result)
        added = result.stats.transitions - stats
        expected: dict[str, Any] = {
            "state": orjson.loads(encode_state(state)),
            **{
                k: [row_json(r) for r in result.rows.get(t, [])[counts[k] :]]
                for k, t in TABLES.items()
            },
            "triggers": [trigger_json(t) for t in result.triggers[n_triggers:]],
            "transitions": sorted([f, t, n] for (f, t), n in added.items()),
            "versions_last": versions._last,
        }
        self.cases.append((args, expected))

    def mismatches(self) -> list[tuple[bytes, Any, Any]]:
        out = []
        for args, expected in self.cases:
            got = orjson.loads(shopfunnel_core.probe("lifecycle_rows.advance", args))
            got["transitions"] = sorted(got["transitions"])
            if got != expected:
                out.append((args, expected, got))
        return out


# -- hypothesis states -------------------------------------------------------------------------

HOUR = 3_600_000
T0 = 1_790_000_000_000
TEXT = st.sampled_from(["", "a", "b", "é", "😀", "a\x00", "\x1f"]) | st.text(max_size=3)
CHANNELS = st.sampled_from(["", "email", "ads", "ñ"])
CURRENCIES = st.sampled_from(["", "EUR", "USD", "円"])
KINDS = ["add_to_cart", "remove_from_cart", "view_cart", "begin_checkout", "purchase"]


@st.composite
def visitor_states(draw: st.DrawFn) -> tuple[VisitorState, LifecycleRules]:
    """A state the core could hold (every purchase and cart event a counted event), times
    on an hour grid so breakpoints, deadlines, TTLs and watermarks coincide; quantities
    and prices up to where the trigger saturates them."""
    hours = st.integers(0, 24 * 14).map(lambda k: T0 + k * HOUR)
    rules = LifecycleRules(
        new_ms=draw(st.integers(0, 48)) * HOUR,
        dormant_ms=draw(st.integers(0, 96)) * HOUR,
        churn_ms=draw(st.integers(0, 200)) * HOUR,
        cart_abandon_ms=draw(st.integers(0, 3)) * HOUR,
        anonymous_ttl_ms=draw(st.integers(1, 3)) * DAY_MS,
        buyer_ttl_ms=draw(st.integers(1, 6)) * DAY_MS,
    )
    anonymous_id = draw(TEXT)
    state = VisitorState(draw(st.integers(0, 5)), anonymous_id)
    state.user_id = draw(st.none() | TEXT)
    values = st.integers(0, 99) | st.sampled_from([0, 10**13])  # validation: <= 10**13
    purchases = draw(
        st.lists(st.builds(Purchase, hours, TEXT, values, CURRENCIES, CHANNELS), max_size=5)
    )
    quantities = st.integers(0, 3) | st.sampled_from([2**31 - 1, 2**31, 2**40])
    prices = st.integers(0, 9) | st.sampled_from([10**13, 2**40, 2**62])
    line = st.tuples(st.sampled_from(["i", "j", "ü"]), quantities, prices)
    cart = draw(
        st.lists(
            st.builds(
                CartEvent,
                hours,
                st.sampled_from(["e1", "e2", "é"]),
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
        *((t, "x", draw(CHANNELS)) for t in other),
    ]:
        add_activity(state.days, t, eid, channel, "web")
    state.purchases = sorted(purchases)
    state.cart = sorted(cart, key=cart_order)
    return state, rules


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_advance_hypothesis(data: st.DataObject) -> None:
    state, rules = data.draw(visitor_states())
    # Watermarks on the grid, or exactly at (or next to) a purchase, a stage breakpoint,
    # a cart deadline or a life's end: where a half-open bound decides.
    points = [p.t for p in state.purchases]
    points += [at for at, _ in lifecycle._breakpoints(state.purchases, rules)]
    points += [e.t + rules.cart_abandon_ms for e in state.cart]
    points += [life.forgotten_at for life in split_lives(state.days, state.purchases, rules)]
    grid = st.integers(-1, 24 * 30).map(lambda k: T0 + k * HOUR)
    near = st.sampled_from(points).flatmap(lambda t: st.sampled_from([t - 1, t, t + 1]))
    watermarks = data.draw(st.lists(near | grid if points else grid, min_size=1, max_size=4))
    calls = Calls()
    versions = VersionClock()
    versions._last = data.draw(st.sampled_from([0, 5, time.time_ns(), 2**62]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(family, "time", calls.wall)
        for watermark in watermarks:
            calls.run(
                lifecycle_rows.advance_lifecycle,
                state.anonymous_id,
                state,
                watermark,
                rules,
                data.draw(st.integers(0, 2**31)),
                data.draw(st.integers(I64_MIN, I64_MAX)),
                versions,
                BatchResult(),
            )
    assert not calls.mismatches()


def test_purchase_at_the_watermark() -> None:
    """A purchase exactly at the watermark is not yet counted in the RFM row; one just
    before it is, with its currency's values only."""
    state = VisitorState(0, "v")
    purchases = [
        Purchase(T0, "a", 5, "EUR", "ads"),
        Purchase(T0 + 1, "c", 3, "USD", ""),
        Purchase(T0 + HOUR, "b", 7, "EUR", ""),
    ]
    for p in purchases:
        add_activity(state.days, p.t, p.transaction_id, p.channel, "web")
    state.purchases = purchases
    calls = Calls()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(family, "time", calls.wall)
        for watermark in (T0 + HOUR, T0 + HOUR, T0 + HOUR + 1):
            calls.run(
                lifecycle_rows.advance_lifecycle,
                "v",
                state,
                watermark,
                LifecycleRules(),
                3,
                7,
                VersionClock(),
                BatchResult(),
            )
    rfm = [d["rfm_rows"] for _, d in calls.cases]
    assert [[r[3:8] for r in rows] for rows in rfm] == [
        [[T0, T0 + 1, 2, 5, "EUR"]],
        [],
        [[T0, T0 + HOUR, 3, 12, "EUR"]],
    ]
    assert not calls.mismatches()


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from(["cart_abandoned", "segment_changed", "é"]) | st.text(max_size=5),
    st.text(max_size=80),
    st.lists(st.text(max_size=70) | st.integers(I64_MIN, I64_MAX).map(str), max_size=3),
)
def test_trigger_id(trigger_type: str, anonymous_id: str, parts: list[str]) -> None:
    # Lengths around SHA-1's 55/56/64-byte block edges come from the 80-char texts.
    args = {"trigger_type": trigger_type, "anonymous_id": anonymous_id, "parts": parts}
    expected = trigger_id(trigger_type, anonymous_id, *parts)
    assert probe("lifecycle_rows.trigger_id", args) == expected
    assert uuid.UUID(expected).version == 5


@settings(max_examples=50, deadline=None)
@given(st.integers(I64_MIN, I64_MAX - 1), st.integers(I64_MIN, I64_MAX))
def test_version_clock(last: int, now: int) -> None:
    clock = VersionClock()
    clock._last = last
    with pytest.MonkeyPatch.context() as patch:
        wall = WallClock()
        wall.now = now
        patch.setattr(family, "time", wall)
        version = clock.next()
    assert probe("lifecycle_rows.version_next", {"last": last, "now_ns": now}) == [
        version,
        clock._last,
    ]


# -- the Python core on simulated traffic ------------------------------------------------------

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
    return state_memory.partition_zero(4000, 60)


def record(monkeypatch: pytest.MonkeyPatch, rules: LifecycleRules) -> Calls:
    monkeypatch.setattr(
        state_memory, "Rules", lambda funnels: visitor.Rules(funnels, lifecycle=rules)
    )
    calls = Calls()
    calls.install(monkeypatch)
    return calls


def outcomes(calls: Calls) -> list[dict[str, Any]]:
    assert calls.cases
    assert not calls.mismatches()
    return [expected for _, expected in calls.cases]


def test_real_calls_default_rules(
    traffic: list[tuple[str, bytes, bytes, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call the core makes in bench.state_memory.run_core over 60 days of traffic
    with the default rules (each visitor advanced once, at the last watermark)."""
    calls = record(monkeypatch, LifecycleRules())
    state_memory.run_core(traffic, 0)
    done = outcomes(calls)
    assert len(done) > 100
    assert sum(len(d["transition_rows"]) for d in done) > 30
    assert sum(len(d["trigger_rows"]) for d in done) > 30
    assert sum(len(d["rfm_rows"]) for d in done) > 10


def test_real_calls_short_rules_interleaved(
    traffic: list[tuple[str, bytes, bytes, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The traffic read as a worker reads it (the watermark moving across stage
    boundaries and cart deadlines), with short rules: visitors advanced many times, go
    through every stage, come back, and lives end."""
    calls = record(monkeypatch, SHORT)
    assert run_interleaved(traffic, 1000) > 10
    done = outcomes(calls)
    assert len(done) > 1000
    kinds = {(r[2], r[3]) for d in done for r in d["transition_rows"]}
    assert {("new", "active"), ("active", "dormant"), ("dormant", "churned")} <= kinds
    assert {("churned", "forgotten"), ("dormant", "active")} <= kinds
    types = {t[1] for d in done for t in d["triggers"]}
    assert {"first_purchase", "user_reactivated", "cart_abandoned", "segment_changed"} <= types
    assert any(t[6] is not None for d in done for t in d["triggers"])  # a cart value
    assert any(t[5] is not None for d in done for t in d["triggers"])  # a user id
    assert sum(len(d["rfm_rows"]) for d in done) > 50
    # Versions from the wall clock, and counted on from the last one when it is behind.
    lasts = [orjson.loads(args)["versions_last"] for args, _ in calls.cases]
    steps = [r[-1] - last for last, d in zip(lasts, done, strict=True) for r in d["rfm_rows"]]
    assert 1 in steps and any(step > 1 for step in steps)
    # Calls that find nothing to do, and states whose stage or cart they change.
    arguments = [orjson.loads(args) for args, _ in calls.cases]
    assert sum(1 for a, d in zip(arguments, done, strict=True) if a["state"] == d["state"]) > 100
    assert sum(1 for a, d in zip(arguments, done, strict=True) if a["state"] != d["state"]) > 1000
