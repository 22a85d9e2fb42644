"""The compiled core's clocks, timers and checkpoint record against the Python core.

streams/watermarks.py (TopicPartitionClock, PartitionClock), streams/timers.py
(TimerWheel) and streams/checkpoint.py (Checkpoint, meta_key) are stateful: the probes
take a sequence of operations and return every operation's result, and the same
sequence is run on the Python objects (tests/native/clock_cases.py). Sequences come from
hypothesis and from recording what the Python processor does to these objects while it
processes simulator records (bench.state_memory.run_core, and a run with ticks, lagging
commits, a seek back, a restart and finished inputs).

Two things are compared in a normalised form, both documented in the Rust modules:
watermarks outside the i64 range are clamped (Python ints do not overflow), and the keys
of one timer bucket come out in byte order (Python yields them in set order, which
depends on PYTHONHASHSEED; the bucket order itself is compared exactly).
"""

from __future__ import annotations

import json
import os
from typing import Any

import orjson
import pytest
import shopfunnel_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.checkpoint import Checkpoint, meta_key
from tests.native import clock_cases as cases

I64_MIN, I64_MAX = cases.I64_MIN, cases.I64_MAX
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def probe(name: str, **args: Any) -> Any:
    return orjson.loads(shopfunnel_core.probe(name, orjson.dumps(args)))


def rust_clock(lateness_ms: int, streams: list[str], ops: list[list[Any]]) -> Any:
    return probe("watermarks.partition_clock", lateness_ms=lateness_ms, streams=streams, ops=ops)


def rust_wheel(granularity_ms: int, ops: list[list[Any]]) -> Any:
    return probe("timers.wheel", granularity_ms=granularity_ms, ops=ops)


# -- hypothesis: clocks -------------------------------------------------------------------

NAMES = ["clickstream", "cart", "orders", "é", "😀", ""]
i64 = st.integers(I64_MIN, I64_MAX)
EXTREMES = st.sampled_from([I64_MIN, I64_MIN + 1, -1, 0, 1, I64_MAX - 1, I64_MAX])


CLOCK_OPS = [
    *["observe"] * 4,
    *["is_late"] * 2,
    *["checkpoint"] * 3,
    *["resume_at"] * 2,
    *["watermark"] * 2,
    "tp_watermark",
    "set_has_data",
    "set_history",
    "state",
    "set_caught_up",
    "set_idle",
    "set_finished",
]


@st.composite
def clock_cases(draw: Any) -> tuple[int, list[str], list[list[Any]]]:
    """Operation sequences; offsets and times are often drawn near ones used before, so
    that resumes hit batch boundaries and lateness checks hit the watermark exactly."""
    streams = draw(st.lists(st.sampled_from(NAMES), max_size=4))  # may be empty or repeat
    lateness = draw(
        st.one_of(
            st.integers(0, 1_500),
            st.integers(0, 1_500),
            st.sampled_from([0, 1, 300_000]),
            st.integers(-(10**6), 10**9),
            EXTREMES,
        )
    )
    base = draw(st.integers(-(10**13), 10**13))
    near = st.integers(-3_000, 3_000).map(lambda d: base + d)  # ties and out of order
    times = st.one_of(near, near, near, EXTREMES, i64)
    small = st.integers(-3, 40)
    offsets = st.one_of(small, small, small, st.integers(-(10**12), 10**12), EXTREMES)
    names = list(dict.fromkeys(streams))
    used_offsets: list[int] = [0]
    used_times: list[int] = [base]

    def offset() -> int:
        if draw(st.booleans()):
            value: int = draw(offsets)
        else:
            value = draw(st.sampled_from(used_offsets)) + draw(st.sampled_from([-1, 0, 0, 1]))
            value = min(max(value, I64_MIN), I64_MAX)
        used_offsets.append(value)
        return value

    def time() -> int:
        if draw(st.booleans()):
            value: int = draw(times)
        else:  # at a watermark: just late, exactly on time, just after
            seen = draw(st.sampled_from(used_times)) - lateness
            value = min(max(seen + draw(st.sampled_from([-1, 0, 1])), I64_MIN), I64_MAX)
        used_times.append(value)
        return value

    def subset() -> list[str]:
        choice = draw(st.integers(0, 2))
        if choice == 0:
            return list(draw(st.lists(st.sampled_from([*NAMES, "other"]), max_size=5)))
        if choice == 1:
            return names  # everything caught up
        return [n for n in names if draw(st.booleans())]

    ops: list[list[Any]] = []
    if names and draw(st.booleans()):  # every input has records, as in a running worker
        for name in names:
            for i in range(draw(st.integers(1, 3))):
                ops.append(["observe", name, time()])
                ops.append(["checkpoint", name, i * 10 + 9, None])
                used_offsets.append(i * 10 + 10)
    for _ in range(draw(st.integers(0, 60))):
        kind = draw(st.sampled_from(CLOCK_OPS))
        if kind == "watermark":
            ops.append(["watermark"])
        elif kind in ("set_caught_up", "set_idle"):
            ops.append([kind, subset()])
        elif kind == "set_finished":
            ops.append([kind, draw(st.booleans())])
        elif not names:
            continue
        else:
            s = draw(st.sampled_from(names))
            if kind in ("observe", "is_late"):
                ops.append([kind, s, time()])
            elif kind == "checkpoint":
                keep = offset() if draw(st.booleans()) else None
                ops.append([kind, s, offset(), keep])
            elif kind == "resume_at":
                ops.append([kind, s, offset()])
            elif kind == "set_has_data":
                ops.append([kind, s, draw(st.booleans())])
            elif kind == "set_history":
                n = draw(st.integers(0, 12))
                history = [[offset(), time() if draw(st.booleans()) else None] for _ in range(n)]
                ops.append([kind, s, history])
            else:
                ops.append([kind, s])
    return lateness, streams, ops


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clock_cases())
def test_clock_operations(case: tuple[int, list[str], list[list[Any]]]) -> None:
    lateness, streams, ops = case
    expected = cases.run_clock_ops(lateness, streams, ops)
    assert rust_clock(lateness, streams, ops) == expected


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 600), st.integers(-50, 700), st.lists(st.integers(0, 3), max_size=4))
def test_history_is_trimmed_like_python(batches: int, keep_from: int, resumes: list[int]) -> None:
    """Long histories (past the 512 kept) with and without a committed offset."""
    ops: list[list[Any]] = []
    for i in range(batches):
        ops.append(["observe", "a", 1000 + (i * 7919) % 500])
        ops.append(["checkpoint", "a", i * 3, keep_from if i % 2 else None])
    for r in resumes:
        ops.append(["resume_at", "a", keep_from * 3 - r * 50])
        ops.append(["tp_watermark", "a"])
    ops.append(["state", "a"])
    assert rust_clock(10, ["a"], ops) == cases.run_clock_ops(10, ["a"], ops)


def test_the_watermark_rule_cases() -> None:
    """Every combination of caught up / idle / finished over two inputs, each with
    records, with none, or with has_data and no time (a resume before any history)."""
    shapes: list[list[tuple[str, int]]] = [
        [],
        [("observe", 5_000), ("observe", 4_000)],
        [("observe", 9_000), ("resume_at", 0)],
    ]
    subsets: list[list[str]] = [[], ["a"], ["b"], ["a", "b"], ["a", "b", "x"]]
    count = 0
    for shape_a in shapes:
        for shape_b in shapes:
            for caught_up in subsets:
                for idle in subsets:
                    for finished in (False, True):
                        ops: list[list[Any]] = [[op, "a", v] for op, v in shape_a]
                        ops += [[op, "b", v] for op, v in shape_b]
                        ops += [
                            ["set_caught_up", caught_up],
                            ["set_idle", idle],
                            ["set_finished", finished],
                            ["watermark"],
                        ]
                        expected = cases.run_clock_ops(100, ["a", "b"], ops)
                        assert rust_clock(100, ["a", "b"], ops) == expected, ops
                        count += 1
    assert count == 3 * 3 * 5 * 5 * 2


# -- hypothesis: timers -------------------------------------------------------------------

KEYS = st.one_of(
    st.sampled_from(["a", "b", "c", "", "\x00", "\xff", "visitor-1", "visitor-10"]),
    st.binary(max_size=5).map(lambda b: b.decode("latin-1")),
)


@st.composite
def wheel_cases(draw: Any) -> tuple[int, list[list[Any]]]:
    granularity = draw(
        st.one_of(
            st.just(1000),
            st.sampled_from([1, 7, 60_000, -1000, -3, 10**12, I64_MAX, I64_MIN]),
            st.integers(1, 5000),
        )
    )
    base = draw(st.integers(-(10**13), 10**13))
    span = max(1, min(abs(granularity), 10**6)) * 4
    dues = st.one_of(st.integers(-span, span).map(lambda d: base + d), EXTREMES)
    ops = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("set"), KEYS, dues).map(list),
                st.tuples(st.just("set"), KEYS, dues).map(list),
                st.tuples(st.just("set"), KEYS, dues).map(list),
                st.tuples(st.just("set"), KEYS, st.none()).map(list),  # cleared
                st.tuples(st.just("pop_due"), dues).map(list),
                st.just(["pop_due", base + span]),  # everything set near base is due
                st.just(["len"]),
            ),
            min_size=1,
            max_size=80,
        )
    )
    return granularity, ops


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wheel_cases())
def test_timer_operations(case: tuple[int, list[list[Any]]]) -> None:
    granularity, ops = case
    assert rust_wheel(granularity, ops) == cases.run_wheel_ops(granularity, ops)


def test_timers_reset_earlier_later_and_cleared() -> None:
    ops: list[list[Any]] = [
        ["set", "a", 5_500],
        ["set", "b", 5_100],
        ["set", "c", 7_000],
        ["set", "a", 2_000],  # earlier: bucket 2000 joins the heap, bucket 5000 keeps b
        ["set", "c", 9_999],  # later: bucket 7000 is left empty in the heap
        ["set", "b", None],  # cleared: bucket 5000 is left empty
        ["pop_due", 1_999],
        ["pop_due", 5_200],
        ["set", "b", 5_050],  # bucket 5000 was dropped by the pop: pushed again
        ["set", "d", 7_001],  # into the emptied bucket 7000, still in the heap
        ["pop_due", 7_000],  # d is due later: the pop stops at its bucket
        ["len"],
        ["pop_due", 9_999],
        ["len"],
    ]
    expected = cases.run_wheel_ops(1000, ops)
    assert expected == [None] * 6 + [[], ["a"], None, None, ["b"], 2, ["d", "c"], 0]
    assert rust_wheel(1000, ops) == expected


# -- hypothesis: checkpoint ---------------------------------------------------------------

histories = st.lists(st.tuples(i64, st.one_of(st.none(), i64)), max_size=6)
checkpoints = st.builds(
    Checkpoint,
    thresholds=st.dictionaries(st.text(max_size=8), i64, max_size=5),
    history=st.dictionaries(st.text(max_size=8), histories, max_size=4),
    triggers_next_offset=st.one_of(st.none(), i64),
)


def rust_encode(c: Checkpoint) -> bytes:
    return str(probe("checkpoint.encode", **cases.checkpoint_json(c))).encode("latin-1")


def rust_decode(raw: bytes) -> bytes:
    args = orjson.dumps({"raw": raw.decode("latin-1")})
    return bytes(shopfunnel_core.probe("checkpoint.decode", args))


def python_decode(raw: bytes) -> bytes:
    return orjson.dumps(cases.checkpoint_json(Checkpoint.decode(raw)))


@settings(max_examples=60, deadline=None)
@given(checkpoints, st.sampled_from([None, 0, 2]), st.booleans(), st.booleans())
def test_checkpoint_encode_decode(
    c: Checkpoint, indent: int | None, ascii_only: bool, extra: bool
) -> None:
    raw = c.encode()
    assert rust_encode(c) == raw
    assert rust_decode(raw) == python_decode(raw)
    # The same record as another writer would format it (whitespace, \u escapes, order).
    meta: dict[str, Any] = {"history": c.history, "thresholds": c.thresholds}
    if extra:
        meta["other"] = [1, {"x": None}]
    else:
        meta["triggers_next_offset"] = c.triggers_next_offset
    other = json.dumps(meta, indent=indent, ensure_ascii=ascii_only).encode()
    assert rust_decode(other) == python_decode(other)


@given(i64)
@settings(max_examples=50, deadline=None)
def test_meta_key(partition: int) -> None:
    assert probe("checkpoint.meta_key", partition=partition).encode("latin-1") == meta_key(
        partition
    )


GOOD = b'{"thresholds":{"kpi":5},"history":{"c":[[1,2],[3,null]]},"triggers_next_offset":4}'
MALFORMED = [
    b"",
    b"[]",
    b"null",
    GOOD[:-1],
    b'{"history":{}}',
    b'{"thresholds":{}}',
    b'{"thresholds":[],"history":{}}',
    b'{"thresholds":{},"history":[]}',
    b'{"thresholds":{"k":null},"history":{}}',
    b'{"thresholds":{"k":[1]},"history":{}}',
    b'{"thresholds":{},"history":{"c":[[1]]}}',
    b'{"thresholds":{},"history":{"c":[[1,2,3]]}}',
    b'{"thresholds":{},"history":{"c":[[null,2]]}}',
    b'{"thresholds":{},"history":{"c":5}}',
    b'{"thresholds":{},"history":{"c":[5]}}',
    b'{"thresholds":{"k":1} "history":{}}',
    b'{"thresholds":{"\xff":1},"history":{}}',
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_decode_fails_where_python_fails(raw: bytes) -> None:
    with pytest.raises((KeyError, TypeError, ValueError, AttributeError)):
        Checkpoint.decode(raw)
    with pytest.raises(ValueError):
        rust_decode(raw)


@pytest.mark.parametrize(
    "raw",
    [
        GOOD,
        b' {"thresholds" : {"k":1,"k":2,"j":3}, "history":{"c":[],"d":[[1,2]],"c":[[5,6]]}} ',
        b'{"thresholds":{"\\u00e9\\ud83d\\ude00":1},"history":{},"triggers_next_offset":null}',
        b'{"triggers_next_offset":7,"history":{},"thresholds":{},"x":[true]}',
    ],
)
def test_decode_accepts_what_python_accepts(raw: bytes) -> None:
    """Repeated keys keep their first position and last value, as a Python dict does."""
    assert rust_decode(raw) == python_decode(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"thresholds":{"k":true},"history":{}}',
        b'{"thresholds":{"k":"5"},"history":{}}',
        b'{"thresholds":{"k":1.0},"history":{}}',
        b'{"thresholds":{},"history":{"c":[[1,"t"]]}}',
        b'{"thresholds":{},"history":{"c":["12"]}}',
        b'{"thresholds":{},"history":{},"unused":1.5}',  # json.rs reads no fractions
    ],
)
def test_decode_is_strict_where_python_coerces(raw: bytes) -> None:
    """Known difference: Python's int() takes booleans, numeric strings and floats, max
    event times are not checked, and orjson reads fractions anywhere; no checkpoint
    written by encode() holds any of them."""
    Checkpoint.decode(raw)
    with pytest.raises(ValueError):
        rust_decode(raw)


def test_malformed_operations_are_errors_not_panics() -> None:
    for name, args in [
        ("watermarks.partition_clock", {"lateness_ms": 1, "streams": ["a"], "ops": [["observe"]]}),
        (
            "watermarks.partition_clock",
            {"lateness_ms": 1, "streams": ["a"], "ops": [["observe", "b", 1]]},
        ),
        ("watermarks.partition_clock", {"lateness_ms": 1, "streams": [], "ops": [["jump"]]}),
        (
            "watermarks.partition_clock",
            {"lateness_ms": 1, "streams": ["a"], "ops": [["set_history", "a", [[1]]]]},
        ),
        ("timers.wheel", {"granularity_ms": 0, "ops": []}),
        ("timers.wheel", {"ops": [["set", "\u0100", 1]]}),
        ("timers.wheel", {"ops": [["pop_due", None]]}),
        ("checkpoint.encode", {"thresholds": {"k": None}, "history": {}}),
    ]:
        with pytest.raises(ValueError):
            shopfunnel_core.probe(name, orjson.dumps(args))


# -- real operation sequences: the processor over simulator records ------------------------


@pytest.fixture(scope="module")
def recorded() -> list[cases.Recorded]:
    from bench import state_memory

    records = state_memory.partition_zero(10_000, 2)
    runs = []
    with cases.recording() as core_run:
        state_memory.run_core(records, 0)
    runs.append(core_run)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FUNNEL_FUNNELS_FILE", os.path.join(REPO, "bench", "funnels_mixed.yaml"))
        with cases.recording() as restarts:
            assert cases.drive_with_restarts(records[:6_000]) > 30
    runs.append(restarts)
    return runs


def test_recorded_clock_sequences(recorded: list[cases.Recorded]) -> None:
    seen_ops: set[str] = set()
    watermarks = 0
    compared = 0
    for run in recorded:
        assert run.clocks
        for clock in run.clocks:
            ops = [op for op, _ in clock.log]
            got = [cases.clamp(result) for _, result in clock.log]
            assert ops
            # The replay on a fresh Python clock gives what the processor got...
            streams = list(clock.streams)
            assert cases.run_clock_ops(clock.lateness_ms, streams, ops) == got
            # ...and so does the Rust clock.
            assert rust_clock(clock.lateness_ms, streams, ops) == got
            compared += len(ops)
            seen_ops.update(op[0] for op in ops)
            watermarks += sum(1 for op, r in clock.log if op[0] == "watermark" and r is not None)
    assert compared > 20_000
    assert seen_ops >= {
        "watermark", "tp_watermark", "is_late", "observe", "checkpoint", "resume_at",
        "set_has_data", "set_history", "set_caught_up", "set_idle", "set_finished",
    }  # fmt: skip
    assert watermarks > 50


def test_recorded_timer_sequences(recorded: list[cases.Recorded]) -> None:
    popped = 0
    sets = 0
    for run in recorded:
        assert run.wheels
        for wheel in run.wheels:
            ops = [op for op, _ in wheel.log]
            got = [result for _, result in wheel.log]
            assert rust_wheel(wheel.granularity_ms, ops) == got
            assert cases.run_wheel_ops(wheel.granularity_ms, ops) == got
            popped += sum(len(r) for op, r in wheel.log if op[0] == "pop_due")
            sets += sum(1 for op in ops if op[0] == "set")
    assert popped > 1000
    assert sets > 5000


def test_recorded_checkpoints(recorded: list[cases.Recorded]) -> None:
    encoded = [e for run in recorded for e in run.encoded]
    decoded = [d for run in recorded for d in run.decoded]
    assert len(encoded) > 50
    assert decoded
    assert any(fields["history"] and fields["thresholds"] for fields, _ in encoded)
    for fields, raw in encoded:
        assert str(probe("checkpoint.encode", **fields)).encode("latin-1") == raw
        assert rust_decode(raw) == python_decode(raw)
    for raw, fields in decoded:
        assert orjson.loads(rust_decode(raw)) == fields
        assert rust_decode(raw) == orjson.dumps(fields)
