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
from pathlib import Path
from typing import Any

from sinks.clickhouse import ClickHouseTarget, apply_migrations, open_client

DATABASE = "shop"  # funnel.settings default (the harness does not override it)
STAMPED_TABLES = ("events_raw", "kpi_minute", "funnel_steps_minute")
QUANTILES = (0.5, 0.9, 0.99, 0.999)
WARM_SECONDS = 5


def _named(values: list[float]) -> dict[str, float]:
    return {f"p{q * 100:g}": float(v) for q, v in zip(QUANTILES, values, strict=True)}


def _client(directory: str) -> Any:
    # Resolved: the dsn takes a path after ``chdb:///``, so a relative one would name a
    # store under the root directory, not the worker's.
    path = Path(directory).resolve()
    return open_client(ClickHouseTarget(dsn=f"chdb:///{path}", database=DATABASE))


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
    """Every event's wait from the broker's append of its record (``ingested_at``) to its
    ``events_raw`` insert; the goal is judged on all of them. The same quantiles without
    the first ``WARM_SECONDS`` of input show the start-up's share: the first batches of a
    fresh worker are slow, and in a 30-s pass its first seconds hold more events than the
    1% a p99 leaves out."""
    client = _client(directory)
    levels = ", ".join(str(q) for q in QUANTILES)
    row = client.query(
        f"SELECT count(), quantilesExact({levels})(d), max(d), min(d), "
        f"quantilesExactIf({levels})(d, warm) FROM ("
        "SELECT toUnixTimestamp64Milli(bench_inserted_at) - toUnixTimestamp64Milli(ingested_at)"
        f" AS d, ingested_at >= (SELECT min(ingested_at) FROM events_raw) + {WARM_SECONDS}"
        " AS warm FROM events_raw)"
    ).result_rows[0]
    cycles = {
        table: int(
            client.query(f"SELECT uniqExact(bench_inserted_at) FROM {table}").result_rows[0][0]
        )
        for table in STAMPED_TABLES
    }
    count, quantiles, worst, best, warm_quantiles = row
    return {
        "events": int(count),
        "quantiles_ms": _named(quantiles),
        f"quantiles_ms_after_first_{WARM_SECONDS}s": _named(warm_quantiles),
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
