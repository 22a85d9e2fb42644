"""The worker's read-only SQL endpoint (sinks/sql_endpoint.py), in process on a tmp chDB.

clickhouse-connect's HTTP client is used unchanged; raw HTTP checks the formats, settings
in the URL, compression and errors as a BI tool sees them.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from sinks.clickhouse import ClickHouseTarget, open_client
from sinks.sql_endpoint import BLOCK_INFO, EndpointConfigError, EndpointLimits, SqlEndpoint

ROWS = 5000


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    """A chDB directory with shop.t (ROWS rows), and the writer's client on it."""
    directory = tmp_path_factory.mktemp("sql-endpoint")
    writer = open_client(ClickHouseTarget(dsn=f"chdb:///{directory}", database="shop"))
    writer.command("CREATE TABLE t (a UInt64, s String) ENGINE = MergeTree ORDER BY a")
    writer.command(f"INSERT INTO t SELECT number, toString(number) FROM numbers({ROWS})")
    try:
        yield directory, writer
    finally:
        writer.close()


def _endpoint(store: tuple[Path, Any], **kwargs: Any) -> Iterator[SqlEndpoint]:
    endpoint = SqlEndpoint(
        str(store[0].resolve()),
        port=0,
        database="shop",
        limits=EndpointLimits(max_result_rows=ROWS, max_execution_time=5),
        **kwargs,
    )
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture(scope="module")
def endpoint(store: tuple[Path, Any]) -> Iterator[SqlEndpoint]:
    yield from _endpoint(store)


@pytest.fixture(scope="module")
def secured(store: tuple[Path, Any]) -> Iterator[SqlEndpoint]:
    yield from _endpoint(store, username="reader", password="s3cret")


@pytest.fixture(scope="module")
def client(endpoint: SqlEndpoint) -> Any:
    return clickhouse_connect.get_client(host="127.0.0.1", port=endpoint.port)


def http(
    endpoint: SqlEndpoint,
    sql: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    query = urllib.parse.urlencode(params or {})
    request = urllib.request.Request(
        f"http://127.0.0.1:{endpoint.port}/?{query}", data=sql.encode(), headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_clickhouse_connect_queries(client: Any) -> None:
    assert client.query("SELECT count(), sum(a) FROM t").result_rows == [
        (ROWS, ROWS * (ROWS - 1) // 2)
    ]
    assert client.command("SELECT count() FROM t") == ROWS
    rows = client.query(
        "SELECT a, s FROM t WHERE a < {n:UInt64} ORDER BY a", parameters={"n": 3}
    ).result_rows
    assert rows == [(0, "0"), (1, "1"), (2, "2")]
    frame = client.query_df("SELECT a FROM shop.t ORDER BY a LIMIT 4")
    assert list(frame["a"]) == [0, 1, 2, 3]
    assert client.query("SELECT name FROM system.tables WHERE database = 'shop'").result_rows == [
        ("t",)
    ]
    # server-side binding of {name:Type} placeholders (what the HTTP client does with
    # parameters for a server that binds them)
    bound = client.query(
        "SELECT {x:UInt8} + 1 AS y, {s:String} AS s", parameters={"x": 4, "s": "a"}
    )
    assert bound.result_rows == [(5, "a")]


RICH = (
    "SELECT number AS n, toString(number) AS s, toLowCardinality(toString(number % 3)) AS lc, "
    "if(number % 2 = 0, NULL, toInt32(number)) AS nul, range(number % 4) AS arr, "
    "map('k', toUInt8(number % 250)) AS m, (number, 'x') AS tup, toDecimal64(number, 2) AS d, "
    "toDateTime64(1700000000 + number, 3, 'UTC') AS dt, toFixedString('ab', 2) AS fs, "
    "[toLowCardinality(toNullable('a'))] AS lca, toUUID('00000000-0000-0000-0000-000000000001') "
    "FROM (SELECT number FROM numbers(2000) UNION ALL SELECT number + 2000 FROM numbers(2000))"
)


def test_native_for_clients_that_send_a_protocol_version(
    client: Any, endpoint: SqlEndpoint, store: tuple[Path, Any]
) -> None:
    # clickhouse-connect probes client_protocol_version and then reads blocks with their
    # BlockInfo; several blocks and every common column type go through the re-framing.
    assert client.protocol_version > 0
    via_endpoint = sorted(client.query(RICH).result_rows, key=lambda row: row[0])
    assert via_endpoint == sorted(store[1].query(RICH).result_rows, key=lambda row: row[0])
    assert len(via_endpoint) == 4000
    # columns as a MergeTree table stores them (LowCardinality inside Array, Map, Tuple)
    store[1].command(
        "CREATE TABLE IF NOT EXISTS lc (k UInt32, a Array(LowCardinality(String)), "
        "m Map(LowCardinality(String), UInt8), p Tuple(x LowCardinality(String), y UInt8), "
        "n LowCardinality(Nullable(String))) ENGINE = MergeTree ORDER BY k"
    )
    store[1].command(
        "INSERT INTO lc SELECT number, [toString(number % 3), 'z'], map(toString(number % 2), 1), "
        "(toString(number % 5), 2), if(number % 2 = 0, NULL, 'v') FROM numbers(3000)"
    )
    table = "SELECT * FROM lc ORDER BY k"
    assert client.query(table).result_rows == store[1].query(table).result_rows
    # clickhouse-go (Grafana) sends 54460: BlockInfo, then a custom-serialization byte (0)
    # after each column's type.
    status, _, body = http(
        endpoint,
        "SELECT toUInt8(7) AS x",
        params={"default_format": "Native", "client_protocol_version": "54460"},
    )
    assert status == 200
    assert body == BLOCK_INFO + b"\x01\x01\x01x\x05UInt8\x00\x07"
    assert (
        http(endpoint, "SELECT toUInt8(7) AS x FORMAT Native")[2] == b"\x01\x01\x01x\x05UInt8\x07"
    )


def test_raw_formats_settings_and_compression(endpoint: SqlEndpoint) -> None:
    status, headers, body = http(
        endpoint, "SELECT a, s FROM t ORDER BY a LIMIT 2", params={"default_format": "JSON"}
    )
    assert status == 200 and headers["X-ClickHouse-Format"] == "JSON"
    assert json.loads(body)["data"] == [{"a": 0, "s": "0"}, {"a": 1, "s": "1"}]
    assert http(endpoint, "SELECT a FROM t ORDER BY a LIMIT 2 FORMAT CSV")[2] == b"0\n1\n"
    assert http(endpoint, "SELECT a FROM t ORDER BY a LIMIT 2 FORMAT TSV")[2] == b"0\n1\n"
    assert http(endpoint, "SELECT a FROM t ORDER BY a LIMIT 2")[2] == b"0\n1\n"  # TabSeparated
    # parameters and settings in the URL; a limit can be lowered, not raised
    status, _, body = http(
        endpoint,
        "SELECT {n:UInt32} * 2, getSetting('max_threads'), getSetting('max_result_rows')",
        params={"param_n": "21", "max_threads": "8", "max_result_rows": "10"},
    )
    assert (status, body) == (200, b"42\t1\t10\n")
    status, _, body = http(endpoint, "SELECT a FROM t", params={"max_result_rows": "10"})
    assert status == 500 and b"TOO_MANY_ROWS_OR_BYTES" in body
    status, headers, body = http(
        endpoint,
        "SELECT a FROM t ORDER BY a LIMIT 3",
        params={"enable_http_compression": "1"},
        headers={"Accept-Encoding": "gzip"},
    )
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(body) == b"0\n1\n2\n"
    # what clickhouse-connect asks for (Accept-Encoding: lz4,zstd,gzip,deflate): lz4 frames
    lz4_frame = pytest.importorskip("lz4.frame")
    _, headers, body = http(
        endpoint,
        "SELECT a FROM t ORDER BY a LIMIT 3 FORMAT Native",
        headers={"Accept-Encoding": "lz4,zstd,gzip,deflate"},
    )
    assert headers["Content-Encoding"] == "lz4"
    assert (
        lz4_frame.decompress(body)
        == http(endpoint, "SELECT a FROM t ORDER BY a LIMIT 3 FORMAT Native")[2]
    )
    # a chunked request body (as Go's HTTP client sends a streamed body)
    request = urllib.request.Request(
        f"http://127.0.0.1:{endpoint.port}/",
        data=iter([b"SELECT 4", b"0 + 2"]),
        headers={"Transfer-Encoding": "chunked"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.read() == b"42\n"
    # RowBinary too
    assert http(endpoint, "SELECT toUInt8(7) FORMAT RowBinary")[2] == b"\x07"
    # the query may come in the URL too (GET), and /ping answers as ClickHouse's does
    url = f"http://127.0.0.1:{endpoint.port}/?query=" + urllib.parse.quote("SELECT 7")
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"7\n"
    with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/ping", timeout=10) as response:
        assert response.read() == b"Ok.\n"


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t VALUES (1, 'x')",
        "CREATE TABLE u (a UInt8) ENGINE = Memory",
        "DROP TABLE t",
        "ALTER TABLE t DELETE WHERE 1",
        "TRUNCATE TABLE t",
        "SYSTEM FLUSH LOGS",
        "OPTIMIZE TABLE t FINAL",
        "SET readonly = 0",
        "SELECT 1 SETTINGS max_result_rows = 0",
        "KILL QUERY WHERE 1",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT file('/etc/hostname')",
        "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')",
        "SELECT * FROM remote('127.0.0.1:9', system.one)",
        "SELECT * FROM executable('ls', 'TSV', 'x String')",
        "SELECT 1 INTO OUTFILE '/tmp/sql-endpoint-outfile.csv'",
        "SELECT 1; DROP TABLE t",
    ],
)
def test_writes_ddl_system_and_outside_reads_are_refused(
    client: Any, store: tuple[Path, Any], sql: str
) -> None:
    with pytest.raises(DatabaseError) as refused:
        client.query(sql)
    text = str(refused.value)
    assert "Code: " in text and ("READONLY" in text or "SYNTAX_ERROR" in text), text
    assert store[1].command("SELECT count() FROM t") == ROWS  # nothing changed
    assert not Path("/tmp/sql-endpoint-outfile.csv").exists()


def test_over_the_limits_and_bad_sql_get_clickhouse_errors(client: Any) -> None:
    with pytest.raises(DatabaseError, match="TOO_MANY_ROWS_OR_BYTES"):
        client.query("SELECT number FROM numbers(100000)")
    with pytest.raises(DatabaseError, match=r"(TIMEOUT_EXCEEDED|TOO_SLOW)"):
        client.query("SELECT count() FROM numbers(100000000000) WHERE sleepEachRow(0) = 0")
    with pytest.raises(DatabaseError, match="SYNTAX_ERROR"):
        client.query("SELEC 1")
    with pytest.raises(DatabaseError, match="UNKNOWN_TABLE"):
        client.query("SELECT * FROM nowhere")


def test_queries_run_while_the_writer_inserts(client: Any, store: tuple[Path, Any]) -> None:
    writer = store[1]
    writer.command("CREATE TABLE IF NOT EXISTS w (a UInt64) ENGINE = MergeTree ORDER BY a")
    errors: list[BaseException] = []

    def insert() -> None:
        try:
            for batch in range(30):
                writer.insert("w", [[batch * 100 + i] for i in range(100)], column_names=["a"])
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=insert)
    thread.start()
    seen = []
    while thread.is_alive():
        seen.append(client.command("SELECT count() FROM w"))
    thread.join()
    assert not errors
    assert seen == sorted(seen)  # whole inserts only, never going back
    assert (
        client.command("SELECT count() FROM w") == 3000 == writer.command("SELECT count() FROM w")
    )


def test_auth_on(secured: SqlEndpoint) -> None:
    good = clickhouse_connect.get_client(
        host="127.0.0.1", port=secured.port, username="reader", password="s3cret"
    )
    assert good.command("SELECT 1") == 1
    with pytest.raises(DatabaseError, match="AUTHENTICATION_FAILED"):
        clickhouse_connect.get_client(
            host="127.0.0.1", port=secured.port, username="reader", password="wrong"
        )
    status, headers, body = http(secured, "SELECT 1")
    assert status == 401 and headers["X-ClickHouse-Exception-Code"] == "516"
    assert b"AUTHENTICATION_FAILED" in body
    auth = base64.b64encode(b"reader:s3cret").decode()
    assert http(secured, "SELECT 1", headers={"Authorization": f"Basic {auth}"})[2] == b"1\n"
    key = {"X-ClickHouse-User": "reader", "X-ClickHouse-Key": "s3cret"}
    assert http(secured, "SELECT 2", headers=key)[2] == b"2\n"


def test_auth_off_on_loopback(endpoint: SqlEndpoint) -> None:
    auth = base64.b64encode(b"anyone:anything").decode()
    assert http(endpoint, "SELECT 1", headers={"Authorization": f"Basic {auth}"})[2] == b"1\n"


def test_no_password_off_loopback_is_refused_at_start(store: tuple[Path, Any]) -> None:
    with pytest.raises(EndpointConfigError, match="FUNNEL_SQL_PASSWORD"):
        SqlEndpoint(str(store[0]), host="0.0.0.0", port=0)
    # with a password it may listen anywhere
    endpoint = SqlEndpoint(str(store[0]), host="0.0.0.0", port=0, password="x")
    endpoint.start()
    endpoint.stop()


def test_readers_use_the_endpoint_only_for_their_directory(
    endpoint: SqlEndpoint, store: tuple[Path, Any], tmp_path: Path
) -> None:
    from sinks.clickhouse import _endpoint_client

    target = ClickHouseTarget(
        dsn=f"chdb:///{store[0]}", database="shop", endpoint_port=endpoint.port
    )
    reader = _endpoint_client(target, store[0])
    assert reader is not None and reader.command("SELECT count() FROM t") == ROWS
    assert _endpoint_client(target, tmp_path) is None  # another directory's endpoint
    closed = ClickHouseTarget(dsn=f"chdb:///{store[0]}", database="shop", endpoint_port=9)
    assert _endpoint_client(closed, store[0]) is None


def test_a_worker_off_loopback_without_password_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FUNNEL_", "KAFKA_"))}
    env.update(
        FUNNEL_DATA_DIR=str(tmp_path),
        FUNNEL_SQL_HOST="0.0.0.0",
        FUNNEL_BOOTSTRAP_SERVERS="127.0.0.1:9",  # never reached: refused before
    )
    result = subprocess.run(
        [sys.executable, "-m", "funnel.cli", "worker", "--duration", "30"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, text
    assert "not a loopback address" in text and "FUNNEL_SQL_PASSWORD" in text, text
    assert not (tmp_path / "clickhouse").exists()


def test_an_ipv6_loopback_endpoint_is_served_and_found_by_readers(
    store: tuple[Path, Any],
) -> None:
    from sinks.clickhouse import _endpoint_client

    endpoint = SqlEndpoint(str(store[0].resolve()), host="::1", port=0, database="shop")
    endpoint.start()
    try:
        target = ClickHouseTarget(
            dsn=f"chdb:///{store[0]}",
            database="shop",
            endpoint_host="::1",
            endpoint_port=endpoint.port,
        )
        reader = _endpoint_client(target, store[0])
        assert reader is not None and reader.command("SELECT count() FROM t") == ROWS
    finally:
        endpoint.stop()
