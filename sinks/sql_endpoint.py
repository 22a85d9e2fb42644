"""A read-only ClickHouse HTTP endpoint on the embedded store, served by the worker.

chDB lets one process open a data directory, and a running worker is that process, so
nobody else could read the numbers while it runs. :class:`SqlEndpoint` serves the
ClickHouse HTTP interface (the subset clickhouse-connect and BI tools use) from inside
the worker, executing each query on its own chDB connection handle to the worker's
engine (chDB allows any number of handles on the one path a process opened; the
writer's handle is a different one, so a query never waits on an insert's lock).

Read-only is the engine's: every query runs with ``readonly = 1`` (no writes, DDL,
SYSTEM, settings changes or table functions that reach files or the network), plus the
per-query limits of :class:`EndpointLimits` (time, result rows and bytes, threads, and a
rows-per-second throttle that keeps a heavy query's CPU share small). What
``readonly = 1`` still allows is refused from ClickHouse's own parser, never by matching
the SQL text: ``formatQuery`` refuses several statements and shows ``INTO OUTFILE``;
``EXPLAIN AST`` shows the statement kind (``KILL`` is refused) and every function
called (the scalar ``file()`` reads files even in readonly mode).

Settings in the URL are applied before ``readonly = 1`` (the limits can be lowered, not
raised). A query over its limits fails with ClickHouse's own error. chDB writes every
output format itself; only ``Native`` for a client that sends ``client_protocol_version``
(clickhouse-go, so Grafana; clickhouse-connect after its probe) is re-framed as the
server's HTTP handler frames it (:func:`with_native_revision`).
"""

from __future__ import annotations

import base64
import gzip
import hmac
import ipaddress
import json
import logging
import re
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import chdb

log = logging.getLogger(__name__)

# URL parameters of the HTTP interface that are not ClickHouse settings.
TRANSPORT_PARAMS: Final = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "quota_key",
        "role",
        "readonly",  # always 1 here, whatever is asked
        "enable_http_compression",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "http_wait_end_of_query",
        "http_response_buffer_size",
        "add_http_cors_header",
    }
)

# Functions (table or scalar) that read files or reach the network. readonly = 1
# refuses table functions already; the scalar file() it does not.
REFUSED_FUNCTIONS: Final = frozenset(
    {
        "file",
        "fileCluster",
        "url",
        "urlCluster",
        "s3",
        "s3Cluster",
        "gcs",
        "oss",
        "cosn",
        "remote",
        "remoteSecure",
        "cluster",
        "clusterAllReplicas",
        "mysql",
        "postgresql",
        "sqlite",
        "mongodb",
        "redis",
        "hdfs",
        "hdfsCluster",
        "jdbc",
        "odbc",
        "azureBlobStorage",
        "azureBlobStorageCluster",
        "executable",
        "input",
        "deltaLake",
        "hudi",
        "iceberg",
        "icebergS3",
        "icebergAzure",
        "icebergHDFS",
        "icebergLocal",
        "ytsaurus",
        "arrowFlight",
        "python",
    }
)
_FIXED_SETTINGS: Final = frozenset(
    {"timeout_overflow_mode", "result_overflow_mode", "timeout_before_checking_execution_speed"}
)
_REFUSED_STATEMENTS: Final = ("KillQueryQuery", "BackupQuery", "RestoreQuery")
_FUNCTION_NODE = re.compile(r"^\s*Function (\w+)", re.MULTILINE)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_CODE = re.compile(r"Code: (\d+)\.")

READONLY_CODE: Final = 164
# GET this path (authenticated): {"path": data directory, "database": default database}.
STORE_PATH: Final = "/funnel/store"
AUTH_FAILED_CODE: Final = 516


class EndpointConfigError(Exception):
    """The endpoint cannot start as configured (the message names the fix)."""


@dataclass(frozen=True, slots=True)
class EndpointLimits:
    """Per-query limits: a heavy query fails instead of stalling ingestion."""

    max_execution_time: float = 10.0
    max_result_rows: int = 1_000_000
    max_result_bytes: int = 100_000_000
    max_threads: int = 1
    # Rows read per second: the engine throttles a query above it (sleeping), so a
    # heavy query takes a bounded share of the CPU the worker needs to ingest.
    max_rows_per_second: int = 20_000_000

    def settings(self) -> dict[str, str]:
        return {
            "max_execution_speed": str(self.max_rows_per_second),
            "timeout_before_checking_execution_speed": "0",
            "max_execution_time": f"{self.max_execution_time:g}",
            "timeout_overflow_mode": "throw",
            "max_result_rows": str(self.max_result_rows),
            "max_result_bytes": str(self.max_result_bytes),
            "result_overflow_mode": "throw",
            "max_threads": str(self.max_threads),
        }


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_config(host: str, password: str) -> None:
    """Off loopback a password is required (on loopback it is optional)."""
    if not is_loopback(host) and not password:
        raise EndpointConfigError(
            f"the SQL endpoint would listen on {host}, which is not a loopback address, "
            "without a password: set FUNNEL_SQL_USER and FUNNEL_SQL_PASSWORD, or keep "
            "FUNNEL_SQL_HOST=127.0.0.1 (or FUNNEL_SQL_PORT=0 to turn it off)"
        )


def _connect(connection_string: str) -> Any:
    return chdb.connect(connection_string)  # type: ignore[no-untyped-call]


class QueryRefused(Exception):
    def __init__(self, message: str, code: int = READONLY_CODE) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class QueryResult:
    body: bytes
    fmt: str
    summary: dict[str, str] = field(default_factory=dict)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _clamp(name: str, asked: str, cap: str) -> str:
    """The lower of what the client asks and the cap (0 means unlimited: the cap)."""
    try:
        value = float(asked)
    except ValueError as exc:
        raise QueryRefused(
            f"Code: 27. DB::Exception: Cannot parse setting {name}={asked!r}. "
            "(CANNOT_PARSE_INPUT_ASSERTION_FAILED)",
            code=27,
        ) from exc
    limit = float(cap)
    return asked if 0 < value <= limit else cap


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class SqlEndpoint:
    """The HTTP server; :meth:`start` binds it, :meth:`stop` ends it."""

    def __init__(
        self,
        connection_string: str,
        *,
        host: str = "127.0.0.1",
        port: int = 8124,
        username: str = "",
        password: str = "",
        database: str = "default",
        limits: EndpointLimits | None = None,
        max_concurrent_queries: int = 4,
    ) -> None:
        check_endpoint_config(host, password)
        self._connection_string = connection_string
        self._host = host
        self._port = port
        self._username = username or "default"
        self._password = password
        self._database = database
        self._limits = limits or EndpointLimits()
        self._slots = threading.BoundedSemaphore(max_concurrent_queries)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timezone = "UTC"
        self._version = ""
        self.queries_served = 0

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return int(self._server.server_address[1])

    def start(self) -> None:
        info = self._run_once("SELECT version(), timezone()", "TabSeparated")
        self._version, self._timezone = info.decode().strip().split("\t")
        handler = _make_handler(self)
        server_class = _IPv6Server if ":" in self._host else ThreadingHTTPServer
        server = server_class((self._host.strip("[]"), self._port), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="sql-endpoint", daemon=True
        )
        self._thread.start()
        log.info("read-only SQL endpoint on http://%s:%d", self._host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- authentication ---------------------------------------------------------

    def authenticate(self, user: str | None, password: str | None) -> bool:
        if not self._password:
            return True  # loopback without credentials: anyone local may read
        return hmac.compare_digest((user or "default").encode(), self._username.encode()) and (
            hmac.compare_digest((password or "").encode(), self._password.encode())
        )

    # -- execution ---------------------------------------------------------------

    def _run_once(self, sql: str, fmt: str) -> bytes:
        conn = _connect(self._connection_string)
        try:
            return bytes(conn.query(sql, fmt).bytes() or b"")
        finally:
            conn.close()

    def execute(
        self,
        sql: str,
        *,
        default_format: str,
        params: Mapping[str, str],
        settings: Mapping[str, str],
        database: str | None,
        protocol_version: int = 0,
    ) -> QueryResult:
        """Run one read-only query on a fresh handle; errors are ClickHouse's text."""
        with self._slots:
            checker = _connect(self._connection_string)
            try:  # on a handle of its own: the query's result limits do not apply to it
                checker.query("SET readonly = 1", "TabSeparated")
                self._check(checker, sql, params)
            finally:
                checker.close()
            conn = _connect(self._connection_string)
            try:
                return self._execute_on(
                    conn, sql, default_format, params, settings, database, protocol_version
                )
            finally:
                conn.close()

    def _execute_on(
        self,
        conn: Any,
        sql: str,
        default_format: str,
        params: Mapping[str, str],
        settings: Mapping[str, str],
        database: str | None,
        protocol_version: int,
    ) -> QueryResult:
        caps = self._limits.settings()
        applied: dict[str, str] = {}
        for name, value in settings.items():
            if not _SETTING_NAME.match(name):
                raise QueryRefused(
                    f"Code: 115. DB::Exception: Unknown setting {name!r}. (UNKNOWN_SETTING)", 115
                )
            if name in _FIXED_SETTINGS:
                continue  # always throw (a cut result would look complete); throttle at once
            applied[name] = _clamp(name, value, caps[name]) if name in caps else value
        for name, value in {**caps, **applied}.items():
            conn.query(f"SET {name} = {_quote(value)}", "TabSeparated")
        conn.query("USE " + _identifier(database or self._database), "TabSeparated")
        match = _TRAILING_FORMAT.search(sql)
        fmt = match.group(1) if match else default_format
        custom = fmt == "Native" and protocol_version > 0  # see with_native_revision
        conn.query("SET readonly = 1", "TabSeparated")
        result = conn.query(sql, fmt, params=dict(params))
        self.queries_served += 1
        body = bytes(result.bytes() or b"")
        if custom:
            body = with_native_revision(body, protocol_version)
        return QueryResult(body, fmt, _summary(result))

    def is_insert(self, sql: str) -> bool:
        """Whether ClickHouse's parser reads ``sql`` as an INSERT (its data may follow in
        the POST body: clickhouse-go's batches send ``INSERT ... FORMAT Native`` in the
        URL and the rows in the body)."""
        with self._slots:
            conn = _connect(self._connection_string)
            try:
                ast = bytes(conn.query(f"EXPLAIN AST {sql}", "TabSeparatedRaw").bytes() or b"")
            except Exception:
                return False
            finally:
                conn.close()
        return ast.decode().startswith("InsertQuery")

    def _check(self, conn: Any, sql: str, params: Mapping[str, str]) -> None:
        """Refuse what readonly = 1 allows but a reader must not do, by the parser."""
        formatted = conn.query(f"SELECT formatQuery({_quote(sql)})", "TabSeparatedRaw")
        text = bytes(formatted.bytes() or b"").decode()
        if any(line.startswith("INTO OUTFILE") for line in text.splitlines()):
            raise QueryRefused(
                "Code: 164. DB::Exception: INTO OUTFILE is not allowed on this read-only "
                "endpoint: the result comes back in the HTTP response. (READONLY)"
            )
        ast = bytes(
            conn.query(f"EXPLAIN AST {sql}", "TabSeparatedRaw", params=dict(params)).bytes() or b""
        )
        tree = ast.decode()
        root = tree.split(" ", 1)[0].strip()
        if root.startswith(_REFUSED_STATEMENTS):
            raise QueryRefused(
                f"Code: 164. DB::Exception: {root.removesuffix('Query')} is not allowed on "
                "this read-only endpoint. (READONLY)"
            )
        for name in _FUNCTION_NODE.findall(tree):
            if name in REFUSED_FUNCTIONS or name.lower() in {f.lower() for f in REFUSED_FUNCTIONS}:
                raise QueryRefused(
                    f"Code: 164. DB::Exception: function {name}() reads files or the network "
                    "and is not allowed on this read-only endpoint. (READONLY)"
                )

    @property
    def store_path(self) -> str:
        return self._connection_string

    @property
    def database(self) -> str:
        return self._database

    @property
    def timezone(self) -> str:
        return self._timezone

    @property
    def version(self) -> str:
        return self._version


# From this client protocol revision on, each column of a Native block carries a
# "has custom serialization" byte after its type (ClickHouse's HTTP handler writes it
# for a client that sends client_protocol_version, as clickhouse-go does; chDB writes
# Native for revision 0). clickhouse-connect sends none or an older revision.
CUSTOM_SERIALIZATION_REVISION: Final = 54454
_FIXED_SIZES: Final = {
    **dict.fromkeys(("UInt8", "Int8", "Bool", "Enum8"), 1),
    **dict.fromkeys(("UInt16", "Int16", "Date", "Enum16"), 2),
    **dict.fromkeys(("UInt32", "Int32", "Float32", "DateTime", "Date32", "IPv4"), 4),
    **dict.fromkeys(("UInt64", "Int64", "Float64", "DateTime64", "Decimal64"), 8),
    **dict.fromkeys(("Decimal32",), 4),
    **dict.fromkeys(("UInt128", "Int128", "UUID", "IPv6", "Decimal128"), 16),
    **dict.fromkeys(("UInt256", "Int256", "Decimal256"), 32),
    "BFloat16": 2,
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _type_args(type_name: str) -> list[str]:
    inner = type_name[type_name.index("(") + 1 : -1]
    parts, depth, start = [], 0, 0
    for index, char in enumerate(inner):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(inner[start:index].strip())
            start = index + 1
    parts.append(inner[start:].strip())
    return parts


def _prefix_size(type_name: str) -> int:
    """Bytes of a column's state prefix: a key version (UInt64) per LowCardinality in it."""
    base = type_name.split("(", 1)[0]
    if base == "LowCardinality":
        return 8
    if base in {"Array", "Nullable"}:
        return _prefix_size(type_name[len(base) + 1 : -1])
    if base in {"Tuple", "Map"}:
        elements = _type_args(type_name)
        if base == "Tuple":
            elements = [_tuple_element(element) for element in elements]
        return sum(_prefix_size(element) for element in elements)
    return 0


def _tuple_element(element: str) -> str:
    named = re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s+(\S.*)$", element)
    return named.group(1) if named else element


def _skip_column(type_name: str, data: bytes, pos: int, rows: int) -> int:
    """Where the Native data of ``rows`` values of ``type_name`` at ``pos`` ends."""
    base = type_name.split("(", 1)[0]
    if base == "Nullable":
        return _skip_column(type_name[9:-1], data, pos + rows, rows)
    if base == "LowCardinality":  # its key version came first, in the column's prefix
        if not rows:
            return pos
        flags = int.from_bytes(data[pos : pos + 8], "little")
        keys = int.from_bytes(data[pos + 8 : pos + 16], "little")
        inner = type_name[15:-1]
        inner = inner[9:-1] if inner.startswith("Nullable(") else inner
        pos = _skip_column(inner, data, pos + 16, keys)
        indexes = int.from_bytes(data[pos : pos + 8], "little")
        return pos + 8 + indexes * (1, 2, 4, 8)[flags & 0xFF]
    if base in {"Array", "Map"}:
        total = int.from_bytes(data[pos + 8 * rows - 8 : pos + 8 * rows], "little") if rows else 0
        pos += 8 * rows
        elements = _type_args(type_name) if base == "Map" else [type_name[6:-1]]
        for element in elements:
            pos = _skip_column(element, data, pos, total)
        return pos
    if base == "Tuple":
        for element in _type_args(type_name):
            pos = _skip_column(_tuple_element(element), data, pos, rows)
        return pos
    if base == "String":
        for _ in range(rows):
            length, pos = _varint(data, pos)
            pos += length
        return pos
    if base == "FixedString":
        return pos + rows * int(_type_args(type_name)[0])
    if base == "Decimal":
        precision = int(_type_args(type_name)[0])
        size = 4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32
        return pos + rows * size
    if base in _FIXED_SIZES:
        return pos + rows * _FIXED_SIZES[base]
    raise QueryRefused(
        f"Code: 48. DB::Exception: a {type_name} column cannot be sent to this client in "
        "Native format by this endpoint: cast it (e.g. toString). (NOT_IMPLEMENTED)",
        code=48,
    )


BLOCK_INFO: Final = b"\x01\x00\x02\xff\xff\xff\xff\x00"  # not overflows, bucket -1


def with_native_revision(native: bytes, revision: int) -> bytes:
    """chDB's Native blocks (revision 0) as ClickHouse's HTTP handler writes them for a
    client that sends ``client_protocol_version``: each block starts with its BlockInfo,
    and from revision 54454 each column has a custom-serialization byte (0) after its
    type (clickhouse-go, and so Grafana, reads that; clickhouse-connect probes for it)."""
    out = bytearray()
    pos = 0
    while pos < len(native):
        out += BLOCK_INFO
        start = pos
        columns, pos = _varint(native, pos)
        rows, pos = _varint(native, pos)
        out += native[start:pos]
        for _ in range(columns):
            start = pos
            for _ in range(2):  # name, type
                length, pos = _varint(native, pos)
                pos += length
            type_name = native[pos - length : pos].decode()
            out += native[start:pos]
            if revision >= CUSTOM_SERIALIZATION_REVISION:
                out.append(0)
            start = pos
            if rows:
                pos = _skip_column(type_name, native, pos + _prefix_size(type_name), rows)
            out += native[start:pos]
    return bytes(out)


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _summary(result: Any) -> dict[str, str]:
    try:
        return {
            "read_rows": str(result.rows_read()),
            "read_bytes": str(result.bytes_read()),
            "written_rows": "0",
            "written_bytes": "0",
            "total_rows_to_read": str(result.rows_read()),
            "result_rows": "0",
            "result_bytes": str(len(result.bytes() or b"")),
            "elapsed_ns": str(int(result.elapsed() * 1_000_000_000)),
        }
    except Exception:
        return {}


def _error_code(message: str) -> int:
    match = _CODE.search(message)
    return int(match.group(1)) if match else 1000


def _http_status(code: int) -> int:
    """As ClickHouse's HTTP handler maps exception codes to HTTP statuses."""
    if code in {AUTH_FAILED_CODE, 192, 193, 194}:
        return 401
    if code in {READONLY_CODE, 497, 291}:  # READONLY, ACCESS_DENIED, DATABASE_ACCESS_DENIED
        return 403
    if code in {60, 81}:  # UNKNOWN_TABLE, UNKNOWN_DATABASE
        return 404
    if code in {62, 47, 46, 115, 36, 43, 26, 27, 53, 457}:  # syntax, identifier, setting...
        return 400
    return 500


def _compressors() -> dict[str, Callable[[bytes], bytes]]:
    found: dict[str, Callable[[bytes], bytes]] = {
        "gzip": lambda data: gzip.compress(data, compresslevel=3),
        "deflate": lambda data: zlib.compress(data, 3),
    }
    try:
        import lz4.frame

        found["lz4"] = lambda data: bytes(lz4.frame.compress(data))
    except ImportError:
        pass
    try:
        import zstandard  # type: ignore[import-not-found,unused-ignore]

        found["zstd"] = lambda data: bytes(zstandard.ZstdCompressor(level=1).compress(data))
    except ImportError:
        pass
    return found


def _decompress(data: bytes, encoding: str) -> bytes:
    if encoding in {"", "identity"}:
        return data
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    if encoding == "lz4":
        import lz4.frame

        return bytes(lz4.frame.decompress(data))
    if encoding == "zstd":
        import zstandard

        return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))
    raise QueryRefused(
        f"Code: 1. DB::Exception: unsupported Content-Encoding {encoding!r}. (UNSUPPORTED_METHOD)",
        code=1,
    )


COMPRESSORS: Final = _compressors()


def _make_handler(endpoint: SqlEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "shop-funnel-sql"
        # Headers and body go out as two writes: with Nagle's algorithm the body waits
        # for the client's delayed ACK, about 45 ms on every query (bench/sql_latency.py:
        # SELECT 1 median 52 ms, 6 ms with TCP_NODELAY).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("sql endpoint: " + format, *args)

        def do_GET(self) -> None:
            self._handle(b"")

        def do_POST(self) -> None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                self._handle(self._read_chunked())
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            self._handle(body)

        def _read_chunked(self) -> bytes:
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk

        def do_HEAD(self) -> None:
            self._send(200, b"", {"Content-Type": "text/plain; charset=UTF-8"})

        def _handle(self, body: bytes) -> None:
            parts = urlsplit(self.path)
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            if parts.path in {"/ping", "/replicas_status"} or (
                parts.path == "/" and "query" not in params and not body
            ):
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                return
            query_id = params.get("query_id") or str(uuid.uuid4())
            if not endpoint.authenticate(*self._credentials(params)):
                user = self._credentials(params)[0] or "default"
                self._error(
                    f"Code: 516. DB::Exception: {user}: Authentication failed: password is "
                    "incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)",
                    query_id,
                )
                return
            if parts.path == STORE_PATH:  # which store this is (readers check they found theirs)
                store = {"path": endpoint.store_path, "database": endpoint.database}
                self._send(200, json.dumps(store).encode(), {"Content-Type": "application/json"})
                return
            try:
                if params.get("compress") == "1":
                    raise QueryRefused(
                        "Code: 1. DB::Exception: compress=1 (ClickHouse block compression) is "
                        "not supported by this endpoint; use HTTP compression "
                        "(Accept-Encoding). (UNSUPPORTED_METHOD)",
                        code=1,
                    )
                body = _decompress(body, (self.headers.get("Content-Encoding") or "").lower())
                url_query = params.get("query", "")
                if body and url_query.strip() and endpoint.is_insert(url_query):
                    # the body is the INSERT's data (not SQL): refused as ClickHouse does
                    user = self._credentials(params)[0] or "default"
                    raise QueryRefused(
                        f"Code: 164. DB::Exception: {user}: Cannot execute query in readonly "
                        "mode. (READONLY)"
                    )
                sql = " ".join(
                    part for part in (params.get("query", ""), body.decode()) if part.strip()
                )
                if not sql.strip():
                    raise QueryRefused(
                        "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)", code=62
                    )
                started = time.perf_counter()
                result = endpoint.execute(
                    sql,
                    default_format=params.get("default_format") or "TabSeparated",
                    params={k[6:]: v for k, v in params.items() if k.startswith("param_")},
                    settings={
                        k: v
                        for k, v in params.items()
                        if k not in TRANSPORT_PARAMS and not k.startswith("param_")
                    },
                    database=params.get("database") or self.headers.get("X-ClickHouse-Database"),
                    protocol_version=int(params.get("client_protocol_version") or 0),
                )
                log.debug("sql endpoint query took %.3fs", time.perf_counter() - started)
            except QueryRefused as exc:
                self._error(str(exc), query_id)
                return
            except Exception as exc:
                self._error(_engine_message(exc), query_id)
                return
            headers = {
                "Content-Type": _content_type(result.fmt),
                "X-ClickHouse-Format": result.fmt,
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Timezone": endpoint.timezone,
                "X-ClickHouse-Server-Display-Name": "shop-funnel-worker",
                "X-ClickHouse-Summary": json.dumps(result.summary),
            }
            payload = result.body
            if params.get("enable_http_compression", "1") not in {"0", "false"}:
                encoding = self._encoding()
                if encoding is not None:
                    payload = COMPRESSORS[encoding](payload)
                    headers["Content-Encoding"] = encoding
            self._send(200, payload, headers)

        def _credentials(self, params: Mapping[str, str]) -> tuple[str | None, str | None]:
            auth = self.headers.get("Authorization") or ""
            if auth.lower().startswith("basic "):
                try:
                    user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                except ValueError:
                    return None, None
                return user, password
            if self.headers.get("X-ClickHouse-User") is not None:
                return self.headers.get("X-ClickHouse-User"), self.headers.get("X-ClickHouse-Key")
            return params.get("user"), params.get("password")

        def _encoding(self) -> str | None:
            accepted = [
                item.split(";")[0].strip().lower()
                for item in (self.headers.get("Accept-Encoding") or "").split(",")
            ]
            for name in accepted:
                if name in COMPRESSORS:
                    return name
            return None

        def _error(self, message: str, query_id: str) -> None:
            code = _error_code(message)
            if "(version" not in message:
                message = f"{message} (version {endpoint.version})"
            self._send(
                _http_status(code),
                (message.rstrip() + "\n").encode(),
                {
                    "Content-Type": "text/plain; charset=UTF-8",
                    "X-ClickHouse-Exception-Code": str(code),
                    "X-ClickHouse-Query-Id": query_id,
                },
            )

        def _send(self, status: int, payload: bytes, headers: Mapping[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

    return Handler


def _engine_message(exc: BaseException) -> str:
    text = str(exc).strip()
    index = text.find("Code: ")
    return text[index:] if index > 0 else text or type(exc).__name__


def _content_type(fmt: str) -> str:
    lowered = fmt.lower()
    if lowered.startswith("json"):
        return "application/json; charset=UTF-8"
    if lowered.startswith(("tabseparated", "tsv", "csv", "pretty", "values")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"
