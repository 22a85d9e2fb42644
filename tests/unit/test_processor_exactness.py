"""The processing core is exact whatever the arrival order, batching, duplicates and crashes.

No broker here: records go straight into :class:`PartitionProcessor`, state writes into
an in-memory store whose write log models a changelog, and rows into a dictionary that
keeps the newest version per key like ReplacingMergeTree. A crash keeps the writes up to
the last commit plus a random prefix of the later ones, exactly what Kafka can leave.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from schemas.model import Event, Item
from sinks.tables import TableSpec
from streams.checkpoint import meta_key
from streams.funnels import load_funnels
from streams.outputs.late_events import TABLE as LATE_EVENTS
from streams.outputs.raw_events import TABLE as EVENTS_RAW
from streams.processor import PartitionProcessor
from streams.records import Record as InputRecord
from streams.visitor import Rules
from tests.unit.fakes import DictDecoder, DictStore, SimpleChannels, row_layouts

MIN = 60_000
T0 = 1_790_000_000_000 - 1_790_000_000_000 % MIN
RULES = Rules(load_funnels(), lateness_ms=5 * MIN, session_timeout_ms=30 * MIN)
TOPICS = {"clickstream": "c", "cart": "k", "orders": "o"}
STEPS = [
    "session_start",
    "page_view",
    "view_item",
    "add_to_cart",
    "begin_checkout",
    "add_shipping_info",
    "add_payment_info",
    "purchase",
]
STREAM = {
    "session_start": "clickstream",
    "page_view": "clickstream",
    "view_item": "clickstream",
    "purchase": "orders",
    "refund": "orders",
}
# Every aggregate table, read as ReplacingMergeTree would (newest version per key).
LAYOUTS = row_layouts()


def traffic(seed: int, visitors: int = 40) -> list[Event]:
    """Sessions over two hours: partial funnels, repeat sessions, refunds, same-ms steps."""
    rnd = random.Random(seed)
    out: list[Event] = []
    for v in range(visitors):
        t = T0 + rnd.randint(0, 100 * MIN)
        for s in range(rnd.choice([1, 1, 2])):
            t += s * rnd.randint(35 * MIN, 50 * MIN)  # a later session, same session id sometimes
            session = f"s{v}" if rnd.random() < 0.5 else f"s{v}-{s}"
            medium = rnd.choice(["cpc", None, None])
            depth = rnd.randint(1, len(STEPS))
            for i, kind in enumerate(STEPS[:depth]):
                t += rnd.choice([0, rnd.randint(1, 90_000)])
                extra: dict[str, object] = {}
                if kind == "purchase":
                    extra = {
                        "transaction_id": f"tx{v}-{s}",
                        "currency": rnd.choice(["USD", "EUR"]),
                        "value_minor": rnd.randint(500, 9000),
                        "coupon": rnd.choice([None, "X"]),
                        "items": (
                            Item("i1", 500, rnd.randint(1, 3), discount_minor=rnd.choice([0, 50])),
                        ),
                    }
                out.append(
                    Event(
                        stream=STREAM.get(kind, "cart"),
                        event_type=kind,  # type: ignore[arg-type]
                        event_id=f"e{v}-{s}-{i}",
                        event_time_ms=t,
                        sent_time_ms=t,
                        anonymous_id=f"a{v}",
                        session_id=session,
                        utm_medium=medium,
                        utm_source="g" if medium else None,
                        device=rnd.choice(["mobile", "desktop"]),
                        country="DE",
                        **extra,  # type: ignore[arg-type]
                    )
                )
                if kind == "purchase" and rnd.random() < 0.3:
                    out.append(
                        Event(
                            stream="orders",
                            event_type="refund",
                            event_id=f"r{v}-{s}",
                            event_time_ms=t + rnd.randint(1, 20) * MIN,
                            sent_time_ms=t,
                            anonymous_id=f"a{v}",
                            session_id=session,
                            currency=extra["currency"],  # type: ignore[arg-type]
                            value_minor=100,
                            transaction_id=f"tx{v}-{s}",
                        )
                    )
    return out


@dataclass
class Sent:
    """What a producer put on each input topic-partition, in order (with dups and delays)."""

    records: dict[str, list[Event]] = field(default_factory=dict)


def send_order(
    events: list[Event], seed: int, late_share: float = 0.0, dup_share: float = 0.0
) -> Sent:
    rnd = random.Random(seed)
    timed: list[tuple[int, int, Event]] = []
    for n, event in enumerate(events):
        delay = rnd.randint(0, 2 * MIN)  # disorder well inside the 5 minute lateness
        if rnd.random() < late_share:
            delay = rnd.randint(12 * MIN, 20 * MIN)  # far beyond it
        timed.append((event.event_time_ms + delay, n, event))
        if rnd.random() < dup_share:
            timed.append((event.event_time_ms + delay + rnd.randint(0, MIN), n, event))
    sent = Sent({s: [] for s in TOPICS})
    for _, _, event in sorted(timed, key=lambda x: (x[0], x[1])):
        sent.records[event.stream].append(event)
    return sent


@dataclass
class Harness:
    decoder: DictDecoder = field(default_factory=DictDecoder)
    log: list[tuple[bytes, bytes | None]] = field(default_factory=list)  # changelog, in order
    durable_upto: int = 0
    rows: dict[tuple[str, tuple[object, ...]], tuple[int, tuple[object, ...]]] = field(
        default_factory=dict
    )
    raw_ids: dict[str, int] = field(default_factory=dict)
    late_ids: set[str] = field(default_factory=set)
    store: DictStore = field(default_factory=DictStore)  # the live table store
    row_log: list[tuple[TableSpec, list[tuple[object, ...]]]] = field(default_factory=list)
    rows_durable_upto: int = 0

    proc: PartitionProcessor | None = None  # whose meta_record() a result's meta means

    def store_from_log(self, upto: int) -> DictStore:
        store = DictStore()
        for key, value in self.log[:upto]:
            store.put(key, value, 0)
        return store

    def accept(self, result: object) -> None:
        res = result  # BatchResult
        for spec, rows in res.rows.items():  # type: ignore[attr-defined]
            self.row_log.append((spec, rows))
        if res.finalized:  # type: ignore[attr-defined]
            self.rows_durable_upto = len(self.row_log)  # the runtime flushes before the meta
        for key, value in res.state_writes.items():  # type: ignore[attr-defined]
            self.log.append((key, value))
            self.store.put(key, value, 0)
        if res.meta:  # type: ignore[attr-defined]
            assert self.proc is not None
            meta = self.proc.meta_record()
            self.log.append((meta_key(0), meta))
            self.store.put(meta_key(0), meta, 0)

    def crash(self, rnd: random.Random) -> None:
        """Keep durable writes plus a random prefix of the rest, in changelog and ClickHouse."""
        self.log = self.log[: rnd.randint(self.durable_upto, len(self.log))]
        self.store = self.store_from_log(len(self.log))
        self.row_log = self.row_log[: rnd.randint(self.rows_durable_upto, len(self.row_log))]

    def open_keys(self) -> list[Any]:
        """Keys of the newest non-final, non-zero aggregate rows that reached ClickHouse."""
        newest: dict[tuple[TableSpec, tuple[object, ...]], tuple[object, ...]] = {}
        for spec, rows in self.row_log:
            if spec in LAYOUTS:
                at = LAYOUTS[spec]
                for row in rows:
                    key = (spec, at.key(row))
                    if key not in newest or at.version(newest[key]) <= at.version(row):
                        newest[key] = row
        keys = []
        for (spec, key), row in newest.items():
            at = LAYOUTS[spec]
            if not at.is_final(row) and any(at.counters(row)):
                keys.append(at.read_key(key))
        return keys

    def commit(self) -> None:
        self.durable_upto = len(self.log)
        self.rows_durable_upto = len(self.row_log)

    def _write_rows(self, spec: TableSpec, rows: list[tuple[object, ...]]) -> None:
        if spec in LAYOUTS:
            at = LAYOUTS[spec]
            for row in rows:
                key = (spec.name, at.key(row))
                version = at.version(row)
                if key not in self.rows or self.rows[key][0] <= version:
                    self.rows[key] = (version, at.values(row), any(at.counters(row)))
        elif spec is EVENTS_RAW:
            for row in rows:
                self.raw_ids[str(row[0])] = self.raw_ids.get(str(row[0]), 0) + 1
        elif spec is LATE_EVENTS:
            self.late_ids.update(str(row[0]) for row in rows)

    def result(self) -> dict[tuple[str, tuple[object, ...]], tuple[object, ...]]:
        self.rows, self.raw_ids, self.late_ids = {}, {}, set()
        for spec, rows in self.row_log:
            self._write_rows(spec, rows)
        return {k: v for k, (_, v, counts) in self.rows.items() if counts}


def run(sent: Sent, seed: int, crashes: int = 0, rewinds: int = 0) -> Harness:
    rnd = random.Random(seed)
    h = Harness()
    inputs = {
        s: [
            InputRecord(i, e.anonymous_id.encode(), h.decoder.add(e), e.event_time_ms + 1)
            for i, e in enumerate(events)
        ]
        for s, events in sent.records.items()
    }
    total_batches = sum(len(v) for v in inputs.values()) // 4 + 1
    crash_at = sorted(rnd.sample(range(2, total_batches), crashes)) if crashes else []
    rewind_at = set(rnd.sample(range(2, total_batches), rewinds)) if rewinds else set()
    proc = h.proc = PartitionProcessor(0, RULES, h.decoder, SimpleChannels(), TOPICS, h.store)
    h.accept(proc.recover())
    position = dict.fromkeys(TOPICS, 0)
    committed = dict(position)
    n = 0
    while any(position[s] < len(inputs[s]) for s in TOPICS):
        stream = rnd.choice([s for s in TOPICS if position[s] < len(inputs[s])])
        batch = inputs[stream][position[stream] : position[stream] + rnd.randint(1, 9)]
        position[stream] += len(batch)
        h.accept(proc.process(stream, batch, committed[stream]))
        n += 1
        if rnd.random() < 0.3:  # commit: everything before is durable (flush before commit)
            committed = dict(position)
            h.commit()
        if n in rewind_at:  # Faust seeks back to the committed offsets (a rebalance)
            position = dict(committed)
        if crash_at and n == crash_at[0]:
            crash_at.pop(0)
            h.crash(rnd)
            proc = h.proc = PartitionProcessor(
                0, RULES, h.decoder, SimpleChannels(), TOPICS, h.store
            )
            h.accept(proc.recover(h.open_keys()))
            position = dict(committed)
    h.accept(proc.tick({s: len(inputs[s]) for s in TOPICS}))  # all inputs idle at the end
    return h


@pytest.mark.parametrize("seed", range(6))
def test_arrival_order_and_batching_do_not_change_any_number(seed: int) -> None:
    events = traffic(seed)
    base = run(send_order(events, seed), seed).result()
    assert base, "the scenario must produce rows"
    for other in (seed + 100, seed + 200):
        assert run(send_order(events, other), other).result() == base


@pytest.mark.parametrize("seed", range(8))
def test_kill_at_random_points_leaves_exact_aggregates(seed: int) -> None:
    events = traffic(seed)
    sent = send_order(events, seed, dup_share=0.05)
    expected = run(sent, seed).result()
    crashed = run(sent, seed + 1000, crashes=3)
    assert crashed.result() == expected


def test_duplicates_never_double_count() -> None:
    events = traffic(11)
    clean = run(send_order(events, 11), 11).result()
    with_dups = run(send_order(events, 11, dup_share=0.3), 12).result()
    assert with_dups == clean


def test_purchase_resent_with_a_new_event_id_counts_once() -> None:
    events = traffic(5)
    purchases = [e for e in events if e.event_type == "purchase"]
    assert purchases
    resent = [
        replace(p, event_id=p.event_id + "-retry", event_time_ms=p.event_time_ms + 1000)
        for p in purchases
    ]
    assert run(send_order(events + resent, 5), 5).result() == run(send_order(events, 5), 5).result()


def test_late_events_are_kept_apart_and_excluded() -> None:
    events = traffic(3, visitors=60)
    sent = send_order(events, 3, late_share=0.1)
    h = run(sent, 3)
    result = h.result()
    late = expected_late(sent)
    assert late, "the scenario must contain late events"
    assert h.late_ids == late
    kept = [e for e in events if e.event_id not in late]
    assert result == run(send_order(kept, 3), 3).result()
    assert set(h.raw_ids) == {e.event_id for e in events}


def expected_late(sent: Sent) -> set[str]:
    """Semantics section 1.2, computed independently per topic-partition."""
    late: set[str] = set()
    for events in sent.records.values():
        max_t: int | None = None
        for event in events:
            if max_t is not None and event.event_time_ms < max_t - RULES.lateness_ms:
                late.add(event.event_id)
            else:
                max_t = event.event_time_ms if max_t is None else max(max_t, event.event_time_ms)
    return late


@pytest.mark.parametrize("seed", range(4))
def test_redelivery_after_a_seek_back_changes_nothing(seed: int) -> None:
    """Faust re-delivers records from the committed offset during a rebalance; the same
    processor must classify them as it did the first time and not count them again."""
    events = traffic(seed, visitors=60)
    sent = send_order(events, seed, late_share=0.05, dup_share=0.05)
    expected = run(sent, seed)
    rewound = run(sent, seed, rewinds=4)
    assert rewound.result() == expected.result()
    assert rewound.late_ids == expected.late_ids == expected_late(sent)
