"""The writer's encoding of the compiled core's rows, per table: CPU per row.

    .venv/bin/python -m bench.row_encode [--records 150000] [--repeat 5] [--format Native]

The compiled core processes one partition's share of simulated traffic (as
``bench.insert_cost`` does), and each table's row blocks are encoded as the writer encodes
them, for the column types of the production migrations: one payload per insert of
``--block-events`` events, in the writer's thread without the GIL in the worker
(``shopfunnel_core.native_block``; ``--format RowBinary`` for the older encoding). Each
table's figure is the best of ``--repeat`` passes, CPU of this process per row. No
ClickHouse insert is timed: ``bench.insert_cost`` measures the engine's side.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

import clickhouse_connect

from bench.insert_cost import core_rows, payloads
from bench.state_memory import cached_records
from sinks.clickhouse import apply_migrations


def column_types(tables: list[str]) -> dict[str, list[Any]]:
    """Each table's (name, type) columns, from an embedded store with the migrations."""
    with tempfile.TemporaryDirectory() as directory:
        client: Any = clickhouse_connect.get_client(dsn=f"chdb://{directory}")
        apply_migrations(client)
        return {
            table: [tuple(r[:2]) for r in client.query(f"DESCRIBE TABLE {table}").result_rows]
            for table in tables
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=150_000)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--block-events", type=int, default=16_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--format", choices=("Native", "RowBinary"), default="Native")
    args = parser.parse_args()
    blocks = core_rows(cached_records(args.records, args.days))
    tables = sorted({table for _, table, _ in blocks})
    columns = column_types(tables)
    rows = {t: sum(len(b) for _, table, b in blocks if table == t) for t in tables}
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for table in tables:
            mine = [block for block in blocks if block[1] == table]
            started = time.process_time()
            payloads(mine, args.block_events, columns, args.format)
            seconds = time.process_time() - started
            best[table] = min(best.get(table, seconds), seconds)
    print(
        json.dumps(
            {
                "records": args.records,
                "format": args.format,
                "rows": rows,
                "us_per_row": {t: round(best[t] * 1e6 / max(1, rows[t]), 3) for t in tables},
                "cpu_seconds": round(sum(best.values()), 3),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
