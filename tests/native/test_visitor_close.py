"""streams/visitor.py's closing, pruning and scheduling vs their Rust port
(native/src/visitor_close.rs): split_segments, first_segment_end, segment_id,
breakdown_values, close_expired (_close_sessions, _freeze, _close_user_groups,
user_funnel_events, _drop_consumed_user_events), prune_final, expired,
drop_forgotten_lives and next_due.

Hypothesis inputs (segment gaps exactly at the timeout, ties, single events, i64
extremes, breakdowns on missing steps and properties; whole states with small windows so
horizons are hit exactly), and every call the Python core makes while processing
simulated traffic over several days (default funnels, bench/funnels_mixed.yaml, and short
lifetimes so lives are forgotten and dropped); the Rust result must equal the Python one,
states compared as their encoded bytes.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import shopfunnel_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import state_memory
from schemas.channels import ChannelRules
from schemas.codec import EventCodec
from schemas.validation import ValidationBounds
from streams import processor as processor_module
from streams import visitor
from streams.attribution import AttributionRules, Touch
from streams.compiled.config import funnel_spec, rules_json
from streams.funnel_eval import Credit, FunnelEvent
from streams.funnels import Breakdown, FunnelDef, load_funnels
from streams.lifecycle import DAY_MS, CartEvent, LifecycleRules, Purchase
from streams.lives import DayActivity
from streams.processor import PartitionProcessor
from streams.records import Record
from streams.state import ClosedCredit, OpenSession, OrderLine, VisitorState, encode_state

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
MIXED = Path(__file__).resolve().parents[2] / "bench" / "funnels_mixed.yaml"
RECORDED = ("close_expired", "prune_final", "drop_forgotten_lives", "expired", "next_due")


def probe(name: str, args: Any) -> Any:
    return orjson.loads(shopfunnel_core.probe(name, orjson.dumps(args)))


def event_json(e: FunnelEvent) -> list[Any]:
    return [e.t, e.event_id, e.event_type, e.dims, [list(p) for p in e.props]]


def state_json(state: VisitorState) -> Any:
    return orjson.loads(encode_state(state))


def wide(n: int | None) -> Any:
    """An exact integer as the probe writes it: a JSON int within i64, else its digits."""
    if n is None or I64_MIN <= n <= I64_MAX:
        return n
    return str(n)


# -- the recorded calls ------------------------------------------------------------------


def python_call(function: str, state: VisitorState, args: dict[str, Any], rules: Any) -> Any:
    """Run visitor.<function> on ``state`` (mutated); its result as the probe gives it."""
    if function == "close_expired":
        try:
            visitor.close_expired(state, args["watermark"], rules)
        except ArithmeticError as exc:  # decimal.InvalidOperation
            return {"state": state_json(state), "raises": repr(exc)}
        return {"state": state_json(state)}
    if function == "prune_final":
        visitor.prune_final(
            state, args["thresholds"], rules.attribution if args["attribution"] else None
        )
        return {"state": state_json(state)}
    if function == "drop_forgotten_lives":
        visitor.drop_forgotten_lives(state, args["watermark"], args["thresholds"], rules)
        return {"state": state_json(state)}
    if function == "expired":
        return visitor.expired(state, args["watermark"], rules)
    if function == "next_due":
        try:
            return {"ok": wide(visitor.next_due(state, rules, args["watermark"]))}
        except ArithmeticError as exc:
            return {"raises": repr(exc)}
    raise AssertionError(function)


def comparable(expected: Any, got: Any) -> tuple[Any, Any]:
    """Both sides with the error text dropped (Python's and Rust's messages differ)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict) and "raises" in value:
            return {**value, "raises": True}
        return value

    return strip(expected), strip(got)


def rust_batch(rules: Any, calls: list[tuple[str, bytes]]) -> list[Any]:
    """The Rust results of ``calls`` ((function, encoded args)), in chunks."""
    rules_bytes = orjson.dumps(rules_json(rules))
    out: list[Any] = []
    for start in range(0, len(calls), 1500):
        chunk = calls[start : start + 1500]
        payload = (
            b'{"rules":'
            + rules_bytes
            + b',"calls":['
            + b",".join(b'["' + f.encode() + b'",' + a + b"]" for f, a in chunk)
            + b"]}"
        )
        out.extend(orjson.loads(shopfunnel_core.probe("visitor_close.batch", payload)))
    return out


class Recorder:
    """Wraps the functions where streams.processor bound them; keeps each distinct call's
    arguments (the state encoded before the call) and the Python result (the state
    encoded after it, or the returned value)."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, bytes], Any] = {}
        self.counts: Counter[str] = Counter()
        self.changed: Counter[str] = Counter()  # calls that changed the state

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in RECORDED:
            monkeypatch.setattr(processor_module, name, self.wrap(name, getattr(visitor, name)))

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any) -> Any:
            state = args[0]
            before = encode_state(state)
            if name == "close_expired":
                arguments: dict[str, Any] = {"watermark": args[1]}
            elif name == "prune_final":
                arguments = {"thresholds": dict(args[1]), "attribution": args[2] is not None}
            elif name == "drop_forgotten_lives":
                arguments = {"watermark": args[1], "thresholds": dict(args[2])}
            elif name == "expired":
                arguments = {"watermark": args[1]}
            else:  # next_due(state, rules, watermark)
                arguments = {"watermark": args[2]}
            result = function(*args)
            if name in ("close_expired", "prune_final", "drop_forgotten_lives"):
                after = encode_state(state)
                expected: Any = {"state": orjson.loads(after)}
                if after != before:
                    self.changed[name] += 1
            elif name == "next_due":
                expected = {"ok": wide(result)}
            else:
                expected = result
                if result:
                    self.changed[name] += 1
            encoded = orjson.dumps({"state": orjson.loads(before), **arguments})
            self.counts[name] += 1
            self.calls.setdefault((name, encoded), expected)
            return result

        return recorded

    def check(self, rules: Any) -> None:
        calls = list(self.calls)
        got = rust_batch(rules, calls)
        bad = [
            (call, expected, answer)
            for call, expected, answer in zip(calls, self.calls.values(), got, strict=True)
            if expected != answer
        ]
        assert not bad, bad[:2]


def run_core(
    records: list[tuple[str, bytes, bytes, int]], rules: visitor.Rules, every: int
) -> PartitionProcessor:
    """The core reading all inputs at once, ``every`` records a batch per input (so the
    watermark moves through the traffic and timers fire), then told the inputs are
    finished (the watermark passes the last event)."""
    table = state_memory.MemoryTable()
    decoder: Any = EventCodec(bounds=ValidationBounds(replay=True))
    core = PartitionProcessor(
        0, rules, decoder, ChannelRules.load(), state_memory.TOPICS, table, cache_visitors=0
    )
    offsets: Counter[str] = Counter()
    pending: dict[str, list[Record]] = defaultdict(list)

    def flush() -> None:
        for stream, batch in list(pending.items()):
            if batch:
                for k, v in core.process(stream, batch, None).state_writes.items():
                    table.put(k, v)
        pending.clear()

    for index, (stream, key, value, ts) in enumerate(records, 1):
        pending[stream].append(Record(offsets[stream], key, value, ts))
        offsets[stream] += 1
        if index % every == 0:
            flush()
            core.tick({})
    flush()
    ends = {stream: offsets[stream] for stream in state_memory.TOPICS}
    for k, v in core.tick(ends, finished=True).state_writes.items():
        table.put(k, v)
    return core


@pytest.fixture(scope="module")
def traffic() -> list[tuple[str, bytes, bytes, int]]:
    return state_memory.partition_zero(2_500, 6)


SHORT_LIVES = LifecycleRules(anonymous_ttl_ms=DAY_MS, buyer_ttl_ms=2 * DAY_MS)


@pytest.mark.parametrize("setup", ["default", "mixed", "short_lives"])
def test_recorded_calls(
    traffic: list[tuple[str, bytes, bytes, int]], setup: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if setup == "mixed":
        # As bench.state_memory.new_processor builds the rules under FUNNEL_FUNNELS_FILE.
        monkeypatch.setenv("FUNNEL_FUNNELS_FILE", str(MIXED))
    funnels = load_funnels(state_memory._funnels_file())
    if setup == "short_lives":
        rules = visitor.Rules(
            funnels, lifecycle=SHORT_LIVES, attribution=AttributionRules(lookback_ms=DAY_MS)
        )
    else:
        rules = visitor.Rules(funnels)
    recorder = Recorder()
    recorder.install(monkeypatch)
    run_core(traffic, rules, 400)
    for name in RECORDED:
        assert recorder.counts[name] > 0, (name, recorder.counts)
    # The runs close sessions, freeze credits and prune final windows.
    assert recorder.changed["close_expired"] > 0
    assert recorder.changed["prune_final"] > 0
    if setup == "short_lives":
        assert recorder.changed["expired"] > 0  # visitors whose every life is forgotten
    recorder.check(rules)


# -- hypothesis: segments ------------------------------------------------------------------

TEXT = st.sampled_from(["", "a", "b", "é", "😀", "a\x00", "@", "a@1"])
TYPES = ["view_item", "add_to_cart", "purchase", "sign_up", "begin_checkout"]


@st.composite
def event_lists(draw: st.DrawFn, times: st.SearchStrategy[int]) -> list[FunnelEvent]:
    props = st.lists(st.tuples(st.sampled_from(["tier", "p", "é"]), TEXT), max_size=3)
    events = draw(
        st.lists(
            st.builds(
                FunnelEvent,
                times,
                TEXT,
                st.sampled_from(TYPES),
                st.integers(0, 2),
                props.map(tuple),
            ),
            max_size=8,
        )
    )
    return sorted(events)


@st.composite
def gapped(draw: st.DrawFn) -> tuple[list[FunnelEvent], int]:
    """Events whose gaps are often exactly the timeout (or one off)."""
    if draw(st.booleans()):
        timeout = draw(st.sampled_from([0, 1, 2, 5, I64_MAX]))
        times = [draw(st.integers(-5, 5))]
        for _ in range(draw(st.integers(0, 7))):
            step = draw(st.sampled_from([0, 1, timeout, timeout + 1, timeout - 1, 3]))
            times.append(min(times[-1] + max(step, 0), I64_MAX))
        events = [FunnelEvent(t, f"e{i}", "view_item", 0) for i, t in enumerate(times)]
        return events, timeout
    timeout = draw(st.sampled_from([0, 1, 3, 2**40, I64_MAX]) | st.integers(0, I64_MAX))
    wide_times = st.sampled_from([I64_MIN, I64_MIN + 1, -1, 0, 1, 3, I64_MAX]) | st.integers(
        I64_MIN, I64_MAX
    )
    return draw(event_lists(wide_times)), timeout


@settings(max_examples=60, deadline=None)
@given(gapped(), TEXT)
def test_segments(case: tuple[list[FunnelEvent], int], session_id: str) -> None:
    events, timeout = case
    args = {"events": [event_json(e) for e in events], "timeout_ms": timeout}
    segments = visitor.split_segments(events, timeout)
    expected = [[event_json(e) for e in s] for s in segments]
    assert probe("visitor_close.split_segments", args) == expected
    end = visitor.first_segment_end(events, timeout) if events else None
    assert probe("visitor_close.first_segment_end", args) == end
    for segment in segments:
        sid = visitor.segment_id(session_id, segment)
        got = probe(
            "visitor_close.segment_id",
            {"session_id": session_id, "segment": [event_json(e) for e in segment]},
        )
        assert got == sid


# -- hypothesis: breakdown values ------------------------------------------------------------

DIMS = st.tuples(TEXT, TEXT, TEXT, TEXT, TEXT)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_breakdown_values(data: st.DataObject) -> None:
    n_steps = data.draw(st.integers(1, 4))
    attribution = data.draw(
        st.sampled_from(["first_touch", "last_touch"])
        | st.integers(1, n_steps).map(lambda n: f"step:{n}")
    )
    names = ["channel", "campaign", "device", "platform", "country", "tier", "p", "é", "x"]
    dimensions = tuple(data.draw(st.lists(st.sampled_from(names), max_size=4)))
    breakdown = data.draw(st.none() | st.just(Breakdown(dimensions, attribution)))
    funnel = FunnelDef("f", tuple(TYPES[:n_steps]), "session", 10, breakdown=breakdown)
    dims = data.draw(st.lists(DIMS, min_size=3, max_size=4))
    steps = data.draw(event_lists(st.integers(0, 9)).filter(bool))[:n_steps]
    level = len(steps)
    credit = Credit(level, steps[0].t, steps[0].event_id, steps[0].dims, None, tuple(steps))
    state = VisitorState(0, dims=dims)
    expected = list(visitor.breakdown_values(funnel, credit, state))
    args = {
        "funnel": funnel_spec(funnel),
        "credit": {
            "level": level,
            "start_t": credit.start_t,
            "start_event_id": credit.start_event_id,
            "dims": credit.dims,
            "time_to_convert_ms": None,
            "steps": [event_json(e) for e in steps],
        },
        "dims": [list(d) for d in dims],
    }
    assert probe("visitor_close.breakdown_values", args) == expected


# -- hypothesis: whole states with small windows ---------------------------------------------


MIXED_FUNNELS = load_funnels(MIXED)


def small_rules(draw: Callable[..., Any]) -> visitor.Rules:
    """The mixed funnels with windows of a few ms, and short timeouts and lifetimes."""
    window = draw(st.integers(1, 4))
    funnels = tuple(
        dataclasses.replace(f, window_ms=draw(st.integers(1, 6)))
        for f in MIXED_FUNNELS
        if draw(st.booleans())
    )
    lateness = draw(st.integers(1, 3))
    durations = st.integers(0, 8)
    return visitor.Rules(
        funnels,
        window_ms=window,
        session_timeout_ms=lateness + draw(st.integers(1, 4)),
        lateness_ms=lateness,
        lifecycle=LifecycleRules(*(draw(durations) for _ in range(6))),
        attribution=AttributionRules(lookback_ms=draw(durations), half_life_ms=1, max_touches=3),
    )


MIXED_TYPES = [
    "session_start",
    "view_item",
    "add_to_cart",
    "begin_checkout",
    "add_shipping_info",
    "add_payment_info",
    "purchase",
    "sign_up",
    "add_to_wishlist",
    "remove_from_cart",
    "custom:size_guide_opened",
]


@st.composite
def states(draw: st.DrawFn, rules: visitor.Rules) -> VisitorState:
    times = st.integers(0, 30)
    props = st.lists(
        st.tuples(
            st.sampled_from(["item_category", "price_minor", "tier", "experiment:checkout_button"]),
            st.sampled_from(["Shoes/Sneakers", "60000", "1", "gold", "", "1e9999999999999999999"]),
        ),
        max_size=2,
    )
    event = st.builds(
        FunnelEvent,
        times,
        st.sampled_from(["a", "b", "c", "d", "é"]),
        st.sampled_from(MIXED_TYPES),
        st.integers(0, 1),
        props.map(tuple),
    )
    state = VisitorState(0, dims=draw(st.lists(DIMS, min_size=2, max_size=2)))
    for session_id in draw(st.lists(st.sampled_from(["s1", "s2", "s3", ""]), unique=True)):
        events = sorted(draw(st.lists(event, max_size=6)))
        state.sessions[session_id] = OpenSession(session_id, draw(st.integers(0, 2)), events)
    state.user_events = sorted(draw(st.lists(event, max_size=8)))
    for funnel in draw(st.lists(st.sampled_from([f.name for f in rules.funnels] + ["gone"]))):
        state.user_consumed[funnel] = draw(times)
    names = [f.name for f in rules.funnels] + ["gone"]
    state.closed = draw(
        st.lists(
            st.builds(
                ClosedCredit,
                st.sampled_from(names),
                times,
                st.integers(0, 1),
                st.integers(1, 3),
                st.none() | times,
                st.just(""),
                st.just(""),
                st.just(()),
                st.just(()),
            ),
            max_size=3,
        )
    )
    state.orders = draw(
        st.lists(
            st.builds(
                OrderLine,
                times,
                st.just("o"),
                st.just("purchase"),
                st.just("t"),
                st.just(1),
                st.just(1),
                st.booleans(),
                st.just(0),
                st.integers(0, 1),
                st.just("EUR"),
            ),
            max_size=3,
        )
    )
    state.touches = sorted(
        draw(
            st.lists(
                st.builds(Touch, times, st.just("s"), st.just("e"), *[st.just("x")] * 5),
                max_size=3,
            )
        )
    )
    days: dict[int, DayActivity] = {}
    for t in sorted(draw(st.lists(times, max_size=5))):
        day = t // 5
        if day not in days:
            days[day] = DayActivity(day, t, "e", "ch", "web", t)
        else:
            days[day] = days[day]._replace(last_t=t)
    state.days = list(days.values())
    state.purchases = sorted(
        draw(
            st.lists(
                st.builds(Purchase, times, TEXT, st.just(1), st.just("EUR"), st.just("")),
                max_size=3,
            )
        )
    )
    state.cart = draw(
        st.lists(
            st.builds(
                CartEvent,
                times,
                st.just("c"),
                st.sampled_from(["add_to_cart", "purchase", "view_cart"]),
                st.just(()),
                st.just("EUR"),
                st.just(""),
            ),
            max_size=3,
        )
    )
    state.lifecycle_as_of = draw(st.none() | times)
    return state


@settings(max_examples=45, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_built_states(data: st.DataObject) -> None:
    rules = small_rules(data.draw)
    state = data.draw(states(rules))
    watermark = data.draw(st.integers(-2, 45))
    if data.draw(st.booleans()):
        # Exactly at (or next to) a horizon: a segment's end + timeout, a group's
        # low + 2W, a touch's t + lookback, a life's forgotten_at.
        points = [e.t + rules.session_timeout_ms for s in state.sessions.values() for e in s.events]
        points += [e.t + 2 * f.window_ms for e in state.user_events for f in rules.user_funnels]
        points += [t.t + rules.attribution.lookback_ms for t in state.touches]
        lifecycle = rules.lifecycle
        points += [
            d.last_t + ttl
            for d in state.days
            for ttl in (lifecycle.anonymous_ttl_ms, lifecycle.buyer_ttl_ms)
        ]
        if points:
            watermark = data.draw(st.sampled_from(points)) + data.draw(
                st.sampled_from([-1, 0, 0, 1])
            )
    families = [*rules.families, "gone"]
    thresholds = {
        name: data.draw(st.integers(0, 35) | st.just(2**40))
        for name in data.draw(st.lists(st.sampled_from(families)))
    }
    calls: list[tuple[str, bytes]] = []
    expected: list[Any] = []
    encoded = orjson.dumps(state_json(state))
    for function in RECORDED:
        for attribution in (True, False) if function == "prune_final" else (True,):
            args = {"watermark": watermark, "thresholds": thresholds, "attribution": attribution}
            copy = visitor_copy(state)
            expected.append(python_call(function, copy, args, rules))
            calls.append((function, b'{"state":' + encoded + b"," + orjson.dumps(args)[1:]))
    got = rust_batch(rules, calls)
    for call, want, answer in zip(calls, expected, got, strict=True):
        assert comparable(want, answer)[0] == comparable(want, answer)[1], (call, want, answer)


def test_earlier_life_dropped() -> None:
    """An earlier life, forgotten and with every cell final, is dropped (and the last
    life is kept): Python and Rust agree, and the case does change the state."""
    rules = visitor.Rules(
        MIXED_FUNNELS, lifecycle=LifecycleRules(anonymous_ttl_ms=3, buyer_ttl_ms=5)
    )
    state = VisitorState(0)
    state.days = [
        DayActivity(0, 0, "e1", "ch", "web", 2),
        DayActivity(1, 9, "e2", "ch", "web", 11),
        DayActivity(5, 30, "e3", "ch", "app", 30),
    ]
    state.purchases = [Purchase(10, "t1", 5, "EUR", "ch")]
    state.cart = [
        CartEvent(1, "c", "add_to_cart", (), "EUR", ""),
        CartEvent(30, "d", "view_cart", (), "", ""),
    ]
    thresholds = {family: 2**40 for family in rules.families}
    args = {"watermark": 40, "thresholds": thresholds}
    encoded = orjson.dumps({"state": state_json(state), **args})
    before = state_json(state)
    expected = python_call("drop_forgotten_lives", visitor_copy(state), args, rules)
    assert expected["state"] != before
    assert len(expected["state"][14]) == 1  # the days: the last life's only
    assert rust_batch(rules, [("drop_forgotten_lives", encoded)]) == [expected]


def visitor_copy(state: VisitorState) -> VisitorState:
    """A deep enough copy (the functions replace or mutate the lists and sessions)."""
    from streams.state import decode_state

    return decode_state(encode_state(state), state.anonymous_id)


def test_unknown_probe() -> None:
    """A misspelt probe fails loudly, not silently."""
    with pytest.raises(ValueError):
        shopfunnel_core.probe("visitor_close.nope", b"{}")
