"""ClickHouse migrations: where they are found, numbering, idempotence, and a schema
snapshot (the cluster form is tested in test_cluster_ddl.py).

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

from sinks import clickhouse
from sinks.clickhouse import MIGRATIONS_DIR, apply_migrations, load_migrations
from sinks.errors import MigrationError
from streams.outputs import ALL_TABLES

SNAPSHOT = Path(__file__).parent / "golden" / "clickhouse_schema.sql"
REPO_MIGRATIONS = Path(__file__).resolve().parents[2] / "sinks" / "migrations"


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


def test_the_default_is_the_packaged_sinks_migrations_directory() -> None:
    files = sorted(p.name for p in REPO_MIGRATIONS.glob("*.sql"))
    assert files, "sinks/migrations/*.sql is missing"
    assert [f"{m.name}.sql" for m in load_migrations()] == files
    assert [m.name for m in load_migrations(REPO_MIGRATIONS)] == [m.name for m in load_migrations()]


def test_no_migration_at_all_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not a migration")
    for directory in (tmp_path, tmp_path / "absent"):
        with pytest.raises(MigrationError, match=r"no ClickHouse migrations .*pass the directory"):
            load_migrations(directory)
    # The message for the packaged default says how to get the package data back.
    message = str(clickhouse._no_migrations(MIGRATIONS_DIR))
    assert "sinks/migrations/*.sql" in message
    assert "reinstall" in message


def test_apply_with_no_migration_fails_before_touching_clickhouse(tmp_path: Path) -> None:
    class Untouchable:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"client.{name} used")

    with pytest.raises(MigrationError, match="no ClickHouse migrations"):
        apply_migrations(Untouchable(), tmp_path)


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


def test_events_raw_properties_column_is_added_by_0006() -> None:
    client = migrated()
    columns = {r[0]: r[1] for r in client.query("DESCRIBE TABLE events_raw").result_rows}
    assert columns["properties"] == "Map(String, String)"
    names = [m.name for m in load_migrations()]
    assert "0006_events_raw_properties" in names
