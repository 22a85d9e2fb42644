"""ClickHouse chores for the full workload, run as a subprocess of the harness.

chDB is one engine per process, bound to one directory, and a running worker holds its
directory locked; so the harness never opens a worker's ClickHouse itself. Instead:

    python -m bench.chtool prepare <dir>   # before the worker starts
    python -m bench.chtool latency <dir>   # after it stopped; prints JSON

``prepare`` applies the project's migrations and adds ``bench_inserted_at
DateTime64(3) DEFAULT now64(3)`` to the tables the latency is read from. The worker
inserts named columns only, so ClickHouse fills that column with the time of the insert
that made the row durable. ``ingested_at`` is the broker's append time of the record
(the input topics use LogAppendTime), so for every event

    event-to-ClickHouse latency = bench_inserted_at - ingested_at

covering fetch, processing, the writer's batching and the insert. Same clock (one
machine), every event measured, no sampling.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from sinks.clickhouse import ClickHouseTarget, apply_migrations, open_client

DATABASE = "shop"  # funnel.settings default (the harness does not override it)
STAMPED_TABLES = ("events_raw", "kpi_minute", "funnel_steps_minute")
QUANTILES = (0.5, 0.9, 0.99, 0.999)


def _client(directory: str) -> Any:
    return open_client(ClickHouseTarget(dsn=f"chdb:///{directory}", database=DATABASE))


def prepare(directory: str) -> dict[str, Any]:
    client = _client(directory)
    apply_migrations(client)
    for table in STAMPED_TABLES:
        client.command(
            f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "
            "bench_inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)"
        )
    return {"prepared": list(STAMPED_TABLES)}


def latency(directory: str) -> dict[str, Any]:
    client = _client(directory)
    levels = ", ".join(str(q) for q in QUANTILES)
    row = client.query(
        f"SELECT count(), quantilesExact({levels})(d), max(d), min(d) FROM ("
        "SELECT toUnixTimestamp64Milli(bench_inserted_at) - toUnixTimestamp64Milli(ingested_at)"
        " AS d FROM events_raw)"
    ).result_rows[0]
    cycles = {
        table: int(
            client.query(f"SELECT uniqExact(bench_inserted_at) FROM {table}").result_rows[0][0]
        )
        for table in STAMPED_TABLES
    }
    count, quantiles, worst, best = row
    return {
        "events": int(count),
        "quantiles_ms": {
            f"p{q * 100:g}": float(v) for q, v in zip(QUANTILES, quantiles, strict=True)
        },
        "max_ms": float(worst),
        "min_ms": float(best),
        "insert_cycles": cycles,
    }


def main() -> None:
    command, directory = sys.argv[1], sys.argv[2]
    handlers = {"prepare": prepare, "latency": latency}
    print(json.dumps(handlers[command](directory)))


if __name__ == "__main__":
    main()
