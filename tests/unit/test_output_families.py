"""Every table has one owning family module, and the module agrees with the migrations.

The family modules (``streams/outputs/``) declare each table's columns, sorting key and
version column; the DDL is in the numbered migrations. Here both are compared on an
embedded ClickHouse, and each aggregate family's row builder and recovery reader are
checked against each other through a real insert and select.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import clickhouse_connect
import pytest

from sinks.clickhouse import apply_migrations
from streams.outputs import AGGREGATES, ALL_TABLES, FAMILY_MODULES, aggregate_rows
from streams.outputs.family import AggregateFamily, RowContext
from streams.outputs.funnel_attempts import FunnelAttemptKey
from streams.outputs.funnel_outcomes import FunnelOutcomeKey, OpenAttemptKey
from streams.outputs.funnel_steps import FunnelStepKey
from streams.outputs.funnel_ttc import FunnelTtcKey
from streams.outputs.kpi import METRICS, KpiCellKey, KpiKey
from streams.outputs.order_attribution import OrderAttributionKey
from streams.outputs.order_gaps import OrderGapKey
from streams.outputs.retention import RetentionKey

DATABASE = "families_test"
DIMS = ("paid_search", "spring", "mobile", "web", "DE")
MINUTE = 1_764_000_000_000 - 1_764_000_000_000 % 60_000
DAY = MINUTE - MINUTE % 86_400_000
# One key per aggregate family, with values that survive a ClickHouse round trip.
SAMPLE_KEYS: dict[type, Any] = {
    FunnelStepKey: FunnelStepKey("shop", MINUTE, DIMS, 2, ("gold", "B")),
    FunnelOutcomeKey: FunnelOutcomeKey("shop", MINUTE, DIMS, "dropped"),
    FunnelAttemptKey: FunnelAttemptKey(
        "shop",
        MINUTE,
        DIMS,
        ("organic",),
        "anon-1",
        "s-9#2",
        "e-17",
        "dropped",
        3,
        (MINUTE + 1, MINUTE + 61_234, MINUTE + 61_234),
    ),
    FunnelTtcKey: FunnelTtcKey("shop", MINUTE, DIMS, 300.0),
    KpiKey: KpiKey(MINUTE, DIMS, "JPY"),
    RetentionKey: RetentionKey(
        "first_visit", "week", DAY - 3 * 86_400_000, "visit", 2, DAY + 11 * 86_400_000, "seo", "ios"
    ),
    OrderGapKey: OrderGapKey(DAY, "email", 7.0),
    OrderAttributionKey: OrderAttributionKey(
        MINUTE,
        "anon-1",
        "txn-9",
        "time_decay",
        "kol",
        "douyin",
        "kol",
        "kol_lily_winter",
        "lily_makeup",
        MINUTE + 17_123,
        "CNY",
        -12_345,
        1,
    ),
}


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    admin = clickhouse_connect.get_client(dsn="chdb://memory")
    admin.command(f"DROP DATABASE IF EXISTS {DATABASE}")
    admin.command(f"CREATE DATABASE {DATABASE}")
    migrated = clickhouse_connect.get_client(dsn="chdb://memory", database=DATABASE)
    apply_migrations(migrated)
    yield migrated
    admin.command(f"DROP DATABASE IF EXISTS {DATABASE}")


def created_tables(client: Any) -> dict[str, tuple[str, str]]:
    """Tables (not views) the migrations create: name -> (sorting key, engine_full)."""
    rows = client.query(
        "SELECT name, sorting_key, engine_full FROM system.tables WHERE database = "
        "{db:String} AND engine NOT LIKE '%View%' AND name != 'schema_migrations'",
        parameters={"db": DATABASE},
    ).result_rows
    return {name: (key, engine) for name, key, engine in rows}


def test_every_migrated_table_has_exactly_one_family_module_and_back(client: Any) -> None:
    owners: dict[str, list[str]] = {}
    for module in FAMILY_MODULES:
        owners.setdefault(module.TABLE.name, []).append(module.__name__)
    tables = created_tables(client)
    without_owner = sorted(set(tables) - set(owners))
    assert not without_owner, f"tables without a family module in streams/outputs/: {without_owner}"
    shared = {name: mods for name, mods in owners.items() if len(mods) > 1}
    assert not shared, f"tables owned by more than one family module: {shared}"
    without_table = sorted(set(owners) - set(tables))
    assert not without_table, f"family modules whose table no migration creates: {without_table}"
    assert [t.name for t in ALL_TABLES] == [m.TABLE.name for m in FAMILY_MODULES]


@pytest.mark.parametrize("module", FAMILY_MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_table_spec_matches_the_ddl(client: Any, module: Any) -> None:
    spec = module.TABLE
    columns = [
        r[0]
        for r in client.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = "
            "{t:String} ORDER BY position",
            parameters={"db": DATABASE, "t": spec.name},
        ).result_rows
    ]
    assert list(spec.columns) == columns, f"{module.__name__}: insert columns differ from the DDL"
    sorting_key, engine = created_tables(client)[spec.name]
    assert tuple(c.strip() for c in sorting_key.split(",")) == spec.order_by
    expected = (
        f"ReplacingMergeTree({spec.version_column})"
        if spec.version_column
        else ("ReplacingMergeTree ")
    )
    assert engine.startswith(expected), f"{spec.name}: {engine!r} is not {expected!r}"


def test_each_aggregate_family_has_a_sample_key() -> None:
    assert {f.key_type for f in AGGREGATES} == set(SAMPLE_KEYS)


@pytest.mark.parametrize("family", AGGREGATES, ids=lambda f: f.table.name)
def test_rows_read_back_into_the_same_key(client: Any, family: AggregateFamily) -> None:
    """build_row -> INSERT -> SELECT key columns -> read_key gives the key back."""
    key = SAMPLE_KEYS[family.key_type]
    ctx = RowContext(partition=7, is_final=0, version=1, step_names={"shop": ("a", "b", "c")})
    rows = aggregate_rows([key], lambda _cell: 5, ctx)
    assert list(rows) == [family.table]
    table = family.table
    client.command(f"TRUNCATE TABLE {table.name}")
    client.insert(table.name, rows[table], column_names=list(table.columns))
    back = client.query(
        f"SELECT {', '.join(family.key_columns)}, {', '.join(family.value_columns)} "
        f"FROM {table.name} FINAL"
    ).result_rows
    assert len(back) == 1
    width = len(family.key_columns)
    assert family.read_key(back[0][:width]) == key
    assert all(value == 5 for value in back[0][width:])


def test_keys_of_two_families_never_compare_equal() -> None:
    """A step 10 and a 10-second bucket have equal fields; the family tells them apart."""
    step = FunnelStepKey("shop", MINUTE, DIMS, 10)
    bucket = FunnelTtcKey("shop", MINUTE, DIMS, 10.0)
    assert tuple(step[:4]) == tuple(bucket[:4])
    assert step != bucket
    assert len({step, bucket}) == 2
    cell = KpiCellKey(MINUTE, DIMS, "EUR", 0)
    assert cell != KpiKey(MINUTE, DIMS, "EUR") and cell.row == KpiKey(MINUTE, DIMS, "EUR")
    assert OpenAttemptKey("shop", MINUTE) != FunnelOutcomeKey("shop", MINUTE, DIMS, "dropped")[:2]


def test_a_kpi_row_has_one_cell_per_metric() -> None:
    row = KpiKey(MINUTE, DIMS, "EUR")
    assert [c.metric for c in row.cells()] == list(range(len(METRICS)))
    assert {c.row for c in row.cells()} == {row}
