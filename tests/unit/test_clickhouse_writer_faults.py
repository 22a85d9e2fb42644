"""The writer under faults: rows ClickHouse refuses, garbage per insert, bounded shutdown.

The real-engine tests use the embedded ClickHouse (``chdb://memory``) with the project's
own migrations, so the column types are the production ones.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from sinks.clickhouse import ClickHouseWriter, apply_migrations, is_bad_data
from sinks.errors import ClickHouseUnavailableError
from sinks.tables import TableSpec
from streams.outputs.dead_letters import REJECTED_REASON, REJECTED_ROWS
from streams.outputs.kpi import TABLE as KPI_MINUTE
from tests.unit.test_clickhouse_writer import FakeClient, FakeContext

T = TableSpec("t", ("k", "v", "partition"))
POISON = 2**63  # does not fit Int64


class PoisonClient(FakeClient):
    """Refuses (as bad data) every insert containing POISON, like the real client does."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    def insert(self, *, context: FakeContext, data: Sequence[Sequence[Any]]) -> None:
        if any(value == POISON for column in data for value in column):
            self.refused += 1
            raise DataError("Unable to create native array for column `v`: error")
        super().insert(context=context, data=data)


class Counted:
    def __init__(self) -> None:
        self.rejected: dict[str, int] = {}

    def observe_insert(self, table: str, rows: int, seconds: float) -> None:
        return None

    def insert_failed(self, table: str) -> None:
        return None

    def queue_rows(self, rows: int) -> None:
        return None

    def rows_rejected(self, table: str, rows: int) -> None:
        self.rejected[table] = self.rejected.get(table, 0) + rows


@pytest.mark.parametrize("bad_positions", [[0], [499], [3, 250, 777], list(range(0, 1000, 97))])
def test_a_refused_row_is_dead_lettered_and_the_rest_of_the_batch_is_written(
    bad_positions: list[int],
) -> None:
    client = PoisonClient()
    metrics = Counted()
    writer = ClickHouseWriter(
        lambda: client,
        retry_max_seconds=0.05,
        flush_seconds=30,
        metrics=metrics,
        rejected_rows_to=REJECTED_ROWS,
    )
    writer.start()
    rows = [(f"k{i}", POISON if i in bad_positions else i, 3) for i in range(1000)]
    writer.submit_nowait(T, rows)
    asyncio.run(asyncio.wait_for(writer.flush(), 30))
    good = [row for row in rows if row[1] != POISON]
    assert sorted(client.rows["t"]) == sorted(good)
    letters = client.rows["dead_letters"]
    assert len(letters) == len(bad_positions)
    for letter in letters:
        source_topic, partition, _offset, _key, raw, reason, detail, _at = letter
        assert (source_topic, partition, reason) == ("clickhouse.t", 3, REJECTED_REASON)
        assert json.loads(raw)["v"] == POISON  # the row, with its column names
        assert "table t" in detail and "Unable to create native array" in detail
    assert metrics.rejected == {"t": len(bad_positions)}
    assert writer.rejected_rows == len(bad_positions)
    # The writer keeps going: later rows are written normally.
    writer.submit_nowait(T, [("after", 1, 0)])
    asyncio.run(asyncio.wait_for(writer.flush(), 30))
    assert client.rows["t"][-1] == ("after", 1, 0)
    writer.stop()


def test_the_same_refused_row_gets_the_same_dead_letter_key() -> None:
    client = PoisonClient()
    writer = ClickHouseWriter(lambda: client, flush_seconds=30, rejected_rows_to=REJECTED_ROWS)
    writer.start()
    writer.submit_nowait(T, [("x", POISON, 1)])
    asyncio.run(writer.flush())
    writer.submit_nowait(T, [("x", POISON, 1)])  # replayed after a restart
    asyncio.run(writer.flush())
    writer.stop()
    first, second = client.rows["dead_letters"]
    assert first[:3] == second[:3], "(topic, partition, offset) is the ReplacingMergeTree key"


@pytest.mark.parametrize(
    ("exc", "bad"),
    [
        (DataError("Unable to create native array for column `gmv_minor`"), True),
        (OverflowError("int too big to convert"), True),
        (DatabaseError("Code: 53. DB::Exception: Type mismatch in IN or VALUES section"), True),
        (DatabaseError("Code: 321. DB::Exception: Value is out of range of data type"), True),
        (
            DatabaseError("Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space"),
            False,
        ),
        (DatabaseError("Code: 252. DB::Exception: Too many parts (300)"), False),
        (DatabaseError("Code: 241. DB::Exception: Memory limit (total) exceeded"), False),
        (OperationalError("Error HTTPConnectionPool: connection refused"), False),
        (ConnectionError("ClickHouse is down"), False),
        (RuntimeError("anything unknown"), False),
    ],
)
def test_bad_data_is_told_apart_from_an_outage(exc: Exception, bad: bool) -> None:
    assert is_bad_data(exc) is bad


@pytest.fixture
def embedded() -> Iterator[Any]:
    database = f"writer_{uuid.uuid4().hex[:8]}"
    admin = clickhouse_connect.get_client(dsn="chdb://memory")
    admin.command(f"CREATE DATABASE {database}")
    client = clickhouse_connect.get_client(dsn="chdb://memory", database=database)
    apply_migrations(client)
    yield client
    admin.command(f"DROP DATABASE {database}")
    # chDB serves one data path per process: close ours so later tests can open theirs.
    client.close()
    admin.close()


def _kpi_row(window_start: int, gmv: int, version: int) -> tuple[Any, ...]:
    values = {column: 0 for column in KPI_MINUTE.columns}
    values.update(
        window_start=window_start,
        channel="paid_search",
        campaign="",
        device="desktop",
        platform="web",
        country="DE",
        currency="EUR",
        gmv_minor=gmv,
        orders=1,
        partition=0,
        is_final=0,
        version=version,
    )
    return tuple(values[column] for column in KPI_MINUTE.columns)


def test_real_engine_refuses_an_overflowing_sum_and_the_batch_goes_on(embedded: Any) -> None:
    """The wedge of the drills: a gmv_minor beyond Int64 retried forever. Now it is a
    dead letter, and the good rows of the same batch are in ClickHouse."""
    writer = ClickHouseWriter(
        lambda: embedded, flush_seconds=30, retry_max_seconds=0.05, rejected_rows_to=REJECTED_ROWS
    )
    writer.start()
    minute = 1_764_000_000  # window_start is DateTime: seconds
    rows = [_kpi_row(minute + 60 * i, 100 + i, 1) for i in range(50)]
    rows.insert(17, _kpi_row(minute - 60, 2 * 6 * 10**18, 1))  # two 6e18 orders summed
    writer.submit_nowait(KPI_MINUTE, rows)
    asyncio.run(asyncio.wait_for(writer.flush(), 60))
    writer.stop()
    stored = embedded.query("SELECT count(), sum(gmv_minor) FROM kpi_minute").result_rows[0]
    assert stored == (50, sum(100 + i for i in range(50)))
    letters = embedded.query(
        "SELECT source_topic, reason, raw FROM dead_letters WHERE reason = {r:String}",
        parameters={"r": REJECTED_REASON},
    ).result_rows
    assert len(letters) == 1
    assert letters[0][0] == "clickhouse.kpi_minute"
    assert json.loads(letters[0][2])["gmv_minor"] == 12 * 10**18


def _garbage_after_inserts(client: Any, inserts: int) -> list[Any]:
    writer = ClickHouseWriter(lambda: client, flush_seconds=30)
    writer.start()
    minute = 1_764_000_000  # window_start is DateTime: seconds
    writer.submit_nowait(KPI_MINUTE, [_kpi_row(minute, 1, 1)])  # warm up: contexts exist
    asyncio.run(writer.flush())
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for i in range(inserts):
            writer.submit_nowait(KPI_MINUTE, [_kpi_row(minute + j, i, i) for j in range(200)])
            asyncio.run(writer.flush())
        gc.collect()
        garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        writer.stop()
    return garbage


def test_inserts_leave_no_garbage_cycles_behind(embedded: Any) -> None:
    """A fresh clickhouse-connect InsertContext per insert is a reference cycle holding the
    inserted columns; with the worker's GC tuning such cycles were never collected (the
    old writer leaves one InsertContext, its columns and its lists per insert)."""

    def contexts(garbage: list[Any]) -> int:
        return sum(type(obj).__name__ == "InsertContext" for obj in garbage)

    few = _garbage_after_inserts(embedded, 40)
    many = _garbage_after_inserts(embedded, 120)
    kinds = sorted({type(obj).__name__ for obj in many})
    assert contexts(many) <= 1, (contexts(few), contexts(many), kinds)
    # Whatever else is cyclic (asyncio.run's loop plumbing) must not grow with inserts.
    assert len(many) <= len(few) + 50, (len(few), len(many), kinds)


def test_shutdown_gives_up_within_the_grace_period_while_clickhouse_is_down() -> None:
    client = FakeClient()
    client.down.set()
    writer = ClickHouseWriter(lambda: client, flush_seconds=0.01, retry_max_seconds=30.0)
    writer.start()
    writer.submit_nowait(T, [("a", 1, 0)])

    async def flush_then_shutdown() -> BaseException | None:
        task = asyncio.create_task(writer.flush())
        await asyncio.sleep(0.3)
        assert not task.done(), "flush waits while ClickHouse is down"
        writer.begin_shutdown(0.5)
        try:
            await asyncio.wait_for(task, 20)
        except ClickHouseUnavailableError as exc:
            return exc
        return None

    error = asyncio.run(flush_then_shutdown())
    assert error is not None and "offsets are not committed" in str(error)
    done = threading.Event()
    threading.Thread(target=lambda: (writer.stop(0.5), done.set()), daemon=True).start()
    assert done.wait(20), "stop() must return while ClickHouse is still down"
    assert "t" not in client.rows


def test_stop_waits_for_a_short_outage_within_its_grace() -> None:
    client = FakeClient()
    client.down.set()
    writer = ClickHouseWriter(lambda: client, flush_seconds=0.01, retry_max_seconds=0.05)
    writer.start()
    writer.submit_nowait(T, [("a", 1, 0)])
    threading.Timer(0.3, client.down.clear).start()
    started = time.monotonic()
    writer.stop(30)
    assert client.rows["t"] == [("a", 1, 0)]
    assert time.monotonic() - started < 30


_FIRST_INSERT = """
import asyncio, sys
import clickhouse_connect
from sinks.clickhouse import ClickHouseWriter
from sinks.tables import TableSpec

client = clickhouse_connect.get_client(dsn="chdb://memory")
client.command("CREATE TABLE t (k Int64, v String) ENGINE = MergeTree ORDER BY k")
writer = ClickHouseWriter(lambda: client, flush_seconds=30)
writer.start()
before = set(sys.modules)
writer.submit_nowait(TableSpec("t", ("k", "v")), [(1, "a"), (2, "b")])
asyncio.run(writer.flush())
writer.stop()
print(client.command("SELECT count() FROM t"))
print(" ".join(sorted(m for m in set(sys.modules) - before if "." not in m)))
"""


def test_the_first_insert_imports_nothing_the_writer_could_load_at_start() -> None:
    """clickhouse-connect imports pandas and numpy at its first insert (0.44 s of CPU,
    holding the GIL); the writer loads them at start-up, so no insert stalls on it."""
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_INSERT], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "2"
    imported_by_the_insert = set(out[1].split())
    assert not imported_by_the_insert & {"pandas", "numpy"}, imported_by_the_insert
