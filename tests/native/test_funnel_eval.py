"""Differential test: streams/funnel_eval.py (the reference) against its Rust twin
native/src/funnel_eval.rs (with the funnel model in native/src/funnels.rs).

The Rust side gets the funnel as the JSON ``funnel_spec`` writes (the configuration the
core receives once from Python) and the events as ``event_json`` writes them; every
field of every result is compared. Where Python raises decimal.InvalidOperation (a
numeric filter meeting a value out of the decimal module's range), Rust must fail too.

Inputs: hypothesis-generated funnels of every mode (through the loader's own validation,
and built directly as FunnelDef, which the loader would refuse for some combinations)
and event lists; and every call of evaluate / user_group_ranges / is_start the Python
core makes on simulator data with the default funnels and with bench/funnels_mixed.yaml.
"""

from __future__ import annotations

import decimal
import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import shopfunnel_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streams.visitor
from bench import state_memory
from streams import funnel_eval
from streams.compiled.config import funnel_spec
from streams.funnel_eval import Credit, FunnelEvent, evaluate, is_start, matches, user_group_ranges
from streams.funnels import (
    MODES,
    Breakdown,
    Exclusion,
    FunnelDef,
    PropertyFilter,
    StepDef,
    _FunnelParser,
    parse_duration_ms,
)

ROOT = Path(__file__).resolve().parents[2]
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


# -- Python -> JSON (what the core receives) ----------------------------------------------


def event_json(event: FunnelEvent) -> list[Any]:
    """A FunnelEvent as the Rust FunnelEvent is read from JSON: [t, event_id, event_type,
    dims, [[name, value], ...]] (props always present; orjson writes tuples as lists)."""
    return [event.t, event.event_id, event.event_type, event.dims, event.props]


def credit_json(credit: Credit | None) -> dict[str, Any] | None:
    if credit is None:
        return None
    return {
        "level": credit.level,
        "start_t": credit.start_t,
        "start_event_id": credit.start_event_id,
        "dims": credit.dims,
        "time_to_convert_ms": credit.time_to_convert_ms,
        "steps": [event_json(e) for e in credit.steps],
    }


def ranges_json(ranges: list[tuple[int, int]]) -> list[list[int]]:
    # Rust keeps times in i64: a group's last allowed start t + window saturates at
    # i64::MAX, which selects the same start events (none is later than i64::MAX).
    return [[low, min(high, I64_MAX)] for low, high in ranges]


def between_json(starts_between: tuple[int, int] | None) -> list[int] | None:
    if starts_between is None:
        return None
    low, high = starts_between
    return [low, min(high, I64_MAX)]  # the same starts, see ranges_json


def outcome(function: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """{"ok": function(*args)}, or {"raises": True} for decimal.InvalidOperation."""
    try:
        return {"ok": function(*args)}
    except decimal.InvalidOperation:
        return {"raises": True}


def normal(rust: dict[str, Any]) -> dict[str, Any]:
    return {"raises": True} if "raises" in rust else rust


def probe(name: str, args: Any) -> Any:
    return orjson.loads(shopfunnel_core.probe(name, orjson.dumps(args)))


class Calls:
    """Python results of calls, checked against Rust in one batch probe."""

    def __init__(self) -> None:
        self.funnels: dict[int, int] = {}
        self.specs: list[dict[str, Any]] = []
        self.calls: list[list[Any]] = []
        self.expected: list[Any] = []

    def index(self, funnel: FunnelDef) -> int:
        if id(funnel) not in self.funnels:
            self.funnels[id(funnel)] = len(self.specs)
            self.specs.append(funnel_spec(funnel))
        return self.funnels[id(funnel)]

    def add(self, function: str, funnel: FunnelDef, args: dict[str, Any], expected: Any) -> None:
        self.calls.append([function, self.index(funnel), args])
        self.expected.append(expected)

    def evaluate(
        self,
        funnel: FunnelDef,
        events: Sequence[FunnelEvent],
        starts_between: tuple[int, int] | None,
        result: Any = None,
    ) -> None:
        if result is None:
            result = outcome(lambda: credit_json(evaluate(funnel, events, starts_between)))
        args = {
            "events": [event_json(e) for e in events],
            "starts_between": between_json(starts_between),
        }
        self.add("evaluate", funnel, args, result)

    def check(self) -> int:
        got = probe("funnel_eval.batch", {"funnels": self.specs, "calls": self.calls})
        expected = orjson.loads(orjson.dumps(self.expected))  # tuples as lists
        assert len(got) == len(expected)
        for call, rust, python in zip(self.calls, got, expected, strict=True):
            rust = [normal(r) for r in rust] if isinstance(rust, list) else normal(rust)
            assert rust == python, (call, self.specs[call[1]])
        return len(self.calls)


def check_funnel_model(funnel: FunnelDef) -> None:
    """from_json keeps every field and derives what __post_init__ derives."""
    spec = funnel_spec(funnel)
    got = probe("funnel_eval.funnel", {"funnel": spec})
    assert got == {
        "spec": spec,
        "property_names": sorted(funnel.property_names),
        "steps_of_type": {k: list(v) for k, v in funnel.steps_of_type.items()},
        "plain": funnel.plain,
        "event_types": sorted(funnel.event_types),
        "needs_all_events": funnel.needs_all_events,
    }


def check_everything(
    funnel: FunnelDef, events: list[FunnelEvent], extra: tuple[int, int] | None
) -> None:
    check_funnel_model(funnel)
    calls = Calls()
    ranges = outcome(lambda: user_group_ranges(funnel, events))
    calls.add(
        "user_group_ranges",
        funnel,
        {"events": [event_json(e) for e in events]},
        {"ok": ranges_json(ranges["ok"])} if "ok" in ranges else ranges,
    )
    betweens: list[tuple[int, int] | None] = [None, *ranges.get("ok", [])]
    if extra is not None:
        betweens.append(extra)
    for between in betweens:
        calls.evaluate(funnel, events, between)
    for event in events:
        calls.add(
            "is_start",
            funnel,
            {"event": event_json(event)},
            outcome(is_start, funnel, event),
        )
        calls.add(
            "matches",
            funnel,
            {"event": event_json(event)},
            [outcome(matches, m, event) for m in funnel.matchers],
        )
    calls.check()


# -- generated funnels and events ---------------------------------------------------------

STEP_TYPES = ("view_item", "add_to_cart", "purchase", "begin_checkout", "custom:size_guide_opened")
EVENT_TYPES = (*STEP_TYPES, "remove_from_cart", "page_view")
PROPS = ("item_category", "price_minor", "properties.note", "experiment:button")
TEXTS = ("Shoes", "Shoes/Sneakers", "", "é", "ü😀", "50000", "5e4")
INTEGER_TEXTS = ("0", "100", "50000", "-3", "49999")
BOUNDS = ("0", "-0", "100", "50000", "5e4", ".5", "-2.5", "1.", "+7", "1e999999999999999999")
NUMBERS = (
    *BOUNDS,
    "49999",
    "50000.000",
    "5E+4",
    "-0.0",
    "0.000e-5",
    "-1e-1999999999999999997",
    "9" * 40,
    "0." + "0" * 30 + "1",
)
NOT_NUMBERS = (
    "NaN",
    "Infinity",
    "-inf",
    " 1",
    "1_000",
    "\u0663",
    "1e",
    "e5",
    ".",
    "+",
    "0x10",
    "1.2.3",
)
# Decimal(text) raises InvalidOperation: out of the decimal module's exponent range.
RAISING = (
    "1e1000000000000000000",
    "0e-1999999999999999998",
    "-5e99999999999999999999",
    "10e-1999999999999999998",
)
DURATIONS = ("1s", "30s", "1m", "10m", "1h")


def _number_texts(count: int) -> tuple[str, ...]:
    """Numbers written every way the _NUMBER pattern allows (fixed seed: the same list on
    every run), so that drawing one is a single cheap draw."""
    rng = random.Random(16)
    out = []
    for _ in range(count):
        text = rng.choice(("", "+", "-")) + "".join(rng.choices("0123456789", k=rng.randint(0, 3)))
        if rng.random() < 0.5 or not text.strip("+-"):
            text += "." + "".join(
                rng.choices("0123456789", k=rng.randint(0 if text.strip("+-") else 1, 3))
            )
        if rng.random() < 0.4:
            text += rng.choice("eE") + rng.choice(("", "+", "-")) + str(rng.randint(0, 30))
        out.append(text)
    return tuple(out)


# One pool, one draw per value; about one value in 30 makes Decimal raise.
VALUES = (*TEXTS, *NUMBERS, *NOT_NUMBERS, *_number_texts(60), "-7", "123456", "x", "Hats", *RAISING)
prop_values = st.sampled_from(VALUES)


@st.composite
def conditions(draw: st.DrawFn, prop: str) -> Any:
    ops = ["eq", "in", "ne", "not_in"]
    if not prop.startswith("experiment:"):
        ops += ["gt", "gte", "lt", "lte"]
    op = draw(st.sampled_from(ops))
    if op in ("gt", "gte", "lt", "lte"):
        return {op: draw(st.sampled_from(BOUNDS))}
    pool = INTEGER_TEXTS if prop == "price_minor" else TEXTS
    if op in ("in", "not_in"):
        values = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
        return values if op == "in" and draw(st.booleans()) else {op: values}
    value = draw(st.sampled_from(pool))
    return value if op == "eq" and draw(st.booleans()) else {op: value}


@st.composite
def wheres(draw: st.DrawFn) -> dict[str, Any]:
    props = draw(st.lists(st.sampled_from(PROPS), min_size=1, max_size=2, unique=True))
    return {prop: draw(conditions(prop)) for prop in props}


@st.composite
def loaded_funnels(draw: st.DrawFn) -> FunnelDef:
    """A funnel mapping as a file would hold it, through the loader's validation."""
    mode = draw(st.sampled_from(MODES))
    window = draw(st.sampled_from(DURATIONS))
    window_ms = parse_duration_ms(window)
    n = draw(st.integers(2, 5))
    kinds = STEP_TYPES[: draw(st.integers(1, len(STEP_TYPES)))]  # few kinds: repeated types
    steps: list[Any] = []
    for index in range(n):
        event = draw(st.sampled_from(kinds))
        shape = draw(st.sampled_from(("plain", "mapping", "filtered", "filtered")))
        if shape == "plain":
            steps.append(event)
            continue
        step: dict[str, Any] = {"event": event}
        if shape == "filtered":
            step["where"] = draw(wheres())
        if index > 0 and mode != "unordered" and draw(st.booleans()):
            shorter = [d for d in DURATIONS if parse_duration_ms(d) <= window_ms]
            step["within"] = draw(st.sampled_from(shorter))
        if draw(st.booleans()):
            step["label"] = f"step-{index}"
        steps.append(step)
    raw: dict[str, Any] = {
        "name": "generated",
        "mode": mode,
        "scope": draw(st.sampled_from(("session", "user"))),
        "window": window,
        "steps": steps,
    }
    if mode == "ordered" and draw(st.booleans()):
        exclusions = []
        for _ in range(draw(st.integers(1, 2))):
            first = draw(st.integers(1, n - 1))
            item: dict[str, Any] = {
                "event": draw(st.sampled_from(EVENT_TYPES)),
                "from_step": first,
                "to_step": draw(st.integers(first + 1, n)),
            }
            if draw(st.booleans()):
                item["where"] = draw(wheres())
            exclusions.append(item)
        raw["exclusions"] = exclusions
    if draw(st.booleans()):
        dims = ("channel", "device", "tier", "experiment:button", "price_minor", "properties.note")
        raw["breakdown"] = {
            "dimensions": draw(
                st.lists(st.sampled_from(dims), min_size=1, max_size=3, unique=True)
            ),
            "attribution": draw(
                st.sampled_from(
                    ("first_touch", "last_touch", *(f"step:{k}" for k in range(1, n + 1)))
                )
            ),
        }
    return _FunnelParser(raw, "generated").parse()


@st.composite
def direct_filters(draw: st.DrawFn) -> tuple[PropertyFilter, ...]:
    out = []
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte")))
        pool = st.sampled_from((*TEXTS, *NUMBERS, *NOT_NUMBERS, *RAISING))
        values = draw(st.lists(pool, min_size=1, max_size=2))
        out.append(PropertyFilter(draw(st.sampled_from(PROPS)), op, tuple(values)))  # type: ignore[arg-type]
    return tuple(out)


@st.composite
def direct_funnels(draw: st.DrawFn) -> FunnelDef:
    """FunnelDef built in code: combinations the loader refuses (exclusions in strict or
    unordered mode, within on step 1 or in unordered mode, a filter bound that is not a
    number or raises), a window up to i64::MAX, and the plain form."""
    mode = draw(st.sampled_from(MODES))
    scope = draw(st.sampled_from(("session", "user")))
    window_ms = draw(st.sampled_from((1, 1000, 60_000, 3_600_000, I64_MAX)))
    n = draw(st.integers(1, 6))
    types = [draw(st.sampled_from(STEP_TYPES)) for _ in range(n)]
    if draw(st.integers(0, 3)) == 0:
        return FunnelDef("plain", tuple(types), scope, window_ms, mode)  # type: ignore[arg-type]
    within = st.one_of(st.none(), st.integers(0, 3_600_000), st.just(I64_MAX))
    step_defs = tuple(
        StepDef(t, draw(direct_filters()), draw(within), f"s{i}") for i, t in enumerate(types)
    )
    exclusions = []
    if n >= 2:
        for _ in range(draw(st.integers(0, 2))):
            first = draw(st.integers(1, n - 1))
            last = draw(st.integers(first + 1, n))
            exclusions.append(
                Exclusion(draw(st.sampled_from(EVENT_TYPES)), first, last, draw(direct_filters()))
            )
    breakdown = None
    if draw(st.booleans()):
        breakdown = Breakdown(("channel", "properties.note"), f"step:{draw(st.integers(1, n))}")
    return FunnelDef(
        "direct",
        tuple(s.label for s in step_defs),
        scope,  # type: ignore[arg-type]
        window_ms,
        mode,  # type: ignore[arg-type]
        step_defs,
        tuple(exclusions),
        breakdown,
    )


@st.composite
def entities(draw: st.DrawFn, funnel: FunnelDef) -> list[FunnelEvent]:
    """0-12 events, mostly of the funnel's step and exclusion types and with the values
    its filters name (so that attempts get somewhere): few distinct times (ties), repeated
    types, properties, ids that tie too; times anywhere in i64 (clamped at its ends);
    usually sorted as the core keeps them, sometimes not."""
    own = [m.event for m in funnel.matchers]
    types = st.sampled_from((*[own[0]] * 3, *own * 3, *EVENT_TYPES))
    named = tuple({v for m in funnel.matchers for f in m.filters for v in f.values})
    values = st.one_of(st.sampled_from(named), prop_values) if named else prop_values
    base = draw(st.sampled_from((0, 1_700_000_000_000, I64_MIN, I64_MAX - 5000, -(10**15))))
    unit = max(1, min(funnel.window_ms, 3_600_000) // draw(st.sampled_from((1, 3, 10, 100))))
    # Offsets on a grid, and at the window's and the per-step windows' edges.
    edges = {funnel.window_ms, *(s.within_ms for s in funnel.step_defs if s.within_ms is not None)}
    offsets = sorted({k * unit for k in range(13)} | {e + d for e in edges for d in (-1, 0, 1)})
    events = []
    for _ in range(draw(st.integers(0, 12))):
        t = min(max(base + draw(st.sampled_from(offsets)), I64_MIN), I64_MAX)
        props = tuple(draw(st.lists(st.tuples(st.sampled_from(PROPS), values), max_size=3)))
        events.append(
            FunnelEvent(
                t,
                draw(st.sampled_from(("a", "b", "e0", "é", "", "😀"))),
                draw(types),
                draw(st.integers(0, 3)),
                props,
            )
        )
    return events if draw(st.integers(0, 4)) == 0 else sorted(events)


@st.composite
def between_pairs(draw: st.DrawFn, events: list[FunnelEvent]) -> tuple[int, int] | None:
    if not events or draw(st.booleans()):
        return None
    times = [e.t for e in events]
    return (draw(st.sampled_from(times)), draw(st.sampled_from(times)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), loaded_funnels())
def test_loaded_funnels_on_generated_entities(data: st.DataObject, funnel: FunnelDef) -> None:
    events = data.draw(entities(funnel))
    check_everything(funnel, events, data.draw(between_pairs(events)))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), direct_funnels())
def test_direct_funnels_on_generated_entities(data: st.DataObject, funnel: FunnelDef) -> None:
    events = data.draw(entities(funnel))
    check_everything(funnel, events, data.draw(between_pairs(events)))


@st.composite
def overlapping(draw: st.DrawFn) -> tuple[FunnelDef, list[FunnelEvent]]:
    """Steps of one or two types whose filters overlap (the matching steps <-> events of
    unordered mode needs augmenting paths; one event never fills two steps), per-step
    windows, and events at half-second ticks around them."""
    mode = draw(st.sampled_from(("unordered", *MODES)))
    steps = []
    for index in range(draw(st.integers(2, 5))):
        kind = draw(st.sampled_from(("view_item", "view_item", "add_to_cart")))
        step: dict[str, Any] = {"event": kind}
        categories = draw(st.lists(st.sampled_from("ABC"), max_size=3, unique=True))
        if categories:
            step["where"] = {"item_category": categories}
        if index and mode != "unordered" and draw(st.booleans()):
            step["within"] = draw(st.sampled_from(("1s", "2s")))
        steps.append(step)
    raw = {"name": "overlap", "mode": mode, "window": "3s", "steps": steps}
    funnel = _FunnelParser(raw, "overlapping").parse()
    events = [
        FunnelEvent(
            draw(st.integers(0, 8)) * 500,
            draw(st.sampled_from("abcdefgh")),
            draw(st.sampled_from(("view_item", "view_item", "add_to_cart", "page_view"))),
            0,
            (("item_category", draw(st.sampled_from("ABC"))),),
        )
        for _ in range(draw(st.integers(2, 10)))
    ]
    return funnel, sorted(events)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overlapping())
def test_overlapping_steps(case: tuple[FunnelDef, list[FunnelEvent]]) -> None:
    check_everything(*case, None)


def test_hand_picked_cases() -> None:
    """Cases the generators may miss: the worked examples' shapes, one event that cannot
    fill two steps, an unordered matching that needs an augmenting path, a strict
    attempt broken by an event in between, and numbers Decimal reads its own way."""
    shop = FunnelDef("shop", ("view_item", "view_item", "purchase"), "session", 60_000)
    evs = [FunnelEvent(0, "a", "view_item", 0), FunnelEvent(5, "b", "purchase", 1)]
    check_everything(shop, evs, None)
    unordered = _FunnelParser(
        {
            "name": "u",
            "mode": "unordered",
            "steps": [
                {"event": "view_item", "where": {"item_category": ["Shoes", "Hats"]}},
                {"event": "view_item", "where": {"item_category": "Shoes"}},
                "add_to_cart",
            ],
        },
        "case",
    ).parse()
    evs = [
        FunnelEvent(0, "a", "view_item", 0, (("item_category", "Shoes"),)),
        FunnelEvent(1, "b", "view_item", 0, (("item_category", "Hats"),)),
        FunnelEvent(2, "c", "add_to_cart", 0),
    ]
    check_everything(unordered, evs, None)
    credit = evaluate(unordered, evs)
    assert credit is not None and credit.level == 3  # b takes step 1 from a: a path
    for mode in MODES:  # the window and the per-step window are inclusive
        edge = FunnelDef(
            "edge",
            ("view_item", "add_to_cart", "purchase"),
            "session",
            60_000,
            mode,
            (StepDef("view_item"), StepDef("add_to_cart", within_ms=1000), StepDef("purchase")),
        )
        for second, third in ((1000, 60_000), (1001, 60_000), (1000, 60_001)):
            evs = [
                FunnelEvent(0, "a", "view_item", 0),
                FunnelEvent(second, "b", "add_to_cart", 0),
                FunnelEvent(third, "c", "purchase", 0),
            ]
            check_everything(edge, evs, None)
    no_removal = _FunnelParser(
        {
            "name": "x",
            "steps": ["view_item", "add_to_cart", "purchase"],
            "exclusions": [{"event": "remove_from_cart", "from_step": 2, "to_step": 3}],
        },
        "case",
    ).parse()
    for removed_at in (1, 2, 3, 4):  # at step 2's time, right after it, at step 3's time
        evs = sorted(
            [
                FunnelEvent(0, "a", "view_item", 0),
                FunnelEvent(2, "c", "add_to_cart", 0),
                FunnelEvent(removed_at, "d", "remove_from_cart", 0),
                FunnelEvent(4, "e", "purchase", 0),
                FunnelEvent(5, "f", "view_item", 0),
                FunnelEvent(6, "g", "add_to_cart", 0),
                FunnelEvent(7, "h", "purchase", 0),
            ]
        )
        check_everything(no_removal, evs, None)
    strict = FunnelDef("s", ("view_item", "add_to_cart"), "user", 60_000, "strict")
    evs = [
        FunnelEvent(0, "a", "view_item", 0),
        FunnelEvent(1, "b", "page_view", 0),
        FunnelEvent(2, "c", "add_to_cart", 0),
        FunnelEvent(70_000, "d", "view_item", 0),
        FunnelEvent(70_000, "e", "add_to_cart", 0),
    ]
    check_everything(strict, evs, None)
    numeric = FunnelDef(
        "n",
        ("view_item", "add_to_cart"),
        "session",
        60_000,
        step_defs=(
            StepDef("view_item", (PropertyFilter("price_minor", "gte", ("5e4",)),)),
            StepDef("add_to_cart", (PropertyFilter("price_minor", "lt", ("-0",)),)),
        ),
    )
    values = [*NUMBERS, *NOT_NUMBERS, *RAISING, "0.5", "-.5", "1E999999999999999999"]
    for value in values:
        evs = [
            FunnelEvent(0, "a", "view_item", 0, (("price_minor", value),)),
            FunnelEvent(1, "b", "add_to_cart", 0, (("price_minor", value), ("price_minor", "-1"))),
        ]
        check_everything(numeric, evs, None)


def test_every_filter_on_every_value() -> None:
    """Each op with each bound (numbers written every way, not numbers, out of Decimal's
    range) on each value of the pool, alone and next to a second value."""
    calls = Calls()
    numeric = (*NUMBERS, *NOT_NUMBERS[:5], *RAISING, *_number_texts(8))
    text = ("Shoes", "", "é", "50000", "5e4", "-0", "0", RAISING[0])
    for op in ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte"):
        for bound in numeric if op in ("gt", "gte", "lt", "lte") else text:
            condition = PropertyFilter("price_minor", op, (bound, "7"))
            step = StepDef("view_item", (condition,))
            funnel = FunnelDef("f", ("view_item",), "session", 1000, step_defs=(step,))
            for i, value in enumerate(VALUES):
                props = [("price_minor", value)]
                if i % 3 == 0:
                    props.append(("price_minor", VALUES[(i * 7) % len(VALUES)]))
                event = FunnelEvent(0, "a", "view_item", 0, tuple(props))
                expected = [outcome(matches, funnel.step_defs[0].matcher, event)]
                calls.add("matches", funnel, {"event": event_json(event)}, expected)
    assert calls.check() > 15_000


def test_unusable_specs_are_refused() -> None:
    """What would make every Python evaluation fail is refused when the config is read."""
    good = funnel_spec(FunnelDef("f", ("view_item", "purchase"), "session", 1000))
    bad = [
        {**good, "step_defs": []},
        {**good, "window_ms": 0},
        {**good, "mode": "sideways"},
        {**good, "step_defs": good["step_defs"] * 11},
        {**good, "exclusions": [{"event": "x", "from_step": 0, "to_step": 2, "filters": []}]},
        {**good, "exclusions": [{"event": "x", "from_step": 2, "to_step": 3, "filters": []}]},
        {**good, "unknown": 1},
        {
            **good,
            "step_defs": [
                {"event": "a", "filters": [{"prop": "p", "op": "gt", "values": []}]},
                *good["step_defs"],
            ],
        },
    ]
    for spec in bad:
        with pytest.raises(ValueError):
            probe("funnel_eval.funnel", {"funnel": spec})


# -- recorded calls of the Python core on simulator data -----------------------------------


@pytest.fixture(scope="module")
def simulated() -> list[tuple[str, bytes, bytes, int]]:
    return state_memory.partition_zero(5000, 1.0)


@pytest.mark.parametrize("funnels_file", [None, "bench/funnels_mixed.yaml"])
def test_recorded_core_calls(
    simulated: list[tuple[str, bytes, bytes, int]],
    funnels_file: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if funnels_file is None:
        monkeypatch.delenv("FUNNEL_FUNNELS_FILE", raising=False)
    else:
        monkeypatch.setenv("FUNNEL_FUNNELS_FILE", str(ROOT / funnels_file))
    counts: Counter[str] = Counter()
    calls = Calls()
    seen: set[Any] = set()
    funnels: dict[int, FunnelDef] = {}

    def recorder(name: str, original: Callable[..., Any], to_json: Callable[[Any], Any]) -> Any:
        def wrapper(funnel: FunnelDef, *args: Any) -> Any:
            result = original(funnel, *args)
            counts[name] += 1
            funnels[id(funnel)] = funnel  # keeps it alive: ids stay unique
            # The events as they were at the call (a session's list grows later).
            frozen: Any = tuple(args[0]) if name != "is_start" else args[0]
            key = (name, id(funnel), frozen, *args[1:])
            if key not in seen:
                seen.add(key)
                expected = {"ok": to_json(result)}
                if name == "evaluate":
                    calls.evaluate(funnel, frozen, args[1] if len(args) > 1 else None, expected)
                elif name == "user_group_ranges":
                    calls.add(
                        "user_group_ranges",
                        funnel,
                        {"events": [event_json(e) for e in frozen]},
                        expected,
                    )
                else:
                    calls.add("is_start", funnel, {"event": event_json(frozen)}, expected)
            return result

        return wrapper

    monkeypatch.setattr(streams.visitor, "evaluate", recorder("evaluate", evaluate, credit_json))
    monkeypatch.setattr(
        streams.visitor,
        "user_group_ranges",
        recorder("user_group_ranges", user_group_ranges, ranges_json),
    )
    monkeypatch.setattr(funnel_eval, "is_start", recorder("is_start", is_start, lambda b: b))
    state_memory.run_core(simulated, 0)
    monkeypatch.undo()

    assert counts["evaluate"] > 0
    if funnels_file is not None:  # user-scope funnels, filters
        assert counts["user_group_ranges"] > 0 and counts["is_start"] > 0
        assert len({f.mode for f in funnels.values()}) == 3
        filtered = {
            i for i, spec in enumerate(calls.specs) if any(s["filters"] for s in spec["step_defs"])
        }
        assert any(
            c[1] in filtered and any(e[4] for e in c[2].get("events", ())) for c in calls.calls
        )
    # Some credits are full conversions, some partial, some filtered.
    levels = Counter(
        (r["ok"] or {}).get("level")
        for c, r in zip(calls.calls, calls.expected, strict=True)
        if c[0] == "evaluate"
    )
    assert len(levels) > 2, levels
    checked = calls.check()
    assert checked == len(seen) > 0
    print(funnels_file, dict(counts), "distinct calls checked:", checked)
