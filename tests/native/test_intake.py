"""The compiled core's intake (native/src/intake.rs) against ``streams.intake.Intake.classify``.

``intake.classify`` must give, for the same record batch, clock, partition watermark and
forget hooks: the same pending events (Event, dims, stream, offset) in the same order, the
same rows of ``events_raw``, ``late_events`` and ``dead_letters`` (``build_row`` of
streams/outputs/*.py, column for column), the same DeadLetter records
(``DeadLetter.from_rejection``), the same BatchStats counters (ingested, forgotten, late and
dead letters by (stream, reason)) and the same clock afterwards.

The channel classifier is a table: the Python ChannelRules' classification of every
(utm_source, utm_medium, referrer) triple the Python intake asked about. The forget hooks
are PartitionProcessor._in_flight / _rejected_in_flight over forget marks the test gives.

Checked on simulated runs of all three streams with malformed, JSON, duplicate and late
records (clocks that have seen later times, partition watermarks, forget marks), on every
call the Python core makes while it processes simulator data, and on hypothesis batches
(random clocks and watermarks at the event times, marks, unicode keys and channel fields).
Empty tables are left out on both sides (Python creates ``events_raw`` even when empty).
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import state_memory
from schemas.channels import ChannelRules
from schemas.codec import EventCodec
from schemas.deadletter import DeadLetter
from schemas.validation import ValidationBounds
from simulator.config import SimConfig
from simulator.generate import generate
from streams.batch import BatchResult
from streams.intake import Intake, Pending
from streams.outputs import dead_letters
from streams.processor import PartitionProcessor
from streams.records import Record
from streams.state import ForgetMark
from streams.watermarks import TopicPartitionClock
from tests.native.test_records import REGISTRY, probe
from tests.native.validation_cases import event_json

TOPICS = {"clickstream": "shop.clickstream", "cart": "shop.cart", "orders": "shop.orders"}
LATENESS = 300_000

Marks = dict[str, list[ForgetMark]]


# -- Python values as the probe's JSON ------------------------------------------------------


def to_json(value: Any) -> Any:
    """A row value as JSON: ints, str, None, lists/tuples, dicts (key order kept), bytes
    as latin-1; anything else is an error (so a stray type cannot compare equal)."""
    if value is None or type(value) in (int, str):
        return value
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("latin-1")
    raise TypeError(f"unexpected {type(value).__name__} in a row: {value!r}")


def clock_json(clock: TopicPartitionClock) -> dict[str, Any]:
    return {
        "lateness_ms": clock.lateness_ms,
        "max_t": clock.max_t,
        "has_data": clock.has_data,
        "history": [[o, t] for o, t in clock.history],
    }


def clock_from(state: dict[str, Any]) -> TopicPartitionClock:
    return TopicPartitionClock(
        state["lateness_ms"],
        state["max_t"],
        [(o, t) for o, t in state["history"]],
        state["has_data"],
    )


def letter_json(dl: DeadLetter) -> dict[str, Any]:
    return {
        "raw": dl.raw.hex(),
        "reason": dl.reason,
        "detail": dl.detail,
        "source_topic": dl.source_topic,
        "source_partition": dl.source_partition,
        "source_offset": dl.source_offset,
        "key": None if dl.key is None else dl.key.hex(),
        "received_at_ms": dl.received_at_ms,
    }


def python_out(
    pending: list[Pending], result: BatchResult, clock: TopicPartitionClock
) -> dict[str, Any]:
    stats = result.stats
    return {
        "pending": [[event_json(p.event), list(p.dims), p.stream, p.offset] for p in pending],
        "rows": {
            spec.name: [to_json(row) for row in rows] for spec, rows in result.rows.items() if rows
        },
        "dead_letters": [letter_json(dl) for dl in result.dead_letters],
        "stats": {
            "ingested": dict(stats.ingested),
            "forgotten": stats.forgotten,
            "late": {k: n for k, n in stats.late.items()},
            "dead_letters": {k: n for k, n in stats.dead_letters.items()},
        },
        "clock": clock_json(clock),
    }


def rust_out(answer: dict[str, Any]) -> dict[str, Any]:
    """The probe's answer in python_out's form (counters as dicts, empty tables dropped)."""
    if "error" in answer:
        return answer
    stats = answer["stats"]
    return {
        **answer,
        "rows": {name: rows for name, rows in answer["rows"].items() if rows},
        "stats": {
            "ingested": {s: n for s, n in stats["ingested"]},
            "forgotten": stats["forgotten"],
            "late": {(s, r): n for s, r, n in stats["late"]},
            "dead_letters": {(s, r): n for s, r, n in stats["dead_letters"]},
        },
    }


def marks_json(marks: Marks | None) -> list[list[Any]] | None:
    if marks is None:
        return None
    return [
        [anonymous_id, m.request_id, m.requested_at, m.from_ms, m.to_ms]
        for anonymous_id, ms in marks.items()
        for m in ms
    ]


def record_json(r: Record) -> list[Any]:
    return [r.offset, None if r.key is None else r.key.hex(), r.value.hex(), r.timestamp_ms]


# -- running both ---------------------------------------------------------------------------


class _Recording:
    """The channel classifier, keeping every triple it was asked (the Rust side's table)."""

    def __init__(self, rules: Any, table: dict[tuple[Any, Any, Any], str]) -> None:
        self._rules = rules
        self.table = table

    def classify(self, utm_source: Any, utm_medium: Any, referrer: Any) -> str:
        channel: str = self._rules.classify(utm_source, utm_medium, referrer)
        self.table[(utm_source, utm_medium, referrer)] = channel
        return channel


@dataclasses.dataclass
class Call:
    """One Intake.classify call: its arguments and the Python result."""

    stream: str
    records: list[Record]
    clock: dict[str, Any]  # before the call
    partition_watermark: int | None
    marks: Marks | None
    expected: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "records": [record_json(r) for r in self.records],
            "clock": self.clock,
            "partition_watermark": self.partition_watermark,
            "marks": marks_json(self.marks),
        }


@functools.cache
def _codec(replay: bool) -> EventCodec:
    return EventCodec(bounds=ValidationBounds(replay=replay))


@functools.cache
def _channels() -> ChannelRules:
    return ChannelRules.load()


def _hooks(marks: Marks | None) -> tuple[Any, Any]:
    if marks is None:
        return None, None
    owner = types.SimpleNamespace(_marks=marks)
    return (
        lambda event, appended_at: PartitionProcessor._in_flight(owner, event, appended_at),  # type: ignore[arg-type]
        lambda record: PartitionProcessor._rejected_in_flight(owner, record),  # type: ignore[arg-type]
    )


def python_call(
    intake: Intake,
    stream: str,
    records: list[Record],
    clock: TopicPartitionClock,
    partition_watermark: int | None,
    marks: Marks | None,
) -> Call:
    before = clock_json(clock)
    result = BatchResult()
    skip, skip_rejected = _hooks(marks)
    pending = intake.classify(
        stream, records, clock, partition_watermark, result, skip, skip_rejected
    )
    return Call(
        stream, records, before, partition_watermark, marks, python_out(pending, result, clock)
    )


def rust_calls(
    calls: list[Call],
    channels: dict[tuple[Any, Any, Any], str],
    bounds: ValidationBounds,
    topics: dict[str, str] = TOPICS,
    partition: int = 0,
) -> list[dict[str, Any]]:
    args = {
        "registry": REGISTRY,
        "bounds": dataclasses.asdict(bounds),
        "partition": partition,
        "topics": [[s, t] for s, t in topics.items()],
        "channels": [[s, m, r, c] for (s, m, r), c in channels.items()],
        "calls": [c.as_json() for c in calls],
    }
    return [rust_out(a) for a in probe("intake.classify", args)]


def assert_same(
    calls: list[Call],
    channels: dict[tuple[Any, Any, Any], str],
    bounds: ValidationBounds,
    topics: dict[str, str] = TOPICS,
    partition: int = 0,
) -> None:
    rust = rust_calls(calls, channels, bounds, topics, partition)
    assert len(rust) == len(calls)
    for i, (call, got) in enumerate(zip(calls, rust, strict=True)):
        want = call.expected
        for part in ("stats", "pending", "rows", "dead_letters", "clock"):
            assert got.get(part) == want[part], f"call {i} ({call.stream}): {part} differs"
        assert got == want


def new_intake(
    table: dict[tuple[Any, Any, Any], str], replay: bool = False, partition: int = 0
) -> Intake:
    decoder: Any = _codec(replay)  # typed per stream name
    return Intake(partition, decoder, _Recording(_channels(), table), TOPICS)


# -- simulated traffic ----------------------------------------------------------------------


@functools.cache
def _simulated() -> list[tuple[str, bytes | None, bytes, int]]:
    """A run of all three streams with malformed (every reason), JSON, duplicate and late
    records."""
    config = SimConfig(
        seed=23,
        users=260,
        days=2,
        partitions=1,
        malformed_pct=8.0,
        json_pct=35.0,
        duplicate_pct=4.0,
        late_pct=6.0,
    )
    return [(r.stream, r.key, r.value, r.send_time_ms) for r in generate(config)]


def _batches(size: int) -> Iterator[tuple[str, list[Record]]]:
    offsets: dict[str, int] = defaultdict(int)
    pending: dict[str, list[Record]] = defaultdict(list)
    for stream, key, value, ts in _simulated():
        pending[stream].append(Record(offsets[stream], key, value, ts))
        offsets[stream] += 1
        if len(pending[stream]) >= size:
            yield stream, pending.pop(stream)
    for stream, batch in pending.items():
        if batch:
            yield stream, batch


def _forgotten(whole_every: int, ranged_every: int) -> Marks:
    """Marks on some visitors: whole (appended before mid-run) and time ranges."""
    records = _simulated()
    keys = sorted({k.decode("utf-8", "replace") for _, k, _, _ in records if k is not None})
    middle = records[len(records) // 2][3]
    marks: Marks = {}
    for i, key in enumerate(keys):
        if i % whole_every == 0:
            marks[key] = [ForgetMark(f"w{i}", middle, None, None)]
        elif i % ranged_every == 0:
            marks[key] = [
                ForgetMark(f"r{i}", middle + 3_600_000, middle - 86_400_000, middle),
                ForgetMark(f"s{i}", records[-1][3], middle + 3_600_000, None),
            ]
    return marks


def _simulated_calls(
    table: dict[tuple[Any, Any, Any], str], size: int, marks: Marks | None, lag_ms: int
) -> list[Call]:
    """Each batch in order, with a clock per stream carried across batches as the processor
    does, and a partition watermark ``lag_ms`` behind the lowest max event time seen (None
    at first): events behind it but within their own input's lateness are window_closed."""
    intake = new_intake(table)
    clocks = {s: TopicPartitionClock(LATENESS) for s in TOPICS}
    calls = []
    for stream, batch in _batches(size):
        known = [c.max_t for c in clocks.values() if c.max_t is not None]
        watermark = min(known) - lag_ms if known else None
        clock = clocks[stream]
        calls.append(python_call(intake, stream, batch, clock, watermark, marks))
        clock.checkpoint(batch[-1].offset, None)
    return calls


def _reasons(calls: list[Call], part: str) -> set[Any]:
    return {k for c in calls for k in c.expected["stats"][part]}


def test_simulated_batches_with_late_events_and_forget_marks() -> None:
    table: dict[tuple[Any, Any, Any], str] = {}
    calls = _simulated_calls(table, 150, _forgotten(9, 4), 0)
    calls += _simulated_calls(table, 400, None, -60_000)
    assert_same(calls, table, ValidationBounds())
    # The run reaches every path: both late reasons, every stream's dead letters, forgotten
    # events and rejected records, and pending events of all three streams.
    late = _reasons(calls, "late")
    assert {r for _, r in late} == {"beyond_lateness", "window_closed"}
    dead = _reasons(calls, "dead_letters")
    assert {s for s, _ in dead} == set(TOPICS)
    assert len({r for _, r in dead}) >= 8
    assert sum(c.expected["stats"]["forgotten"] for c in calls) > 50
    assert {p[2] for c in calls for p in c.expected["pending"]} == set(TOPICS)
    assert sum(len(c.expected["pending"]) for c in calls) > 3_000


def test_every_call_the_python_core_makes() -> None:
    calls: list[Call] = []
    table: dict[tuple[Any, Any, Any], str] = {}
    seen: dict[str, Any] = {}
    original = Intake.classify

    def spy(
        self: Intake,
        stream: str,
        records: list[Record],
        tp_clock: TopicPartitionClock,
        partition_watermark: int | None,
        result: BatchResult,
        skip: Callable[..., bool] | None = None,
        skip_rejected: Callable[..., bool] | None = None,
    ) -> list[Pending]:
        assert not result.rows and not result.dead_letters  # a fresh result
        before = clock_json(tp_clock)
        rules = self._channels
        self._channels = _Recording(rules, table)
        try:
            pending = original(
                self, stream, records, tp_clock, partition_watermark, result, skip, skip_rejected
            )
        finally:
            self._channels = rules
        marks = getattr(skip, "__self__", None)
        seen.update(bounds=self._decoder.bounds, topics=self._topics, partition=self._partition)  # type: ignore[attr-defined]
        calls.append(
            Call(
                stream,
                list(records),
                before,
                partition_watermark,
                None if marks is None else {k: list(v) for k, v in marks._marks.items()},
                python_out(pending, result, tp_clock),
            )
        )
        return pending

    with mock.patch.object(Intake, "classify", spy):
        state_memory.run_core(state_memory.partition_zero(5_000, 3), 0)
    assert len(calls) > 3
    assert sum(len(c.records) for c in calls) == 5_000
    assert_same(calls, table, seen["bounds"], seen["topics"], seen["partition"])
    assert sum(len(c.expected["pending"]) for c in calls) > 4_000


# -- hypothesis -----------------------------------------------------------------------------

text = st.text(alphabet=st.sampled_from("aZ09 -_.:/é€😀\u200b\x00'\"\\字"), max_size=6)
opt_text = st.none() | text


@functools.cache
def _pool() -> dict[str, list[tuple[bytes | None, bytes, int]]]:
    by_stream: dict[str, list[tuple[bytes | None, bytes, int]]] = defaultdict(list)
    for stream, key, value, ts in _simulated()[:3_000]:
        by_stream[stream].append((key, value, ts))
    return by_stream


@st.composite
def json_variant(draw: Any, value: bytes) -> bytes:
    """A JSON record with other channel fields (unicode, empty, missing)."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value
    if not isinstance(obj, dict):
        return value
    for name in ("utm_source", "utm_medium", "referrer", "utm_campaign", "country"):
        if draw(st.booleans()):
            obj[name] = draw(opt_text)
    return orjson.dumps(obj)


@st.composite
def batch(draw: Any) -> tuple[str, list[Record], dict[str, Any], int | None, Marks | None]:
    stream = draw(st.sampled_from(sorted(TOPICS)))
    pool = _pool()[stream]
    picks = draw(st.lists(st.sampled_from(pool), max_size=12))
    records = []
    offset = draw(st.integers(0, 2**40))
    for key, value, ts in picks:
        if value[:1] == b"{" and draw(st.booleans()):
            value = draw(json_variant(value))
        if draw(st.integers(0, 5)) == 0:
            key = draw(st.none() | st.binary(max_size=6) | text.map(str.encode))
        ts += draw(st.sampled_from([0, 0, 0, -1, 1, 400_000, -8 * 86_400_000]))
        records.append(Record(offset, key, value, ts))
        offset += draw(st.integers(1, 3))
    times = [event_time(r.value, stream, r.timestamp_ms) for r in records] or [0]
    near = st.sampled_from(times).flatmap(
        lambda t: st.integers(t - 2, t + 2) | st.integers(t - 10 * LATENESS, t + 10 * LATENESS)
    )
    lateness = draw(st.sampled_from([0, 1, LATENESS, 86_400_000]))
    extreme = st.sampled_from([-(2**63), 2**63 - 1, 0])
    exact = st.sampled_from(times)  # ties: an event exactly at a watermark
    max_t = draw(st.none() | (exact | near).map(lambda t: t + lateness) | extreme)
    clock = {
        "lateness_ms": lateness,
        "max_t": max_t,
        "has_data": max_t is not None or draw(st.booleans()),
        "history": draw(st.lists(st.tuples(st.integers(0, 99), st.none() | near), max_size=2)),
    }
    clock["history"] = [list(h) for h in clock["history"]]
    watermark = draw(st.none() | exact | near | extreme)
    marks: Marks | None = None
    if draw(st.booleans()):
        marks = {}
        ids = sorted({(r.key or b"").decode("utf-8", "replace") for r in records}) or ["x"]
        for anonymous_id in draw(st.lists(st.sampled_from(ids), max_size=3)):
            marks.setdefault(anonymous_id, []).append(
                ForgetMark(
                    "req",
                    draw(st.sampled_from([r.timestamp_ms for r in records] or [0])),
                    draw(st.none() | near),
                    draw(st.none() | near),
                )
            )
    return stream, records, clock, watermark, marks


def event_time(value: bytes, stream: str, now_ms: int) -> int:
    """The record's event time when it reads as an event (else 0): where lateness bites."""
    decoded = _codec(True).decode(value, stream, now_ms)  # type: ignore[arg-type]
    return int(getattr(decoded, "event_time_ms", 0))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases=st.lists(batch(), min_size=1, max_size=4), replay=st.booleans())
def test_hypothesis_batches(cases: list[Any], replay: bool) -> None:
    table: dict[tuple[Any, Any, Any], str] = {}
    intake = new_intake(table, replay, partition=3)
    calls = [
        python_call(intake, stream, records, clock_from(clock), watermark, marks)
        for stream, records, clock, watermark, marks in cases
    ]
    assert_same(calls, table, ValidationBounds(replay=replay), partition=3)


@settings(max_examples=75, deadline=None)
@given(
    entries=st.lists(
        st.tuples(
            st.none() | st.binary(max_size=10) | text.map(str.encode),
            st.binary(max_size=12) | text.map(str.encode),
        ),
        max_size=8,
    )
)
def test_dead_letter_rows_decode_keys_and_raw_as_python(
    entries: list[tuple[bytes | None, bytes]],
) -> None:
    """Invalid UTF-8 keys get U+FFFD as Python's "replace"; raw is text or hex."""
    python = [
        to_json(dead_letters.build_row(DeadLetter(raw, "undecodable", "d", "t", 1, 2, key, 3)))
        for key, raw in entries
    ]
    args = [[None if k is None else k.hex(), raw.hex()] for k, raw in entries]
    assert probe("intake.dead_letter_rows", args) == python


def test_tricky_utf8_keys() -> None:
    keys = [
        b"\xf0\x80\x80",
        b"\xed\xa0\x80",
        b"\xe2\x82",
        b"\xe2\x82a",
        b"\xc0\xaf",
        b"\xf4\x90\x80\x80",
        b"\xff\xfe",
        b"a\xf0\x9f\x98",
        b"\xf0\x9f\x98\x80",
    ]
    python = [
        to_json(dead_letters.build_row(DeadLetter(k, "undecodable", "d", "t", 1, 2, k, 3)))
        for k in keys
    ]
    assert probe("intake.dead_letter_rows", [[k.hex(), k.hex()] for k in keys]) == python


def test_an_unknown_stream_is_an_error() -> None:
    intake = new_intake({})
    with pytest.raises(KeyError):
        intake.classify("costs", [], TopicPartitionClock(0), None, BatchResult())
    args = {
        "registry": REGISTRY,
        "bounds": {},
        "partition": 0,
        "topics": [[s, t] for s, t in TOPICS.items()],
        "channels": [],
        "calls": [
            {
                "stream": "costs",
                "records": [],
                "clock": clock_json(TopicPartitionClock(0)),
                "partition_watermark": None,
                "marks": None,
            }
        ],
    }
    assert "error" in probe("intake.classify", args)[0]
