"""Forgetting a person, through the real processor and ForgetRunner, against the truth.

The simulator's traffic goes through one PartitionProcessor per partition (as in
test_core_vs_truth); in the middle of the stream a forget request for one person runs
through :class:`streams.forget_runner.ForgetRunner` over in-memory fakes of ClickHouse
(newest version per key, with history for the audit's base version). Afterwards every
aggregate must equal the simulator's truth computed over the records without the
forgotten ones: the person's records that reached Kafka before the request, whether the
worker had processed them yet or not. Crashes at each step of the forget are replayed.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest

from schemas.codec import EventCodec
from schemas.forget import ForgetRequest
from schemas.model import Event
from schemas.validation import ValidationBounds
from simulator.generate import generate
from simulator.records import SimRecord
from simulator.truth import compute_truth
from simulator.truth_model import Truth
from streams.batch import BatchResult
from streams.forget_runner import ForgetRunner
from streams.funnels import load_funnels
from streams.outputs import forget_audit, raw_events
from streams.outputs.family import AggregateFamily, RowContext, VersionClock
from streams.outputs.forget_audit import ForgetAudit
from streams.records import Record as InputRecord
from streams.visitor import Rules
from tests.unit.test_core_vs_truth import (
    CONFIG,
    LAYOUTS,
    TOPICS,
    PartitionRun,
    Sink,
    assert_tables_equal,
    lifecycle_pipeline,
    lifecycle_truth,
    pipeline_tables,
    truth_tables,
)

RAW = raw_events.TABLE.columns
PER_VISITOR = ("funnel_attempts", "order_attribution")


class Crash(Exception):
    """The worker dies here."""


@dataclass
class Stored:
    event: Event
    channel: str
    stream: str
    source_offset: int
    is_late: bool
    received_at_ms: int


class ForgetSink(Sink):
    """The in-memory ClickHouse, plus what a forget reads: raw events, row history, audit."""

    def __init__(self, events: dict[tuple[str, int], Event]) -> None:
        super().__init__()
        self.events = events  # (stream, offset) -> decoded event
        self.raw: dict[tuple[str, str], tuple[int, Stored]] = {}  # newest copy per event
        self.history: dict[tuple[str, tuple[object, ...]], list[tuple[int, tuple[object, ...]]]] = (
            defaultdict(list)
        )
        self.audits: dict[tuple[str, int], ForgetAudit] = {}

    def write(self, result: BatchResult) -> None:
        super().write(result)
        for spec, rows in result.rows.items():
            if spec is raw_events.TABLE:
                for row in rows:
                    r = dict(zip(RAW, row, strict=True))
                    stored = Stored(
                        self.events[(str(r["stream"]), int(r["source_offset"]))],
                        str(r["channel"]),
                        str(r["stream"]),
                        int(r["source_offset"]),
                        bool(r["is_late"]),
                        int(r["ingested_at"]),
                    )
                    key = (str(r["anonymous_id"]), str(r["event_id"]))
                    old = self.raw.get(key)
                    if old is None or old[0] <= int(r["version"]):
                        self.raw[key] = (int(r["version"]), stored)
            elif spec is forget_audit.TABLE:
                for row in rows:
                    audit = forget_audit.read_audit(row)
                    self.audits[(audit.request_id, audit.partition)] = audit
            elif spec in LAYOUTS:
                at = LAYOUTS[spec]
                for row in rows:
                    self.history[(spec.name, at.key(row))].append(
                        (at.version(row), at.counters(row))
                    )


class FakeStore:
    """streams.forget_runner.ForgetStore over a ForgetSink."""

    def __init__(self, sink: ForgetSink, steps: dict[str, tuple[str, ...]]) -> None:
        self.sink = sink
        self.steps = steps
        self.deleted: dict[str, int] = {}

    def audit(self, request_id: str, partition: int) -> ForgetAudit | None:
        return self.sink.audits.get((request_id, partition))

    def person_events(self, anonymous_id: str) -> list[Any]:
        return [s for (a, _), (_, s) in self.sink.raw.items() if a == anonymous_id]

    def newest_values(
        self,
        family: AggregateFamily,
        partition: int,
        keys: Any,
        before_version: int | None,
    ) -> dict[Any, dict[str, int]]:
        at = LAYOUTS[family.table]
        out: dict[Any, dict[str, int]] = {}
        for key in keys:
            row = family.build_row(key, lambda _: 0, RowContext(partition, 0, 0, self.steps))
            versions = [
                (v, counters)
                for v, counters in self.sink.history.get((family.table.name, at.key(row)), [])
                if before_version is None or v < before_version
            ]
            if versions:
                _, counters = max(versions, key=lambda vc: vc[0])
                out[key] = dict(zip(family.value_columns, counters, strict=True))  # type: ignore[arg-type]
        return out

    def delete_person_rows(
        self, anonymous_id: str, from_ms: int | None, to_ms: int | None, appended_until: int
    ) -> dict[str, int]:
        request = ForgetRequest("-", anonymous_id, from_ms, to_ms)
        doomed = [
            k
            for k, (_, s) in self.sink.raw.items()
            if k[0] == anonymous_id
            and request.covers(s.event.event_time_ms)
            and s.received_at_ms <= appended_until
        ]
        for k in doomed:
            del self.sink.raw[k]
        removed = {"events_raw": len(doomed)}
        for name in PER_VISITOR:  # keys of the person whose newest row counts nothing
            spec = next(s for s in LAYOUTS if s.name == name)
            key_index = LAYOUTS[spec].family.key_columns.index("anonymous_id")
            gone = [
                k
                for k, (_, _, counters, _) in self.sink.rows.items()
                if k[0] == name and k[1][key_index] == anonymous_id and not any(counters)
            ]
            for k in gone:
                del self.sink.rows[k]
            removed[name] = len(gone)
        self.sink.rfm.pop(anonymous_id, None)
        self.sink.transitions = {t for t in self.sink.transitions if t[0] != anonymous_id}
        self.sink.triggers = {
            i: t for i, t in self.sink.triggers.items() if t.anonymous_id != anonymous_id
        }
        self.deleted = removed
        return removed


class FakeWriter:
    def __init__(self, sink: ForgetSink) -> None:
        self.sink = sink

    async def submit(self, table: Any, rows: list[Any]) -> None:
        result = BatchResult()
        result.rows[table] = list(rows)
        self.sink.write(result)

    async def flush(self) -> None:
        return None


def _rules() -> Rules:
    return Rules(
        load_funnels(None),
        window_ms=CONFIG.window_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
        lateness_ms=CONFIG.lateness_ms,
    )


def run_with_forget(
    records: list[SimRecord],
    request: ForgetRequest,
    requested_at: int,
    seed: int,
    crash: str | None = None,
    at_end: bool = False,
) -> tuple[ForgetSink, ForgetAudit]:
    """Run every partition; forget ``request`` halfway through its partition's batches
    (``at_end``: after the last one, when most of the person's rows are final).

    ``crash``: where the worker dies during the forget, to be restarted from its
    changelog and handed the request again: ``"after_started"`` (audit written, nothing
    else), ``"state_lost"`` (correction rows written, the state change not durable),
    ``"before_deletes"`` (rows and state durable, the deletes not run).
    """
    rnd = random.Random(seed)
    rules = _rules()
    codec = EventCodec(bounds=ValidationBounds(replay=True))
    per_tp: dict[tuple[str, int], list[InputRecord]] = defaultdict(list)
    for rec in records:
        queue = per_tp[(rec.stream, rec.partition)]
        queue.append(InputRecord(len(queue), rec.key, rec.value, rec.send_time_ms))
    sink = ForgetSink({})
    target = next(r.partition for r in records if r.key == request.anonymous_id.encode())
    audit: ForgetAudit | None = None
    for partition in sorted({p for _, p in per_tp}):
        inputs = {s: per_tp[(s, partition)] for s in TOPICS}
        # The decoded events of this partition, by (stream, offset).
        sink.events = {}
        for rec_stream in TOPICS:
            for record in inputs[rec_stream]:
                decoded = codec.decode(record.value, rec_stream, record.timestamp_ms)
                if isinstance(decoded, Event):
                    sink.events[(rec_stream, record.offset)] = decoded
        worker = PartitionRun(partition, rules, sink)
        position = dict.fromkeys(TOPICS, 0)
        total = sum(len(v) for v in inputs.values())
        batches = 0
        forget_at = max(1, total // 700) if partition == target else -1  # about halfway
        if at_end and partition == target:
            forget_at = -1
        while any(position[s] < len(inputs[s]) for s in TOPICS):
            stream = rnd.choice([s for s in TOPICS if position[s] < len(inputs[s])])
            chunk = inputs[stream][position[stream] : position[stream] + rnd.randint(1, 700)]
            position[stream] += len(chunk)
            worker.keep(worker.proc.process(stream, chunk, None))
            batches += 1
            if batches == forget_at:
                audit = forget_now(worker, sink, rules, request, requested_at, crash)
        if at_end and partition == target:
            audit = forget_now(worker, sink, rules, request, requested_at, crash)
        worker.keep(worker.proc.tick({s: len(inputs[s]) for s in TOPICS}))
    assert audit is not None, "the forget never ran"
    return sink, audit


def forget_now(
    worker: PartitionRun,
    sink: ForgetSink,
    rules: Rules,
    request: ForgetRequest,
    requested_at: int,
    crash: str | None,
) -> ForgetAudit:
    versions = VersionClock()
    store = FakeStore(sink, rules.steps_by_funnel)
    durable = len(worker.log)
    applied: list[int] = []

    async def apply(processor: Any, result: BatchResult) -> None:
        if crash == "state_lost":
            sink.write(result)  # rows reach ClickHouse, the state never the changelog
            raise Crash
        worker.keep(result)
        applied.append(1)

    async def delivered() -> None:
        if crash == "before_deletes":
            raise Crash

    runner = ForgetRunner(store, FakeWriter(sink), versions, apply, delivered)  # type: ignore[arg-type]
    if crash == "after_started":

        async def die(*args: Any) -> Any:
            raise Crash

        runner._correct = die  # type: ignore[method-assign]
    if crash is not None:
        with pytest.raises(Crash):
            asyncio.run(runner.run(worker.proc, request, requested_at))
        # Restart from the changelog: everything the forget queued if it got that far.
        worker.crash(random.Random(0), len(worker.log) if applied else durable)
        runner = ForgetRunner(store, FakeWriter(sink), versions, worker_apply(worker), _no_wait)  # type: ignore[arg-type]
    return asyncio.run(runner.run(worker.proc, request, requested_at))


def worker_apply(worker: PartitionRun) -> Any:
    async def apply(processor: Any, result: BatchResult) -> None:
        worker.keep(result)

    return apply


async def _no_wait() -> None:
    return None


# -- the scenario -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated() -> tuple[list[SimRecord], Truth]:
    records = list(generate(CONFIG))
    return records, _truth(records)


def _truth(records: list[SimRecord]) -> Truth:
    return compute_truth(
        records,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
        window_ms=CONFIG.window_ms,
    )


def _person(
    records: list[SimRecord], truth: Truth, drop: Any, keeps_some: bool = False
) -> tuple[str, Truth]:
    """A buyer whose forgotten records change no one else's lateness.

    Lateness is decided by the stream as it arrived (the watermark moved on the person's
    events too); a forget corrects the person's contributions, it does not re-decide
    other people's lateness. The truth without the records is comparable only for a
    person whose records never decided another event's lateness, which holds for most.
    """
    buyers = sorted(
        {
            r.event.anonymous_id
            for r in records
            if r.event is not None and r.event.event_type == "purchase"
        }
    )
    dropped = {r.key.decode() for r in records for a in [r.key.decode()] if drop(r, a)}
    kept_some = {r.key.decode() for r in records if not drop(r, r.key.decode())}
    buyers = [b for b in buyers if b in dropped and (b in kept_some or not keeps_some)]
    for anonymous_id in random.Random(5).sample(buyers, min(8, len(buyers))):
        kept = [r for r in records if not drop(r, anonymous_id)]
        without = _truth(kept)
        gone = {r.event.event_id for r in records if r.event is not None and drop(r, anonymous_id)}
        if set(without.late_event_ids) == set(truth.late_event_ids) - gone:
            return anonymous_id, without
    raise AssertionError("no buyer whose records leave everyone else's lateness alone")


def _whole_life(r: SimRecord, anonymous_id: str) -> bool:
    return r.key == anonymous_id.encode()


END = 2**62


@pytest.fixture(scope="module")
def whole_life(simulated: tuple[list[SimRecord], Truth]) -> tuple[str, Truth]:
    records, truth = simulated
    return _person(records, truth, _whole_life)


def _assert_forgotten(sink: ForgetSink, without: Truth, anonymous_id: str) -> None:
    assert_tables_equal(pipeline_tables(sink), truth_tables(without))
    got = lifecycle_pipeline(sink)
    want = lifecycle_truth(without)
    for name in ("retention", "gaps", "rfm", "transitions", "triggers"):
        assert got[name] == want[name], name
    assert not [k for k in sink.raw if k[0] == anonymous_id]


@pytest.mark.parametrize(
    ("crash", "at_end"),
    [
        (None, False),
        (None, True),
        ("after_started", True),
        ("state_lost", True),
        ("before_deletes", True),
        ("state_lost", False),
    ],
)
def test_forgetting_a_whole_life_equals_the_truth_without_the_person(
    simulated: tuple[list[SimRecord], Truth],
    whole_life: tuple[str, Truth],
    crash: str | None,
    at_end: bool,
) -> None:
    records, _ = simulated
    anonymous_id, without = whole_life
    request = ForgetRequest("req-1", anonymous_id)
    sink, audit = run_with_forget(records, request, END, seed=11, crash=crash, at_end=at_end)
    _assert_forgotten(sink, without, anonymous_id)
    assert audit.phase == "done"
    assert audit.events_forgotten > 0
    if at_end:  # the person's closed windows were corrected, not only the open ones
        assert audit.rows_corrected > 0
    # Nothing of the person is left in any per-visitor table.
    for (name, key), _ in sink.rows.items():
        if name in PER_VISITOR:
            assert anonymous_id not in key, (name, key)
    # And the pipeline without the forget would not have matched (the test can fail).
    assert pipeline_tables(sink) != pipeline_tables(run_plain(records)), "nothing changed"


def run_plain(records: list[SimRecord]) -> Sink:
    from tests.unit.test_core_vs_truth import run_core

    return run_core(records, CONFIG, seed=11)


def test_a_forget_counts_what_arrived_after_the_request(
    simulated: tuple[list[SimRecord], Truth],
) -> None:
    """Records appended after the request count normally, processed before it or not."""
    records, truth = simulated
    buyers = [r for r in records if r.event is not None and r.event.event_type == "purchase"]
    mine = sorted(
        (r for r in records if r.key == buyers[len(buyers) // 2].key), key=lambda r: r.send_time_ms
    )
    cut = mine[len(mine) // 2].send_time_ms
    anonymous_id = mine[0].key.decode()

    def drop(r: SimRecord, who: str) -> bool:
        return r.key == who.encode() and r.send_time_ms <= cut

    kept = [r for r in records if not drop(r, anonymous_id)]
    without = _truth(kept)
    gone = {r.event.event_id for r in records if r.event is not None and drop(r, anonymous_id)}
    if set(without.late_event_ids) != set(truth.late_event_ids) - gone:
        pytest.skip("this buyer's records decide someone's lateness")  # pragma: no cover
    sink, audit = run_with_forget(records, ForgetRequest("req-2", anonymous_id), cut, seed=12)
    assert_tables_equal(pipeline_tables(sink), truth_tables(without))
    assert audit.phase == "done"
    assert [k for k in sink.raw if k[0] == anonymous_id], "the later events must stay"


def test_forgetting_a_time_range_equals_the_truth_without_those_events(
    simulated: tuple[list[SimRecord], Truth],
) -> None:
    records, truth = simulated
    times = sorted(r.event.event_time_ms for r in records if r.event is not None)
    start, end = times[len(times) // 4], times[len(times) // 2]

    def drop(r: SimRecord, who: str) -> bool:
        return (
            r.key == who.encode() and r.event is not None and start <= r.event.event_time_ms < end
        )

    anonymous_id, without = _person(records, truth, drop, keeps_some=True)
    if not any(drop(r, anonymous_id) for r in records):
        pytest.fail("the chosen person has no event in the range")
    request = ForgetRequest("req-3", anonymous_id, start, end)
    sink, audit = run_with_forget(records, request, END, seed=13, at_end=True)
    assert_tables_equal(pipeline_tables(sink), truth_tables(without))
    got, want = lifecycle_pipeline(sink), lifecycle_truth(without)
    # Retention and order gaps are aggregates: exact. The person's own lifecycle rows
    # (transitions, triggers, RFM) are deleted whole: docs/forget.md.
    assert got["retention"] == want["retention"]
    assert got["gaps"] == want["gaps"]
    # After the forget they go on from the kept events: an RFM row written since counts
    # only kept purchases, like the truth's.
    rfm_got, rfm_want = dict(got["rfm"]), dict(want["rfm"])  # type: ignore[call-overload]
    assert rfm_got.pop(anonymous_id, None) in (None, rfm_want.pop(anonymous_id, None))
    assert rfm_got == rfm_want

    def others(rows: Any) -> Any:
        if isinstance(rows, dict):  # triggers: id -> (type, anonymous_id, ...)
            return {k: v for k, v in rows.items() if v[1] != anonymous_id}
        return {t for t in rows if t[0] != anonymous_id}  # transitions

    for name in ("transitions", "triggers"):
        assert others(got[name]) == others(want[name]), name
    kept_events = [k for k in sink.raw if k[0] == anonymous_id]
    assert kept_events, "events outside the range must stay"
    assert audit.events_forgotten > 0
    assert audit.rows_corrected > 0
    stored_in_range = [
        s
        for (a, _), (_, s) in sink.raw.items()
        if a == anonymous_id and start <= s.event.event_time_ms < end
    ]
    assert not stored_in_range


def test_running_a_forget_twice_changes_nothing(
    simulated: tuple[list[SimRecord], Truth], whole_life: tuple[str, Truth]
) -> None:
    records, _ = simulated
    anonymous_id, without = whole_life
    sink, audit = run_with_forget(
        records, ForgetRequest("req-4", anonymous_id), END, seed=14, at_end=True
    )
    before = pipeline_tables(sink)
    store = FakeStore(sink, _rules().steps_by_funnel)
    again = asyncio.run(
        ForgetRunner(store, FakeWriter(sink), VersionClock(), _unused, _no_wait).run(  # type: ignore[arg-type]
            _Partition(audit.partition),  # type: ignore[arg-type]
            ForgetRequest("req-4", anonymous_id),
            END,
        )
    )
    assert again == audit
    assert pipeline_tables(sink) == before
    assert_tables_equal(before, truth_tables(without))


class _Partition:
    def __init__(self, partition: int) -> None:
        self.partition = partition


async def _unused(processor: Any, result: BatchResult) -> None:
    raise AssertionError("a finished request must not be applied again")


def test_the_mark_expires_into_a_tombstone_once_the_inputs_finish(
    simulated: tuple[list[SimRecord], Truth], whole_life: tuple[str, Truth]
) -> None:
    """While records from before the request may still come, the visitor keeps a stub
    with the mark (no events); once every input is past the request, or finished, the
    stub goes: a tombstone in the changelog."""
    from streams.state import decode_state, encode_state

    records, _ = simulated
    anonymous_id, _ = whole_life
    request = ForgetRequest("req-5", anonymous_id)
    rules = _rules()
    codec = EventCodec(bounds=ValidationBounds(replay=True))
    partition = next(r.partition for r in records if r.key == anonymous_id.encode())
    per_stream: dict[str, list[InputRecord]] = defaultdict(list)
    for rec in records:
        if rec.partition == partition:
            queue = per_stream[rec.stream]
            queue.append(InputRecord(len(queue), rec.key, rec.value, rec.send_time_ms))
    sink = ForgetSink({})
    for stream, queue in per_stream.items():
        for record in queue:
            decoded = codec.decode(record.value, stream, record.timestamp_ms)  # type: ignore[arg-type]
            if isinstance(decoded, Event):
                sink.events[(stream, record.offset)] = decoded
    worker = PartitionRun(partition, rules, sink)
    for stream in TOPICS:
        worker.keep(worker.proc.process(stream, per_stream[stream], None))
    forget_now(worker, sink, rules, request, END, None)
    key = anonymous_id.encode()
    stub = decode_state(worker.store.get(key) or b"", anonymous_id)
    assert [m.request_id for m in stub.forgets] == ["req-5"]
    assert not stub.sessions and not stub.days and not stub.orders and not stub.touches
    assert decode_state(encode_state(stub), anonymous_id) == stub
    # A record of the person appended before the request, arriving now: dropped.
    late_copy = next(r for r in per_stream["clickstream"] if r.key == key)
    again = worker.proc.process(
        "clickstream", [late_copy._replace(offset=len(per_stream["clickstream"]))], None
    )
    assert again.stats.forgotten == 1
    assert not again.rows.get(raw_events.TABLE)
    ends = {s: len(per_stream[s]) + (s == "clickstream") for s in TOPICS}
    still = worker.proc.tick(ends)
    assert key not in still.state_writes  # END is never passed: the mark stays
    finished = worker.proc.tick(ends, set(TOPICS), finished=True)
    assert key in finished.state_writes and finished.state_writes[key] is None
