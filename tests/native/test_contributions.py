"""The compiled core's visitor contributions against the Python ones (issue #16).

streams/visitor.py ``contributions`` (funnel, KPI and attribution contributions of one
visitor state), ``live_only``, ``diff`` and the retention signatures
(``inputs_signature``, ``retention_signature``), compared through ``shopfunnel_core.probe``
on every call the Python core makes while it processes simulated traffic (the default
funnels and bench/funnels_mixed.yaml, ended with a finishing tick so every window becomes
final), and on hypothesis inputs for ``diff`` and ``live_only``.

Conventions of the probes: a contributions dict is the ordered list of
[key type name, *key fields (the family left out, tuples as lists), value]; the float
buckets (``le_seconds``, ``le_days``) are the ``repr`` of the Python value ("10", "inf").
A state is ``orjson.loads(encode_state(state))`` with its anonymous id beside it; the rules
are ``tests/native/specs.py::rules_json``.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any
from unittest import mock

import orjson
import shopfunnel_core
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import state_memory
from streams import visitor as py_visitor
from streams.attribution import MODELS
from streams.compiled.config import rules_json
from streams.lifecycle import Purchase
from streams.lives import DayActivity
from streams.outputs.funnel_attempts import FunnelAttemptKey
from streams.outputs.funnel_outcomes import FunnelOutcomeKey, OpenAttemptKey
from streams.outputs.funnel_steps import FunnelStepKey
from streams.outputs.funnel_ttc import TTC_BUCKETS_S, FunnelTtcKey
from streams.outputs.kpi import KpiCellKey
from streams.outputs.order_attribution import OrderAttributionKey
from streams.outputs.order_gaps import OrderGapKey
from streams.outputs.retention import RetentionKey
from streams.retention import GAP_BUCKETS_DAYS
from streams.state import decode_state, encode_state

I64 = (-(2**63), 2**63 - 1)


def probe(name: str, **args: Any) -> Any:
    return orjson.loads(shopfunnel_core.probe(name, orjson.dumps(args)))


# -- Python values as the probes write them ----------------------------------------------


def key_j(key: Any) -> list[Any]:
    """[type name, *fields] (the family left out; tuples stay tuples until dumped)."""
    if isinstance(key, FunnelTtcKey):
        return ["FunnelTtcKey", *key[:3], repr(key.le_seconds), *key[4:-1]]
    if isinstance(key, OrderGapKey):
        return ["OrderGapKey", *key[:2], repr(key.le_days)]
    return [type(key).__name__, *key[:-1]]


def contributions_j(out: dict[Any, int]) -> list[list[Any]]:
    """As the probe writes them (orjson writes tuples as lists)."""
    return orjson.loads(orjson.dumps([[*key_j(k), v] for k, v in out.items()]))  # type: ignore[no-any-return]


def signature_j(signature: tuple[Any, ...]) -> list[Any]:
    days, last, purchases = signature
    return [
        [list(d) for d in days],
        None if last is None else list(last),
        [list(p) for p in purchases],
    ]


# -- every call the Python core makes on simulated traffic ---------------------------------

# Where the core looks each function up (each module imported it by name).
_MODULES = {
    "contributions": ["streams.processor", "streams.visitor_cache", "streams.forget"],
    "live_only": ["streams.processor", "streams.visitor_cache"],
    "diff": ["streams.processor"],
    "inputs_signature": ["streams.processor", "streams.visitor_cache"],
}


class Recorder:
    """Wraps the functions and keeps each distinct call's probe arguments and Python's
    answer as the probe writes it."""

    def __init__(self) -> None:
        self.calls: dict[str, dict[bytes, Any]] = {name: {} for name in _MODULES}
        self.rules: dict[int, Any] = {}
        self.thresholds: Counter[bytes] = Counter()
        self.seen: set[tuple[bytes, str, bytes, int]] = set()

    def keep(self, name: str, args: dict[str, Any], result: Any) -> None:
        self.calls[name].setdefault(orjson.dumps(args), result)

    def rules_j(self, rules: Any) -> Any:
        if id(rules) not in self.rules:
            self.rules[id(rules)] = (rules, rules_json(rules))  # (kept alive: id unique)
        return self.rules[id(rules)][1]

    def rules_by_json(self, spec: Any) -> Any:
        return next(rules for rules, j in self.rules.values() if j == spec)

    def patches(self) -> list[Any]:
        original = {name: getattr(py_visitor, name) for name in _MODULES}

        def contributions(state: Any, rules: Any, thresholds: Any) -> Any:
            raw = encode_state(state)  # before the call
            out = original["contributions"](state, rules, thresholds)
            seen = (raw, state.anonymous_id, orjson.dumps(thresholds), id(rules))
            self.thresholds[seen[2]] += 1
            if seen in self.seen:
                return out
            self.seen.add(seen)
            args = {
                "state": orjson.loads(raw),
                "anonymous_id": state.anonymous_id,
                "rules": self.rules_j(rules),
                "thresholds": dict(thresholds),
            }
            self.keep("contributions", args, contributions_j(out))
            return out

        def live_only(contrib: Any, thresholds: Any) -> Any:
            out = original["live_only"](contrib, thresholds)
            args = {"contrib": contributions_j(contrib), "thresholds": dict(thresholds)}
            self.keep("live_only", args, contributions_j(out))
            return out

        def diff(before: Any, after: Any) -> Any:
            out = original["diff"](before, after)
            args = {"before": contributions_j(before), "after": contributions_j(after)}
            self.keep("diff", args, contributions_j(out))
            return out

        def inputs_signature(inputs: Any) -> Any:
            out = original["inputs_signature"](inputs)
            args = {
                "days": [list(d) for d in inputs.days],
                "purchases": [list(p) for p in inputs.purchases],
            }
            self.keep("inputs_signature", args, signature_j(out))
            return out

        wrappers = {
            "contributions": contributions,
            "live_only": live_only,
            "diff": diff,
            "inputs_signature": inputs_signature,
        }
        return [
            mock.patch(f"{module}.{name}", wrappers[name])
            for name, modules in _MODULES.items()
            for module in modules
        ]


def _run(records: list[tuple[str, bytes, bytes, int]], cache_visitors: int) -> None:
    """``run_core`` over the records, then a finishing tick: every window becomes final."""
    made: list[Any] = []
    new_processor = state_memory.new_processor

    def keep_processor(table: Any, cache_visitors: int) -> Any:
        made.append(new_processor(table, cache_visitors))
        return made[-1]

    # Batches smaller than the bench's: every input is read early, so the watermark moves
    # and windows become final while the records are processed.
    with (
        mock.patch.object(state_memory, "new_processor", keep_processor),
        mock.patch.object(state_memory, "BATCH", 20),
    ):
        state_memory.run_core(records, cache_visitors)
    ends = Counter(stream for stream, *_ in records)
    made[-1].tick(dict(ends), finished=True)


@functools.cache
def _recorded() -> Recorder:
    records = state_memory.partition_zero(5_000, 3)
    recorder = Recorder()
    patches = recorder.patches()
    for patch in patches:
        patch.start()
    try:
        _run(records, 0)  # the default funnels, no decoded-state cache
        with mock.patch.dict("os.environ", {"FUNNEL_FUNNELS_FILE": "bench/funnels_mixed.yaml"}):
            _run(records, state_memory.CACHE_ON)  # cached visitors: live_only
    finally:
        for patch in patches:
            patch.stop()
    return recorder


def _differences(name: str) -> tuple[int, list[Any]]:
    calls = _recorded().calls[name]
    different = []
    for raw, expected in calls.items():
        got = probe(f"contributions.{name}", **orjson.loads(raw))
        if got != expected:
            different.append((orjson.loads(raw), expected, got))
    return len(calls), different


def test_every_contributions_call() -> None:
    count, different = _differences("contributions")
    assert count > 1_000
    assert different[:1] == []


def test_every_live_only_call() -> None:
    count, different = _differences("live_only")
    assert count > 0
    assert different[:1] == []


def test_every_diff_call() -> None:
    count, different = _differences("diff")
    assert count > 1_000
    assert different[:1] == []


def test_every_inputs_signature_call() -> None:
    count, different = _differences("inputs_signature")
    assert count > 0
    assert different[:1] == []
    # and they compare as Python's do: equal for equal signatures, whatever the last
    # day's latest event time
    calls = [orjson.loads(raw) for raw in _recorded().calls["inputs_signature"]]
    for a, b in zip(calls, calls[1:] + calls[:1], strict=True):
        others = [b]
        if a["days"]:
            others.append(dict(a, days=[*a["days"][:-1], [*a["days"][-1][:5], 0]]))
        for other in others:
            expected = py_visitor.inputs_signature(inputs_of(a)) == py_visitor.inputs_signature(
                inputs_of(other)
            )
            got = probe(
                "contributions.same_signature",
                days_a=a["days"],
                purchases_a=a["purchases"],
                days_b=other["days"],
                purchases_b=other["purchases"],
            )
            assert got == expected


def inputs_of(args: dict[str, Any]) -> py_visitor.RetentionInputs:
    return py_visitor.RetentionInputs(
        tuple(DayActivity(*d) for d in args["days"]),
        tuple(Purchase(*p) for p in args["purchases"]),
    )


def test_the_simulated_traffic_exercises_contributions() -> None:
    recorder = _recorded()
    results = [row for result in recorder.calls["contributions"].values() for row in result]
    kinds = Counter(row[0] for row in results)
    for kind in (
        "FunnelStepKey",
        "FunnelOutcomeKey",
        "OpenAttemptKey",
        "FunnelTtcKey",
        "FunnelAttemptKey",
        "KpiCellKey",
        "OrderAttributionKey",
    ):
        assert kinds[kind] > 0, kind
    # both the default funnels and the mixed ones, with breakdowns
    assert len(recorder.rules) == 2
    assert any(row[0] == "FunnelStepKey" and row[5] for row in results), "no breakdown"
    # thresholds advanced (windows became final) and live_only dropped rows
    assert any(b"funnel:" in t for t in recorder.thresholds)
    dropped = [
        args
        for args, result in recorder.calls["live_only"].items()
        if len(orjson.loads(args)["contrib"]) > len(result)
    ]
    assert dropped, "live_only never dropped a final row"
    # diff saw keys only on one side and changed values
    assert any(any(row[-1] < 0 for row in result) for result in recorder.calls["diff"].values())


@st.composite
def recorded_state_and_thresholds(draw: st.DrawFn) -> tuple[dict[str, Any], Any]:
    """A state the core had, under thresholds at, just after or before its windows."""
    recorder = _recorded()
    raw = draw(st.sampled_from(sorted(recorder.calls["contributions"])))
    args = orjson.loads(raw)
    windows = sorted(
        {v for row in recorder.calls["contributions"][raw] for v in row[1:3] if type(v) is int}
    )
    near = st.sampled_from(windows or [0]).flatmap(
        lambda w: st.sampled_from([w - 60_000, w - 1, w, w + 1, w + 60_000])
    )
    groups = recorder.rules_by_json(args["rules"]).families
    limits = draw(st.dictionaries(st.sampled_from(groups), near | st.integers(*I64)))
    return args, limits


@settings(max_examples=60, deadline=None)
@given(recorded_state_and_thresholds())
def test_contributions_of_recorded_states_under_other_thresholds(
    case: tuple[dict[str, Any], dict[str, int]],
) -> None:
    args, limits = case
    rules = _recorded().rules_by_json(args["rules"])
    state = decode_state(orjson.dumps(args["state"]), args["anonymous_id"])
    expected = contributions_j(py_visitor.contributions(state, rules, limits))
    assert probe("contributions.contributions", **dict(args, thresholds=limits)) == expected
    # the state's retention signature, equal to that of its RetentionInputs
    signature = signature_j(py_visitor.retention_signature(state))
    assert probe("contributions.retention_signature", **args) == [signature, True]


# -- hypothesis: diff and live_only on ordered dicts -------------------------------------


def made(key_type: Any) -> Any:
    """The key type's constructor with its own family (st.builds would draw one too)."""
    return lambda *fields: key_type(*fields)


texts = st.text(max_size=4)
windows = st.sampled_from([0, 60_000, 120_000, -60_000, I64[0], I64[1]]) | st.integers(*I64)
dims = st.tuples(texts, texts, texts, texts, texts)
breakdowns = st.lists(texts, max_size=2).map(tuple)
funnel_names = st.sampled_from(["shop", "checkout", "é", ""])
outcomes = st.sampled_from(["converted", "dropped", "in_progress"])
keys = st.one_of(
    st.builds(made(FunnelStepKey), funnel_names, windows, dims, st.integers(1, 20), breakdowns),
    st.builds(made(FunnelOutcomeKey), funnel_names, windows, dims, outcomes, breakdowns),
    st.builds(made(OpenAttemptKey), funnel_names, windows),
    st.builds(
        made(FunnelTtcKey), funnel_names, windows, dims, st.sampled_from(TTC_BUCKETS_S), breakdowns
    ),
    st.builds(
        made(FunnelAttemptKey),
        funnel_names,
        windows,
        dims,
        breakdowns,
        texts,
        texts,
        texts,
        outcomes,
        st.integers(0, 20),
        st.lists(st.integers(*I64), max_size=3).map(tuple),
    ),
    st.builds(made(KpiCellKey), windows, dims, texts, st.integers(0, 10)),
    st.builds(
        made(OrderAttributionKey),
        windows,
        texts,
        texts,
        st.sampled_from(MODELS),
        *[texts] * 5,
        windows,
        texts,
        st.integers(*I64),
        st.integers(0, 1),
    ),
    st.builds(
        made(RetentionKey),
        st.sampled_from(["first_visit", "first_purchase"]),
        st.sampled_from(["day", "week", "month"]),
        windows,
        st.sampled_from(["visit", "purchase", "repeat_purchase"]),
        st.integers(0, 30),
        windows,
        texts,
        texts,
    ),
    st.builds(made(OrderGapKey), windows, texts, st.sampled_from(GAP_BUCKETS_DAYS)),
)
values = st.sampled_from([0, 1, -1, 2]) | st.integers(-(2**40), 2**40)
pools = st.lists(keys, min_size=0, max_size=8, unique=True)


@st.composite
def before_after(draw: st.DrawFn) -> tuple[dict[Any, int], dict[Any, int]]:
    pool = draw(pools)
    before_order = draw(st.permutations(pool))
    # Often in the same order, as a visitor's contributions before and after an event
    # mostly are.
    after_order = before_order if draw(st.booleans()) else draw(st.permutations(pool))
    before = {k: draw(values) for k in before_order if draw(st.booleans())}
    after = {k: draw(values) for k in after_order if draw(st.booleans())}
    return before, after


thresholds = st.dictionaries(
    st.sampled_from(
        [
            "kpi",
            "funnel:shop",
            "funnel:checkout",
            "funnel:é",
            "funnel:",
            "x",
            "retention:day",
            "retention:week",
            "retention:month",
            "order_gaps",
        ]
    ),
    windows,
)


@settings(max_examples=200, deadline=None)
@given(before_after())
def test_diff(case: tuple[dict[Any, int], dict[Any, int]]) -> None:
    before, after = case
    expected = py_visitor.diff(before, after)
    got = probe("contributions.diff", before=contributions_j(before), after=contributions_j(after))
    assert got == contributions_j(expected)


@settings(max_examples=50, deadline=None)
@given(before_after(), thresholds)
def test_live_only(case: tuple[dict[Any, int], dict[Any, int]], limits: dict[str, int]) -> None:
    contrib = case[0]
    expected = py_visitor.live_only(contrib, limits)
    got = probe("contributions.live_only", contrib=contributions_j(contrib), thresholds=limits)
    assert got == contributions_j(expected)
