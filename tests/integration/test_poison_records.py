"""Poison records from the fault drills (issue 19) between good traffic, through a real worker.

Simulated traffic (with its exact ground truth) is produced to fresh topics on the real
broker with the records the drills found interleaved: a purchase whose item discount is
2**62 (crashed the agent in orjson), two purchases of 6e18 minor units in the same minute
and channel (overflowed ``gmv_minor``), a ``sent_time`` of -2**63 (made every read of
``events_raw`` fail), blank, NUL and zero-width-space ids, a discount above the price,
money above 10**15 and a quantity above the bound. One ``funnel worker`` consumes them.

The worker must exit normally, count every good record exactly as the ground truth says,
dead-letter each poison record (table and topic) with its reason, have no row refused by
ClickHouse, and leave ``events_raw`` (every column) readable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from funnel.settings import load_settings
from schemas.codec import EventCodec
from schemas.model import Event, Item
from schemas.reasons import Reason
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.produce import produce
from simulator.records import SimRecord
from simulator.truth import compute_truth
from simulator.truth_model import Truth
from streams.outputs import ALL_TABLES
from streams.topics import ensure_topics
from tests.pipeline_harness import (
    AGG_QUERIES,
    PipelineEnv,
    clickhouse,
    differences,
    pipeline_tables,
    read_topic,
    run_until_idle,
    truth_tables,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CONFIG = SimConfig(
    seed=19,
    users=250,
    days=0.05,
    partitions=2,
    duplicate_pct=2,
    out_of_order_pct=3,
    json_pct=10,
)
WORKER_TIMEOUT_SECONDS = 90.0
CODEC = EventCodec()


@dataclasses.dataclass(frozen=True)
class Poison:
    name: str
    template: str  # event type of the good record it is made from (and follows)
    reason: Reason
    as_json: bool
    breaks: Callable[[Event], Event]


def _item(event: Event, **changes: object) -> Event:
    base = event.items[0] if event.items else Item(item_id="SKU-1", price_minor=9900)
    item = dataclasses.replace(base, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(event, items=(item,), currency=event.currency or "CNY")


def _with(**changes: object) -> Callable[[Event], Event]:
    return lambda event: dataclasses.replace(event, **changes)  # type: ignore[arg-type]


POISONS = (
    Poison("discount 2**62 (orjson crash)", "purchase", Reason.AMOUNT_OUT_OF_RANGE, True,
           lambda e: _item(e, price_minor=1, quantity=8, discount_minor=2**62)),
    Poison("6e18 purchase, first", "purchase", Reason.AMOUNT_OUT_OF_RANGE, False,
           _with(value_minor=6 * 10**18, transaction_id="overflow-1")),
    Poison("6e18 purchase, second", "purchase", Reason.AMOUNT_OUT_OF_RANGE, False,
           _with(value_minor=6 * 10**18, transaction_id="overflow-2")),
    Poison("sent_time -2**63", "page_view", Reason.TIMESTAMP_OUT_OF_RANGE, False,
           _with(sent_time_ms=-(2**63))),
    Poison("blank session_id", "view_item", Reason.INVALID_ID, True, _with(session_id="   ")),
    Poison("NUL in anonymous_id", "add_to_cart", Reason.INVALID_ID, False,
           lambda e: dataclasses.replace(e, anonymous_id=e.anonymous_id + "\x00")),
    Poison("zero-width-space event_id", "session_start", Reason.INVALID_ID, True,
           _with(event_id="\u200b")),
    Poison("zero-width-space transaction_id", "purchase", Reason.INVALID_ID, False,
           _with(transaction_id="\u200b\ufeff")),
    Poison("discount above price", "add_to_cart", Reason.DISCOUNT_EXCEEDS_PRICE, True,
           lambda e: _item(e, price_minor=5000, discount_minor=5001)),
    Poison("price above 10**15", "add_to_cart", Reason.AMOUNT_OUT_OF_RANGE, False,
           lambda e: _item(e, price_minor=10**15 + 1)),
    Poison("refund above 10**15", "purchase", Reason.AMOUNT_OUT_OF_RANGE, True,
           _with(event_type="refund", value_minor=10**16, items=())),
    Poison("quantity above the bound", "add_to_cart", Reason.QUANTITY_OUT_OF_RANGE, False,
           lambda e: _item(e, quantity=1_000_001)),
)  # fmt: skip


def _shown(raw: bytes) -> str:
    """How the dead_letters table shows a record's bytes (streams/outputs/dead_letters.py)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.hex()


def _interleave(good: list[SimRecord]) -> tuple[list[SimRecord], dict[bytes, Poison]]:
    """``good`` with each poison record right after a good record of its template type
    (distinct templates, the two 6e18 purchases after the same one: same minute, channel)."""
    used: set[int] = set()
    after: dict[int, list[SimRecord]] = {}
    sent: dict[bytes, Poison] = {}
    previous: int | None = None
    for n, poison in enumerate(POISONS):
        if poison.name.endswith("second") and previous is not None:
            index = previous
        else:
            index = next(
                i
                for i, r in enumerate(good)
                if i not in used
                and r.event is not None
                and r.event.event_type == poison.template
                and not r.is_duplicate
            )
        used.add(index)
        previous = index
        template = good[index]
        assert template.event is not None
        broken = poison.breaks(dataclasses.replace(template.event, event_id=f"poison-{n}"))
        raw = CODEC.encode_json(broken) if poison.as_json else CODEC.encode_avro(broken)
        sent[raw] = poison
        after.setdefault(index, []).append(
            SimRecord(
                stream=template.stream,
                partition=template.partition,
                key=template.key,
                value=raw,
                send_time_ms=template.send_time_ms,
                event=None,
                malformed_reason=poison.reason,
                is_duplicate=False,
                intended_late=False,
            )
        )
    records: list[SimRecord] = []
    for i, record in enumerate(good):
        records.append(record)
        records.extend(after.get(i, []))
    return records, sent


@pytest.fixture(scope="module")
def poisoned_run(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PipelineEnv, list[SimRecord], Truth, dict[bytes, Poison], float]:
    good = list(generate(CONFIG))
    records, sent = _interleave(good)
    truth = compute_truth(
        records,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
        window_ms=CONFIG.window_ms,
        # The workers stop with --until-idle in replay: the inputs end finished.
        inputs_finished=True,
    )
    env = PipelineEnv.with_fresh_topics(
        kafka_bootstrap, tmp_path_factory.mktemp("poison"), partitions=CONFIG.partitions
    )
    ensure_topics(
        load_settings(bootstrap_servers=env.bootstrap, topics=env.topics, partitions=env.partitions)
    )
    asyncio.run(produce(records, env.bootstrap, env.topics, speedup=None, rate=None))
    started = time.monotonic()
    run_until_idle(env, timeout=WORKER_TIMEOUT_SECONDS)  # asserts exit code 0
    return env, records, truth, sent, time.monotonic() - started


def test_the_poison_records_are_the_ones_the_drills_found() -> None:
    purchase = Event(stream="orders", event_type="purchase", event_id="e", event_time_ms=1,
                     sent_time_ms=1, anonymous_id="a", session_id="s")  # fmt: skip
    drill = POISONS[0].breaks(purchase)
    assert orjson.loads(CODEC.encode_json(drill))["items"][0]["discount"] == 2**62
    assert 2 * 6 * 10**18 > 2**63 - 1  # two of them overflow one Int64 cell


def test_worker_exits_normally_and_counts_every_good_record(
    poisoned_run: tuple[PipelineEnv, list[SimRecord], Truth, dict[bytes, Poison], float],
) -> None:
    env, records, truth, _, seconds = poisoned_run
    assert seconds < WORKER_TIMEOUT_SECONDS
    client = clickhouse(env)
    got = pipeline_tables(client)
    want = truth_tables(truth)
    assert all(want[table] for table in AGG_QUERIES), "the traffic must produce every table"
    diff = differences(got, want)
    assert not diff, f"rows differ from the ground truth: {diff}"
    distinct = {(r.event.anonymous_id, r.event.event_id) for r in records if r.event is not None}
    raw = client.query("SELECT count() FROM events_raw FINAL").result_rows[0][0]
    assert raw == len(distinct)
    client.close()


def test_each_poison_record_is_dead_lettered_with_its_reason(
    poisoned_run: tuple[PipelineEnv, list[SimRecord], Truth, dict[bytes, Poison], float],
) -> None:
    env, _, _, sent, _ = poisoned_run
    client = clickhouse(env)
    rows = client.query(
        "SELECT raw, reason, detail, source_topic FROM dead_letters FINAL"
    ).result_rows
    client.close()
    by_raw = {raw: (reason, detail, topic) for raw, reason, detail, topic in rows}
    assert len(rows) == len(sent), [r[1] for r in rows]  # nothing else, nothing refused
    inputs = set(env.topics.inputs())
    for raw, poison in sent.items():
        reason, detail, topic = by_raw[_shown(raw)]
        assert reason == poison.reason.value, (poison.name, detail)
        assert detail, poison.name
        assert topic in inputs, poison.name  # a decode rejection, not a refused row
    letters = [CODEC.decode_dead_letter(v) for v in read_topic(env.bootstrap, env.topics.dlq)]
    assert {letter.raw: letter.reason for letter in letters} == {
        raw: poison.reason.value for raw, poison in sent.items()
    }


def test_every_table_reads_back_with_every_column(
    poisoned_run: tuple[PipelineEnv, list[SimRecord], Truth, dict[bytes, Poison], float],
    tmp_path: Path,
) -> None:
    env, _, _, _, _ = poisoned_run
    client = clickhouse(env)
    # clickhouse-connect converts DateTime64 values on read; a stored -2**63 sent_time
    # failed here with "day -106751991168 is outside the date range".
    events = client.query("SELECT * FROM events_raw").result_rows
    assert events
    assert all(row[4].year >= 2000 for row in events)  # sent_time
    for spec in ALL_TABLES:
        client.query(f"SELECT * FROM {spec.name}")
    client.close()
