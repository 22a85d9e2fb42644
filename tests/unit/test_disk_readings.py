"""ClickHouse's free disk space (sinks/disk.py), the input of the ClickHouseDiskLow alert."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sinks.disk import DISKS_SQL, DiskReadings, DiskSpace, disk_space
from sinks.metrics import PipelineMetrics


class _Result:
    def __init__(self, rows: list[tuple[str, int, int]]) -> None:
        self.result_rows = rows


class _FakeEngine:
    def __init__(self, rows: list[tuple[str, int, int]]) -> None:
        self.rows = rows
        self.queries: list[str] = []

    def query(self, sql: str) -> _Result:
        self.queries.append(sql)
        return _Result(self.rows)


def test_the_real_engine_reports_its_store_disk_as_the_operating_system_does() -> None:
    import clickhouse_connect

    # The in-memory engine, like the other unit tests: chDB allows one path per process.
    client: Any = clickhouse_connect.get_client(dsn="chdb://memory")
    [disk] = disk_space(client)
    assert disk.name == "default"
    [[path]] = client.query("SELECT path FROM system.disks WHERE name = 'default'").result_rows
    system = os.statvfs(Path(path))
    assert disk.total == system.f_blocks * system.f_frsize
    # Other processes write to the same file system between the two readings.
    assert abs(disk.free - system.f_bavail * system.f_frsize) < 2**30
    assert 0 < disk.free <= disk.total


def test_disks_without_a_known_size_are_left_out() -> None:
    engine = _FakeEngine([("default", 5, 100), ("s3", 0, 0)])
    assert disk_space(engine) == [DiskSpace("default", 5, 100)]
    assert engine.queries == [DISKS_SQL]


def test_readings_survive_an_engine_that_cannot_be_reached() -> None:
    # Warned once, not every 30 s: sinks/kept_client.py, as test_memory_readings shows.
    opened = 0
    engine = _FakeEngine([("default", 7, 10)])

    def flaky() -> Any:
        nonlocal opened
        opened += 1
        if opened < 3:
            raise RuntimeError("connection refused")
        return engine

    readings = DiskReadings(flaky)
    kept = [DiskSpace("default", 7, 10)]
    assert [readings.read() for _ in range(4)] == [[], [], kept, kept]
    assert opened == 3  # retried until it opened, then kept
    assert len(engine.queries) == 2


def test_the_gauges_export_each_disk() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    metrics.set_disks([DiskSpace("default", 3 * 2**30, 40 * 2**30), DiskSpace("cold", 1, 2)])
    samples = {
        (sample.name, sample.labels["disk"]): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
        if sample.name.startswith("shopfunnel_clickhouse_disk_")
    }
    assert samples == {
        ("shopfunnel_clickhouse_disk_free_bytes", "default"): 3 * 2**30,
        ("shopfunnel_clickhouse_disk_total_bytes", "default"): 40 * 2**30,
        ("shopfunnel_clickhouse_disk_free_bytes", "cold"): 1,
        ("shopfunnel_clickhouse_disk_total_bytes", "cold"): 2,
    }
