"""Python -> JSON conversions and call recorders for tests/native/test_lifecycle.py.

The Rust probes ("lifecycle.<function>") take and return the same JSON shapes: purchases
and cart events as lists of their fields, rules as ``dataclasses.asdict``, transitions as
[at, from, to, transaction], trigger specs as lists of their eight fields, and an integer
outside i64 (a due time past 2**63 - 1) as its decimal string.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import shopfunnel_core

from streams import lifecycle
from streams.lifecycle import CartEvent, LifecycleRules, Purchase, Transition, TriggerSpec
from streams.lives import Life, split_lives

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def wide(n: int | None) -> int | str | None:
    if n is None:
        return None
    return n if I64_MIN <= n <= I64_MAX else str(n)


RULE_FIELDS = tuple(f.name for f in dataclasses.fields(LifecycleRules))


_last_rules: list[Any] = [None, None]


def rules_json(rules: LifecycleRules) -> dict[str, int]:
    if _last_rules[0] is not rules:  # the core passes one object, many times
        _last_rules[:] = [rules, {name: getattr(rules, name) for name in RULE_FIELDS}]
    rules_dict: dict[str, int] = _last_rules[1]
    return rules_dict


def purchase_json(p: Purchase) -> list[Any]:
    return [p.t, p.transaction_id, p.value_minor, p.currency, p.channel]


def purchases_json(purchases: Iterable[Purchase]) -> list[Any]:
    return [purchase_json(p) for p in purchases]


def cart_event_json(e: CartEvent) -> list[Any]:
    return [e.t, e.event_id, e.kind, [list(line) for line in e.lines], e.currency, e.channel]


def cart_json(events: Iterable[CartEvent]) -> list[Any]:
    return [cart_event_json(e) for e in events]


def transition_json(tr: Transition) -> list[Any]:
    return [wide(tr.at), tr.from_stage, tr.to_stage, tr.transaction_id]


def spec_json(s: TriggerSpec) -> list[Any]:
    return [
        s.trigger_type,
        wide(s.at),
        list(s.id_parts),
        [list(line) for line in s.cart],
        s.currency,
        s.channel,
        s.segment,
        s.previous_segment,
    ]


def life_json(life: Life) -> list[Any]:
    return [purchases_json(life.purchases), life.first_t, life.last_t, life.ttl_ms]


# Argument converters, by the Python parameter name.
ARG_JSON: dict[str, Callable[[Any], Any]] = {
    "purchases": purchases_json,
    "events": cart_json,
    "event": cart_event_json,
    "transitions": lambda trs: [transition_json(t) for t in trs],
    "rules": rules_json,
    "t": lambda n: n,
    "after": lambda n: n,
    "until": lambda n: n,
    "watermark": lambda n: n,
}

# Result converters and probe names, by the Python function name.
RESULT_JSON: dict[str, Callable[[Any], Any]] = {
    "stage_at": lambda s: s,
    "_breakpoints": lambda points: [[wide(at), txn] for at, txn in points],
    "transitions_between": lambda trs: [transition_json(t) for t in trs],
    "next_breakpoint": wide,
    "lifecycle_triggers": lambda specs: [spec_json(s) for s in specs],
    "cart_order": list,
    "cart_lines": lambda lines: [[item, q, p] for item, (q, p) in lines.items()],
    "_cart_currency": lambda c: c,
    "abandoned_carts": lambda specs: [spec_json(s) for s in specs],
    "next_cart_deadline": wide,
    "prune_cart": cart_json,
}
PROBE_NAME = {"_breakpoints": "breakpoints", "_cart_currency": "cart_currency"}
FUNCTIONS = tuple(RESULT_JSON)


def probe(name: str, args: dict[str, Any]) -> Any:
    return orjson.loads(shopfunnel_core.probe(name, orjson.dumps(args)))


def python_call(name: str, args: dict[str, Any]) -> tuple[bytes, Any]:
    """(the probe's argument bytes, the Python result as JSON) of lifecycle.<name>(**args)."""
    function = getattr(lifecycle, name)
    encoded = orjson.dumps({k: ARG_JSON[k](v) for k, v in args.items()})
    return encoded, RESULT_JSON[name](function(**args))


def rust_call(name: str, encoded: bytes) -> Any:
    raw = shopfunnel_core.probe("lifecycle." + PROBE_NAME.get(name, name), encoded)
    return orjson.loads(raw)


class Recorder:
    """Wraps the lifecycle functions wherever the core has bound them; keeps each distinct
    call's arguments and Python result as JSON (converted at call time: the core mutates
    the lists it passes afterwards)."""

    def __init__(self) -> None:
        self.calls: dict[str, dict[bytes, Any]] = defaultdict(dict)
        self.counts: Counter[str] = Counter()

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        parameters = list(inspect.signature(function).parameters)  # none has a default
        convert = RESULT_JSON[name]

        def recorded(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            arguments = {**dict(zip(parameters, args, strict=False)), **kwargs}
            assert len(arguments) == len(parameters), (name, arguments)
            encoded = orjson.dumps({k: ARG_JSON[k](v) for k, v in arguments.items()})
            self.counts[name] += 1
            self.calls[name].setdefault(encoded, convert(result))
            return result

        return recorded

    def install(self, monkeypatch: Any, modules: Iterable[Any]) -> None:
        originals = {name: getattr(lifecycle, name) for name in FUNCTIONS}
        wrappers = {name: self.wrap(name, fn) for name, fn in originals.items()}
        for module in modules:
            for name, original in originals.items():
                if getattr(module, name, None) is original:
                    monkeypatch.setattr(module, name, wrappers[name])

    def mismatches(self) -> list[tuple[str, bytes, Any, Any]]:
        out = []
        for name, calls in self.calls.items():
            for encoded, expected in calls.items():
                got = rust_call(name, encoded)
                if got != expected:
                    out.append((name, encoded, expected, got))
        return out


class AdvanceRecorder:
    """Records what streams.lifecycle_rows.advance_lifecycle decides on each call: the
    transitions and trigger specs it turns into rows, the life and stage of its RFM row,
    and how it leaves the state; with the arguments of the Rust twin."""

    def __init__(self) -> None:
        self.cases: list[tuple[bytes, Any]] = []
        self._capture: dict[str, list[Any]] | None = None

    def install(self, monkeypatch: Any) -> None:
        from streams import lifecycle_rows, processor
        from streams.outputs import segment_transitions, triggers, user_rfm

        def capturing(module: Any, name: str, key: str, pick: Callable[..., Any]) -> None:
            original = getattr(module, name)

            def wrapper(*args: Any) -> Any:
                if self._capture is not None:
                    self._capture[key].append(pick(*args))
                return original(*args)

            monkeypatch.setattr(module, name, wrapper)

        capturing(segment_transitions, "build_row", "transitions", lambda _a, tr, _p: tr)
        capturing(triggers, "to_trigger", "specs", lambda spec, *_: spec)
        capturing(user_rfm, "build_row", "rfm", lambda _a, _u, life, stage, *_: (life, stage))
        original = lifecycle_rows.advance_lifecycle

        def advance(
            anonymous_id: str, state: Any, watermark: int, rules: LifecycleRules, *rest: Any
        ) -> None:
            self.cases.append(self.run(original, anonymous_id, state, watermark, rules, *rest))

        monkeypatch.setattr(processor, "advance_lifecycle", advance)

    def run(
        self,
        original: Callable[..., None],
        anonymous_id: str,
        state: Any,
        watermark: int,
        rules: LifecycleRules,
        *rest: Any,
    ) -> tuple[bytes, Any]:
        lives = split_lives(state.days, state.purchases, rules)
        as_of = state.lifecycle_as_of
        encoded = orjson.dumps(
            {
                "lives": [life_json(life) for life in lives],
                "cart": cart_json(state.cart),
                "as_of": as_of,
                "watermark": watermark,
                "rules": rules_json(rules),
            }
        )
        self._capture = {"transitions": [], "specs": [], "rfm": []}
        try:
            original(anonymous_id, state, watermark, rules, *rest)
            captured = self._capture
        finally:
            self._capture = None
        assert len(captured["rfm"]) <= 1
        if as_of is not None and state.lifecycle_as_of == as_of:
            assert not any(captured.values())
            return encoded, None  # the watermark had not passed: nothing happened
        rfm = captured["rfm"]
        return encoded, {
            "transitions": [transition_json(t) for t in captured["transitions"]],
            "triggers": [spec_json(s) for s in captured["specs"]],
            "rfm": [lives.index(rfm[0][0]), rfm[0][1]] if rfm else None,
            "stage": state.stage if lives else None,
            "lifecycle_as_of": state.lifecycle_as_of,
            "cart": cart_json(state.cart),
        }

    def mismatches(self) -> list[tuple[bytes, Any, Any]]:
        out = []
        for encoded, expected in self.cases:
            got = orjson.loads(shopfunnel_core.probe("lifecycle.advance", encoded))
            if got != expected:
                out.append((encoded, expected, got))
        return out


def run_interleaved(records: list[tuple[str, bytes, bytes, int]], every: int) -> int:
    """The core as a worker reading all inputs at once: like bench.state_memory.run_core,
    but every input's pending records are processed each ``every`` records, so the
    watermark moves through the traffic and visitors are advanced many times (run_core's
    per-input batches leave the small orders input, and so the watermark, to the end).
    Returns the number of batches processed."""
    from bench.state_memory import MemoryTable, new_processor
    from streams.checkpoint import meta_key
    from streams.records import Record

    table = MemoryTable()
    processor = new_processor(table, 0)
    offsets: Counter[str] = Counter()
    pending: dict[str, list[Record]] = defaultdict(list)
    batches = 0

    def flush() -> None:
        nonlocal batches
        for stream, batch in list(pending.items()):
            if batch:
                result = processor.process(stream, batch, None)
                for k, v in result.state_writes.items():
                    table.put(k, v)
                if result.meta:
                    table.put(meta_key(0), processor.meta_record())
                batches += 1
        pending.clear()

    for index, (stream, key, value, ts) in enumerate(records, 1):
        pending[stream].append(Record(offsets[stream], key, value, ts))
        offsets[stream] += 1
        if index % every == 0:
            flush()
    flush()
    return batches
