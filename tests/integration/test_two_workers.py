"""Two workers in one consumer group share the partitions, with a rebalance mid-stream.

The second worker joins while traffic is being produced, so partitions move from the
first to the second. Each worker writes its own embedded ClickHouse (chDB locks its
directory per process); the newest version of every row across both is what a shared
ClickHouse server would hold. Together they must equal the ground truth, and both must
consume everything (no partition left behind after the rebalance).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from funnel.settings import load_settings
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.produce import produce
from simulator.truth import compute_truth
from streams.topics import ensure_topics
from tests.pipeline_harness import (
    AGG_QUERIES,
    PipelineEnv,
    WorkerProcess,
    differences,
    truth_tables,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CONFIG = SimConfig(
    seed=17,
    users=600,
    days=0.25,
    duplicate_pct=2,
    out_of_order_pct=5,
    late_pct=1,
    malformed_pct=0.5,
)
NEWEST = {
    # Key columns, value columns and version of each aggregate table's rows.
    "funnel_steps_minute": (
        "funnel, toUnixTimestamp(window_start), channel, campaign, device, "
        "platform, country, breakdown, step, step_name, partition",
        "entered",
    ),
    "funnel_outcomes_minute": (
        "funnel, toUnixTimestamp(window_start), channel, campaign, device, "
        "platform, country, breakdown, outcome, partition",
        "entities",
    ),
    "funnel_ttc_minute": (
        "funnel, toUnixTimestamp(window_start), channel, campaign, device, "
        "platform, country, breakdown, le_seconds, partition",
        "converted",
    ),
    "funnel_attempts": (
        "funnel, toUnixTimestamp(window_start), channel, campaign, device, platform, country, "
        "breakdown, anonymous_id, entity, start_event_id, outcome, level, "
        "arrayMap(t -> toUnixTimestamp64Milli(t), step_times), partition",
        "attempts",
    ),
    "kpi_minute": (
        "toUnixTimestamp(window_start), channel, campaign, device, platform, country, "
        "currency, partition",
        "orders, gmv_minor, items, coupon_orders, discount_minor, first_orders, "
        "repeat_orders, refunds, refunded_minor, payment_failures, cancellations",
    ),
    "order_attribution": (
        "toUnixTimestamp(window_start), anonymous_id, transaction_id, model, channel, source, "
        "medium, campaign, kol, toUnixTimestamp64Milli(order_time), currency, value_minor, "
        "is_first, partition",
        "share_micro",
    ),
}


def committed_lag(env: PipelineEnv) -> int:
    """Records of the input topics the consumer group has not committed yet."""
    consumer = KafkaConsumer(
        bootstrap_servers=env.bootstrap, group_id=env.app_id, enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(t, p) for t in env.topics.inputs() for p in range(env.partitions)]
        ends = consumer.end_offsets(tps)
        return sum(ends[tp] - (consumer.committed(tp) or 0) for tp in tps)
    finally:
        consumer.close()


def rows_of(env: PipelineEnv, sql: str) -> list[list[Any]]:
    """Query a worker's embedded ClickHouse in a child process (one chDB path per process)."""
    script = (
        "import json, sys, clickhouse_connect\n"
        f"c = clickhouse_connect.get_client(dsn='chdb://{env.data_dir.resolve() / 'clickhouse'}',"
        " database='shop')\n"
        "print(json.dumps(c.query(sys.stdin.read()).result_rows, default=str))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], input=sql, capture_output=True, text=True, check=True
    )
    return list(json.loads(done.stdout))


def _column_count(columns: str) -> int:
    """Columns of a SELECT list: commas outside parentheses, plus one."""
    depth, count = 0, 1
    for char in columns:
        depth += {"(": 1, ")": -1}.get(char, 0)
        count += char == "," and depth == 0
    return count


RECOVERED = re.compile(r"partition (\d+): rebuilt .* \(row version (\d+)\)")


def recoveries(workers: list[WorkerProcess]) -> dict[int, list[int]]:
    """Per partition: the row versions at which a worker rebuilt it (from their logs)."""
    out: dict[int, list[int]] = {}
    for worker in workers:
        for match in RECOVERED.finditer(worker.log_path.read_text(errors="replace")):
            out.setdefault(int(match[1]), []).append(int(match[2]))
    return out


def newest_rows(
    envs: list[PipelineEnv], recovered: dict[int, list[int]]
) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    """Per table: what one ClickHouse shared by the workers would hold, summed over partitions.

    Each key's newest final row across the workers' stores, else its newest row, and one
    more rule a shared store applies: a worker that rebuilds a partition re-writes as zero
    every key whose newest row is non-final and non-zero and that its rebuilt state does
    not have (it reads them with ``open_rows``). Here a worker sees only its own store,
    so a key another worker wrote before the rebuild, and that no store has a row of
    since, counts as zero.
    """
    out: dict[str, dict[tuple[Any, ...], tuple[int, ...]]] = {}
    for table, (keys, values) in NEWEST.items():
        newest: dict[tuple[Any, ...], tuple[int, bool, tuple[int, ...]]] = {}
        width = _column_count(keys)
        for env in envs:
            sql = f"SELECT {keys}, {values}, is_final, version FROM {table} FINAL"
            for row in rows_of(env, sql):
                key = tuple(
                    float(k)
                    if table == "funnel_ttc_minute" and i == 8
                    else tuple(k)
                    if isinstance(k, list)
                    else k
                    for i, k in enumerate(row[:width])
                )
                vals = tuple(int(v) for v in row[width:-2])
                final, version = bool(row[-2]), int(row[-1])
                old = newest.get(key)
                # A final row is the last word on its key: in one shared store a worker
                # never writes a final key again (its rebuilt state has no part of it, and
                # recovery re-writes only keys whose newest row is open). A worker with its
                # own store cannot see that another store made the key final, and its
                # recovery may re-write it as an open zero with a newer version.
                if old is None or (final, version) > (old[1], old[0]):
                    newest[key] = (version, final, vals)
        summed: dict[tuple[Any, ...], list[int]] = {}
        for key, (version, final, vals) in newest.items():
            head, partition = key[:-1], int(key[-1])
            rebuilt_since = any(v > version for v in recovered.get(partition, []))
            if rebuilt_since and not final:
                continue  # re-written as zero by that rebuild
            acc = summed.setdefault(head, [0] * len(vals))
            for i, v in enumerate(vals):
                acc[i] += v
        out[table] = {k: tuple(v) for k, v in summed.items() if any(v)}
    return out


def test_two_workers_share_partitions_through_a_rebalance(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    assert set(NEWEST) == set(AGG_QUERIES)
    records = list(generate(CONFIG))
    truth = compute_truth(
        records,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
        window_ms=CONFIG.window_ms,
    )
    first = PipelineEnv.with_fresh_topics(kafka_bootstrap, tmp_path / "w1")
    second = PipelineEnv(first.bootstrap, first.topics, tmp_path / "w2", app_id=first.app_id)
    ensure_topics(
        load_settings(bootstrap_servers=first.bootstrap, topics=first.topics, partitions=4)
    )
    producer = threading.Thread(
        target=lambda: asyncio.run(
            produce(records, first.bootstrap, first.topics, speedup=None, rate=len(records) / 40.0)
        ),
        daemon=True,
    )
    producer.start()
    worker_1 = WorkerProcess(first, until_idle=None, name="w1")
    worker_1.wait_for_metric("shopfunnel_events_ingested_total", 500, timeout=120)
    worker_2 = WorkerProcess(second, until_idle=None, name="w2")
    worker_2.wait_for_metric("shopfunnel_events_ingested_total", 1, timeout=120)
    producer.join(120)
    lag = None
    for _ in range(240):
        lag = committed_lag(first)
        if lag == 0:
            break
        threading.Event().wait(0.5)
    assert lag == 0, f"workers stalled: {lag} records not committed by the group"
    threading.Event().wait(8)  # let both reach their final watermark and flush
    for worker in (worker_1, worker_2):
        worker.process.terminate()
        assert worker.wait(60) == 0, worker.log_tail()
    recovered = recoveries([worker_1, worker_2])
    assert set(recovered) == set(range(4)), recovered  # each worker logs its rebuilds
    got = newest_rows([first, second], recovered)
    # The funnel and KPI tables, merged across both stores by version (the lifecycle
    # tables are compared in the kill and lifecycle tests, on one store).
    want = {table: rows for table, rows in truth_tables(truth).items() if table in NEWEST}
    diff = differences(got, want)
    assert not diff, diff
