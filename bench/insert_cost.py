"""chDB's CPU for the writer's inserts, per table, by insert size and insert settings.

    .venv/bin/python -m bench.insert_cost [--records 150000] [--block-events 16000 ...]
        [--format Native --format RowBinary]

The compiled core processes one partition's share of simulated traffic (every input's
records after each ``bench.state_memory.BATCH`` records, a tick every few batches so
that windows close and every aggregate table gets rows). Its rows are grouped into
inserts of ``--block-events`` events each, as the writer groups a flush interval's rows,
encoded as the writer encodes them (a Native block for the table's column types; or
RowBinary, the encoding before it, with ``--format RowBinary``), and then
inserted table by table into an embedded chDB with the production migrations, once with
the engine's default settings and once with the writer's
``sinks.clickhouse.INSERT_SETTINGS``. Each table's figure is the CPU of the whole
process (chDB's threads included) from its first insert until a few seconds after its
last, so the background merges of its parts count too, less what the idle engine used
over as long (measured before each table); it is reported per processed event.
Encoding is done before the clock starts.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from typing import Any

import clickhouse_connect

from bench import state_memory
from bench.state_memory import MemoryTable, cached_records
from schemas.channels import ChannelRules
from schemas.codec import EventCodec
from schemas.validation import ValidationBounds
from sinks.clickhouse import INSERT_SETTINGS, apply_migrations
from streams.compiled.processor import CompiledProcessor
from streams.compiled.rows import CompiledRows
from streams.funnels import load_funnels
from streams.records import Record
from streams.visitor import Rules

TICK_EVERY_BATCHES = 4
MERGE_SETTLE_SECONDS = 3.0


def core_rows(records: list[tuple[str, bytes, bytes, int]]) -> list[tuple[int, str, Any]]:
    """(events processed so far, table, the core's row block) for every block, in order."""
    processor = CompiledProcessor(
        0,
        Rules(load_funnels(state_memory._funnels_file())),
        EventCodec(bounds=ValidationBounds(replay=True)),
        ChannelRules.load(),
        state_memory.TOPICS,
        MemoryTable(),
    )
    offsets: dict[str, int] = defaultdict(int)
    pending: dict[str, list[Record]] = defaultdict(list)
    blocks: list[tuple[int, str, Any]] = []
    done = batches = 0

    def keep(result: Any) -> None:
        for spec, rows in result.encoded_rows.items():
            if isinstance(rows, CompiledRows):
                blocks.append((done, spec.name, rows))

    def process_pending() -> None:
        nonlocal done
        for stream, batch in pending.items():
            if batch:
                done += len(batch)
                keep(processor.process(stream, batch, None))
        pending.clear()

    for index, (stream, key, value, ts) in enumerate(records, 1):
        pending[stream].append(Record(offsets[stream], key, value, ts))
        offsets[stream] += 1
        if index % state_memory.BATCH == 0:  # every input's records so far, as a fetch
            process_pending()
            batches += 1
            if batches % TICK_EVERY_BATCHES == 0:
                keep(processor.tick(dict(offsets)))
    process_pending()
    keep(processor.tick(dict(offsets), finished=True))
    return blocks


def payloads(
    blocks: list[tuple[int, str, Any]],
    block_events: int,
    columns: dict[str, list[Any]],
    fmt: str = "Native",
) -> dict[str, list[bytes]]:
    """Per table, one payload in ``fmt`` (Native or RowBinary) per insert of
    ``block_events`` events."""

    grouped: dict[str, dict[int, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for done, table, rows in blocks:
        grouped[table][done // block_events].append(rows)
    return {
        table: [
            CompiledRows.native(cycle, columns[table])
            if fmt == "Native"
            else b"".join(rows.row_binary(columns[table]) for rows in cycle)
            for _, cycle in sorted(by_cycle.items())
        ]
        for table, by_cycle in grouped.items()
    }


def insert_cpu(
    directory: str,
    database: str,
    settings: dict[str, Any],
    table_payloads: dict[str, list[bytes]],
    fmt: str = "Native",
) -> dict[str, float]:
    admin = clickhouse_connect.get_client(dsn=f"chdb://{directory}")
    admin.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client: Any = clickhouse_connect.get_client(dsn=f"chdb://{directory}", database=database)
    apply_migrations(client)
    cpu: dict[str, float] = {}
    for table, parts in sorted(table_payloads.items()):
        names = [row[0] for row in client.query(f"DESCRIBE TABLE {table}").result_rows]
        idle_started = time.process_time()
        time.sleep(MERGE_SETTLE_SECONDS)
        idle_rate = (time.process_time() - idle_started) / MERGE_SETTLE_SECONDS
        started, wall = time.process_time(), time.monotonic()
        for payload in parts:
            client.raw_insert(table, names, payload, fmt=fmt, settings=settings)
        time.sleep(MERGE_SETTLE_SECONDS)
        used = time.process_time() - started
        cpu[table] = max(0.0, used - idle_rate * (time.monotonic() - wall))
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=150_000)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument(
        "--block-events", type=int, action="append", help="events per insert (16000)"
    )
    parser.add_argument(
        "--format",
        action="append",
        choices=("Native", "RowBinary"),
        help="insert format, repeatable (Native, the writer's)",
    )
    args = parser.parse_args()
    sizes = args.block_events or [16_000]
    formats = args.format or ["Native"]
    records = cached_records(args.records, args.days)
    blocks = core_rows(records)
    events = len(records)
    configurations: dict[str, dict[str, Any]] = {"engine_default": {}, "writer": INSERT_SETTINGS}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as directory:
        admin = clickhouse_connect.get_client(dsn=f"chdb://{directory}")
        admin.command("CREATE DATABASE IF NOT EXISTS schema_probe")
        probe: Any = clickhouse_connect.get_client(
            dsn=f"chdb://{directory}", database="schema_probe"
        )
        apply_migrations(probe)
        tables = sorted({table for _, table, _ in blocks})
        columns = {
            table: [tuple(r[:2]) for r in probe.query(f"DESCRIBE TABLE {table}").result_rows]
            for table in tables
        }
        for size in sizes:
            for fmt in formats:
                encoded = payloads(blocks, size, columns, fmt)
                for name, settings in configurations.items():
                    cpu = insert_cpu(directory, f"b_{name}_{size}_{fmt}", settings, encoded, fmt)
                    results.append(
                        {
                            "block_events": size,
                            "format": fmt,
                            "settings": name,
                            "us_per_event": {t: round(c / events * 1e6, 2) for t, c in cpu.items()},
                            "total_us_per_event": round(sum(cpu.values()) / events * 1e6, 2),
                        }
                    )
                    print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"events": events, "inserts": results}, indent=1))


if __name__ == "__main__":
    main()
