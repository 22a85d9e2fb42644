"""The compiled core's aggregate rows against the Python ones (issue #16).

``streams.outputs.aggregate_rows`` (with the ``build_row`` of every aggregate family and
``RowContext``) and ``merge_rows``, compared through ``shopfunnel_core.probe`` on every
call the Python core makes while it processes simulated traffic (the default funnels and
bench/funnels_mixed.yaml, with small batches and a finishing tick so rows become final),
and on hypothesis keys of every family.

Conventions of the probes: a row key is [type name, *fields] as test_contributions.py
writes keys (a KPI row: ["KpiKey", window, dims, currency]); the totals are
[[key, total], ...] (a key not there is 0); the rules are ``specs.py::rules_json`` (the
row context's step names are their ``steps_by_funnel``). The result is
[[table name, [row, ...]], ...] in the Python dict's order, a row the list of its
columns: dates as ``isoformat()``, the float buckets (``le_seconds``, ``le_days``) as the
``repr`` of the Python value ("10", "inf"), tuples as lists.
"""

from __future__ import annotations

import functools
from collections import Counter
from datetime import date
from typing import Any
from unittest import mock

import orjson
import pytest
import shopfunnel_core
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import state_memory
from streams import outputs as py_outputs
from streams.attribution import MODELS
from streams.compiled.config import rules_json
from streams.outputs.funnel_attempts import FunnelAttemptKey
from streams.outputs.funnel_outcomes import FunnelOutcomeKey
from streams.outputs.funnel_steps import FunnelStepKey
from streams.outputs.funnel_ttc import TTC_BUCKETS_S, FunnelTtcKey
from streams.outputs.kpi import KpiKey
from streams.outputs.order_attribution import OrderAttributionKey
from streams.outputs.order_gaps import OrderGapKey
from streams.outputs.retention import RetentionKey
from streams.retention import GAP_BUCKETS_DAYS
from tests.native.test_contributions import key_j

I64 = (-(2**63), 2**63 - 1)
_REPR_COLUMNS = ("le_seconds", "le_days")


def probe(name: str, **args: Any) -> Any:
    return orjson.loads(shopfunnel_core.probe(name, orjson.dumps(args)))


# -- Python values as the probes write them ----------------------------------------------


def value_j(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return [value_j(v) for v in value]
    assert value is None or isinstance(value, (int, str)), type(value)
    return value


@functools.cache
def _special(spec: Any) -> tuple[int, ...]:
    """The columns of a table that may hold dates or floats."""
    dated = ("cohort_start", "day")
    return tuple(i for i, c in enumerate(spec.columns) if c in (*_REPR_COLUMNS, *dated))


def row_j(spec: Any, row: tuple[Any, ...]) -> list[Any]:
    """The row as a list: dates as isoformat(), le_seconds and le_days as their repr().
    The other columns hold ints, strings and tuples of them (from the key, the context
    and the totals), which orjson writes as they are (rows_j)."""
    assert len(row) == len(spec.columns)
    out = list(row)
    special = _special(spec)
    for i in special:
        column = spec.columns[i]
        out[i] = repr(row[i]) if column in _REPR_COLUMNS else value_j(row[i])
    return out


def rows_j(out: dict[Any, list[Any]]) -> list[Any]:
    result = [[spec.name, [row_j(spec, row) for row in rows]] for spec, rows in out.items()]
    return orjson.loads(orjson.dumps(result))  # type: ignore[no-any-return]


def ctx_j(ctx: Any) -> dict[str, int]:
    return {"partition": ctx.partition, "is_final": ctx.is_final, "version": ctx.version}


def totals_j(totals: dict[Any, int]) -> list[Any]:
    return [[key_j(k), v] for k, v in totals.items()]


# -- every call the Python core makes on simulated traffic ---------------------------------


class Recorder:
    """Wraps ``aggregate_rows`` where streams.processor imported it and keeps each call's
    probe arguments (the keys in their order, and the value of every key the builders
    read) and Python's answer."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], list[Any]]] = []
        self.keys: list[list[Any]] = []  # each call's Python keys
        self.processors: list[Any] = []
        self.rules: dict[int, Any] = {}

    def rules_of(self, ctx: Any) -> Any:
        for processor in self.processors:
            rules = processor.rules
            if rules.steps_by_funnel is ctx.step_names:
                if id(rules) not in self.rules:
                    self.rules[id(rules)] = (rules, rules_json(rules))
                return self.rules[id(rules)][1]
        raise AssertionError("no processor has these step names")

    def aggregate_rows(self, keys: Any, total: Any, ctx: Any) -> Any:
        keys = list(keys)
        asked: dict[Any, int] = {}

        def logged(key: Any) -> int:
            value: int = total(key)
            asked[key] = value
            return value

        out = py_outputs.aggregate_rows(keys, logged, ctx)
        args = {
            "rules": self.rules_of(ctx),
            "ctx": ctx_j(ctx),
            "keys": [key_j(k) for k in keys],
            "totals": totals_j(asked),
        }
        self.keys.append(keys)
        self.calls.append((args, rows_j(out)))  # args: orjson writes tuples as lists
        return out


def _run(recorder: Recorder, records: list[Any], cache_visitors: int) -> None:
    """``run_core`` over the records, then a finishing tick: every window becomes final."""
    new_processor = state_memory.new_processor

    def keep_processor(table: Any, cache_visitors: int) -> Any:
        recorder.processors.append(new_processor(table, cache_visitors))
        return recorder.processors[-1]

    with (
        mock.patch.object(state_memory, "new_processor", keep_processor),
        mock.patch.object(state_memory, "BATCH", 20),
    ):
        state_memory.run_core(records, cache_visitors)
    ends = Counter(stream for stream, *_ in records)
    recorder.processors[-1].tick(dict(ends), finished=True)


@functools.cache
def _recorded() -> Recorder:
    records = state_memory.partition_zero(5_000, 3)
    recorder = Recorder()
    with mock.patch("streams.processor.aggregate_rows", recorder.aggregate_rows):
        _run(recorder, records, 0)
        with mock.patch.dict("os.environ", {"FUNNEL_FUNNELS_FILE": "bench/funnels_mixed.yaml"}):
            _run(recorder, records, state_memory.CACHE_ON)
    return recorder


def test_every_aggregate_rows_call() -> None:
    calls = _recorded().calls
    assert len(calls) > 100
    different = [
        (args, expected, got)
        for args, expected in calls
        if (got := probe("rows_aggregate.aggregate_rows", **args)) != expected
    ]
    assert different[:1] == []


def test_the_simulated_traffic_exercises_every_table() -> None:
    recorder = _recorded()
    tables = Counter(
        table for _, expected in recorder.calls for table, rows in expected for _ in rows
    )
    for spec in py_outputs.AGGREGATES:
        assert tables[spec.table.name] > 0, spec.table.name
    finals = Counter(args["ctx"]["is_final"] for args, _ in recorder.calls)
    assert finals[0] > 0 and finals[1] > 0
    assert len(recorder.rules) == 2  # the default funnels and the mixed ones
    # rows with a breakdown, a non-zero total and a zero one
    values = [row[-3] for _, expected in recorder.calls for _, rows in expected for row in rows]
    assert any(values) and 0 in values
    assert any(
        row[7]
        for _, expected in recorder.calls
        for table, rows in expected
        if table == "funnel_steps_minute"
        for row in rows
    )


def test_merge_rows_of_recorded_calls() -> None:
    """Each run's first 40 calls' keys as batches merged in order, under one context and
    the last recorded total of each key."""
    recorder = _recorded()
    by_rules: dict[int, list[int]] = {}
    for i, (args, _) in enumerate(recorder.calls):
        by_rules.setdefault(id(args["rules"]), []).append(i)
    assert len(by_rules) == 2
    for indexes in by_rules.values():
        first = recorder.calls[indexes[0]][0]
        rules = next(r for r, j in recorder.rules.values() if j is first["rules"])
        ctx = py_outputs.RowContext(
            first["ctx"]["partition"], 1, first["ctx"]["version"], rules.steps_by_funnel
        )
        calls = [recorder.calls[i][0] for i in indexes[:40]]
        totals: dict[bytes, int] = {orjson.dumps(k): v for args in calls for k, v in args["totals"]}
        total = functools.partial(_total_of, totals)

        target: dict[Any, list[Any]] = {}
        for i in indexes[:40]:
            py_outputs.merge_rows(target, py_outputs.aggregate_rows(recorder.keys[i], total, ctx))
        got = probe(
            "rows_aggregate.merge_rows",
            rules=first["rules"],
            ctx=ctx_j(ctx),
            batches=[args["keys"] for args in calls],
            totals=[t for args in calls for t in args["totals"]],
        )
        assert got == rows_j(target)


def _total_of(totals: dict[bytes, int], key: Any) -> int:
    return totals.get(orjson.dumps(key_j(key)), 0)


# -- hypothesis: keys of every family ----------------------------------------------------


def made(key_type: Any) -> Any:
    """The key type's constructor with its own family (st.builds would draw one too)."""
    return lambda *fields: key_type(*fields)


texts = st.text(max_size=4)
windows = st.sampled_from([0, 60_000, 120_000, -60_000, -1, I64[0], I64[1]]) | st.integers(*I64)
# day starts in years 1-9999, their ends, and (rarely) beyond: Python raises there
days = (
    st.integers(-719_162, 2_932_896).map(lambda d: d * 86_400_000)
    | st.sampled_from([-62_135_596_800_000, 253_402_300_799_999, -62_135_596_800_001])
    | windows
)
dims = st.tuples(texts, texts, texts, texts, texts)
breakdowns = st.lists(texts, max_size=2).map(tuple)
outcomes = st.sampled_from(["converted", "dropped", "in_progress"])


def row_keys(names: list[str]) -> Any:
    funnel_names = st.sampled_from([*names, "é", ""])
    step_key = st.builds(
        made(FunnelStepKey),
        st.sampled_from(names) | funnel_names,  # mostly the rules' funnels
        windows,
        dims,
        st.integers(1, 2) | st.integers(-8, 12),  # mostly steps every funnel has
        breakdowns,
    )
    return st.one_of(
        step_key,
        step_key,
        st.builds(made(FunnelOutcomeKey), funnel_names, windows, dims, outcomes, breakdowns),
        st.builds(
            made(FunnelTtcKey),
            funnel_names,
            windows,
            dims,
            st.sampled_from(TTC_BUCKETS_S),
            breakdowns,
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
        st.builds(made(KpiKey), windows, dims, texts),
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
            days,
            st.sampled_from(["visit", "purchase", "repeat_purchase"]),
            st.integers(0, 30),
            windows,
            texts,
            texts,
        ),
        st.builds(made(OrderGapKey), days, texts, st.sampled_from(GAP_BUCKETS_DAYS)),
    )


def cells(key: Any) -> list[Any]:
    return key.cells() if isinstance(key, KpiKey) else [key]


@st.composite
def cases(draw: st.DrawFn) -> tuple[Any, Any, list[Any], dict[Any, int]]:
    rules = draw(st.sampled_from([r for r, _ in _recorded().rules.values()]))
    keys = draw(st.lists(row_keys(sorted(rules.steps_by_funnel)), max_size=6))
    totals = {
        cell: draw(st.sampled_from([0, 1, -1]) | st.integers(*I64))
        for key in keys
        for cell in cells(key)
        if draw(st.booleans())
    }
    ctx = py_outputs.RowContext(
        draw(st.integers(0, 2**31)),
        draw(st.integers(0, 1)),
        draw(st.integers(0, I64[1])),
        rules.steps_by_funnel,
    )
    return rules, ctx, keys, totals


@settings(max_examples=50, deadline=None)
@given(cases())
def test_hypothesis_keys_of_every_family(case: tuple[Any, Any, list[Any], dict[Any, int]]) -> None:
    rules, ctx, keys, totals = case
    args = {
        "rules": _recorded().rules[id(rules)][1],
        "ctx": ctx_j(ctx),
        "keys": [key_j(k) for k in keys],
        "totals": totals_j(totals),
    }
    try:
        expected = rows_j(py_outputs.aggregate_rows(keys, lambda k: totals.get(k, 0), ctx))
    except (KeyError, IndexError, OverflowError):
        with pytest.raises(ValueError):
            probe("rows_aggregate.aggregate_rows", **args)
        return
    assert probe("rows_aggregate.aggregate_rows", **args) == expected
    # merge_rows: the keys split in two batches, merged
    half = len(keys) // 2
    target = py_outputs.aggregate_rows(keys[:half], lambda k: totals.get(k, 0), ctx)
    py_outputs.merge_rows(
        target, py_outputs.aggregate_rows(keys[half:][::-1], lambda k: totals.get(k, 0), ctx)
    )
    batches = [args["keys"][:half], args["keys"][half:][::-1]]
    got = probe("rows_aggregate.merge_rows", **dict(args, batches=batches))
    assert got == rows_j(target)


def test_malformed_arguments_are_errors() -> None:
    rules = next(iter(_recorded().rules.values()))[1]
    ctx = {"partition": 0, "is_final": 0, "version": 1}
    malformed: list[list[Any]] = [
        [["KpiCellKey", 0, ["a"] * 5, "EUR", 0]],
        [["OpenAttemptKey", "shop", 0]],
        [["KpiKey", 0, ["a"] * 4, "EUR"]],
        [["NoKey"]],
        [[]],
        [3],
    ]
    for keys in malformed:
        with pytest.raises(ValueError):
            probe("rows_aggregate.aggregate_rows", rules=rules, ctx=ctx, keys=keys, totals=[])
