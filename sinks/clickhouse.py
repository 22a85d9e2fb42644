"""ClickHouse through clickhouse-connect: the embedded chDB engine or a server, same code.

- :func:`open_client` turns the settings' DSN into a client (``chdb:///dir`` or
  ``http(s)://host:8123``).
- :func:`apply_migrations` runs the migrations ``sinks/migrations/NNNN_*.sql`` in order,
  once each, recording them in ``schema_migrations``. They are package data, read through
  :mod:`importlib.resources`, so an installed wheel carries its schema with it.
- :class:`ClickHouseWriter` batches rows per table in a background thread, retries with
  backoff while ClickHouse is unavailable, applies backpressure instead of dropping, and
  offers :meth:`ClickHouseWriter.flush` as a barrier the Kafka offset commit waits on.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import logging
import os
import re
import struct
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver import options as insert_options
from clickhouse_connect.driver.exceptions import DatabaseError, DataError

from sinks.errors import ClickHouseUnavailableError, MigrationError
from sinks.memory import ReleasingReader
from sinks.tables import EncodedRows, TableSpec

log = logging.getLogger(__name__)

# The packaged migrations (pyproject.toml: [tool.setuptools.package-data] sinks).
MIGRATIONS_DIR: Final[Traversable] = files("sinks") / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class InsertClient(Protocol):
    """The part of a clickhouse-connect client the writer uses (tests substitute fakes)."""

    def create_insert_context(
        self,
        table: str,
        column_names: Sequence[str],
        *,
        column_oriented: bool,
        settings: dict[str, Any] | None = None,
    ) -> Any: ...

    def insert(self, *, context: Any, data: Sequence[Sequence[Any]]) -> Any: ...

    def raw_insert(
        self,
        table: str,
        column_names: Sequence[str] | None = None,
        insert_block: bytes | memoryview | None = None,
        *,
        fmt: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class ClickHouseTarget:
    dsn: str
    database: str
    username: str = "default"
    password: str = ""
    # The read-only SQL endpoint a worker holding the embedded directory serves
    # (sinks/sql_endpoint.py); readers use it when the directory is held. Port 0: none.
    endpoint_host: str = "127.0.0.1"
    endpoint_port: int = 0
    endpoint_username: str = "default"
    endpoint_password: str = ""

    @property
    def is_embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    def describe(self) -> str:
        parts = urlsplit(self.dsn)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"  # no password


def embedded_holder(path: Path) -> bool:
    """Does another process hold the embedded ClickHouse directory ``path``?

    chDB takes an exclusive ``flock`` on ``<path>/status`` while it has the directory open
    (ClickHouse's status file). Its own error says so only on stderr (chDB 4.4), so the
    lock is tested directly: a non-blocking ``flock`` that fails means it is held.
    """
    status = path / "status"
    if not status.exists() or _opened_here(status):
        return False
    with status.open("rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _opened_here(status: Path) -> bool:
    """This process has ``status`` open (its own chDB session holds the lock: flock
    conflicts between two opens of a file even within one process)."""
    target = str(status.resolve())
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return False
    for fd in fds.iterdir():
        try:
            if str(fd.readlink()) == target:
                return True
        except OSError:
            continue
    return False


def embedded_directory(target: ClickHouseTarget) -> Path | None:
    """The data directory of an embedded ``target`` (None: in memory)."""
    path = target.dsn[len("chdb://") :]
    if not path.startswith("/") or path == "/memory":
        return None
    return Path("/" + path.lstrip("/"))  # chdb:////abs/path has an extra slash


# The settings of the worker's own periodic reads (the experiment and attribution
# monitors re-read the raw events every 30 s): one thread, at the lowest OS priority
# (applied where ClickHouse may renice its threads), so such a read does not take the
# cores from ingestion. On two cores, in two latency runs at the default settings, the
# stall that set the p99 of event-to-ClickHouse latency (about 1.8 s without an insert)
# came with such a read (BENCHMARKS.md, "rows to ClickHouse as RowBinary").
#
# Their GROUP BYs spill to the store's tmp directory past 32 MiB of aggregation state. An
# experiment evaluation groups every stored visitor several times; at 4.4 M events each of
# its queries held 404-528 MB without spilling and 208-324 MB with it (the rest is FINAL's
# read of every part and the purchases' set), for 1.0-1.1x the time (BENCHMARKS.md, "the
# monitors' reads bounded"). Spilling starts once an aggregation turns two-level, which
# ClickHouse does past 100,000 keys: the small GROUP BYs never touch the disk.
BACKGROUND_READ_SETTINGS: Final[dict[str, Any]] = {
    "max_threads": 1,
    "os_thread_priority": 19,
    "max_bytes_before_external_group_by": 32 << 20,
}


# The writer's inserts. ``optimize_on_insert`` (on by default) makes every insert collapse
# the rows of one sort key inside the inserted block, as a merge would. Nothing here
# needs that: rows of one key arrive in many inserts anyway, so every reader of a
# replacing or summing table already reads with FINAL or aggregates, and merges collapse
# the rest. Measured on the compiled core's rows, 150,000 events inserted in blocks of
# 16,000 (`python -m bench.insert_cost`): chDB's CPU for `events_raw` 0.78x, for all the
# tables 0.83x (BENCHMARKS.md).
INSERT_SETTINGS: Final[dict[str, Any]] = {"optimize_on_insert": 0}


def open_background_reader(target: ClickHouseTarget) -> Any:
    """The client of a monitor's periodic read: ``BACKGROUND_READ_SETTINGS``, and on the
    embedded engine the memory each read freed goes back to the OS when it ends
    (:class:`sinks.memory.ReleasingReader`)."""
    client = open_client(target, settings=BACKGROUND_READ_SETTINGS)
    return ReleasingReader(client) if target.is_embedded else client


def open_client(
    target: ClickHouseTarget,
    *,
    create_database: bool = True,
    settings: dict[str, Any] | None = None,
) -> Any:
    """A clickhouse-connect client on ``target.database`` (created if missing), with
    ``settings`` for every query it runs (e.g. ``BACKGROUND_READ_SETTINGS``).

    ``create_database=False`` is the readers' way (reports): nothing is created, not even
    the embedded directory, and a missing directory or database is an error that says
    where the data was looked for.
    """
    directory = embedded_directory(target) if target.is_embedded else None
    if directory is not None and not create_database:
        try:
            _check_readable(directory, target)
        except _HeldError as held:
            endpoint = _endpoint_client(target, directory)
            if endpoint is None:
                raise held from None
            return endpoint
    try:
        if target.is_embedded:
            if directory is not None:
                directory.mkdir(parents=True, exist_ok=True)
            admin = clickhouse_connect.get_client(dsn=target.dsn)
            if create_database:
                admin.command(f"CREATE DATABASE IF NOT EXISTS {target.database}")
            elif not _database_exists(admin, target.database):
                raise ClickHouseUnavailableError(
                    f"the embedded ClickHouse at {directory} has no database "
                    f"{target.database}: nothing was written there yet; run `funnel worker` "
                    "first, or point at the data you mean (--data-dir, FUNNEL_DATA_DIR, "
                    "FUNNEL_CLICKHOUSE_DATABASE; `make demo` writes to .data/demo)"
                )
            return clickhouse_connect.get_client(
                dsn=target.dsn, database=target.database, settings=settings
            )
        parts = urlsplit(target.dsn)
        common: dict[str, Any] = {
            "host": parts.hostname,
            "port": parts.port or (8443 if parts.scheme == "https" else 8123),
            "username": target.username,
            "password": target.password,
            "secure": parts.scheme == "https",
        }
        if create_database:
            admin = clickhouse_connect.get_client(**common)
            admin.command(f"CREATE DATABASE IF NOT EXISTS {target.database}")
        return clickhouse_connect.get_client(database=target.database, settings=settings, **common)
    except ClickHouseUnavailableError:
        raise
    except Exception as exc:
        if directory is not None and embedded_holder(directory):
            raise _held_error(directory) from exc
        raise ClickHouseUnavailableError(
            f"cannot open ClickHouse at {target.describe()}: "
            f"{str(exc).splitlines()[0][:300]}; check FUNNEL_CLICKHOUSE_DSN, that the "
            "server is up, and the credentials"
        ) from exc


def _check_readable(directory: Path, target: ClickHouseTarget) -> None:
    if not (directory / "status").exists() and not (directory / "metadata").exists():
        raise ClickHouseUnavailableError(
            f"no embedded ClickHouse data at {directory}: run `funnel worker` first, or "
            "point at the data you mean (--data-dir or FUNNEL_DATA_DIR; `make demo` "
            "writes to .data/demo)"
        )
    if embedded_holder(directory):
        raise _held_error(directory)


class _HeldError(ClickHouseUnavailableError):
    """The embedded directory is held by another process."""


def _endpoint_client(target: ClickHouseTarget, directory: Path) -> Any | None:
    """A client on the SQL endpoint of the worker holding ``directory``, or None when no
    endpoint answers at the configured port or it serves another directory."""
    if not target.endpoint_port:
        return None
    served = _endpoint_store(target)
    if served is None or os.path.realpath(served) != os.path.realpath(directory):
        if served is not None:
            log.warning(
                "the SQL endpoint at %s:%d serves %s, not %s: not used",
                target.endpoint_host,
                target.endpoint_port,
                served,
                directory,
            )
        return None
    try:
        client = clickhouse_connect.get_client(
            host=target.endpoint_host,
            port=target.endpoint_port,
            username=target.endpoint_username,
            password=target.endpoint_password,
            database=target.database,
            connect_timeout=2,
        )
    except Exception as exc:
        log.debug("no SQL endpoint at %s:%d: %s", target.endpoint_host, target.endpoint_port, exc)
        return None
    log.info(
        "reading through the running worker's SQL endpoint at %s:%d",
        target.endpoint_host,
        target.endpoint_port,
    )
    return client


def _uri_host(host: str) -> str:
    """``host`` as it goes in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _endpoint_store(target: ClickHouseTarget) -> str | None:
    """The data directory the SQL endpoint at the target's port serves (None: none)."""
    request = urllib.request.Request(
        f"http://{_uri_host(target.endpoint_host)}:{target.endpoint_port}/funnel/store",
        headers={
            "Authorization": "Basic "
            + base64.b64encode(
                f"{target.endpoint_username}:{target.endpoint_password}".encode()
            ).decode()
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return str(json.loads(response.read())["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _held_error(directory: Path) -> ClickHouseUnavailableError:
    return _HeldError(
        f"the embedded ClickHouse at {directory} is in use by another process (a running "
        "`funnel worker`?): one process at a time can open it, and no SQL endpoint of that "
        "worker answered (FUNNEL_SQL_PORT, FUNNEL_SQL_USER/FUNNEL_SQL_PASSWORD). Read it "
        "after the worker stops, or run the worker against a ClickHouse server "
        "(FUNNEL_CLICKHOUSE_DSN)"
    )


def _database_exists(admin: Any, database: str) -> bool:
    rows = admin.query(
        "SELECT count() FROM system.databases WHERE name = {name:String}",
        parameters={"name": database},
    ).result_rows
    return bool(rows[0][0])


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    statements: tuple[str, ...]


def split_statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]


def _no_migrations(directory: Traversable) -> MigrationError:
    if directory is MIGRATIONS_DIR:
        fix = (
            "the installed shop-funnel package lacks its package data sinks/migrations/*.sql: "
            "reinstall it from a checkout or wheel that includes them (pyproject.toml "
            '[tool.setuptools.package-data] sinks = ["migrations/*.sql"])'
        )
    else:
        fix = "pass the directory that holds the NNNN_name.sql files"
    return MigrationError(f"no ClickHouse migrations (*.sql) found in {directory}; {fix}")


def load_migrations(directory: Traversable = MIGRATIONS_DIR) -> list[Migration]:
    """Migrations in order (default: the packaged ones; tests may pass a directory).

    Fails on a bad name, a gap, a repeated number, or no migration at all.
    """
    entries = list(directory.iterdir()) if directory.is_dir() else []
    sql_files = sorted((p for p in entries if p.name.endswith(".sql")), key=lambda p: p.name)
    if not sql_files:
        raise _no_migrations(directory)
    migrations: list[Migration] = []
    for expected, path in enumerate(sql_files, start=1):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"migration file {path.name} must be named NNNN_lower_snake.sql "
                "(e.g. 0004_retention.sql)"
            )
        number = int(match.group(1))
        if number != expected:
            raise MigrationError(
                f"migration {path.name} has number {number}, expected {expected:04d}: "
                "numbers start at 0001 and have no gaps or repeats"
            )
        statements = tuple(split_statements(path.read_text(encoding="utf-8")))
        migrations.append(Migration(number, path.name.removesuffix(".sql"), statements))
    return migrations


def apply_migrations(
    client: Any, directory: Traversable = MIGRATIONS_DIR, cluster: str | None = None
) -> list[str]:
    """Apply pending migrations (default: the packaged ones); return the names applied now.

    ``cluster``: apply their cluster form (sinks/cluster_ddl.py: Replicated local tables
    and Distributed tables, ON CLUSTER), rendered before anything is applied.
    """
    from sinks.cluster_ddl import cluster_statements

    migrations = load_migrations(directory)  # before touching ClickHouse: fails on none
    if cluster:  # every statement has a cluster form, or nothing is applied
        migrations = [
            Migration(
                m.number,
                m.name,
                tuple(sql for s in m.statements for sql in cluster_statements(s, cluster)),
            )
            for m in migrations
        ]
    client.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations (number UInt32, name String, "
        "applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY number"
    )
    done = {row[0] for row in client.query("SELECT number FROM schema_migrations").result_rows}
    applied: list[str] = []
    for migration in migrations:
        if migration.number in done:
            continue
        for statement in migration.statements:
            try:
                client.command(statement)
            except Exception as exc:
                raise MigrationError(
                    f"migration {migration.name} failed: {str(exc).splitlines()[0][:300]}; "
                    "fix the SQL file (migrations must be idempotent: IF NOT EXISTS)"
                ) from exc
        try:
            client.insert(
                "schema_migrations",
                [[migration.number, migration.name]],
                column_names=["number", "name"],
            )
        except Exception as exc:
            raise MigrationError(
                f"migration {migration.name} applied but not recorded: "
                f"{str(exc).splitlines()[0][:300]}; re-run `funnel migrate` (it is idempotent)"
            ) from exc
        applied.append(migration.name)
    return applied


class WriterMetrics(Protocol):
    def observe_insert(self, table: str, rows: int, seconds: float) -> None: ...
    def insert_failed(self, table: str) -> None: ...
    def queue_rows(self, rows: int) -> None: ...
    def rows_rejected(self, table: str, rows: int) -> None: ...


class _NoMetrics:
    def observe_insert(self, table: str, rows: int, seconds: float) -> None:
        return None

    def insert_failed(self, table: str) -> None:
        return None

    def queue_rows(self, rows: int) -> None:
        return None

    def rows_rejected(self, table: str, rows: int) -> None:
        return None


# ClickHouse error codes that mean "this data can never go into this table" (retrying
# cannot help), as opposed to an outage, a full disk or too many parts (retrying can).
BAD_DATA_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        43,  # ILLEGAL_TYPE_OF_ARGUMENT
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        407,  # DECIMAL_OVERFLOW
    }
)
_CODE = re.compile(r"\bCode: (\d+)\b")


def is_bad_data(exc: BaseException) -> bool:
    """True when ``exc`` says the rows themselves cannot be stored (retrying never helps).

    Client-side serialisation errors (a value out of its column type's range, a wrong
    Python type) and the server's data errors are bad data; connection errors, full
    disks, memory limits and anything unknown are treated as an outage and retried.
    """
    if isinstance(exc, DataError | struct.error | TypeError | ValueError | OverflowError):
        return True
    if isinstance(exc, DatabaseError):
        match = _CODE.search(str(exc))
        return match is not None and int(match.group(1)) in BAD_DATA_CODES
    return False


@dataclass(frozen=True, slots=True)
class RejectedRowTarget:
    """Where rows ClickHouse refuses go: a table and how to build its row for one of them
    (``streams/outputs/dead_letters.py``; the writer itself knows no table)."""

    table: TableSpec
    build: Callable[[TableSpec, Sequence[Any], str], Sequence[Any]]


class _ShutDown(Exception):
    """The writer was told to give up: rows not written stay unwritten (not committed)."""


@dataclass(slots=True)
class _Queued:
    """One table's rows waiting for an insert: Python rows and encoded blocks."""

    spec: TableSpec
    rows: list[Sequence[Any]]
    encoded: list[EncodedRows]

    def __len__(self) -> int:
        return len(self.rows) + sum(map(len, self.encoded))


def split_encoded(
    blocks: Sequence[EncodedRows], at: int
) -> tuple[list[EncodedRows], list[EncodedRows]]:
    """The rows of ``blocks`` (in order) before row ``at`` and from it on."""
    first: list[EncodedRows] = []
    second: list[EncodedRows] = []
    for block in blocks:
        size = len(block)
        if at >= size:
            first.append(block)
        elif at <= 0:
            second.append(block)
        else:
            first.append(block.slice(0, at))
            second.append(block.slice(at, size))
        at -= size
    return first, second


def load_insert_libraries() -> None:
    """Import what clickhouse-connect's first insert would import, now.

    An insert context checks whether its data is a pandas DataFrame or a numpy array,
    and clickhouse-connect imports both the first time it looks (0.44 s of CPU here).
    In the writer's first insert that import held the GIL, so the event loop stalled
    with it; in the bench's simple workload it was 4.4% of the measured pass. (The
    attributes are clickhouse-connect's lazy ones; without them this does nothing.)
    """
    for name in ("pd", "np"):
        getattr(insert_options, name, None)


class ClickHouseWriter:
    """Batched, retrying, back-pressuring writer running in its own thread.

    A row ClickHouse refuses as bad data (:func:`is_bad_data`) is found by halving the
    batch, written to ``rejected_rows_to`` instead, and counted; the rest of the batch
    goes on. Any other failure is an outage: the rows are kept and retried with backoff,
    and submitters wait once the queue is full. :meth:`begin_shutdown` bounds how long a
    stopping worker keeps retrying: after the grace period the writer gives up, and
    :meth:`flush` raises, so no Kafka offset is committed past rows that were not written.

    When to insert adapts to the load. Queued rows are inserted once the oldest of them
    has waited :meth:`linger_seconds`: ``busy_ratio`` times a recent insert cycle's
    duration, within ``min_flush_seconds`` (at most ``flush_seconds``) and
    ``flush_seconds``. A lightly loaded writer
    (short cycles) inserts a few times a second and adds little latency; under load its
    cycles grow, so it waits longer and inserts bigger, fewer batches (each insert has a
    fixed cost: a part per table for chDB to write and merge), spending at most about
    ``1 / (1 + busy_ratio)`` of its time inserting until the wait reaches
    ``flush_seconds``. ``batch_rows`` queued rows, or :meth:`flush`, insert at once.

    While the worker's input is behind (:meth:`set_behind`: more records wait to be read
    than it processes in ``flush_seconds``), latency is the backlog's, not the writer's:
    the rows wait up to ``behind_flush_seconds`` (or until ``batch_rows`` are queued), and
    :meth:`settled`, the barrier the offset commits and the finalized rows wait on, no
    longer asks for an early insert. Small inserts while catching up cost chDB more per
    row (merges) than the latency they save (BENCHMARKS.md, "The core without the GIL").
    """

    # Weight of the newest cycle in the cycle-duration estimate (a moving average, so one
    # slow cycle, e.g. the one that writes a closed window's rows, does not alone double
    # the next wait).
    CYCLE_WEIGHT = 0.5

    def __init__(
        self,
        client_factory: Callable[[], InsertClient],
        *,
        batch_rows: int = 100_000,
        flush_seconds: float = 1.0,
        min_flush_seconds: float = 0.2,
        behind_flush_seconds: float = 5.0,
        busy_ratio: float = 1.0,
        max_queue_rows: int = 200_000,
        retry_max_seconds: float = 30.0,
        metrics: WriterMetrics | None = None,
        rejected_rows_to: RejectedRowTarget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if flush_seconds <= 0 or min_flush_seconds <= 0 or busy_ratio < 0:
            raise ValueError(
                f"need flush_seconds ({flush_seconds}) > 0, min_flush_seconds "
                f"({min_flush_seconds}) > 0 and busy_ratio ({busy_ratio}) >= 0"
            )
        self._client_factory = client_factory
        self._client: InsertClient | None = None
        # One insert context per table, reused: a fresh context per insert is a reference
        # cycle (it holds a bound method of itself) that keeps the inserted columns alive
        # until a full garbage collection.
        self._contexts: dict[str, Any] = {}
        self._batch_rows = batch_rows
        self._flush_seconds = flush_seconds
        self._min_flush_seconds = min(min_flush_seconds, flush_seconds)
        # Never shorter than the live wait (the settings refuse that, naming the field).
        self._behind_flush_seconds = max(behind_flush_seconds, flush_seconds)
        self._behind = False
        self._busy_ratio = busy_ratio
        self._clock = clock
        self._cycle_seconds = 0.0  # moving average of recent insert cycles
        self._oldest_at: float | None = None  # when the oldest queued row was submitted
        self._max_queue_rows = max_queue_rows
        self._retry_max = retry_max_seconds
        self._metrics: WriterMetrics = metrics or _NoMetrics()
        self._rejected_to = rejected_rows_to
        self._lock = threading.Condition()
        self._pending: dict[str, _Queued] = {}
        self._column_types: dict[str, list[tuple[str, str]]] = {}
        self._pending_rows = 0
        self._submitted = 0  # submissions accepted
        self._written = 0  # submissions fully written
        self._flush_wanted = False
        self._stopping = False
        self._give_up_at: float | None = None  # monotonic deadline set by begin_shutdown
        self._gave_up = False
        self._thread = threading.Thread(target=self._run, name="clickhouse-writer", daemon=True)
        self.last_error: str | None = None
        self.rejected_rows = 0

    def start(self) -> None:
        load_insert_libraries()
        self._thread.start()

    async def submit(self, table: TableSpec, rows: Sequence[Sequence[Any]] | EncodedRows) -> None:
        """Queue rows (Python rows, or a block the compiled core keeps encoded); waits
        (backpressure) while the queue is over its limit."""
        if not rows:
            return
        while self._pending_rows >= self._max_queue_rows and self._thread.is_alive():
            await asyncio.sleep(0.01)
        self._raise_if_gave_up()
        self.submit_nowait(table, rows)

    def submit_nowait(self, table: TableSpec, rows: Sequence[Sequence[Any]] | EncodedRows) -> None:
        with self._lock:
            queued = self._pending.get(table.name)
            if queued is None:
                queued = self._pending[table.name] = _Queued(table, [], [])
            if isinstance(rows, EncodedRows):
                queued.encoded.append(rows)
            else:
                queued.rows.extend(rows)
            self._pending_rows += len(rows)
            self._submitted += 1
            self._metrics.queue_rows(self._pending_rows)
            if self._oldest_at is None:  # the writer learns when these rows are due
                self._oldest_at = self._clock()
                self._lock.notify_all()
            elif self._pending_rows >= self._batch_rows:
                self._lock.notify_all()

    async def flush(self) -> None:
        """Return once every row submitted before this call is in ClickHouse."""
        with self._lock:
            target = self._submitted
            if self._written >= target:
                return
            self._flush_wanted = True
            self._lock.notify_all()
        await self._written_through(target, poll_seconds=0.005)

    def set_behind(self, behind: bool) -> None:
        """Tell the writer whether the worker's input is behind (see the class). Once a
        shutdown began, it stays at the live pace: the rows should be out in the grace
        period, not wait for a bigger insert."""
        with self._lock:
            behind = behind and self._give_up_at is None
            if behind != self._behind:
                self._behind = behind
                self._lock.notify_all()  # the wait for the queued rows changes now

    @property
    def behind(self) -> bool:
        return self._behind

    @property
    def flush_seconds(self) -> float:
        return self._flush_seconds

    async def settled(self) -> None:
        """Return once every row submitted before this call is in ClickHouse: an early
        insert (:meth:`flush`) while the input keeps up, the writer's own pace
        (:meth:`wait_written`) while it is behind."""
        if self._behind:
            await self.wait_written()
        else:
            await self.flush()

    async def wait_written(self) -> None:
        """Like :meth:`flush`, without asking for an early insert: returns once every row
        submitted before this call is in ClickHouse at the writer's own pace (so waiting
        often does not make inserts smaller)."""
        with self._lock:
            target = self._submitted
        await self._written_through(target, poll_seconds=0.01)

    async def _written_through(self, target: int, poll_seconds: float) -> None:
        while True:
            with self._lock:
                if self._written >= target:
                    return
                self._raise_if_gave_up()
                if not self._thread.is_alive():
                    raise ClickHouseUnavailableError("the ClickHouse writer thread has stopped")
            await asyncio.sleep(poll_seconds)

    def _raise_if_gave_up(self) -> None:
        if self._gave_up:
            raise ClickHouseUnavailableError(
                "the ClickHouse writer gave up at shutdown with rows not written "
                f"({self.last_error}); their offsets are not committed, so a restarted "
                "worker reads them again"
            )

    def flush_blocking(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self._submitted
            self._flush_wanted = True
            self._lock.notify_all()
            while self._written < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._lock.wait(min(remaining, 0.05))
        return True

    def begin_shutdown(self, grace_seconds: float) -> None:
        """Keep writing (and retrying) for at most ``grace_seconds`` more, then give up."""
        with self._lock:
            deadline = time.monotonic() + grace_seconds
            if self._give_up_at is None or deadline < self._give_up_at:
                self._give_up_at = deadline
            self._behind = False  # the live pace: what is queued goes out now
            self._lock.notify_all()

    def stop(self, timeout: float = 60.0) -> None:
        """Write what is queued (retrying for at most ``timeout``), then end the thread."""
        self.begin_shutdown(timeout)
        if self._thread.is_alive():
            self.flush_blocking(timeout + 1.0)
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._thread.join(timeout + 1.0)
        if self._gave_up:
            log.error(
                "stopped with rows not written to ClickHouse (%s); their Kafka offsets were "
                "not committed, so the next worker reads them again",
                self.last_error,
            )

    def linger_seconds(self) -> float:
        """How long the oldest queued row waits before an insert starts (see the class)."""
        if self._behind:
            return self._behind_flush_seconds
        wanted = self._busy_ratio * self._cycle_seconds
        return min(self._flush_seconds, max(self._min_flush_seconds, wanted))

    def insert_due_at(self) -> float | None:
        """When (on ``clock``) the queued rows are inserted, unless ``batch_rows`` of them
        or a :meth:`flush` insert them sooner; ``None`` when nothing is queued."""
        with self._lock:
            if self._oldest_at is None:
                return None
            return self._oldest_at + self.linger_seconds()

    def _take_batch(self) -> tuple[list[_Queued], int] | None:
        with self._lock:
            while not self._stopping:
                if self._pending_rows >= self._batch_rows or self._flush_wanted:
                    break
                if self._oldest_at is None:
                    self._lock.wait(self._flush_seconds)  # a submission wakes it sooner
                    continue
                remaining = self._oldest_at + self.linger_seconds() - self._clock()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
            if self._stopping and not self._pending:
                return None
            batch = list(self._pending.values())
            self._pending = {}
            self._oldest_at = None
            target = self._submitted
            self._flush_wanted = False
            return batch, target

    def _run(self) -> None:
        try:
            while True:
                taken = self._take_batch()
                if taken is None:
                    return
                batch, target = taken
                started = self._clock()
                for queued in batch:
                    if queued.rows:
                        self._write(queued.spec, queued.rows)
                    if queued.encoded:
                        self._write_encoded(queued.spec, queued.encoded)
                    with self._lock:
                        self._pending_rows -= len(queued)
                        self._metrics.queue_rows(self._pending_rows)
                with self._lock:
                    self._written = max(self._written, target)
                    if batch:
                        seconds = self._clock() - started
                        self._cycle_seconds += self.CYCLE_WEIGHT * (seconds - self._cycle_seconds)
                    self._lock.notify_all()
        except _ShutDown:
            with self._lock:
                self._gave_up = True
                self._lock.notify_all()

    def _write(self, spec: TableSpec, rows: list[Sequence[Any]]) -> None:
        """Insert ``rows``; a bad row is dead-lettered, the others still written."""
        error = self._insert_with_retry(spec, len(rows), lambda: self._insert(spec, rows))
        if error is None:
            return
        if len(rows) > 1:
            middle = len(rows) // 2
            self._write(spec, rows[:middle])
            self._write(spec, rows[middle:])
            return
        self._reject(spec, rows[0], error)

    def _write_encoded(self, spec: TableSpec, blocks: list[EncodedRows]) -> None:
        """``_write`` for encoded blocks: one Native insert, halved like rows."""
        count = sum(map(len, blocks))
        error = self._insert_with_retry(spec, count, lambda: self._insert_encoded(spec, blocks))
        if error is None:
            return
        if count > 1:
            first, second = split_encoded(blocks, count // 2)
            self._write_encoded(spec, first)
            self._write_encoded(spec, second)
            return
        (block,) = (b for b in blocks if len(b))
        self._reject(spec, block.row(0), error)

    def _reject(self, spec: TableSpec, row: Sequence[Any], error: str) -> None:
        self.rejected_rows += 1
        self._metrics.rows_rejected(spec.name, 1)
        log.error("ClickHouse rejected a row for %s (%s): dead-lettered", spec.name, error)
        target = self._rejected_to
        if target is None or spec is target.table:
            log.error("rejected row of %s not kept anywhere: %r", spec.name, row)
            return
        dead_letter = [target.build(spec, row, error)]
        failed = self._insert_with_retry(
            target.table, 1, lambda: self._insert(target.table, dead_letter)
        )
        if failed is not None:
            log.error(
                "the dead letter for a rejected %s row was refused too: %s", spec.name, failed
            )

    def _insert_with_retry(
        self, spec: TableSpec, count: int, insert: Callable[[], None]
    ) -> str | None:
        """``insert()`` (``count`` rows), retrying outages; return the error if ClickHouse
        refuses the data."""
        delay = 0.1
        while True:
            started = time.perf_counter()
            try:
                insert()
            except Exception as exc:
                self.last_error = _first_line(exc)
                self._metrics.insert_failed(spec.name)
                if is_bad_data(exc):
                    return self.last_error
                log.warning(
                    "ClickHouse insert into %s failed (%s); retrying in %.1fs, %d rows kept",
                    spec.name,
                    self.last_error,
                    delay,
                    count,
                )
                self._sleep_or_give_up(delay, spec, count)
                delay = min(delay * 2, self._retry_max)
                continue
            self.last_error = None
            self._metrics.observe_insert(spec.name, count, time.perf_counter() - started)
            return None

    def _context(self, spec: TableSpec) -> tuple[InsertClient, Any]:
        if self._client is None:
            self._client = self._client_factory()
        context = self._contexts.get(spec.name)
        if context is None:
            context = self._client.create_insert_context(
                spec.name, list(spec.columns), column_oriented=True, settings=INSERT_SETTINGS
            )
            self._contexts[spec.name] = context
        return self._client, context

    def _insert(self, spec: TableSpec, rows: list[Sequence[Any]]) -> None:
        columns = [list(col) for col in zip(*rows, strict=True)]
        client, context = self._context(spec)
        context.data = None  # empty it: an insert context takes new data only when empty
        try:
            client.insert(context=context, data=columns)
        except Exception:
            # A context left by a failed insert is not trusted again; the next is fresh.
            del self._contexts[spec.name]
            raise
        finally:
            context.data = None

    def _insert_encoded(self, spec: TableSpec, blocks: list[EncodedRows]) -> None:
        """One Native insert of ``blocks``, as one Native block, encoded for the table's
        column types as ClickHouse reports them (the insert context's DESCRIBE, read once
        per table). ``LowCardinality`` columns are sent as their inner type, which
        ClickHouse converts (``input_format_native_allow_types_conversion``, on by
        default)."""
        client, context = self._context(spec)
        columns = self._column_types.get(spec.name)
        if columns is None:
            columns = [
                (name, column_type.name)
                for name, column_type in zip(
                    context.column_names, context.column_types, strict=True
                )
            ]
            self._column_types[spec.name] = columns
        payload = type(blocks[0]).native(blocks, columns) if blocks else memoryview(b"")
        if not payload:
            return
        try:
            client.raw_insert(
                spec.name, list(spec.columns), payload, fmt="Native", settings=INSERT_SETTINGS
            )
        except Exception:
            # As in _insert: the table may have changed; its types are read again.
            self._contexts.pop(spec.name, None)
            self._column_types.pop(spec.name, None)
            raise

    def _sleep_or_give_up(self, delay: float, spec: TableSpec, rows: int) -> None:
        with self._lock:
            wake = time.monotonic() + delay
            while True:
                now = time.monotonic()
                if self._give_up_at is not None and now >= self._give_up_at:
                    log.error(
                        "shutting down: giving up on %d rows for %s (%s)",
                        rows,
                        spec.name,
                        self.last_error,
                    )
                    raise _ShutDown
                if now >= wake:
                    return
                limit = wake if self._give_up_at is None else min(wake, self._give_up_at)
                self._lock.wait(max(0.0, limit - now))


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:300] if text.strip() else type(exc).__name__


def open_rows(
    client: Any,
    table: TableSpec,
    key_columns: Sequence[str],
    value_columns: Sequence[str],
    partition: int,
) -> list[tuple[Any, ...]]:
    """Key columns of the rows whose newest version is non-final and non-zero."""
    nonzero = " OR ".join(f"{column} != 0" for column in value_columns)
    sql = (
        f"SELECT {', '.join(key_columns)} FROM {table.name} FINAL "
        f"WHERE partition = {{partition:UInt16}} AND is_final = 0 AND ({nonzero})"
    )
    return [
        tuple(row) for row in client.query(sql, parameters={"partition": partition}).result_rows
    ]
