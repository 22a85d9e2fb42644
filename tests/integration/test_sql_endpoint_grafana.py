"""The read-only SQL endpoint as Grafana's ClickHouse data source uses it (HTTP mode).

There is no Grafana here: ``tests/grafana_client`` is a Go program on the driver the
plugin uses (clickhouse-go v2, pinned at the plugin's version) that opens the connection
with the ``clickhouse.Options`` the plugin builds in HTTP mode and sends what the plugin
sends: the ping of its health check, ``SELECT version()``, the query builder's schema
look-ups (SHOW DATABASES, SHOW TABLES FROM, DESC TABLE, system.columns/system.tables),
time series, table and logs queries with the plugin's macros expanded as it expands
them, then writes and DDL (which must be refused). Its header comment names the plugin
files and version it mirrors. It is built once per session with the Go toolchain (the
default module cache, so CI can cache it); a missing toolchain fails the test.

Every result is checked against values worked out by hand from the rows inserted here,
and the schema look-ups against the same statements run directly on chDB.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sinks.clickhouse import ClickHouseTarget, apply_migrations, open_client
from sinks.sql_endpoint import EndpointLimits, SqlEndpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT_DIR = REPO_ROOT / "tests" / "grafana_client"
USER, PASSWORD = "grafana", "s3cret-grafana"
FROM = 1767261600  # 2026-01-01 10:00:00 UTC: the dashboard's time range is one hour
TO = FROM + 3600
INTERVAL = 60

STEPS = (
    "INSERT INTO funnel_steps_minute (funnel, window_start, step, step_name, partition, "
    "entered, version) VALUES "
    "('checkout', '2026-01-01 10:00:00', 1, 'view', 0, 5, 1), "
    "('checkout', '2026-01-01 10:01:00', 2, 'cart', 0, 3, 1), "
    "('checkout', '2026-01-01 09:00:00', 1, 'view', 0, 100, 1)",  # before the time range
    # a newer version of partition 0's 10:00 row (FINAL keeps it), and partition 1's row
    "INSERT INTO funnel_steps_minute (funnel, window_start, step, step_name, partition, "
    "entered, version) VALUES "
    "('checkout', '2026-01-01 10:00:00', 1, 'view', 0, 7, 2), "
    "('checkout', '2026-01-01 10:00:00', 1, 'view', 1, 4, 1)",
    "INSERT INTO kpi_minute (window_start, currency, partition, orders, gmv_minor, version) "
    "VALUES ('2026-01-01 10:00:00', 'EUR', 0, 2, 5000, 1), "
    "('2026-01-01 10:00:00', 'EUR', 1, 1, 1500, 1), "
    "('2026-01-01 10:05:00', 'EUR', 0, 1, 999, 1), "
    "('2026-01-01 12:00:00', 'EUR', 0, 9, 9, 1)",  # after the time range
    "INSERT INTO events_raw (event_id, event_type, stream, event_time, anonymous_id, user_id, "
    "experiments, item_ids, value_minor, version) VALUES "
    "('e1', 'page_view', 'web', '2026-01-01 10:00:30.250', 'a1', 'u1', map('exp', 'b'), "
    "['i1', 'i2'], 1234, 1), "
    "('e2', 'purchase', 'web', '2026-01-01 10:01:10', 'a2', NULL, map(), [], NULL, 1), "
    "('e3', 'page_view', 'web', '2026-01-01 09:30:00', 'a3', NULL, map(), [], NULL, 1)",
)

EXPECTED: dict[str, tuple[list[tuple[str, str]], list[list[Any]]]] = {
    # FINAL: partition 0 at 10:00 is 7 (version 2), plus partition 1's 4
    "timeseries_macros": (
        [("time", "DateTime"), ("entered", "UInt64")],
        [["2026-01-01T10:00:00Z", 11], ["2026-01-01T10:01:00Z", 3]],
    ),
    "timeseries_builder": (
        [("time", "DateTime"), ("step_name", "String"), ("entered", "UInt64")],
        [["2026-01-01T10:00:00Z", "view", 11], ["2026-01-01T10:01:00Z", "cart", 3]],
    ),
    "timeseries_view": (
        [("time", "DateTime"), ("orders", "UInt64"), ("gmv_minor", "Int64")],
        [["2026-01-01T10:00:00Z", 3, 6500], ["2026-01-01T10:05:00Z", 1, 999]],
    ),
    # no block at all for an empty Native result, as ClickHouse's own HTTP interface
    # (ClickHouse/ClickHouse#55939): the driver sees no columns, Grafana shows "No data"
    "timeseries_empty": ([], []),
    # no time filter: the 09:00 row counts
    "table_builder": (
        [("funnel", "String"), ("step", "UInt8"), ("step_name", "String"), ("entered", "UInt64")],
        [["checkout", 1, "view", 111], ["checkout", 2, "cart", 3]],
    ),
    "logs_builder": (
        [
            ("timestamp", "DateTime64(3, 'UTC')"),
            ("body", "LowCardinality(String)"),
            ("level", "LowCardinality(String)"),
            ("user_id", "Nullable(String)"),
            ("experiments", "Map(String, String)"),
            ("item_ids", "Array(String)"),
            ("value_minor", "Nullable(Int64)"),
        ],
        [
            ["2026-01-01T10:01:10Z", "purchase", "web", None, {}, [], None],
            ["2026-01-01T10:00:30.25Z", "page_view", "web", "u1", {"exp": "b"}, ["i1", "i2"], 1234],
        ],
    ),
    "logs_ms_filter": ([("events", "UInt64")], [[2]]),
}
REFUSED = ("insert_values", "insert_select", "create_table", "drop_table", "alter_delete")


def _go() -> str:
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None
    )
    if found is None:
        pytest.fail(
            "the Go toolchain is needed to build tests/grafana_client (Grafana's ClickHouse "
            "driver, clickhouse-go): install Go >= 1.25 and put `go` on PATH"
        )
    return found


@pytest.fixture(scope="module")
def grafana_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = tmp_path_factory.mktemp("grafana-client") / "grafana_client"
    build = subprocess.run(
        [_go(), "build", "-o", str(binary), "."],
        cwd=CLIENT_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, f"go build failed:\n{build.stderr}"
    return binary


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    """A chDB directory with the project's tables (its migrations) and known rows."""
    directory = tmp_path_factory.mktemp("grafana-store")
    writer = open_client(ClickHouseTarget(dsn=f"chdb:///{directory}", database="shop"))
    apply_migrations(writer)
    for statement in STEPS:
        writer.command(statement)
    try:
        yield directory, writer
    finally:
        writer.close()


def _start(store: tuple[Path, Any], **kwargs: Any) -> SqlEndpoint:
    endpoint = SqlEndpoint(
        str(store[0].resolve()),
        port=0,
        database="shop",
        limits=EndpointLimits(max_execution_time=20),
        **kwargs,
    )
    endpoint.start()
    return endpoint


@pytest.fixture(scope="module")
def secured(store: tuple[Path, Any]) -> Iterator[SqlEndpoint]:
    endpoint = _start(store, username=USER, password=PASSWORD)
    try:
        yield endpoint
    finally:
        endpoint.stop()


def run_client(binary: Path, port: int, *args: str) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [str(binary), "-host", "127.0.0.1", "-port", str(port), "-database", "shop", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    steps = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {step["step"]: step for step in steps}


@pytest.fixture(scope="module")
def results(grafana_client: Path, secured: SqlEndpoint) -> dict[str, dict[str, Any]]:
    return run_client(
        grafana_client,
        secured.port,
        "-user",
        USER,
        "-password",
        PASSWORD,
        "-from",
        str(FROM),
        "-to",
        str(TO),
        "-interval",
        str(INTERVAL),
        "-setting",
        "max_execution_time=15",  # a data source "custom setting" (sent in the URL)
    )


def _ok(results: dict[str, dict[str, Any]], step: str) -> dict[str, Any]:
    assert step in results, f"the client did not run {step}: {sorted(results)}"
    result = results[step]
    assert result["ok"], f"{step} failed: {result.get('error')}\n{result.get('sql')}"
    return result


def test_health_check_ping_and_version(results: dict[str, dict[str, Any]]) -> None:
    assert _ok(results, "ping") == {"step": "ping", "ok": True}
    import chdb

    assert _ok(results, "version")["rows"] == [[chdb.engine_version]]


def test_query_builder_schema_lookups(
    results: dict[str, dict[str, Any]], store: tuple[Path, Any]
) -> None:
    writer = store[1]

    def direct(sql: str) -> list[list[Any]]:
        return [list(row) for row in writer.query(sql).result_rows]

    assert ["shop"] in _ok(results, "show_databases")["rows"]
    assert _ok(results, "show_databases")["rows"] == direct("SHOW DATABASES")
    tables = _ok(results, "show_tables")["rows"]
    assert tables == direct('SHOW TABLES FROM "shop"')
    assert {"funnel_steps_minute", "kpi_minute", "events_raw", "v_kpi_minute"} <= {
        row[0] for row in tables
    }
    desc = _ok(results, "desc_table")
    assert [c["name"] for c in desc["columns"]][:2] == ["name", "type"]
    assert [row[:2] for row in desc["rows"]] == [
        row[:2] for row in direct('DESC TABLE "shop"."funnel_steps_minute"')
    ]
    assert ["window_start", "DateTime('UTC')"] in [row[:2] for row in desc["rows"]]
    assert _ok(results, "system_columns")["rows"] == direct(
        "SELECT name, type, table FROM system.columns "
        "WHERE database IN ('shop') AND table = 'funnel_steps_minute'"
    )
    assert _ok(results, "variable_tables")["rows"] == direct(
        "SELECT name FROM system.tables WHERE database IN ('shop') ORDER BY name"
    )


@pytest.mark.parametrize("step", sorted(EXPECTED))
def test_panel_queries_return_exactly_the_inserted_values(
    results: dict[str, dict[str, Any]], step: str
) -> None:
    result = _ok(results, step)
    columns, rows = EXPECTED[step]
    got = [(c["name"], c["type"]) for c in result.get("columns", [])]
    # LowCardinality is the column's storage; an aggregate's key may come back either way
    assert [(n, t.replace("LowCardinality(String)", "String")) for n, t in got] == [
        (n, t.replace("LowCardinality(String)", "String")) for n, t in columns
    ]
    assert result.get("rows", []) == rows
    assert "$__" not in result["sql"]  # the macros were expanded as the plugin does


@pytest.mark.parametrize("step", [*REFUSED, "insert_batch"])
def test_writes_and_ddl_are_refused_with_the_readonly_error(
    results: dict[str, dict[str, Any]], step: str
) -> None:
    result = results[step]
    assert not result["ok"], f"{step} was not refused"
    assert "[HTTP 403]" in result["error"]
    assert "Code: 164" in result["error"] and "(READONLY)" in result["error"]


def test_nothing_was_written(results: dict[str, dict[str, Any]], store: tuple[Path, Any]) -> None:
    writer = store[1]
    assert results["drop_table"]["ok"] is False
    assert writer.command("SELECT count() FROM funnel_steps_minute") == 5
    assert writer.command("SELECT count() FROM funnel_steps_minute WHERE funnel = 'x'") == 0
    assert writer.command("EXISTS TABLE grafana_probe") == 0


def test_authentication(grafana_client: Path, secured: SqlEndpoint) -> None:
    base = ("-only", "ping")
    ok = run_client(grafana_client, secured.port, "-user", USER, "-password", PASSWORD, *base)
    assert ok["ping"]["ok"] and ok["version"]["ok"]
    for creds in (("-user", USER, "-password", "wrong"), ("-user", USER), ()):
        refused = run_client(grafana_client, secured.port, *creds, *base)
        for step in ("ping", "version"):
            assert not refused[step]["ok"], (creds, refused[step])
            assert "[HTTP 401]" in refused[step]["error"]
            assert "Code: 516" in refused[step]["error"]
            assert "AUTHENTICATION_FAILED" in refused[step]["error"]


def test_loopback_without_password(grafana_client: Path, store: tuple[Path, Any]) -> None:
    endpoint = _start(store)
    try:
        done = run_client(grafana_client, endpoint.port, "-only", "ping")
    finally:
        endpoint.stop()
    assert done["ping"]["ok"] and done["version"]["ok"]


def _provisioned_clickhouse(path: Path, env: dict[str, str]) -> dict[str, Any]:
    """The ClickHouse data source of a provisioning file, with ``${VAR}`` expanded as
    Grafana expands them (from its environment)."""
    text = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), path.read_text())
    document = yaml.safe_load(text)
    [clickhouse] = [d for d in document["datasources"] if d["uid"] == "clickhouse"]
    return dict(clickhouse)


def test_the_embedded_provisioning_reaches_the_endpoint(
    grafana_client: Path, secured: SqlEndpoint
) -> None:
    """deploy/grafana/provisioning-embedded: the fields Grafana would use, as provisioned,
    drive the plugin's driver against a worker's endpoint."""
    path = REPO_ROOT / "deploy/grafana/provisioning-embedded/datasources/datasources.yml"
    env = {
        "FUNNEL_SQL_GRAFANA_HOST": "127.0.0.1",
        "FUNNEL_SQL_PORT": str(secured.port),
        "FUNNEL_SQL_USER": USER,
        "FUNNEL_SQL_PASSWORD": PASSWORD,
    }
    source = _provisioned_clickhouse(path, env)
    compose = _provisioned_clickhouse(
        REPO_ROOT / "deploy/grafana/provisioning/datasources/datasources.yml", {}
    )
    assert (source["type"], source["name"]) == (compose["type"], compose["name"])
    fields = source["jsonData"]
    assert (fields["protocol"], fields["secure"]) == ("http", False)
    done = subprocess.run(
        [
            str(grafana_client),
            "-host",
            str(fields["host"]),
            "-port",
            str(fields["port"]),
            "-database",
            str(fields["defaultDatabase"]),
            "-user",
            str(fields["username"]),
            "-password",
            str(source["secureJsonData"]["password"]),
            "-from",
            str(FROM),
            "-to",
            str(TO),
            "-interval",
            str(INTERVAL),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    steps = {s["step"]: s for s in map(json.loads, filter(str.strip, done.stdout.splitlines()))}
    assert steps["ping"]["ok"] and steps["version"]["ok"], steps.get("ping")
    refused = {*REFUSED, "insert_batch"}
    failed = {k: v.get("error") for k, v in steps.items() if not v["ok"] and k not in refused}
    assert not failed, failed
    assert refused <= set(steps) and not any(steps[k]["ok"] for k in refused)
