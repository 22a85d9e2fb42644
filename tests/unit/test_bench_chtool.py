"""The latency pass's reading of the worker's ClickHouse (`bench/chtool.py`).

Every event counts in the quantiles the goal is judged on; the same quantiles without the
first seconds of input show how much of the tail the start-up is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import chtool
from sinks.clickhouse import ClickHouseTarget, open_client


def _insert(directory: Path, waits_ms: list[tuple[int, int]]) -> None:
    """Events ingested ``at`` ms after the first, each written ``wait`` ms later."""
    client = open_client(ClickHouseTarget(dsn=f"chdb:///{directory}", database=chtool.DATABASE))
    start = 1_796_000_000_000
    values = ", ".join(
        f"('e{i}', fromUnixTimestamp64Milli({start + at}, 'UTC'), "
        f"fromUnixTimestamp64Milli({start + at + wait}, 'UTC'))"
        for i, (at, wait) in enumerate(waits_ms)
    )
    columns = "event_id, ingested_at, bench_inserted_at"
    client.command(f"INSERT INTO events_raw ({columns}) VALUES {values}")


def test_the_start_up_is_counted_and_also_shown_apart(tmp_path: Path) -> None:
    chtool.prepare(str(tmp_path))
    slow_start = [(at, 2_000) for at in range(0, 1_000, 10)]  # 100 events, 2 s each
    steady = [(at, 100 + at % 7) for at in range(5_000, 30_000, 10)]  # 2,500, 100-106 ms
    _insert(tmp_path, slow_start + steady)

    result = chtool.latency(str(tmp_path))

    assert result["events"] == 2_600
    assert result["max_ms"] == 2_000.0
    assert result["min_ms"] == 100.0
    # 100 of 2,600 events (3.8%) waited 2 s: the p99 over all of them is the start-up's.
    assert result["quantiles_ms"]["p99"] == 2_000.0
    warm = result[f"quantiles_ms_after_first_{chtool.WARM_SECONDS}s"]
    assert warm["p99"] == pytest.approx(106.0)
    assert warm["p50"] == pytest.approx(103.0)


def test_a_relative_directory_is_the_one_under_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    chtool.prepare("worker/clickhouse")
    _insert(tmp_path / "worker" / "clickhouse", [(0, 250), (10, 350)])
    result = chtool.latency("worker/clickhouse")
    assert result["events"] == 2
    assert result["max_ms"] == 350.0
