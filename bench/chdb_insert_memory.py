"""Resident memory of embedded chDB while raw events are inserted, nothing else running.

    .venv/bin/python -m bench.chdb_insert_memory [--inserts 200]

Decodes 20,000 simulated events once, then inserts them into ``events_raw`` (the real
migrations, clickhouse-connect on chDB) again and again, printing the process's RSS
every 20 inserts. Separates the embedded engine's memory from the worker's own when
a long run grows (BENCHMARKS.md, "Memory over 30 minutes").
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time

from bench.procstats import vm_rss_bytes
from schemas.codec import EventCodec
from schemas.model import Event
from schemas.validation import ValidationBounds
from simulator.config import SimConfig
from simulator.generate import generate
from sinks.clickhouse import ClickHouseTarget, apply_migrations, open_client
from streams.outputs.family import Row
from streams.outputs.raw_events import TABLE as EVENTS_RAW
from streams.outputs.raw_events import build_row as raw_event_row

ROWS_PER_INSERT = 20_000


def rss_mb() -> int:
    return (vm_rss_bytes(os.getpid()) or 0) // (1024 * 1024)


def sample_rows() -> list[Row]:
    codec = EventCodec(bounds=ValidationBounds(replay=True))
    rows: list[Row] = []
    for record in itertools.islice(generate(SimConfig(seed=1, users=3000, days=1)), 30_000):
        event = codec.decode(record.value, record.stream, record.send_time_ms)
        if isinstance(event, Event):
            rows.append(raw_event_row(event, "direct", False, record.stream, 0, len(rows), 0))
    return rows[:ROWS_PER_INSERT]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inserts", type=int, default=200)
    args = parser.parse_args()
    rows = sample_rows()
    client = open_client(ClickHouseTarget(dsn=f"chdb:///{tempfile.mkdtemp()}", database="shop"))
    apply_migrations(client)
    print(f"{len(rows)} rows per insert; RSS at start {rss_mb()} MB", flush=True)
    started = time.perf_counter()
    for i in range(1, args.inserts + 1):
        client.insert(EVENTS_RAW.name, rows, column_names=list(EVENTS_RAW.columns))
        if i % 20 == 0:
            elapsed = time.perf_counter() - started
            print(f"{i * len(rows):>10,} rows  RSS {rss_mb():>5} MB  {elapsed:5.0f} s", flush=True)


if __name__ == "__main__":
    main()
