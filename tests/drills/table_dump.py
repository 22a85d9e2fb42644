"""Dump every ClickHouse table of a fixed-seed demo run, to compare two versions of the code.

A refactor that must not change behaviour (issue #11) is checked by running this on the
old and the new tree and comparing the dumps:

    .venv/bin/python -m tests.drills.table_dump run OUT_DIR      # in each tree
    .venv/bin/python -m tests.drills.table_dump run OUT_DIR --start 2026-11-29T00:00:00Z \
        --days 5 --users 4000                                       # every table has rows
    .venv/bin/python -m tests.drills.table_dump compare OLD_DIR NEW_DIR

``run`` produces the demo's traffic (same options as ``scripts/demo.py``, a fixed start
and seed) to fresh topics on the local broker, runs ``funnel worker --until-idle`` over
it, and writes each table of the ``shop`` database as sorted JSON lines, read with
``FINAL`` (the newest version of each row). Columns that hold the wall clock of the run
are left out, since they differ between any two runs: row versions, ingestion and
emission times, and the watermark an RFM snapshot was taken at. Numbers inside
dead-letter details are masked for the same reason (they quote the worker clock), and
aggregate rows whose counters are all zero are dropped (batching decides whether a reset
row was ever written). Two runs of the same tree give identical dumps.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

# Columns that depend on the run's wall clock or batch boundaries, never on the input.
RUN_DEPENDENT_COLUMNS = {
    "*": frozenset({"version", "ingested_at", "received_at", "emitted_at", "applied_at"}),
    # The watermark when the snapshot was taken: it moves in steps of whatever batches
    # the broker hands out.
    "user_rfm": frozenset({"as_of"}),
}
# Counters of the aggregate tables: a row whose counters are all zero is a row the
# pipeline reset (or wrote as zero at recovery), the same as no row for every reader.
COUNTERS = {
    "funnel_steps_minute": ("entered",),
    "funnel_outcomes_minute": ("entities",),
    "funnel_ttc_minute": ("converted",),
    "retention_cohorts": ("users",),
    "order_gaps_daily": ("orders",),
    "kpi_minute": (
        "orders",
        "gmv_minor",
        "items",
        "coupon_orders",
        "discount_minor",
        "first_orders",
        "repeat_orders",
        "refunds",
        "refunded_minor",
        "payment_failures",
        "cancellations",
    ),
}
START = "2026-12-04T19:00:00Z"
SIM_OPTIONS = [
    "--duplicate-pct",
    "1",
    "--out-of-order-pct",
    "3",
    "--late-pct",
    "0.5",
    "--malformed-pct",
    "0.5",
    "--json-pct",
    "5",
]


def _funnel(args: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "funnel.cli", *args], env=env, cwd=cwd)
    if done.returncode:
        sys.exit(f"table_dump: `funnel {' '.join(args)}` failed (exit {done.returncode})")


def run(out: Path, tree: Path, start: str, days: str, users: str) -> None:
    data = out / "data"
    env = dict(os.environ)
    tag = uuid.uuid4().hex[:8]
    env.update(
        FUNNEL_DATA_DIR=str(data),
        FUNNEL_APP_ID=f"table-dump-{tag}",
        FUNNEL_METRICS_PORT="0",
    )
    for stream in ("clickstream", "cart", "orders", "dlq", "triggers"):
        # Fixed names (recreated empty): the topic is a column of several tables.
        env[f"FUNNEL_TOPICS__{stream.upper()}"] = f"dump.{stream}"
    _funnel(["topics", "--recreate"], env, tree)
    options = [*SIM_OPTIONS, "--start", start, "--days", days, "--users", users]
    _funnel(["simulate", *options, "--truth-out", str(out / "truth.json")], env, tree)
    _funnel(["worker", "--until-idle", "15"], env, tree)
    dump(data / "clickhouse", out / "tables")


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, int | float | str) or value is None:
        return value
    return str(value)


def dump(store: Path, out: Path) -> None:
    import clickhouse_connect

    out.mkdir(parents=True, exist_ok=True)
    client = clickhouse_connect.get_client(dsn=f"chdb://{store}", database="shop")
    try:
        tables = [
            r[0]
            for r in client.query(
                "SELECT name FROM system.tables WHERE database = 'shop' "
                "AND engine NOT LIKE '%View%' ORDER BY name"
            ).result_rows
        ]
        for table in tables:
            columns = [
                r[0]
                for r in client.query(
                    "SELECT name FROM system.columns WHERE database = 'shop' AND table = "
                    "{t:String} ORDER BY position",
                    parameters={"t": table},
                ).result_rows
                if r[0] not in RUN_DEPENDENT_COLUMNS["*"]
                and r[0] not in RUN_DEPENDENT_COLUMNS.get(table, ())
            ]
            final = "FINAL" if _has_final(client, table) else ""
            select = ", ".join(f"`{c}`" for c in columns)
            rows = client.query(f"SELECT {select} FROM `{table}` {final}").result_rows
            records = [dict(zip(columns, map(_jsonable, row), strict=True)) for row in rows]
            counters = COUNTERS.get(table)
            if counters:
                records = [r for r in records if any(r[c] for c in counters)]
            lines = sorted(json.dumps(r, sort_keys=True) for r in records)
            if table == "dead_letters":
                lines = sorted(re.sub(r"\d+", "#", line) for line in lines)
            (out / f"{table}.jsonl").write_text("".join(f"{line}\n" for line in lines))
            print(f"{table}: {len(lines)} rows")
    finally:
        client.close()


def _has_final(client: Any, table: str) -> bool:
    engine = client.query(
        "SELECT engine FROM system.tables WHERE database = 'shop' AND name = {t:String}",
        parameters={"t": table},
    ).result_rows[0][0]
    return "Replacing" in engine or "Collapsing" in engine


def compare(old: Path, new: Path) -> int:
    old_tables = {p.name: p for p in (old / "tables").glob("*.jsonl")}
    new_tables = {p.name: p for p in (new / "tables").glob("*.jsonl")}
    status = 0
    for name in sorted(old_tables.keys() | new_tables.keys()):
        if name not in old_tables or name not in new_tables:
            print(f"{name}: only in {'old' if name in old_tables else 'new'}")
            status = 1
            continue
        a, b = old_tables[name].read_bytes(), new_tables[name].read_bytes()
        digest = hashlib.sha256(a).hexdigest()[:16]
        rows = a.count(b"\n")
        if a == b:
            print(f"{name[:-6]:<26} {rows:>7} rows  identical  sha256 {digest}")
        else:
            old_lines, new_lines = set(a.splitlines()), set(b.splitlines())
            print(
                f"{name[:-6]:<26} DIFFERENT: {len(old_lines - new_lines)} rows only in old, "
                f"{len(new_lines - old_lines)} only in new"
            )
            status = 1
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run")
    run_p.add_argument("out", type=Path)
    run_p.add_argument("--tree", type=Path, default=Path.cwd())
    # The demo's traffic by default; more days and users reach every table (order gaps
    # need repeat buyers days apart). Keep the start within FUNNEL_MAX_PAST_SECONDS.
    run_p.add_argument("--start", default=START)
    run_p.add_argument("--days", default="0.0417")
    run_p.add_argument("--users", default="3000")
    cmp_p = sub.add_parser("compare")
    cmp_p.add_argument("old", type=Path)
    cmp_p.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.out.resolve(), args.tree.resolve(), args.start, args.days, args.users)
        return 0
    return compare(args.old, args.new)


if __name__ == "__main__":
    sys.exit(main())
