"""The cluster form of the migrations (sinks/cluster_ddl.py, docs/clickhouse-cluster.md).

- A snapshot of the rendered DDL for the cluster ``shop_cluster`` (what
  ``funnel migrate --print --cluster shop_cluster`` prints). A change must update it on
  purpose: ``UPDATE_SNAPSHOTS=1 pytest tests/unit/test_cluster_ddl.py``.
- Every table is a Replicated ``<name>_local`` plus a Distributed ``<name>`` sharded by a
  function of sorting-key columns only (so all versions of a row share a shard).
- The rendered DDL runs on chDB with a two-shard cluster defined in a config file (both
  shards in the one chDB process, one database each): local tables (ON CLUSTER dropped,
  Replicated engines swapped for their plain engines: chDB has no Keeper), Distributed
  tables, ALTERs and views. The same random rows, written through the Distributed tables
  and to a single-node schema, read the same through FINAL and every view. chDB reads
  its config once per process, so that part runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from typer.testing import CliRunner

from sinks.cluster_ddl import (
    LOCAL_SUFFIX,
    SHARDING_KEYS,
    cluster_statements,
    local_name,
    render_schema,
)
from sinks.errors import MigrationError
from streams.outputs import ALL_TABLES

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).parent / "golden" / "clickhouse_cluster_schema.sql"
DOC = ROOT / "docs" / "clickhouse-cluster.md"
CLUSTER = "shop_cluster"
SHARDS = ("shard_1", "shard_2")


def created_tables() -> list[str]:
    return re.findall(r"^CREATE TABLE IF NOT EXISTS (\w+)\s", render_schema(None), re.MULTILINE)


def test_cluster_schema_matches_the_snapshot() -> None:
    text = render_schema(CLUSTER)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), "DDL changed: review and run with UPDATE_SNAPSHOTS=1"


def test_every_table_is_a_replicated_local_table_and_a_distributed_table() -> None:
    tables = created_tables()
    assert sorted(tables) == sorted(SHARDING_KEYS), "SHARDING_KEYS must name every table"
    assert {spec.name for spec in ALL_TABLES} <= set(tables)
    text = render_schema(CLUSTER)
    for table in tables:
        local = local_name(table)
        assert f"CREATE TABLE IF NOT EXISTS {local} ON CLUSTER {CLUSTER}\n(" in text
        assert re.search(
            rf"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{{shard\}}/\{{database\}}/"
            rf"{local}', '\{{replica\}}'",
            text,
        ), table
        assert (
            f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {CLUSTER} AS {local}\n"
            f"ENGINE = Distributed({CLUSTER}, currentDatabase(), {local}, "
            f"{SHARDING_KEYS[table]});"
        ) in text


def test_the_doc_gives_every_table_its_sharding_key() -> None:
    doc = DOC.read_text()
    for table, key in SHARDING_KEYS.items():
        assert re.search(rf"^\| `{table}` \| `{re.escape(key)}` \|", doc, re.MULTILINE), table


def _single_node() -> Any:
    from sinks.clickhouse import apply_migrations

    admin = clickhouse_connect.get_client(dsn="chdb://memory")
    admin.command("DROP DATABASE IF EXISTS cluster_ddl_single")
    admin.command("CREATE DATABASE cluster_ddl_single")
    client = clickhouse_connect.get_client(dsn="chdb://memory", database="cluster_ddl_single")
    apply_migrations(client)
    return client


def test_sharding_keys_use_only_columns_of_the_sorting_key() -> None:
    """All versions of a row share its sorting key, so a key made of those columns sends
    them all to one shard (ReplacingMergeTree collapses versions within a shard only)."""
    client = _single_node()
    sorting = dict(
        client.query(
            "SELECT name, sorting_key FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
    )
    for table, key in SHARDING_KEYS.items():
        columns = set(re.findall(r"\w+", re.sub(r"\bcityHash64\(", "(", key)))
        key_columns = {c.strip() for c in sorting[table].split(",")}
        assert columns and columns <= key_columns, (table, key, sorting[table])


def test_alters_change_the_local_and_the_distributed_table() -> None:
    alter = (
        "ALTER TABLE funnel_ttc_minute\n    ADD COLUMN IF NOT EXISTS breakdown "
        "Array(LowCardinality(String)) AFTER country,\n    MODIFY ORDER BY (funnel, "
        "window_start, le_seconds, partition, breakdown)"
    )
    assert cluster_statements(alter, "c1") == [
        "ALTER TABLE funnel_ttc_minute_local ON CLUSTER c1 ADD COLUMN IF NOT EXISTS breakdown "
        "Array(LowCardinality(String)) AFTER country,\n    MODIFY ORDER BY (funnel, "
        "window_start, le_seconds, partition, breakdown)",
        # A Distributed table has no sorting key: only the column change reaches it.
        "ALTER TABLE funnel_ttc_minute ON CLUSTER c1 ADD COLUMN IF NOT EXISTS breakdown "
        "Array(LowCardinality(String)) AFTER country",
    ]
    text = render_schema(CLUSTER)
    for added in re.findall(
        r"^ALTER TABLE (\w+) ADD COLUMN IF NOT EXISTS (\w+)", render_schema(None), re.M
    ):
        table, column = added
        for name in (local_name(table), table):
            assert (
                f"ALTER TABLE {name} ON CLUSTER {CLUSTER} ADD COLUMN IF NOT EXISTS {column} "
                in text
            )


def cluster_form() -> list[str]:
    from sinks.clickhouse import load_migrations

    return [
        sql
        for migration in load_migrations()
        for statement in migration.statements
        for sql in cluster_statements(statement, CLUSTER)
    ]


def test_views_read_the_distributed_tables_with_global_subqueries() -> None:
    views = [sql for sql in cluster_form() if re.match(r"CREATE (OR REPLACE )?VIEW", sql)]
    assert len(views) == len(re.findall(r"^CREATE (?:OR REPLACE )?VIEW", render_schema(None), re.M))
    for view in views:
        assert f" ON CLUSTER {CLUSTER} AS\n" in view
        assert "_local" not in view  # plain names: the Distributed tables
        assert re.search(r"(?<!GLOBAL )(?<!GLOBAL NOT )\bIN\s*\(\s*SELECT", view) is None
    assert sum("GLOBAL IN (SELECT" in view for view in views) == 2
    assert sum("GLOBAL NOT IN" in view for view in views) == 1


def test_an_unknown_table_or_statement_has_no_cluster_form() -> None:
    with pytest.raises(MigrationError, match="SHARDING_KEYS"):
        cluster_statements(
            "CREATE TABLE IF NOT EXISTS new_table\n(a UInt8)\nENGINE = MergeTree ORDER BY a", "c1"
        )
    with pytest.raises(MigrationError, match="no cluster form"):
        cluster_statements("DROP TABLE events_raw", "c1")
    with pytest.raises(MigrationError, match="not a plain identifier"):
        cluster_statements("ALTER TABLE events_raw DROP COLUMN x", "c1; DROP")


def test_funnel_migrate_print_needs_no_clickhouse(tmp_path: Path) -> None:
    from funnel.cli import app

    env = {"FUNNEL_CLICKHOUSE_DSN": "http://127.0.0.1:1", "FUNNEL_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["migrate", "--print", "--cluster", CLUSTER], env=env)
    assert result.exit_code == 0, result.output
    assert result.output == render_schema(CLUSTER)
    plain = CliRunner().invoke(app, ["migrate", "--print"], env=env)
    assert plain.exit_code == 0, plain.output
    assert plain.output == render_schema(None)
    from_setting = CliRunner().invoke(
        app, ["migrate", "--print"], env={**env, "FUNNEL_CLICKHOUSE_CLUSTER": "c9"}
    )
    assert from_setting.output == render_schema("c9")


def test_apply_migrations_sends_the_cluster_form() -> None:
    from sinks.clickhouse import apply_migrations

    class Recorder:
        def __init__(self) -> None:
            self.commands: list[str] = []

        def command(self, sql: str) -> None:
            self.commands.append(sql)

        def query(self, sql: str) -> Any:
            return type("Result", (), {"result_rows": []})()

        def insert(self, *args: Any, **kwargs: Any) -> None:
            return None

    recorder = Recorder()
    apply_migrations(recorder, cluster=CLUSTER)
    assert recorder.commands[0].startswith("CREATE TABLE IF NOT EXISTS schema_migrations")
    assert recorder.commands[1:] == cluster_form()
    assert all(f" ON CLUSTER {CLUSTER}" in sql for sql in recorder.commands[1:])


# --- the rendered DDL on chDB, in a subprocess ------------------------------------------

# A one-shard cluster on this chDB. Its shard is local, so the Distributed tables read
# and write the local tables in-process. A second local shard is not possible: two local
# shards in one database read the same tables twice, and a shard that names another
# database (<default_database>) makes chDB connect to a TCP server it does not have.
CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  <remote_servers>
    <{cluster}>
      <shard><replica><host>localhost</host><port>9000</port></replica></shard>
    </{cluster}>
  </remote_servers>
</clickhouse>
"""


def _for_chdb(sql: str) -> str:
    """A rendered statement as chDB can run it: no ON CLUSTER (no Keeper, no distributed
    DDL queue), plain engines instead of Replicated ones (no Keeper either)."""
    sql = sql.replace(f" ON CLUSTER {CLUSTER}", "")
    return re.sub(
        r"ENGINE = Replicated(\w*MergeTree)\('[^']*', '\{replica\}'(?:, )?",
        r"ENGINE = \1(",
        sql,
    ).replace("MergeTree()", "MergeTree")


def _probe(config: str) -> dict[str, Any]:
    """Run in the subprocess: the single-node schema in `single`, the cluster form in
    `shop`, its local tables alone in two shard databases; the same random rows (and a
    second version of each) in all; what reads differently."""
    import chdb

    from sinks.clickhouse import load_migrations

    conn = chdb.connect(f":memory:?config-file={config}")  # type: ignore[no-untyped-call]
    cursor = conn.cursor()

    def run(sql: str, database: str) -> list[tuple[Any, ...]]:
        cursor.execute(f"USE {database}")
        cursor.execute(sql)
        return list(cursor.fetchall())

    def read(sql: str, database: str) -> str:
        return repr(run(sql, database))  # repr: NaN (random floats) equals itself

    for database in ("single", "shop", *SHARDS):
        run(f"CREATE DATABASE {database}", "default")
    clusters = run(
        f"SELECT shard_num, is_local FROM system.clusters WHERE cluster = '{CLUSTER}'", "default"
    )
    executed = 0
    for migration in load_migrations():
        for statement in migration.statements:
            run(statement, "single")
            for rendered in cluster_statements(statement, CLUSTER):
                sql = _for_chdb(rendered)
                run(sql, "shop")
                executed += 1
                target = re.match(r"(?:CREATE TABLE IF NOT EXISTS|ALTER TABLE) (\w+)", sql)
                if target and target.group(1).endswith(LOCAL_SUFFIX):
                    for shard in SHARDS:
                        run(sql, shard)
    settings = "SETTINGS max_partitions_per_insert_block = 0"
    for number, table in enumerate(sorted(SHARDING_KEYS)):
        columns = run(
            "SELECT name, type FROM system.columns WHERE database = 'single' "
            f"AND table = '{table}' ORDER BY position",
            "default",
        )
        structure = ", ".join(f"`{n}` {t}" for n, t in columns).replace("'", "\\'")
        # Times within two months (few table partitions: quick, and rows that meet).
        times = ", ".join(
            f"addSeconds(toDateTime64('2026-01-01 00:00:00', 3, 'UTC'), "
            f"cityHash64({n}) % 5184000) AS {n}"
            for n, t in columns
            if re.fullmatch(r"Date|DateTime(64)?\(.*\)", t)
        )
        run(
            f"INSERT INTO {table} {settings} SELECT * {f'REPLACE ({times})' if times else ''} "
            f"FROM generateRandom('{structure}', {number + 1}, 8, 3) LIMIT 300",
            "single",
        )
        # Second versions of every row (plain duplicates where there is no version).
        names = [n for n, _ in columns]
        bumped = ", ".join(f"{n} + 1 AS {n}" if n == "version" else n for n in names)
        run(f"INSERT INTO {table} {settings} SELECT {bumped} FROM {table}", "single")
        # The writer's way: through the Distributed table, waiting for the shards.
        run(
            f"INSERT INTO {table} {settings}, distributed_foreground_insert = 1 "
            f"SELECT * FROM single.{table}",
            "shop",
        )
        # Two shards by hand, as a two-shard Distributed table would send the rows
        # (slot = key % 2 with weights 1, 1).
        for slot, shard in enumerate(SHARDS):
            run(
                f"INSERT INTO {local_name(table)} {settings} SELECT * FROM single.{table} "
                f"WHERE ({SHARDING_KEYS[table]}) % 2 = {slot}",
                shard,
            )
    # Merged, so that reads without FINAL (some views) see the same rows everywhere.
    for table in SHARDING_KEYS:
        run(f"OPTIMIZE TABLE {table} FINAL", "single")
        run(f"OPTIMIZE TABLE {local_name(table)} FINAL", "shop")
    differences: dict[str, Any] = {}
    spread: dict[str, list[int]] = {}
    for table in sorted(SHARDING_KEYS):
        query = f"SELECT * FROM {table} FINAL ORDER BY ALL"
        single = read(query, "single")
        if read(query, "shop") != single:
            differences[table] = "distributed"
        # FINAL on each shard, then together: what FINAL over two shards reads.
        sharded = read(
            "SELECT * FROM ("
            + " UNION ALL ".join(f"SELECT * FROM {s}.{local_name(table)} FINAL" for s in SHARDS)
            + ") ORDER BY ALL",
            "default",
        )
        if sharded != single:
            differences[table] = "two shards"
        spread[table] = [
            run(f"SELECT count() FROM {shard}.{local_name(table)}", "default")[0][0]
            for shard in SHARDS
        ]
    views = [
        r[0]
        for r in run(
            "SELECT name FROM system.tables WHERE database = 'single' AND engine = 'View' "
            "ORDER BY name",
            "default",
        )
    ]
    view_rows: dict[str, int] = {}
    for view in views:
        query = f"SELECT * FROM {view} ORDER BY ALL"
        single = read(query, "single")
        view_rows[view] = len(run(query, "single"))
        if read(query, "shop") != single:
            differences[view] = "distributed"
    return {
        "clusters": clusters,
        "executed": executed,
        "differences": differences,
        "spread": spread,
        "view_rows": view_rows,
        "engines": run(
            "SELECT engine, count() FROM system.tables WHERE database = 'shop' "
            "GROUP BY engine ORDER BY engine",
            "default",
        ),
    }


def test_the_cluster_ddl_runs_on_chdb(tmp_path: Path) -> None:
    config = tmp_path / "config.xml"
    config.write_text(CONFIG.format(cluster=CLUSTER))
    done = subprocess.run(
        [sys.executable, "-m", "tests.unit.test_cluster_ddl", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["clusters"] == [[1, 1]]
    assert result["executed"] == render_schema(CLUSTER).count(";\n")
    tables = len(SHARDING_KEYS)
    assert dict(map(tuple, result["engines"])) == {
        "Distributed": tables,
        "ReplacingMergeTree": tables,
        "View": len(result["view_rows"]),
    }
    assert result["differences"] == {}, "the cluster form reads differently"
    for table, counts in result["spread"].items():
        assert all(counts), f"{table}: a shard got no rows {counts}"
    assert set(result["view_rows"]) == set(
        re.findall(
            r"^CREATE (?:OR REPLACE )?VIEW(?: IF NOT EXISTS)? (\w+)", render_schema(None), re.M
        )
    )


if __name__ == "__main__":
    print(json.dumps(_probe(sys.argv[1])))
