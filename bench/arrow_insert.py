"""Arrow vs clickhouse-connect's native inserts into embedded chDB, for ``events_raw``.

    .venv/bin/python -m bench.arrow_insert [--rows 50000] [--repeat 3]

Issue #16 item 3 asks for columnar (Arrow) inserts. This measures, per row, in one
process and one run (CPU seconds of the whole process, so chDB's threads count):

- ``native``: what the writer does today: the rows transposed to columns, then
  clickhouse-connect's Native serialisation and chDB's insert;
- ``arrow_build``: building a ``pyarrow.Table`` from the same Python rows, typed from
  the table's ClickHouse columns;
- ``arrow_insert``: inserting that pre-built table (``insert_arrow``);
- ``arrow``: both, i.e. what Arrow costs a Python core that has rows, not columns.

Rows are synthetic but shaped like the worker's (``streams/outputs/raw_events.py``):
ids, nullable amounts, 0-3 items with their arrays, experiment maps.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import clickhouse_connect
import pyarrow as pa

from sinks.clickhouse import apply_migrations
from streams.outputs.raw_events import TABLE

_SCALARS: dict[str, pa.DataType] = {
    "String": pa.string(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "Int64": pa.int64(),
    "Float64": pa.float64(),
}


def arrow_type(clickhouse_type: str) -> pa.DataType:
    """The Arrow type chDB reads into ``clickhouse_type`` (the types events_raw uses)."""
    for wrapper in ("LowCardinality(", "Nullable("):
        if clickhouse_type.startswith(wrapper):
            return arrow_type(clickhouse_type[len(wrapper) : -1])
    if clickhouse_type.startswith("Array("):
        return pa.list_(arrow_type(clickhouse_type[len("Array(") : -1]))
    if clickhouse_type == "Map(String, String)":
        return pa.map_(pa.string(), pa.string())
    if clickhouse_type.startswith("DateTime64(3"):
        return pa.timestamp("ms", tz="UTC")
    return _SCALARS[clickhouse_type]


def synthetic_rows(count: int, seed: int = 1) -> list[tuple[Any, ...]]:
    rnd = random.Random(seed)
    rows: list[tuple[Any, ...]] = []
    for i in range(count):
        n = rnd.randint(0, 3)
        t = 1_760_000_000_000 + i
        rows.append(
            (
                *(f"e{i:012d}", rnd.choice(["page_view", "add_to_cart", "purchase"])),
                *("clickstream", t, t, f"a{rnd.randint(0, 100_000)}"),
                *(None if i % 3 else f"u{i}", f"s{i // 5}", "web", "desktop", "DE"),
                *("organic", "google", "cpc", "c1", "", "", "https://x.example/"),
                *("https://shop.example/p/1", "", {"exp1": "A"} if i % 2 else {}),
                *([f"i{k}" for k in range(n)], [100 * k for k in range(n)], [1] * n),
                *("", "", "EUR", None if i % 4 else 1234, None, None, None),
                *("", "", "", "", 0, "shop.clickstream", i % 4, i, t, 1, {}),
                *([""] * n, [0] * n, "", ["n"] * n, ["c"] * n, ["b"] * n, [""] * n),
            )
        )
    return rows


def build_arrow(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.Table:
    arrays = []
    for column, field in zip(zip(*rows, strict=True), schema, strict=True):
        values: Sequence[Any] = column
        if pa.types.is_map(field.type):
            values = [list(mapping.items()) for mapping in column]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def cpu_us_per_row(step: Callable[[], object], rows: int) -> float:
    gc.collect()
    started = time.process_time()
    step()
    return (time.process_time() - started) * 1e6 / rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        admin = clickhouse_connect.get_client(dsn=f"chdb://{directory}")
        admin.command("CREATE DATABASE IF NOT EXISTS bench")
        client: Any = clickhouse_connect.get_client(dsn=f"chdb://{directory}", database="bench")
        apply_migrations(client)
        types = dict(
            client.query(
                "SELECT name, type FROM system.columns "
                "WHERE database = 'bench' AND table = 'events_raw'"
            ).result_rows
        )
        schema = pa.schema([(c, arrow_type(types[c])) for c in TABLE.columns])
        rows = synthetic_rows(args.rows)
        context = client.create_insert_context(
            "events_raw", list(TABLE.columns), column_oriented=True
        )

        def native() -> None:
            context.data = None
            client.insert(context=context, data=[list(c) for c in zip(*rows, strict=True)])
            context.data = None

        built: list[pa.Table] = []

        def build() -> None:
            built.append(build_arrow(rows, schema))

        def insert_built() -> None:
            client.insert_arrow("events_raw", built[0])

        runs: dict[str, list[float]] = {"native": [], "arrow_build": [], "arrow_insert": []}
        for _ in range(args.repeat):  # alternated, so both see the same machine
            runs["native"].append(cpu_us_per_row(native, len(rows)))
            built.clear()
            runs["arrow_build"].append(cpu_us_per_row(build, len(rows)))
            runs["arrow_insert"].append(cpu_us_per_row(insert_built, len(rows)))
        stored = client.query("SELECT count() FROM events_raw FINAL").result_rows[0][0]
    median = {name: sorted(values)[len(values) // 2] for name, values in runs.items()}
    median["arrow"] = median["arrow_build"] + median["arrow_insert"]
    result = {
        "rows": args.rows,
        "repeat": args.repeat,
        "distinct_rows_stored": stored,
        "cpu_us_per_row": {k: [round(v, 2) for v in vs] for k, vs in runs.items()},
        "median_cpu_us_per_row": {k: round(v, 2) for k, v in median.items()},
        "arrow_over_native": round(median["arrow"] / median["native"], 2),
        "prebuilt_arrow_insert_over_native": round(median["arrow_insert"] / median["native"], 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
