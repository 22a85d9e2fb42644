"""A buyer forgotten after the buyer TTL leaves its segment (issue #12 bug 4).

Before, the buyer stayed in its last stage in ``v_segment_sizes_daily`` and, on coming
back as a new life, was counted a second time (in ``new``). Now the life ends with a
transition to ``forgotten``: in the pipeline's ``segment_transitions``, in the simulator's
truth, and in the view, which then counts the person once.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import clickhouse_connect

from simulator.truth_model import LifecycleParams
from sinks.clickhouse import apply_migrations
from streams.lifecycle import LifecycleRules
from streams.outputs import segment_transitions, triggers
from streams.processor import PartitionProcessor
from streams.records import Record
from streams.visitor import Rules
from tests.unit.fakes import DictDecoder, DictStore, SimpleChannels
from tests.unit.truth_builders import (
    DAY,
    LATENESS,
    T0,
    TIMEOUT,
    buy,
    truth_of,
    watermark_ticks,
)

TOPICS = {"clickstream": "c", "cart": "k", "orders": "o"}
# Thresholds and TTL in days (the worker's lives are built from daily activity).
SHORT = {"new_ms": 10 * DAY, "dormant_ms": 30 * DAY, "churn_ms": 60 * DAY}
TTL = 45 * DAY
BACK = T0 + 120 * DAY
LATER = T0 + 300 * DAY


def pipeline_rows(events: list[Any]) -> dict[Any, list[tuple[Any, ...]]]:
    """Every row the processor emits for ``events`` (sent in time order), by table."""
    rules = Rules(
        (),
        lateness_ms=LATENESS,
        session_timeout_ms=TIMEOUT,
        lifecycle=LifecycleRules(**SHORT, buyer_ttl_ms=TTL),
    )
    decoder, store = DictDecoder(), DictStore()
    processor = PartitionProcessor(0, rules, decoder, SimpleChannels(), TOPICS, store)
    processor.recover()
    offsets: Counter[str] = Counter()
    rows: dict[Any, list[tuple[Any, ...]]] = {}
    for event in sorted(events, key=lambda e: e.event_time_ms):
        record = Record(offsets[event.stream], b"k", decoder.add(event), event.event_time_ms)
        offsets[event.stream] += 1
        result = processor.process(event.stream, [record])
        for key, value in result.state_writes.items():
            if value is None:
                store.data.pop(key, None)
            else:
                store.data[key], store.partition_of[key] = value, 0
        for table, table_rows in result.rows.items():
            rows.setdefault(table, []).extend(table_rows)
    return rows


def test_the_pipeline_and_the_truth_end_a_forgotten_life_and_count_the_return_once() -> None:
    events = [buy(T0, "T1"), buy(BACK, "T2"), *watermark_ticks(LATER)]
    rows = pipeline_rows(events)
    got = sorted(
        ((at - T0) // DAY, before, after)
        for anon, at, before, after, _partition, _version in rows[segment_transitions.TABLE]
        if anon == "a1"
    )
    truth = truth_of(
        events[:2],
        LifecycleParams(**{f"rfm_{k}": v for k, v in SHORT.items()}, buyer_ttl_ms=TTL),
        watermark=LATER,
    )
    want = sorted(
        ((t.at_ms - T0) // DAY, t.from_stage, t.to_stage)
        for t in truth.transitions
        if t.anonymous_id == "a1"
    )
    assert got == want
    assert (45, "dormant", "forgotten") in got and (165, "dormant", "forgotten") in got, got
    # Leaving is not a marketing event: no trigger names 'forgotten'.
    trigger_rows = rows[triggers.TABLE]
    assert not [r for r in trigger_rows if "forgotten" in (r[9], r[10])]


def test_segment_sizes_count_a_returning_buyer_once() -> None:
    admin = clickhouse_connect.get_client(dsn="chdb://memory")
    admin.command("DROP DATABASE IF EXISTS forgotten_test")
    admin.command("CREATE DATABASE forgotten_test")
    client = clickhouse_connect.get_client(dsn="chdb://memory", database="forgotten_test")
    try:
        apply_migrations(client)

        transitions = [
            ("a1", 0, "prospect", "new"),
            ("a1", 30, "new", "active"),
            ("a1", 60, "active", "dormant"),
            ("a1", 180, "dormant", "churned"),
            ("a1", 400, "churned", "forgotten"),
            ("a1", 500, "prospect", "new"),
        ]
        client.insert(
            segment_transitions.TABLE.name,
            [
                (anon, datetime.fromtimestamp(T0 / 1000 + n * 86_400, UTC), a, b, 0, 1)
                for anon, n, a, b in transitions
            ],
            column_names=list(segment_transitions.TABLE.columns),
        )
        sizes = client.query(
            "SELECT day, stage, users FROM v_segment_sizes_daily ORDER BY day, stage"
        ).result_rows
    finally:
        admin.command("DROP DATABASE IF EXISTS forgotten_test")
        client.close()
        admin.close()

    # The view has a row on the days a stage changes; sizes carry forward in between.
    def sizes_on(last_day: Any) -> dict[str, int]:
        current: dict[str, int] = {}
        for d, stage, users in sizes:
            if d <= last_day:
                current[stage] = users
        return current

    days = sorted({d for d, _, _ in sizes})
    assert sizes_on(days[-1]) == {"new": 1, "active": 0, "dormant": 0, "churned": 0}
    assert sum(sizes_on(days[-2]).values()) == 0  # forgotten: in no stage at all
    assert sizes_on(days[-3])["churned"] == 1
