"""Requests clickhouse-go (Grafana's ClickHouse driver) sends in HTTP mode that the
endpoint must answer as ClickHouse does, checked in raw HTTP on a tmp chDB.

clickhouse-go sends a batch as ``?query=INSERT INTO t (...) FORMAT Native`` with the rows
(binary) in the POST body: the body is data, not SQL, and the write is refused with
ClickHouse's readonly error (not a syntax error about the binary body). The whole flow
with the Go driver is tests/integration/test_sql_endpoint_grafana.py.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from sinks.clickhouse import ClickHouseTarget, open_client
from sinks.sql_endpoint import SqlEndpoint

NATIVE_ROWS = b"\x02\x01\x01a\x05UInt8\x07\x01s\x06String\x01x"  # 2 columns, 1 row


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlEndpoint]:
    directory = tmp_path_factory.mktemp("grafana-requests")
    writer = open_client(ClickHouseTarget(dsn=f"chdb:///{directory}", database="shop"))
    writer.command("CREATE TABLE t (a UInt8, s String) ENGINE = MergeTree ORDER BY a")
    writer.command("INSERT INTO t VALUES (1, 'one')")
    served = SqlEndpoint(str(directory.resolve()), port=0, database="shop")
    served.start()
    try:
        yield served
    finally:
        served.stop()
        assert writer.command("SELECT count() FROM t") == 1
        writer.close()


def post(endpoint: SqlEndpoint, query: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    url = f"http://127.0.0.1:{endpoint.port}/?" + urllib.parse.urlencode({"query": query})
    request = urllib.request.Request(url, data=body)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("INSERT INTO t (a, s) FORMAT Native", NATIVE_ROWS),  # clickhouse-go's batch
        ("INSERT INTO shop.t FORMAT Native", NATIVE_ROWS),
        ("INSERT INTO t FORMAT TabSeparated", b"2\ttwo\n"),
        ("INSERT INTO t VALUES", b"(2, 'two')"),
    ],
)
def test_insert_in_the_url_with_data_in_the_body_is_refused_as_readonly(
    endpoint: SqlEndpoint, query: str, body: bytes
) -> None:
    status, headers, payload = post(endpoint, query, body)
    assert status == 403, payload
    assert headers["X-ClickHouse-Exception-Code"] == "164"
    assert b"Cannot execute query in readonly mode. (READONLY)" in payload


def test_a_query_split_between_url_and_body_still_runs(endpoint: SqlEndpoint) -> None:
    # ClickHouse joins the `query` parameter and the body into one statement
    status, _, payload = post(endpoint, "SELECT count()", b"FROM t")
    assert (status, payload) == (200, b"1\n")
    status, _, payload = post(endpoint, "SELECT", b" a, s FROM t FORMAT TabSeparated")
    assert (status, payload) == (200, b"1\tone\n")
