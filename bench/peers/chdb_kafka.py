"""Peer: ClickHouse's Kafka engine + a materialized view, inside one chDB process.

    <chdb python> -m bench.peers.chdb_kafka spec.json

Runs under the interpreter of ``bench/chdb_env.py`` (chDB 3.7, engine 25.8): the
project's chDB 4.4 (engine 26.9) creates no thread pool for message brokers
(``background_message_broker_schedule_pool_size`` is forced to 0, a config file does not
change it), so ``ENGINE = Kafka`` fails there with "Shutdown was called". Only chDB's
own API and the standard library are used here.

``options``: ``consumers`` (kafka_num_consumers), ``settings`` (extra Kafka engine
settings). The engine reads JSONEachRow; the view counts per window x type x channel
into the same ``simple_counts`` table as every other system. Progress is polled:
``system.kafka_consumers`` for the first assignment (its clock starts there), the sum
of ``simple_counts`` for the end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from bench.simple_spec import (
    COUNTS_DDL,
    COUNTS_TABLE,
    DATABASE,
    FINAL_COUNTS_SQL,
    PeerResult,
    SimpleSpec,
    now,
)

POLL_SECONDS = 0.05
ASSIGNED_SQL = (
    "SELECT sum(length(assignments.partition_id)) + sum(num_messages_read) "
    "FROM system.kafka_consumers"
)


def kafka_table_ddl(spec: SimpleSpec) -> str:
    options: dict[str, Any] = spec.options
    settings: dict[str, Any] = {
        "kafka_broker_list": spec.bootstrap,
        "kafka_topic_list": spec.topic,
        "kafka_group_name": spec.group_id,
        "kafka_format": "JSONEachRow",
        "kafka_num_consumers": int(options.get("consumers", 1)),
        "input_format_skip_unknown_fields": 1,
        **options.get("settings", {}),
    }
    rendered = ", ".join(
        f"{k} = {v}" if isinstance(v, int) else f"{k} = '{v}'" for k, v in settings.items()
    )
    return (
        f"CREATE TABLE {DATABASE}.kafka_in (event_type String, channel String, event_time Int64) "
        f"ENGINE = Kafka SETTINGS {rendered}"
    )


VIEW_DDL = (
    f"CREATE MATERIALIZED VIEW {DATABASE}.counts_mv TO {DATABASE}.{COUNTS_TABLE} AS "
    "SELECT intDiv(event_time, 60000) * 60000 AS window_start, event_type, channel, "
    f"count() AS n FROM {DATABASE}.kafka_in GROUP BY window_start, event_type, channel"
)


class Chdb:
    """The few calls needed, on chDB's own connection API (stable across 3.x and 4.x)."""

    def __init__(self, path: str) -> None:
        import chdb

        Path(path).mkdir(parents=True, exist_ok=True)
        self._conn = chdb.connect(path)  # type: ignore[no-untyped-call]

    def command(self, sql: str) -> None:
        self._conn.query(sql)

    def rows(self, sql: str) -> list[list[str]]:
        text = str(self._conn.query(sql, "TSV"))
        return [line.split("\t") for line in text.splitlines() if line]

    def scalar(self, sql: str) -> int:
        rows = self.rows(sql)
        return int(rows[0][0]) if rows and rows[0][0] not in ("", "\\N") else 0


def run(spec: SimpleSpec, timeout_seconds: float) -> PeerResult:
    db = Chdb(spec.clickhouse_dir)
    db.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    db.command(COUNTS_DDL.replace(COUNTS_TABLE, f"{DATABASE}.{COUNTS_TABLE}", 1))
    db.command(kafka_table_ddl(spec))
    started_at = now()
    db.command(VIEW_DDL)  # attaching the view starts consumption
    first_record_at = 0.0
    counted = 0
    deadline = time.monotonic() + timeout_seconds
    while counted < spec.total_events and time.monotonic() < deadline:
        # Assignment, not num_messages_read: the engine updates that counter only after a
        # whole poll batch, which would start its clock late and flatter it.
        if not first_record_at and db.scalar(ASSIGNED_SQL):
            first_record_at = now()
        counted = db.scalar(f"SELECT sum(n) FROM {DATABASE}.{COUNTS_TABLE}")
        if counted < spec.total_events:
            time.sleep(POLL_SECONDS)
    done_at = now()
    db.command(f"DROP VIEW {DATABASE}.counts_mv")  # stop consuming before reading the answer
    counts = [
        (int(w), t, c, int(n))
        for w, t, c, n in db.rows(
            FINAL_COUNTS_SQL.replace(COUNTS_TABLE, f"{DATABASE}.{COUNTS_TABLE}")
        )
    ]
    return PeerResult(
        spec.name,
        counted,
        started_at,
        first_record_at or started_at,
        done_at,
        counts,
        extra={
            "engine": db.rows("SELECT version()")[0][0],
            "timed_out": counted < spec.total_events,
        },
    )


def main() -> None:
    spec = SimpleSpec.load(Path(sys.argv[1]))
    result = run(spec, float(spec.options.get("timeout_seconds", 600)))
    result.save(Path(spec.result_path))


if __name__ == "__main__":
    main()
