"""The compiled core's rows reach ClickHouse as a Native block (native/src/native_block.rs)
or as RowBinary (native/src/row_binary.rs), through streams/compiled/rows.py and the
writer's encoded path in sinks/clickhouse.py, and they are the same rows the Python
core's row builders make.

The oracle is ClickHouse itself: the Python core's rows are inserted through
clickhouse-connect's own insert into one database, the compiled core's blocks through the
writer's Native insert into another (and as RowBinary into a third), all with the
production column types (the migrations), and every stored row of every table must be
equal. The tables are plain MergeTree copies so that no row is merged away before it is
compared.
"""

from __future__ import annotations

import functools
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import clickhouse_connect
import orjson
import pytest
import shopfunnel_core

from simulator.config import SimConfig
from simulator.generate import generate
from sinks.clickhouse import ClickHouseWriter, apply_migrations, split_encoded
from sinks.tables import EncodedRows, TableSpec
from streams.attribution import AttributionRules
from streams.batch import BatchResult
from streams.compiled.rows import CompiledRows
from streams.funnels import load_funnels
from streams.lifecycle import DAY_MS
from streams.outputs import ALL_TABLES, late_events
from streams.outputs import dead_letters as dead_letters_family
from streams.records import Record as InputRecord
from streams.visitor import Rules
from tests.native.test_lifecycle_rows import SHORT
from tests.native.twin import TwinProcessor
from tests.unit.test_core_vs_truth import MIXED_FUNNELS, TOPICS, PartitionRun, Sink

SCHEMA = "row_binary_schema"

# Every table the compiled core writes; the scenario must give each of them rows.
CORE_TABLES = {
    "events_raw",
    "late_events",
    "dead_letters",
    "funnel_steps_minute",
    "funnel_outcomes_minute",
    "funnel_ttc_minute",
    "funnel_attempts",
    "kpi_minute",
    "order_attribution",
    "retention_cohorts",
    "order_gaps_daily",
    "user_rfm",
    "segment_transitions",
    "triggers",
}


@pytest.fixture(scope="module")
def chdb() -> Iterator[Any]:
    """An in-memory chDB with the production schema in ``SCHEMA`` (closed after the
    module: chDB serves one data path per process)."""
    admin = clickhouse_connect.get_client(dsn="chdb://memory")
    admin.command(f"DROP DATABASE IF EXISTS {SCHEMA}")
    admin.command(f"CREATE DATABASE {SCHEMA}")
    apply_migrations(clickhouse_connect.get_client(dsn="chdb://memory", database=SCHEMA))
    yield admin
    admin.close()


def _copy_of_schema(admin: Any, database: str) -> Any:
    """``database`` with every table of the schema, same columns, as plain MergeTree."""
    admin.command(f"DROP DATABASE IF EXISTS {database}")
    admin.command(f"CREATE DATABASE {database}")
    for spec in ALL_TABLES:
        described = admin.query(f"DESCRIBE TABLE {SCHEMA}.{spec.name}").result_rows
        columns = ", ".join(f"`{row[0]}` {row[1]}" for row in described)
        admin.command(
            f"CREATE TABLE {database}.{spec.name} ({columns}) ENGINE = MergeTree ORDER BY tuple()"
        )
    return clickhouse_connect.get_client(dsn="chdb://memory", database=database)


def _stored(client: Any, table: str) -> list[Any]:
    rows = client.query(f"SELECT * FROM {table}").result_rows
    return sorted(repr(r) for r in rows)


class _Recording(TwinProcessor):
    """The twin, keeping each call's results before the compiled rows are decoded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.python_rows: list[BatchResult] = []
        self.blocks: list[BatchResult] = []

    def _compare(self, call: str, python: BatchResult, compiled: BatchResult) -> BatchResult:
        self.python_rows.append(BatchResult(rows=dict(python.rows)))
        self.blocks.append(BatchResult(encoded_rows=dict(compiled.encoded_rows)))
        return super()._compare(call, python, compiled)


class _RecordingRun(PartitionRun):
    def _fresh(self) -> _Recording:  # type: ignore[override]
        return _Recording(self.partition, self.rules, self.codec, self.channels, TOPICS, self.store)


@functools.cache
def _scenario() -> tuple[list[BatchResult], list[BatchResult]]:
    """Both cores over two weeks of traffic with short lifecycle rules (so every table
    gets rows), in random batches with ticks: (Python results, compiled results)."""
    config = SimConfig(
        seed=11,
        users=150,
        days=14,
        partitions=1,
        duplicate_pct=2,
        late_pct=3,
        malformed_pct=2,
        json_pct=10,
    )
    inputs: dict[str, list[InputRecord]] = defaultdict(list)
    for rec in generate(config):
        queue = inputs[rec.stream]
        queue.append(InputRecord(len(queue), rec.key, rec.value, rec.send_time_ms))
    rules = Rules(
        load_funnels(MIXED_FUNNELS),
        lifecycle=SHORT,
        attribution=AttributionRules(lookback_ms=DAY_MS),
    )
    run = _RecordingRun(0, rules, Sink())
    rnd = random.Random(4)
    position = dict.fromkeys(TOPICS, 0)
    while any(position[s] < len(inputs[s]) for s in TOPICS):
        stream = rnd.choice([s for s in TOPICS if position[s] < len(inputs[s])])
        chunk = inputs[stream][position[stream] : position[stream] + rnd.randint(1, 600)]
        position[stream] += len(chunk)
        run.keep(run.proc.process(stream, chunk))
        if rnd.random() < 0.2:
            run.keep(run.proc.tick({s: position[s] for s in TOPICS}))
    run.keep(run.proc.tick({s: len(q) for s, q in inputs.items()}, finished=True))
    proc = run.proc
    assert isinstance(proc, _Recording)
    return proc.python_rows, proc.blocks


def _write_all(client: Any, results: list[BatchResult]) -> None:
    writer = ClickHouseWriter(lambda: client, batch_rows=20_000)
    writer.start()
    for result in results:
        for spec, rows in result.rows.items():
            writer.submit_nowait(spec, rows)
        for spec, encoded in result.encoded_rows.items():
            writer.submit_nowait(spec, encoded)
    writer.stop()
    assert writer.rejected_rows == 0, writer.last_error


def test_every_row_the_compiled_core_inserts_equals_the_python_cores_row(chdb: Any) -> None:
    python, compiled = _scenario()
    assert all(not r.encoded_rows for r in python) and all(not r.rows for r in compiled)
    made = {spec.name for r in compiled for spec in r.encoded_rows}
    assert made == CORE_TABLES, f"tables without rows: {CORE_TABLES - made}"
    native = _copy_of_schema(chdb, "row_binary_native")
    row_binary = _copy_of_schema(chdb, "row_binary_rows")
    _write_all(native, python)
    _write_all(row_binary, compiled)
    for table in sorted(CORE_TABLES):
        want = _stored(native, table)
        got = _stored(row_binary, table)
        assert len(got) == len(want), f"{table}: {len(got)} rows, want {len(want)}"
        assert got == want, f"{table}: stored rows differ"


def test_row_binary_stores_the_rows_the_native_blocks_store(chdb: Any) -> None:
    """Both encoders, each block inserted on its own in its format: the same stored rows."""
    _, compiled = _scenario()
    by_format = {
        fmt: _copy_of_schema(chdb, f"encoded_{fmt.lower()}") for fmt in ("Native", "RowBinary")
    }
    for result in compiled:
        for spec, rows in result.encoded_rows.items():
            columns = [
                (name, kind)
                for name, kind, *_ in chdb.query(f"DESCRIBE TABLE {SCHEMA}.{spec.name}").result_rows
            ]
            names = [name for name, _ in columns]
            payloads = {
                "Native": CompiledRows.native([rows], columns),
                "RowBinary": rows.row_binary(columns),
            }
            for fmt, client in by_format.items():
                client.raw_insert(spec.name, names, payloads[fmt], fmt=fmt)
    for table in sorted(CORE_TABLES):
        native = _stored(by_format["Native"], table)
        assert native, f"{table}: no rows"
        assert native == _stored(by_format["RowBinary"], table), f"{table}: stored rows differ"


def test_an_insert_is_one_native_block_and_empty_slices_add_nothing(chdb: Any) -> None:
    """A Native stream ends at an empty block, so a slice without rows must give nothing
    (the writer's halving makes such slices); the blocks of one insert are one block."""
    block = _block("late_events", _late_rows(3))
    columns = [
        (name, kind)
        for name, kind, *_ in chdb.query(f"DESCRIBE TABLE {SCHEMA}.late_events").result_rows
    ]
    assert CompiledRows.native([block.slice(1, 1)], columns) == b""
    assert CompiledRows.native([block.slice(0, 1), block.slice(2, 2)], columns) != b""
    # Many blocks of an insert make one Native block (the engine pays per block).
    parts = [block.slice(0, 1), block.slice(1, 1), block.slice(1, 3)]
    assert CompiledRows.native(parts, columns) == CompiledRows.native([block], columns)
    client = _copy_of_schema(chdb, "empty_slices")
    writer = ClickHouseWriter(lambda: client, batch_rows=20_000)
    writer.start()
    spec = next(s for s in ALL_TABLES if s.name == "late_events")
    for part in (block.slice(0, 0), block.slice(0, 2), block.slice(2, 2), block.slice(2, 3)):
        writer.submit_nowait(spec, part)
    writer.stop()
    assert writer.rejected_rows == 0, writer.last_error
    assert len(_stored(client, "late_events")) == 3


def test_event_rows_encode_from_their_fields_as_they_do_from_their_json(chdb: Any) -> None:
    """``events_raw`` rows are encoded from the typed row's fields (``RowCells``), not
    through a JSON tree per row; every payload must be byte for byte what the same rows
    give through their JSON, for the production column types, and a value that does not
    fit must still name its column. (That the cells are the right values in the right
    order is the stored-rows test's: it compares them with the Python core's rows.)"""
    _, compiled = _scenario()
    columns = [
        (name, kind)
        for name, kind, *_ in chdb.query(f"DESCRIBE TABLE {SCHEMA}.events_raw").result_rows
    ]
    blocks = [
        rows._block
        for result in compiled
        for spec, rows in result.encoded_rows.items()
        if spec.name == "events_raw" and isinstance(rows, CompiledRows)
    ]
    raw = [row for block in blocks for row in block.rows()]
    # The scenario has the shapes the encoder must get right: no user, items, experiments,
    # properties, amounts present and absent, late (version 0) rows.
    index = {name: i for i, (name, _) in enumerate(columns)}
    assert any(r[index["user_id"]] is None for r in raw)
    assert any(r[index["user_id"]] is not None for r in raw)
    assert any(len(r[index["item_ids"]]) > 1 for r in raw)
    assert any(r[index["experiments"]] for r in raw)
    assert any(r[index["value_minor"]] is None for r in raw)
    assert any(r[index["value_minor"]] is not None for r in raw)
    assert {r[index["version"]] for r in raw} == {0, 1}
    for block in blocks:
        as_json = shopfunnel_core.RowBlock("events_raw", orjson.dumps(block.rows()))
        for encode in (shopfunnel_core.row_binary, shopfunnel_core.native_block):
            assert bytes(encode([block], columns)) == bytes(encode([as_json], columns))
    wrong = [(name, "UInt8" if name == "event_type" else kind) for name, kind in columns]
    for encode in (shopfunnel_core.row_binary, shopfunnel_core.native_block):
        with pytest.raises(
            ValueError, match="row 0: column event_type: expected an integer, got a string"
        ):
            encode(blocks[:1], wrong)


def test_a_payload_keeps_its_bytes_while_its_table_is_encoded_again(chdb: Any) -> None:
    """The encoder reuses a table's buffers (native_block.rs ``Spare``): a payload's view
    must keep its bytes while the next block of that table is encoded, and a reused
    buffer must give the bytes a fresh one gives."""
    columns = [
        (name, kind)
        for name, kind, *_ in chdb.query(f"DESCRIBE TABLE {SCHEMA}.late_events").result_rows
    ]
    big, small = _block("late_events", _late_rows(40)), _block("late_events", _late_rows(2))
    first = CompiledRows.native([big], columns)
    assert first.readonly and first.c_contiguous and first.format == "B"
    kept = bytes(first)
    other = CompiledRows.native([small], columns)  # while ``first`` is alive
    assert bytes(first) == kept and bytes(other) != kept
    with pytest.raises(TypeError):
        first[0] = 0  # type: ignore[index]
    del first, other  # the buffers go back to the table's spare
    assert bytes(CompiledRows.native([small], columns)) == bytes(
        CompiledRows.native([small.slice(0, 2)], columns)
    )
    assert bytes(CompiledRows.native([big], columns)) == kept


def _late_rows(n: int) -> list[list[Any]]:
    return [
        [f"e{i}", "page_view", 1_700_000_000_000 + i, 1_700_000_100_000, "late", "a", "s",
         "direct", "clickstream", 0, i, 1_700_000_200_000]
        for i in range(n)
    ]  # fmt: skip


def _block(table: str, rows: list[list[Any]]) -> CompiledRows:
    return CompiledRows(shopfunnel_core.RowBlock(table, orjson.dumps(rows)))


def test_a_value_that_does_not_fit_dead_letters_its_row_and_the_rest_are_written(
    chdb: Any,
) -> None:
    client = _copy_of_schema(chdb, "row_binary_bad")
    rows = _late_rows(40)
    rows[23][9] = 70_000  # source_partition is UInt16
    writer = ClickHouseWriter(lambda: client, rejected_rows_to=dead_letters_family.REJECTED_ROWS)
    writer.start()
    block = _block(late_events.TABLE.name, rows)
    writer.submit_nowait(late_events.TABLE, block.slice(0, 30))
    writer.submit_nowait(late_events.TABLE, block.slice(30, 40))
    writer.stop()
    assert writer.rejected_rows == 1
    stored = client.query("SELECT source_offset FROM late_events").result_rows
    assert sorted(r[0] for r in stored) == [i for i in range(40) if i != 23]
    (letter,) = client.query("SELECT reason, detail, raw FROM dead_letters").result_rows
    assert "source_partition" in letter[1] and "UInt16" in letter[1], letter
    assert "e23" in letter[2]


class _Flaky:
    """The client, with its first ``failures`` RowBinary inserts failing as an outage."""

    def __init__(self, client: Any, failures: int) -> None:
        self._client = client
        self.failures = failures

    def create_insert_context(self, *args: Any, **kwargs: Any) -> Any:
        return self._client.create_insert_context(*args, **kwargs)

    def insert(self, **kwargs: Any) -> Any:
        return self._client.insert(**kwargs)

    def raw_insert(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("connection refused")
        return self._client.raw_insert(*args, **kwargs)


def test_encoded_rows_are_kept_through_an_outage_and_written_once(chdb: Any) -> None:
    client = _copy_of_schema(chdb, "row_binary_outage")
    flaky = _Flaky(client, failures=3)
    writer = ClickHouseWriter(lambda: flaky, retry_max_seconds=0.2)
    writer.start()
    block = _block(late_events.TABLE.name, _late_rows(25))
    writer.submit_nowait(late_events.TABLE, block)
    writer.stop()
    assert flaky.failures == 0 and writer.rejected_rows == 0
    stored = Counter(r[0] for r in client.query("SELECT event_id FROM late_events").result_rows)
    assert stored == Counter(f"e{i}" for i in range(25))


def test_blocks_slice_and_read_back_as_python_rows() -> None:
    block = _block(late_events.TABLE.name, _late_rows(5))
    assert len(block) == 5 and len(block.slice(2, 99)) == 3 and len(block.slice(4, 2)) == 0
    assert block.slice(1, 4).python_rows() == block.python_rows()[1:4]
    assert block.slice(1, 4).row(2) == block.row(3)
    with pytest.raises(IndexError):
        block.row(5)
    with pytest.raises(ValueError, match="Int128 is not supported"):
        block.row_binary([("n", "Int128")] * 12)
    with pytest.raises(ValueError, match="12 values for 1 columns"):
        block.row_binary([("n", "UInt8")])


def test_split_encoded_splits_the_rows_of_several_blocks_at_any_row() -> None:
    rows = _block(late_events.TABLE.name, _late_rows(9)).python_rows()
    a = _block(late_events.TABLE.name, _late_rows(9))
    blocks: list[EncodedRows] = [a.slice(0, 4), a.slice(4, 4), a.slice(4, 9)]
    for at in range(10):
        first, second = split_encoded(blocks, at)
        assert [r for b in first for r in b.python_rows()] == rows[:at]
        assert [r for b in second for r in b.python_rows()] == rows[at:]


def test_the_writer_leaves_equal_keys_of_one_insert_to_the_merges(chdb: Any) -> None:
    """The writer inserts with ``optimize_on_insert = 0`` (``INSERT_SETTINGS``): rows of
    one sort key in one insert stay apart in the part, as they would across two inserts,
    and FINAL (how every replacing table is read) still keeps one. With the engine's
    default the insert itself collapses them."""
    database = "row_binary_insert_settings"
    chdb.command(f"DROP DATABASE IF EXISTS {database}")
    chdb.command(f"CREATE DATABASE {database}")
    client = clickhouse_connect.get_client(dsn="chdb://memory", database=database)
    for table in ("by_rows", "by_blocks", "by_default"):
        client.command(
            f"CREATE TABLE {table} (k String, v UInt64, version UInt64) "
            "ENGINE = ReplacingMergeTree(version) ORDER BY k"
        )
    rows = [["a", 1, 1], ["a", 2, 2], ["b", 3, 1]]
    writer = ClickHouseWriter(lambda: client)
    writer.start()
    spec = TableSpec("by_rows", ("k", "v", "version"))
    writer.submit_nowait(spec, [tuple(r) for r in rows])
    blocks = TableSpec("by_blocks", ("k", "v", "version"))
    writer.submit_nowait(blocks, _block("by_blocks", rows))
    writer.stop()
    client.insert("by_default", rows, column_names=["k", "v", "version"])
    for table in ("by_rows", "by_blocks"):
        assert client.query(f"SELECT count() FROM {table}").result_rows == [(3,)]
        final = client.query(f"SELECT k, v FROM {table} FINAL ORDER BY k").result_rows
        assert final == [("a", 2), ("b", 3)]
    assert client.query("SELECT count() FROM by_default").result_rows == [(2,)]
