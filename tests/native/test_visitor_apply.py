"""Differential test: ``apply_event`` and its helpers in streams/visitor.py, and
schemas/properties.py's ``property_values`` (the references), against their Rust twins
in native/src/visitor_apply.rs.

The Rust side gets the state before the call as ``encode_state`` writes it (decoded by
``state::decode``), the event as ``dataclasses.asdict`` writes it, the dims, stream,
offset, and the rules as ``rules_json`` writes them; it answers the Applied value (or the
error where the Python raises) and the state after, compared byte for byte through
``encode_state`` (which compacts the dims on both sides), plus the anonymous id (not in
the encoding).

Inputs: every ``apply_event`` call the Python core makes while bench.state_memory.run_core
processes simulated traffic, with the default funnels and with bench/funnels_mixed.yaml;
and hypothesis-generated event sequences (duplicates in a session, replays, purchases of
one transaction id earlier and later, refunds, cart kinds, items, coupons, custom
properties and experiments, odd page URLs, user funnels present or absent, small
max_transactions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import shopfunnel_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streams.processor
from bench import state_memory
from schemas.model import Event, Item
from schemas.properties import BUILTIN_PROPERTIES, property_values
from streams.compiled.config import rules_json
from streams.funnels import FunnelDef, _FunnelParser, load_funnels
from streams.state import Dims, VisitorState, _compact_dims, decode_state, encode_state
from streams.visitor import Applied, Rules, _order_line, apply_event

ROOT = Path(__file__).resolve().parents[2]
MIXED = ROOT / "bench" / "funnels_mixed.yaml"


def probe(name: str, args: Any) -> Any:
    return orjson.loads(shopfunnel_core.probe(name, orjson.dumps(args)))


def event_json(event: Event) -> Any:
    """The event as ``dataclasses.asdict`` writes it (orjson serializes the dataclass and
    its items the same way, faster)."""
    return event


def python_outcome(
    state: VisitorState,
    event: Event,
    dims: Dims,
    stream: str,
    offset: int,
    rules: Rules,
) -> dict[str, Any]:
    """apply_event on ``state`` (changed): what the Rust probe answers for it."""
    try:
        outcome: dict[str, Any] = {
            "applied": apply_event(state, event, dims, stream, offset, rules).value
        }
    except KeyError as exc:
        outcome = {"error": f"KeyError: {exc.args[0]!r}"}
    except ValueError:
        outcome = {"error": "ValueError"}
    outcome["state"] = encode_state(state).decode()
    outcome["anonymous_id"] = state.anonymous_id
    return outcome


def normal(rust: dict[str, Any]) -> dict[str, Any]:
    """The Rust error's wording is its own: compare its kind (and a KeyError's name)."""
    error = rust.get("error")
    if error is not None and error.startswith("ValueError"):
        rust = {**rust, "error": "ValueError"}
    elif error is not None and error.startswith("KeyError: "):
        name = orjson.loads(error[len("KeyError: ") :].encode())
        rust = {**rust, "error": f"KeyError: {name!r}"}
    return rust


class Batch:
    """Calls of one Rules, with Python's outcome, checked against Rust in one probe."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.calls: list[dict[str, Any]] = []
        self.expected: list[dict[str, Any]] = []

    def add(
        self,
        before: bytes,
        anonymous_id: str,
        event: Event,
        dims: Dims,
        stream: str,
        offset: int,
        expected: dict[str, Any],
    ) -> None:
        self.calls.append(
            {
                "state": orjson.Fragment(before),
                "anonymous_id": anonymous_id,
                "event": event_json(event),
                "dims": list(dims),
                "stream": stream,
                "offset": offset,
            }
        )
        self.expected.append(expected)

    def check(self) -> int:
        if not self.calls:
            return 0
        got = probe(
            "visitor_apply.apply_batch", {"rules": rules_json(self.rules), "calls": self.calls}
        )
        assert len(got) == len(self.calls)
        for call, rust, python in zip(self.calls, got, self.expected, strict=True):
            assert normal(rust) == python, call
        return len(self.calls)


# -- real calls ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def traffic() -> list[tuple[str, bytes, bytes, int]]:
    return state_memory.partition_zero(5000, 30)


def record_real(
    monkeypatch: pytest.MonkeyPatch, traffic: list[tuple[str, bytes, bytes, int]]
) -> tuple[list[Batch], dict[str, int]]:
    batches: dict[int, Batch] = {}
    counts = {"calls": 0, "not_compact": 0, "rerun_differs": 0}
    for value in Applied:
        counts[value.value] = 0

    def recording(
        state: VisitorState,
        event: Event,
        dims: Dims,
        stream: str,
        offset: int,
        rules: Rules,
    ) -> Applied:
        before, anonymous_id = encode_state(state), state.anonymous_id
        compact = len(_compact_dims(state)[0]) == len(state.dims)
        result = apply_event(state, event, dims, stream, offset, rules)
        after = encode_state(state).decode()
        expected = {"applied": result.value, "state": after, "anonymous_id": state.anonymous_id}
        if not compact:
            # Rust starts from the decoded state, whose dims are compacted: the same call
            # on it must give the same bytes for the recorded result to be the reference.
            counts["not_compact"] += 1
            rerun = python_outcome(
                decode_state(before, anonymous_id), event, dims, stream, offset, rules
            )
            if rerun != expected:
                counts["rerun_differs"] += 1
        batch = batches.setdefault(id(rules), Batch(rules))
        batch.add(before, anonymous_id, event, dims, stream, offset, expected)
        counts["calls"] += 1
        counts[result.value] += 1
        return result

    monkeypatch.setattr(streams.processor, "apply_event", recording)
    state_memory.run_core(traffic, 0)
    return list(batches.values()), counts


def check_real(batches: list[Batch], counts: dict[str, int]) -> None:
    assert counts["calls"] > 1000
    assert counts["counted"] > 1000
    assert counts["rerun_differs"] == 0, counts
    assert sum(b.check() for b in batches) == counts["calls"]


def test_real_calls_default_funnels(
    traffic: list[tuple[str, bytes, bytes, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FUNNEL_FUNNELS_FILE", raising=False)
    batches, counts = record_real(monkeypatch, traffic)
    check_real(batches, counts)


def test_real_calls_mixed_funnels(
    traffic: list[tuple[str, bytes, bytes, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNNEL_FUNNELS_FILE", str(MIXED))
    batches, counts = record_real(monkeypatch, traffic)
    (batch,) = batches
    assert batch.rules.user_funnels and batch.rules.property_names
    check_real(batches, counts)
    # the real events carry properties the mixed funnels read
    sessions = [s for call in batch.expected for s in orjson.loads(call["state"])[3]]
    assert any(len(e) == 5 for s in sessions for e in s[2])


# -- generated sequences ------------------------------------------------------------------

TEXTS = ("", "a", "b", "é", "ü😀", "Shoes/Sneakers", "SAVE10")
URLS = (
    None,
    "",
    "https://shop.example/p/1?x=1#top",
    "https://shop.example",
    "/cart?step=2",
    "  http://h/a\tb",
    "mailto:x@y",
    "http://[::1]/v6",
    "http://[x/broken",
    "https://ｓｈｏｐ.example／x",
)
CUSTOM_FUNNELS = [
    {
        "name": "props",
        "steps": [
            {"event": "page_view", "where": {"page_path": ["/p/1", "/"]}},
            {"event": "add_to_cart", "where": {"item_category": "Shoes/Sneakers"}},
            {"event": "purchase", "where": {"value_minor": {"gte": 0}}},
        ],
        "window": "1h",
        "breakdown": {
            "dimensions": ["properties.note", "experiment:button", "coupon"],
            "attribution": "last_touch",
        },
    },
    *(
        {
            "name": f"props_{index}",
            "steps": ["view_item", {"event": "add_to_cart", "where": {"quantity": {"gte": 2}}}],
            "window": "1h",
            "breakdown": {"dimensions": list(names), "attribution": "first_touch"},
        }
        for index, names in enumerate(
            [*BUILTIN_PROPERTIES, "properties.x"][i : i + 3]
            for i in range(0, len(BUILTIN_PROPERTIES) + 1, 3)
        )
    ),
]
USER_FUNNEL = {
    "name": "buyers",
    "scope": "user",
    "steps": ["add_to_cart", "purchase"],
    "window": "1d",
}
STRICT_USER_FUNNEL = {
    "name": "strict_buyers",
    "scope": "user",
    "mode": "strict",
    "steps": ["view_item", "purchase"],
    "window": "1d",
}
EVENT_TYPES = (
    ("clickstream", "page_view"),
    ("clickstream", "view_item"),
    ("clickstream", "custom:size_guide_opened"),
    ("cart", "add_to_cart"),
    ("cart", "remove_from_cart"),
    ("cart", "view_cart"),
    ("cart", "begin_checkout"),
    ("orders", "purchase"),
    ("orders", "purchase"),
    ("orders", "purchase"),
    ("orders", "refund"),
    ("orders", "payment_failed"),
    ("orders", "order_cancelled"),
)


def parse(raw: list[dict[str, Any]]) -> tuple[FunnelDef, ...]:
    return tuple(_FunnelParser(f, "generated").parse() for f in raw)


@st.composite
def rules_of(draw: st.DrawFn) -> Rules:
    kind = draw(st.sampled_from(("default", "mixed", "custom", "none")))
    if kind == "default":
        funnels = load_funnels(None)
    elif kind == "mixed":
        funnels = load_funnels(MIXED)
    elif kind == "custom":
        raw = list(CUSTOM_FUNNELS)
        raw += draw(st.sampled_from(([], [USER_FUNNEL], [STRICT_USER_FUNNEL])))
        funnels = parse(raw)
    else:
        funnels = parse(draw(st.sampled_from(([], [USER_FUNNEL]))))
    return Rules(funnels, max_transactions=draw(st.sampled_from((1, 2, 3, 100))))


def optional(values: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.sampled_from(values))


@st.composite
def items(draw: st.DrawFn) -> Item:
    return Item(
        draw(st.sampled_from(("sku1", "sku2", ""))),
        draw(st.integers(0, 10**6)),
        draw(st.integers(0, 5)),
        draw(optional(TEXTS)),
        draw(optional(TEXTS)),
        draw(optional(TEXTS)),
        draw(optional(TEXTS)),
        draw(optional(TEXTS)),
        draw(st.integers(0, 1000)),
    )


@st.composite
def events(draw: st.DrawFn, types: tuple[tuple[str, str], ...] = EVENT_TYPES) -> Event:
    stream, event_type = draw(st.sampled_from(types))
    commerce = stream != "clickstream"
    return Event(
        stream,  # type: ignore[arg-type]
        event_type,
        draw(st.sampled_from(("e1", "e2", "e3", "e4", "é5"))),
        draw(st.sampled_from((0, 1, 1, 2, 60_000, 86_400_000, -5, 2**62))),
        0,
        draw(st.sampled_from(("", "anon", "other"))),
        draw(st.sampled_from(("s1", "s2", "s3"))),
        user_id=draw(optional(("", "u1", "u2"))),
        platform=draw(st.sampled_from(("web", "app", ""))),
        device=draw(st.sampled_from(("desktop", "mobile", ""))),
        country=draw(st.sampled_from(("", "VN"))),
        page_url=draw(st.sampled_from(URLS)),
        referrer=draw(optional(("", "https://google.com/x", "http://[bad"))),
        utm_source=draw(optional(TEXTS)),
        utm_medium=draw(optional(TEXTS)),
        utm_campaign=draw(optional(TEXTS)),
        utm_content=draw(optional(TEXTS)),
        utm_term=draw(optional(TEXTS)),
        experiments=draw(st.dictionaries(st.sampled_from(("button", "")), st.sampled_from(TEXTS))),
        referral_code=draw(optional(TEXTS)),
        search_term=draw(optional(TEXTS)),
        items=tuple(draw(st.lists(items(), max_size=3))) if commerce else (),
        transaction_id=draw(optional(("", "t1", "t2", "t3"))) if commerce else None,
        currency=draw(optional(("", "VND", "USD"))),
        value_minor=draw(st.one_of(st.none(), st.integers(-(10**9), 10**12))),
        coupon=draw(optional(TEXTS)),
        discount_minor=draw(st.one_of(st.none(), st.integers(0, 10**6))),
        payment_type=draw(optional(TEXTS)),
        properties=draw(st.dictionaries(st.sampled_from(("note", "")), st.sampled_from(TEXTS))),
    )


DIMS = (
    ("direct", "", "desktop", "web", ""),
    ("paid_search", "spring", "mobile", "app", "VN"),
    ("kol", "c", "desktop", "web", "é"),
)


ORDER_TYPES = (("orders", "purchase"), ("orders", "purchase"), ("orders", "refund"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules_of(), st.data())
def test_generated_sequences(rules: Rules, data: st.DataObject) -> None:
    """A visitor through a sequence of calls: every call checked on the state before."""
    sequence(rules, data, EVENT_TYPES)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules_of(), st.data())
def test_generated_transactions(rules: Rules, data: st.DataObject) -> None:
    """Purchases and refunds only: copies of a transaction id earlier and later."""
    sequence(rules, data, ORDER_TYPES)


def sequence(rules: Rules, data: st.DataObject, types: tuple[tuple[str, str], ...]) -> None:
    state = VisitorState(0, data.draw(st.sampled_from(("", "anon"))))
    batch = Batch(rules)
    top = {"clickstream": 5, "cart": 5, "orders": 5}
    for _ in range(data.draw(st.integers(1, 20))):
        event = data.draw(events(types))
        dims = data.draw(st.sampled_from(DIMS))
        stream = event.stream
        offset = top[stream] + data.draw(st.sampled_from((1, 1, 1, 1, 1, 0, -1, -3)))
        top[stream] = max(top[stream], offset)
        before, anonymous_id = encode_state(state), state.anonymous_id
        copy = decode_state(before, anonymous_id)
        expected = python_outcome(copy, event, dims, stream, offset, rules)
        batch.add(before, anonymous_id, event, dims, stream, offset, expected)
        if "error" not in expected:
            state = copy
    batch.check()


def test_hand_picked_duplicates_and_transactions() -> None:
    """A duplicate in a session, a replay, a purchase of a counted transaction id later
    (a duplicate) and earlier (it replaces the counted copy everywhere), a refund of it,
    a transaction id beyond max_transactions, the same purchase again in another session
    (not earlier: a duplicate), and a page URL urlsplit refuses."""
    rules = Rules(parse([*CUSTOM_FUNNELS, USER_FUNNEL]), max_transactions=2)
    dims = DIMS[1]

    def ev(kind: str, event_id: str, t: int, session: str = "s1", **kw: Any) -> Event:
        stream = "orders" if kind in ("purchase", "refund") else "cart"
        return Event(stream, kind, event_id, t, 0, "anon", session, **kw)  # type: ignore[arg-type]

    sequence = [
        (ev("add_to_cart", "a", 10, items=(Item("sku", 5, 2, coupon="C"),)), "cart", 1),
        (ev("add_to_cart", "a", 11), "cart", 2),  # same session: duplicate
        (ev("add_to_cart", "b", 11), "cart", 2),  # offset replayed
        (ev("purchase", "p1", 100, transaction_id="t1", value_minor=9), "orders", 1),
        (ev("purchase", "p2", 200, "s2", transaction_id="t1"), "orders", 2),  # later copy
        (ev("purchase", "p0", 50, "s3", transaction_id="t1", currency="VND"), "orders", 3),
        (ev("refund", "r1", 300, transaction_id="t1", value_minor=9), "orders", 4),
        (ev("purchase", "p3", 400, transaction_id="t2"), "orders", 5),
        (ev("purchase", "p4", 40, transaction_id="t3"), "orders", 6),
        (ev("purchase", "p5", 30, "s4", transaction_id="t1"), "orders", 7),  # t1 dropped
        (ev("purchase", "p4", 40, "s5", transaction_id="t3"), "orders", 8),  # a tie: later
        # An unparsable page_url: no page_path (it raised ValueError before the fix).
        (ev("add_to_cart", "x", 500, page_url="http://[x/"), "cart", 3),
    ]
    state = VisitorState(0, "")
    batch = Batch(rules)
    applied = []
    for event, stream, offset in sequence:
        before, anonymous_id = encode_state(state), state.anonymous_id
        expected = python_outcome(state, event, dims, stream, offset, rules)
        applied.append(expected.get("applied", expected.get("error")))
        batch.add(before, anonymous_id, event, dims, stream, offset, expected)
    assert applied == [
        "counted",
        "duplicate",
        "replayed",
        "counted",
        "duplicate",
        "counted",
        "counted",
        "counted",
        "counted",
        "counted",
        "duplicate",
        "counted",
    ]
    assert batch.check() == len(sequence)


@settings(max_examples=60, deadline=None)
@given(events(), st.integers(0, 3))
def test_property_values_and_order_line(event: Event, dims: int) -> None:
    names = [
        *BUILTIN_PROPERTIES,
        "properties.note",
        "properties.",
        "properties.missing",
        "experiment:button",
        "experiment:",
        "nope",
        "",
    ]
    expected: list[dict[str, Any]] = []
    for name in names:
        try:
            expected.append({"ok": list(property_values(event, name))})
        except KeyError:
            expected.append({"error": "KeyError"})
        except ValueError:
            expected.append({"error": "ValueError"})
    got = probe("visitor_apply.property_values", {"event": event_json(event), "names": names})
    got = [{"error": g["error"].split(":")[0]} if "error" in g else g for g in got]
    assert got == expected
    line = probe("visitor_apply.order_line", {"event": event_json(event), "dims": dims})
    assert line == orjson.loads(orjson.dumps(list(_order_line(event, dims))))
