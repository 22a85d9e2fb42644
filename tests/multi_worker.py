"""Several workers in one consumer group, each with its own embedded ClickHouse: what
one shared ClickHouse server would hold, read from their stores (tests/integration/
test_worker_churn.py).

chDB locks its directory per process, so each worker writes its own store; the newest
version of every row across them, with the rules a shared store applies (``newest_rows``),
is what a shared server would hold.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from tests.pipeline_harness import PipelineEnv, WorkerProcess

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
