"""ClickHouse migrations: numbering, idempotence, cluster form, and a schema snapshot.

The snapshot is the `SHOW CREATE` of every table and view after applying all migrations
to an empty embedded ClickHouse. A change to the DDL must update the snapshot on purpose:
`UPDATE_SNAPSHOTS=1 pytest tests/unit/test_migrations.py`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest

from sinks.clickhouse import MIGRATIONS_DIR, apply_migrations, for_cluster, load_migrations
from sinks.errors import MigrationError
from sinks.tables import ALL_TABLES

SNAPSHOT = Path(__file__).parent / "golden" / "clickhouse_schema.sql"


def migrated() -> Any:
    admin = clickhouse_connect.get_client(dsn="chdb://memory")
    admin.command("DROP DATABASE IF EXISTS snapshot_test")
    admin.command("CREATE DATABASE snapshot_test")
    client = clickhouse_connect.get_client(dsn="chdb://memory", database="snapshot_test")
    apply_migrations(client)
    return client


def schema_text(client: Any) -> str:
    names = [r[0] for r in client.query("SHOW TABLES").result_rows if r[0] != "schema_migrations"]
    parts = []
    for name in sorted(names):
        ddl = client.query(f"SHOW CREATE TABLE {name}").result_rows[0][0]
        parts.append(re.sub(r"\bsnapshot_test\.", "", ddl).strip() + ";\n")
    return "\n".join(parts)


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    numbers = [m.number for m in load_migrations()]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 4


def test_a_gap_in_numbering_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_c.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="expected 0002"):
        load_migrations(tmp_path)


def test_a_badly_named_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "1_Bad Name.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_lower_snake"):
        load_migrations(tmp_path)


def test_applying_twice_changes_nothing() -> None:
    client = migrated()
    before = schema_text(client)
    assert apply_migrations(client) == []
    assert schema_text(client) == before


def test_every_table_the_pipeline_writes_exists_with_its_columns() -> None:
    client = migrated()
    for spec in ALL_TABLES:
        columns = {r[0] for r in client.query(f"DESCRIBE TABLE {spec.name}").result_rows}
        assert set(spec.columns) <= columns, spec.name


def test_schema_matches_the_snapshot() -> None:
    text = schema_text(migrated())
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), "DDL changed: review and run with UPDATE_SNAPSHOTS=1"


def test_cluster_form_uses_replicated_engines_and_on_cluster() -> None:
    statements = [s for m in load_migrations(MIGRATIONS_DIR) for s in m.statements]
    table = next(s for s in statements if "CREATE TABLE IF NOT EXISTS kpi_minute" in s)
    clustered = for_cluster(table, "shop_cluster")
    assert "kpi_minute ON CLUSTER shop_cluster" in clustered
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/kpi_minute', "
        "'{replica}', version)" in clustered
    )
    view = next(s for s in statements if "CREATE VIEW IF NOT EXISTS v_kpi_day" in s)
    assert "v_kpi_day ON CLUSTER shop_cluster" in for_cluster(view, "shop_cluster")
