"""Where the memory is (sinks/memory.py): glibc's heap, Python, the embedded ClickHouse."""

from __future__ import annotations

import mmap
import os
import tracemalloc
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bench.promscrape import memory_parts as scraped_memory_parts
from bench.promscrape import parse
from sinks.memory import (
    CLICKHOUSE_METRICS,
    JEMALLOC_PARTS,
    PARTS,
    PURGE_ENGINE_HEAP,
    HeapGrowthLog,
    MemoryReadings,
    ReleasingReader,
    anonymous_rss,
    jemalloc_parts,
    malloc_stats,
    memory_parts,
    trim_malloc,
)
from sinks.metrics import PipelineMetrics

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux only")


class _Result:
    def __init__(self, rows: list[tuple[str, int]]) -> None:
        self.result_rows = rows


class _FakeEngine:
    def __init__(self, rows: list[tuple[str, int]]) -> None:
        self.rows = rows
        self.jemalloc = "no summary here"
        self.queries: list[str] = []

    def query(self, sql: str) -> _Result:
        self.queries.append(sql)
        if "jemalloc_stats" in sql:
            return _Result([(self.jemalloc,)])  # type: ignore[list-item]
        return _Result(self.rows)


def test_glibc_heap_counts_a_large_allocation_while_it_is_alive() -> None:
    before = malloc_stats()
    assert before is not None  # Debian's glibc has mallinfo2
    block = bytearray(64 * 1024 * 1024)  # above the mmap threshold: an mmapped chunk
    during = malloc_stats()
    assert during is not None
    assert during.mmapped + during.in_use >= before.mmapped + before.in_use + 60 * 2**20
    del block
    after = malloc_stats()
    assert after is not None
    assert after.mmapped + after.in_use < during.mmapped + during.in_use - 60 * 2**20


def test_anonymous_rss_grows_when_pages_are_touched() -> None:
    before = anonymous_rss()
    assert before is not None and before > 0
    # A fresh private anonymous mapping with one byte written per page: 48 MiB of new
    # resident pages. (A bytearray could reuse heap pages a long test session already
    # holds, and then RSS does not grow; a shared mapping counts as RssShmem.)
    size = 48 * 1024 * 1024
    block = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        for offset in range(0, size, mmap.PAGESIZE):
            block[offset] = 1
        during = anonymous_rss()
        assert during is not None
        assert during >= before + 40 * 2**20
    finally:
        block.close()


def test_trim_gives_freed_heap_back_and_says_so() -> None:
    assert trim_malloc() in (True, False)  # callable on glibc; the result is glibc's own
    stats = malloc_stats()
    assert stats is not None and stats.free_held >= 0


def test_parts_map_the_engines_metrics_to_their_labels() -> None:
    engine = _FakeEngine([("MemoryTracking", 123), ("MarkCacheBytes", 7)])
    engine.jemalloc = (
        "___ Begin jemalloc statistics ___\n"
        "Allocated: 10, active: 20, metadata: 3 (n_thp 0, edata 1, rtree 2), resident: 40, "
        "mapped: 50, retained: 6\n"
    )
    parts = memory_parts(engine)
    assert parts["clickhouse_tracked"] == 123
    assert parts["clickhouse_mark_cache"] == 7
    assert [parts[p] for p in JEMALLOC_PARTS] == [10, 20, 3, 40, 50, 6]
    assert parts["python_blocks"] > 0
    assert {"rss_anon", "malloc_in_use", "malloc_free_held", "malloc_mmapped"} <= set(parts)
    assert set(parts) <= set(PARTS)
    # One query names every metric it maps, and nothing else; one reads jemalloc's summary.
    sql, jemalloc_sql = engine.queries
    assert "system.jemalloc_stats" in jemalloc_sql
    for name in CLICKHOUSE_METRICS:
        assert f"'{name}'" in sql


def test_the_real_engine_answers_the_query() -> None:
    import clickhouse_connect

    # The in-memory engine, like the other unit tests: chDB allows one path per process.
    client: Any = clickhouse_connect.get_client(dsn="chdb://memory")
    parts = memory_parts(client)
    # chDB accounts its own allocations; an open engine holds some.
    assert parts["clickhouse_tracked"] > 0
    assert set(CLICKHOUSE_METRICS.values()) <= set(parts)
    # Its jemalloc summary is parsed: every part, consistent with each other.
    assert set(JEMALLOC_PARTS) <= set(parts)
    assert 0 < parts["jemalloc_allocated"] <= parts["jemalloc_active"]
    assert parts["jemalloc_active"] <= parts["jemalloc_mapped"]
    assert parts["jemalloc_resident"] <= parts["jemalloc_mapped"] + parts["jemalloc_metadata"]


def test_readings_survive_an_engine_that_cannot_be_opened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    opened = 0

    def broken() -> Any:
        nonlocal opened
        opened += 1
        raise RuntimeError("engine held elsewhere")

    readings = MemoryReadings(broken)
    first = readings.read()
    second = readings.read()
    assert "clickhouse_tracked" not in first and "python_blocks" in first
    assert "python_blocks" in second
    assert opened == 2  # retried on the next reading
    assert [r.message for r in caplog.records].count(
        "cannot read the embedded ClickHouse's memory: engine held elsewhere"
    ) == 1  # warned once, not every 15 s


def test_the_gauge_exports_known_parts_only_and_the_bench_reads_them_back() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    metrics.set_memory({"clickhouse_tracked": 5 * 2**20, "rss_anon": 9 * 2**20, "bogus": 1})
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()
    assert 'shopfunnel_memory_bytes{part="clickhouse_tracked"}' in text
    assert "bogus" not in text
    parts = scraped_memory_parts(parse(text, at=0.0))
    assert parts == {"clickhouse_tracked": 5 * 2**20, "rss_anon": 9 * 2**20}


def test_heap_growth_is_logged_by_line_only_while_tracing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    growth = HeapGrowthLog(every_seconds=10.0)
    assert not growth.maybe_log(now=100.0)  # not tracing: nothing, no snapshot cost
    tracemalloc.start(1)
    try:
        assert not growth.maybe_log(now=100.0)  # the first snapshot: nothing to compare
        kept = [bytearray(1000) for _ in range(5000)]  # ~5 MB from the next line
        assert not growth.maybe_log(now=105.0)  # too soon
        assert growth.maybe_log(now=111.0)
        assert memory_parts(None)["python_traced"] > 4_000_000
    finally:
        tracemalloc.stop()
    [record] = [r for r in caplog.records if "Python heap growth" in r.message]
    first = record.message.splitlines()[1]
    # The line that allocated ~5 MB (each bytearray is an object and a buffer) is first.
    grown_mb = float(first.split()[0])
    assert 4.9 <= grown_mb <= 6.0, first
    assert "test_memory_readings.py:" in first
    assert len(kept) == 5000
    assert "python_traced" not in memory_parts(None)


# Frees about 100-170 MB of the engine's heap when it ends (measured: jemalloc keeps it
# resident as dirty pages for its decay time, about ten seconds).
_FREES_A_LOT = (
    "SELECT count() FROM (SELECT toString(number) AS k, count() FROM numbers(4000000) GROUP BY k)"
)


def _dirty_mb(client: Any) -> float:
    parts = jemalloc_parts(client)
    return (parts["jemalloc_resident"] - parts["jemalloc_active"]) / 2**20


def test_a_releasing_reader_hands_a_reads_freed_heap_back_at_once() -> None:
    import clickhouse_connect

    client: Any = clickhouse_connect.get_client(dsn="chdb://memory")
    # The control: the same read through the plain client leaves its freed pages resident.
    assert client.query(_FREES_A_LOT).result_rows == [(4_000_000,)]
    left_by_plain = _dirty_mb(client)
    assert left_by_plain > 48
    reader = ReleasingReader(client)
    assert reader.query(_FREES_A_LOT).result_rows == [(4_000_000,)]
    assert _dirty_mb(client) < 32 < left_by_plain


class _RefusingEngine:
    def __init__(self) -> None:
        self.commands = 0
        self.queries = 0

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> str:
        self.queries += 1
        if sql == "fail":
            raise RuntimeError("the read itself failed")
        return f"rows of {sql}"

    def command(self, sql: str) -> None:
        self.commands += 1
        raise RuntimeError(f"Code: 1. DB::Exception: {sql} is not supported")


def test_a_refused_purge_is_logged_once_and_reads_go_on(caplog: pytest.LogCaptureFixture) -> None:
    engine = _RefusingEngine()
    reader = ReleasingReader(engine)
    with caplog.at_level("WARNING", logger="sinks.memory"):
        assert reader.query("SELECT 1", parameters={"a": 1}) == "rows of SELECT 1"
        assert reader.query("SELECT 2") == "rows of SELECT 2"
    assert engine.commands == 1  # not tried again after the refusal
    assert [r.getMessage() for r in caplog.records if PURGE_ENGINE_HEAP in r.getMessage()] == [
        f"the embedded ClickHouse refused {PURGE_ENGINE_HEAP!r} (Code: 1. DB::Exception: "
        f"{PURGE_ENGINE_HEAP} is not supported); its freed memory is returned by "
        "jemalloc's own decay instead"
    ]
    assert reader.release() is False


def test_a_failed_read_still_purges_and_raises_its_own_error() -> None:
    calls: list[str] = []

    class Engine:
        def query(self, sql: str) -> None:
            calls.append("query")
            raise RuntimeError("the read itself failed")

        def command(self, sql: str) -> None:
            calls.append(sql)

    with pytest.raises(RuntimeError, match="the read itself failed"):
        ReleasingReader(Engine()).query("SELECT broken")
    assert calls == ["query", PURGE_ENGINE_HEAP]


def test_only_the_embedded_engines_monitor_reads_are_purged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sinks import clickhouse
    from sinks.clickhouse import BACKGROUND_READ_SETTINGS, ClickHouseTarget

    opened: list[dict[str, Any] | None] = []

    def fake_open(target: ClickHouseTarget, *, settings: dict[str, Any] | None = None) -> str:
        opened.append(settings)
        return f"client of {target.dsn}"

    monkeypatch.setattr(clickhouse, "open_client", fake_open)
    embedded = clickhouse.open_background_reader(
        ClickHouseTarget(dsn="chdb:///tmp/x", database="shop")
    )
    server = clickhouse.open_background_reader(
        ClickHouseTarget(dsn="http://ch:8123", database="shop")
    )
    assert isinstance(embedded, ReleasingReader)
    assert embedded.__getattr__("upper")() == "CLIENT OF CHDB:///TMP/X"  # delegates the rest
    assert server == "client of http://ch:8123"
    assert opened == [BACKGROUND_READ_SETTINGS, BACKGROUND_READ_SETTINGS]
