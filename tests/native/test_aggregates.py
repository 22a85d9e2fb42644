"""The compiled core's partition totals against the Python ones (issue #16).

streams/aggregates.py ``PartitionAggregates`` (``apply``, ``value``, ``finalize`` with
``_candidate_thresholds``, ``forget``, ``live_rows``, ``take_dirty``, the thresholds)
against native/src/aggregates.rs through the probe ``aggregates.run``, which runs a
sequence of operations on one PartitionAggregates and returns each one's result:

- every operation the Python core performs on its PartitionAggregates while it processes
  simulated traffic in small batches with interleaved ticks (so windows become final
  while it runs), a recovery from the stored states and a finishing tick, with the default
  funnels and bench/funnels_mixed.yaml, replayed in order;
- hypothesis operation sequences (open attempts counting up and down to zero, watermarks
  at window, day, week and month edges, None and beyond the calendar, forgetting final
  and KPI rows, thresholds set from a checkpoint).

Conventions: keys and contributions as tests/native/test_contributions.py writes them
([type name, *fields], a KPI row ["KpiKey", window, dims, currency]). Where Python's order
comes from a set (``take_dirty``; the rows of one (finality group, window) in ``finalize``
and ``live_rows``) the rows are compared sorted; the order of the groups (dict order) is
compared exactly, and the thresholds (a dict) in order.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any
from unittest import mock

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

import streams.processor
from bench import state_memory
from streams.aggregates import PartitionAggregates, row_of
from streams.checkpoint import meta_key
from streams.compiled.config import rules_json
from streams.funnels import load_funnels
from streams.lifecycle import DAY_MS
from streams.outputs.funnel_attempts import FunnelAttemptKey
from streams.outputs.funnel_outcomes import FunnelOutcomeKey, OpenAttemptKey
from streams.outputs.funnel_steps import FunnelStepKey
from streams.outputs.funnel_ttc import TTC_BUCKETS_S, FunnelTtcKey
from streams.outputs.kpi import METRICS, KpiCellKey, KpiKey
from streams.outputs.order_attribution import OrderAttributionKey
from streams.outputs.order_gaps import OrderGapKey
from streams.outputs.retention import RetentionKey
from streams.retention import GAP_BUCKETS_DAYS
from streams.visitor import Rules
from tests.native.test_contributions import contributions_j, key_j, probe

# One operation as sent, Python's result (as the probe writes it) and, for finalize and
# live_rows, the (finality group, window) of each row.
Entry = tuple[list[Any], Any, list[Any] | None]


def rows_j(rows: list[Any]) -> list[Any]:
    return [key_j(r) for r in rows]


def groups_of(rows: list[Any]) -> list[Any]:
    return [[r.threshold, r.final_at] for r in rows]


def normal(value: Any) -> Any:
    """As orjson reads it back (tuples become lists)."""
    return orjson.loads(orjson.dumps(value))


# -- recording the Python core's operations ----------------------------------------------


class LoggedSet(set):  # type: ignore[type-arg]
    """The processor's ``aggregates.dirty``: its clear() from outside is logged."""

    owner: Any = None

    def clear(self) -> None:
        if self.owner is not None and self.owner._depth == 0:
            self.owner._log(["clear_dirty"], None)
        super().clear()


def recording_class(sequences: list[tuple[Any, list[Entry]]]) -> type[PartitionAggregates]:
    """A PartitionAggregates that logs every operation made on it from outside, in order,
    into a new sequence of ``sequences`` per instance."""

    class Recording(PartitionAggregates):
        def __init__(self, rules: Any) -> None:
            self._entries: list[Entry] = []
            self._depth = 1
            super().__init__(rules)
            sequences.append((rules, self._entries))
            dirty = LoggedSet(self.dirty)
            dirty.owner = self
            self.dirty = dirty
            self._depth = 0

        def _log(self, op: list[Any], result: Any, groups: Any = None) -> None:
            self._entries.append((op, result, groups))

        @property
        def thresholds(self) -> Any:
            return self.__dict__["thresholds"]

        @thresholds.setter
        def thresholds(self, value: Any) -> None:
            # set by the dataclass's __init__ and by the processor's recover
            self.__dict__["thresholds"] = value
            if self._depth == 0:
                self._log(["set_thresholds", dict(value)], None)

        def _inside(self, method: Any, *args: Any) -> Any:
            self._depth += 1
            try:
                return method(*args)
            finally:
                self._depth -= 1

        def apply(self, delta: Any) -> None:
            op = ["apply", [[*key_j(k), v] for k, v in delta.items()]]
            self._inside(super().apply, delta)
            self._log(op, None)

        def value(self, key: Any) -> int:
            out = self._inside(super().value, key)
            self._log(["value", key_j(key)], out)
            return out  # type: ignore[no-any-return]

        def finalize(self, watermark: int | None) -> Any:
            out = self._inside(super().finalize, watermark)
            self._log(["finalize", watermark], rows_j(out), groups_of(out))
            self._log(["thresholds"], dict(self.thresholds))
            return out

        def forget(self, rows: Any) -> None:
            op = ["forget", rows_j(rows)]
            self._inside(super().forget, rows)
            self._log(op, None)

        def live_rows(self) -> Any:
            out = self._inside(super().live_rows)
            self._log(["live_rows"], rows_j(out), groups_of(out))
            return out

        def take_dirty(self) -> Any:
            out = self._inside(super().take_dirty)
            self._log(["take_dirty"], rows_j(out))
            return out

    return Recording


def _drive(records: list[tuple[str, bytes, bytes, int]], cache_visitors: int) -> None:
    """``run_core`` in batches of 20 with a tick after every 10th batch, then a recovery
    from the stored states and, on both processors, a finishing tick."""
    made: list[Any] = []
    tables: list[Any] = []
    new_processor = state_memory.new_processor

    def keep_processor(table: Any, cache_visitors: int) -> Any:
        processor = new_processor(table, cache_visitors)
        made.append(processor)
        tables.append(table)
        process = processor.process
        calls = Counter[str]()

        def process_and_tick(stream: str, batch: Any, keep: Any) -> Any:
            result = process(stream, batch, keep)
            calls[stream] += 1
            if sum(calls.values()) % 10 == 0:
                for k, v in result.state_writes.items():
                    table.put(k, v)
                result = processor.tick({})  # the run_core loop stores its writes
            return result

        processor.process = process_and_tick  # type: ignore[method-assign,assignment]
        return processor

    with (
        mock.patch.object(state_memory, "new_processor", keep_processor),
        mock.patch.object(state_memory, "BATCH", 20),
    ):
        state_memory.run_core(records, cache_visitors)
    processor, table = made[-1], tables[-1]
    table.put(meta_key(0), processor.meta_record())
    ends = dict(Counter(stream for stream, *_ in records))
    recovered = new_processor(table, cache_visitors)
    recovered.recover()
    processor.tick(ends, finished=True)
    recovered.tick(ends, finished=True)


@functools.cache
def _recorded() -> list[tuple[Any, list[Entry]]]:
    sequences: list[tuple[Any, list[Entry]]] = []
    records = state_memory.partition_zero(5_000, 3)
    with mock.patch.object(streams.processor, "PartitionAggregates", recording_class(sequences)):
        _drive(records, 0)
        with mock.patch.dict("os.environ", {"FUNNEL_FUNNELS_FILE": "bench/funnels_mixed.yaml"}):
            _drive(records, state_memory.CACHE_ON)
    # (the operations are sent as they are: orjson writes tuples as lists)
    return [
        (rules, [(o, normal(r) if isinstance(r, list | dict) else r, g) for o, r, g in entries])
        for rules, entries in sequences
    ]


# -- comparing ----------------------------------------------------------------------------


def _sorted(rows: Any) -> Any:
    return sorted(rows, key=orjson.dumps) if isinstance(rows, list) else rows


def differences(entries: list[Entry], got: list[Any]) -> list[Any]:
    """The operations whose Rust result is not Python's (with both results)."""
    assert len(got) == len(entries)
    different = []
    for index, ((op, expected, groups), result) in enumerate(zip(entries, got, strict=True)):
        name = op[0]
        if name == "take_dirty":
            same = _sorted(result) == _sorted(expected)
        elif name in ("finalize", "live_rows") and isinstance(expected, list):
            # the same rows, and the groups (each one's rows together) in the same order
            group_of = {
                orjson.dumps(r): tuple(g) for r, g in zip(expected, groups or [], strict=True)
            }
            same = _sorted(result) == _sorted(expected) and [
                group_of.get(orjson.dumps(r)) for r in result
            ] == [tuple(g) for g in groups or []]
        elif name == "thresholds":
            same = isinstance(result, dict) and list(result.items()) == list(expected.items())
        else:
            same = result == expected
        if not same:
            different.append((index, op, expected, result))
    return different


def run_rust(rules: Any, entries: list[Entry]) -> list[Any]:
    return probe("aggregates.run", rules=rules_json(rules), ops=[op for op, _, _ in entries])  # type: ignore[no-any-return]


def test_every_operation_of_the_core() -> None:
    sequences = _recorded()
    # per run: the processor that ran, the recovered one
    assert len(sequences) == 4
    for rules, entries in sequences:
        different = differences(entries, run_rust(rules, entries))
        assert different[:1] == []


def test_the_simulated_traffic_exercises_the_aggregates() -> None:
    sequences = _recorded()
    ops = Counter(op[0] for _, entries in sequences for op, _, _ in entries)
    for name in (
        "apply",
        "value",
        "finalize",
        "forget",
        "live_rows",
        "take_dirty",
        "set_thresholds",
        "clear_dirty",
    ):
        assert ops[name] > 0, name
    entries = [e for _, es in sequences for e in es]
    final = [e for e in entries if e[0][0] == "finalize" and e[1]]
    assert len(final) > 10, "few windows became final while the core ran"
    finalized = {g[0] for e in final for g in e[2] or []}
    for group in ("kpi", "retention:day", "order_gaps"):
        assert group in finalized, group
    assert any(g.startswith("funnel:") for g in finalized)
    assert any(e[0][0] == "finalize" and e[0][1] is None for e in entries)
    # open attempts came and went
    opened = [
        row for e in entries if e[0][0] == "apply" for row in e[0][1] if row[0] == "OpenAttemptKey"
    ]
    assert any(row[-1] > 0 for row in opened) and any(row[-1] < 0 for row in opened)
    # nonzero totals read back
    assert any(e[0][0] == "value" and e[1] for e in entries)


# -- hypothesis: operation sequences --------------------------------------------------------

RULES = [
    Rules(load_funnels(None)),
    Rules(load_funnels(None), window_ms=3_600_000),
]
I64 = (-(2**63), 2**63 - 1)
WEEK_MS = 7 * DAY_MS
MONDAY = 4 * DAY_MS  # 1970-01-05
FIRST_MS = -62_135_596_800_000  # 0001-01-01
END_MS = 253_402_300_800_000  # 10000-01-01

EDGES = [
    0,
    60_000,
    120_000,
    3_600_000,
    3_660_000,
    7_200_000,
    DAY_MS,
    DAY_MS + 3_600_000,
    MONDAY,
    MONDAY + WEEK_MS,
    31 * DAY_MS,  # 1970-02-01
    59 * DAY_MS,  # 1970-03-01
    -60_000,
    -DAY_MS,
]
FAR = [I64[0], I64[1], FIRST_MS, FIRST_MS + WEEK_MS, END_MS - 60_000, END_MS - 1, END_MS]
windows = st.sampled_from(EDGES + FAR[:2] + FAR[3:5])
near_edges = st.sampled_from(EDGES).flatmap(lambda w: st.sampled_from([w - 1, w, w + 1]))
# (mostly near the edges: once a far watermark has passed, no threshold moves again)
watermarks = st.one_of(
    near_edges,
    near_edges,
    near_edges,
    st.integers(-DAY_MS, 60 * DAY_MS),
    st.none(),
    st.sampled_from([w + d for w in FAR for d in (-1, 0, 1) if I64[0] <= w + d <= I64[1]])
    | st.integers(FIRST_MS, END_MS)
    | st.integers(*I64),
)
texts = st.sampled_from(["", "a", "é", "🛒"])
dims = st.tuples(texts, texts, st.just("web"), st.just(""), st.just("x"))
funnel_names = st.sampled_from(["shop", "checkout", "ghost", "é"])
breakdowns = st.sampled_from([(), ("a",), ("é", "")])
outcomes = st.sampled_from(["converted", "dropped", "in_progress"])


def made(key_type: Any) -> Any:
    return lambda *fields: key_type(*fields)


keys = st.one_of(
    st.builds(made(OpenAttemptKey), funnel_names, windows),
    st.builds(made(FunnelStepKey), funnel_names, windows, dims, st.integers(1, 3), breakdowns),
    st.builds(made(FunnelOutcomeKey), funnel_names, windows, dims, outcomes, breakdowns),
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
        st.integers(0, 3),
        st.lists(windows, max_size=2).map(tuple),
    ),
    st.builds(made(KpiCellKey), windows, dims, texts, st.integers(0, 10)),
    st.builds(
        made(OrderAttributionKey),
        windows,
        texts,
        texts,
        st.sampled_from(["first_touch", "linear"]),
        *[texts] * 5,
        windows,
        texts,
        st.integers(-(2**40), 2**40),
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
changes = st.sampled_from([1, -1, 1, -1, 2, 0]) | st.integers(-(2**40), 2**40)


@st.composite
def programs(draw: st.DrawFn) -> tuple[Rules, list[Any]]:
    """Rules and a program: operations on keys of a small pool (so that totals and open
    attempts go up and down); "forget_final" forgets what the last finalize returned."""
    rules = draw(st.sampled_from(RULES))
    pool = draw(st.lists(keys, min_size=1, max_size=8, unique=True))
    opens = draw(
        st.lists(
            st.builds(made(OpenAttemptKey), funnel_names, st.sampled_from(EDGES)),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    pool += opens
    rows = [row_of(k) for k in pool if not isinstance(k, OpenAttemptKey)]
    kpi_rows = [r for r in rows if isinstance(r, KpiKey)]
    # watermarks that make the pool's windows final (a funnel's after its window)
    after_pool = st.sampled_from(
        [
            k.final_at + d
            for k in pool
            for d in (0, 1, 60_000, 3_660_000, 3_660_001, DAY_MS, 8 * DAY_MS, 32 * DAY_MS)
            if k.final_at + d <= I64[1]
        ]
    )
    deltas = st.lists(st.tuples(st.sampled_from(pool), changes), min_size=1, max_size=6)
    step = st.one_of(
        st.tuples(st.just("apply"), deltas.map(dict)),
        st.tuples(st.just("apply"), deltas.map(dict)),
        st.tuples(
            st.just("apply"),
            st.builds(lambda k, c: {k: c}, st.sampled_from(opens), st.sampled_from([1, -1])),
        ),
        st.tuples(st.just("value"), st.sampled_from(pool)),
        st.tuples(st.just("finalize"), watermarks),
        st.tuples(st.just("finalize"), after_pool),
        st.tuples(st.just("forget_final")),
        st.tuples(
            st.just("forget"),
            st.lists(st.sampled_from(rows + kpi_rows), max_size=3) if rows else st.just([]),
        ),
        st.tuples(st.just("live_rows")),
        st.tuples(st.just("take_dirty")),
        st.tuples(st.just("thresholds")),
        st.tuples(
            st.just("set_thresholds"),
            st.dictionaries(st.sampled_from([*rules.families, "x"]), windows, max_size=4),
        ),
    )
    return rules, draw(st.lists(step, min_size=3, max_size=25))


def run_python(rules: Rules, program: list[Any]) -> list[Entry]:
    """The program on the Python PartitionAggregates: the operations as sent, with their
    results."""
    aggregates = PartitionAggregates(rules)
    entries: list[Entry] = []
    last_final: list[Any] = []
    for name, *operand in program:
        if name == "apply":
            aggregates.apply(operand[0])
            entries.append((["apply", contributions_j(operand[0])], None, None))
        elif name == "value":
            entries.append((["value", key_j(operand[0])], aggregates.value(operand[0]), None))
        elif name == "finalize":
            try:
                last_final = aggregates.finalize(operand[0])
            except (ValueError, OverflowError):
                entries.append((["finalize", operand[0]], "error", None))
                continue
            entries.append((["finalize", operand[0]], rows_j(last_final), groups_of(last_final)))
        elif name in ("forget", "forget_final"):
            rows = last_final if name == "forget_final" else operand[0]
            aggregates.forget(rows)
            entries.append((["forget", rows_j(rows)], None, None))
        elif name == "live_rows":
            out = aggregates.live_rows()
            entries.append((["live_rows"], rows_j(out), groups_of(out)))
        elif name == "take_dirty":
            entries.append((["take_dirty"], rows_j(aggregates.take_dirty()), None))
        elif name == "thresholds":
            entries.append((["thresholds"], dict(aggregates.thresholds), None))
        elif name == "set_thresholds":
            aggregates.thresholds = dict(operand[0])
            entries.append((["set_thresholds", dict(operand[0])], None, None))
    # the final state, whatever the program did
    out = aggregates.live_rows()
    entries.append((["live_rows"], rows_j(out), groups_of(out)))
    entries.append((["thresholds"], dict(aggregates.thresholds), None))
    return [(normal(o), normal(r), g) for o, r, g in entries]


@settings(max_examples=50, deadline=None)
@given(programs())
def test_operation_sequences(case: tuple[Rules, list[Any]]) -> None:
    rules, program = case
    entries = run_python(rules, program)
    assert differences(entries, run_rust(rules, entries)) == []


def test_open_attempts_hold_a_funnel_back() -> None:
    """Counted up twice and down twice to zero: the window holds the funnel's threshold
    back until the last one closes, then its rows turn final."""
    rules = RULES[0]
    hour = 3_600_000
    step = FunnelStepKey("shop", 0, ("", "", "", "", ""), 1, ())
    opened = OpenAttemptKey("shop", 0)
    program: list[Any] = [
        ("apply", {step: 1, opened: 1}),
        ("apply", {opened: 1}),
        ("finalize", 3 * hour),
        ("apply", {opened: -1}),
        ("finalize", 3 * hour + 60_000),
        ("apply", {opened: -1}),
        ("finalize", 3 * hour + 60_000),
        ("forget_final",),
        ("finalize", 3 * hour + 120_000),
        ("live_rows",),
        ("value", step),
    ]
    entries = run_python(rules, program)
    finals = [r for o, r, _ in entries if o[0] == "finalize"]
    assert finals == [[], [], [normal(key_j(step))], []]
    assert differences(entries, run_rust(rules, entries)) == []


def test_a_row_dirty_when_its_group_was_forgotten_rejoins_a_new_group() -> None:
    """Two rows of one (finality group, window), both dirty; forgetting one drops the
    group whole, so the other's next contribution must open the group again. (A compiled
    apply that skipped the group of a row already dirty would miss this; it was tried
    for speed, did not pay, and this test caught the unguarded version.)"""
    rules = RULES[0]
    dims = ("", "", "", "", "")
    first = FunnelStepKey("shop", 0, dims, 1, ())
    second = FunnelStepKey("shop", 0, dims, 2, ())
    program: list[Any] = [
        ("apply", {first: 1, second: 1}),
        ("forget", [first]),
        ("apply", {second: 1}),
        ("live_rows",),
        ("take_dirty",),
        ("apply", {second: 1}),  # dirty again after take_dirty: the fast path
        ("apply", {second: 1}),
        ("live_rows",),
    ]
    entries = run_python(rules, program)
    live = [r for o, r, _ in entries if o == ["live_rows"]]
    assert live[0] == [normal(key_j(second))]
    assert differences(entries, run_rust(rules, entries)) == []


def test_a_forgotten_rows_place_taken_by_a_new_row() -> None:
    """The compiled aggregates keep each row once, in a slab, and `dirty` and the groups
    by the row's index; a forgotten row's index is reused by the next new row. A dirty
    row forgotten, then a new row in its place: take_dirty gives the new row once, and
    neither the old row's total nor its group come back. Also a KPI row (one index for its
    eleven cells) forgotten and counted again from zero."""
    rules = RULES[0]
    dims = ("", "", "", "", "")
    old = FunnelStepKey("shop", 0, dims, 1, ())
    new = FunnelStepKey("shop", 60_000, dims, 1, ())
    orders = KpiCellKey(0, dims, "EUR", METRICS.index("orders"))
    gmv = KpiCellKey(0, dims, "EUR", METRICS.index("gmv_minor"))
    program: list[Any] = [
        ("apply", {old: 3, orders: 1, gmv: 500}),
        ("forget", [old]),
        ("apply", {new: 1}),
        ("take_dirty",),
        ("value", old),
        ("value", new),
        ("live_rows",),
        ("forget", [KpiKey(0, dims, "EUR")]),
        ("value", gmv),
        ("apply", {gmv: 7}),
        ("take_dirty",),
        ("value", gmv),
        ("value", orders),
        ("live_rows",),
    ]
    entries = run_python(rules, program)
    dirty = [r for o, r, _ in entries if o == ["take_dirty"]]
    assert sorted(map(str, dirty[0])) == sorted(
        map(str, [normal(key_j(new)), normal(key_j(KpiKey(0, dims, "EUR")))])
    )
    assert [r for o, r, _ in entries if o[0] == "value"] == [0, 1, 0, 7, 0]
    assert differences(entries, run_rust(rules, entries)) == []
