"""`funnel report` on the embedded store: it finds the data it is pointed at, says clearly
when a worker holds the directory or nothing is there, and leaves nothing behind.

Each command runs in its own process, as a user runs it (chDB: one process per directory).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def funnel(
    *args: str, data_dir: Path | None = None, database: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
    env["COLUMNS"] = "200"
    if data_dir is not None:
        env["FUNNEL_DATA_DIR"] = str(data_dir)
    if database is not None:
        env["FUNNEL_CLICKHOUSE_DATABASE"] = database
    return subprocess.run(
        [sys.executable, "-m", "funnel.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stdout + result.stderr).split())


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    """A data directory with the migrated, empty `shop` database."""
    data = tmp_path / "demo"
    done = funnel("migrate", data_dir=data)
    assert done.returncode == 0, one_line(done)
    return data


def test_data_dir_option_reads_that_directory(migrated: Path, tmp_path: Path) -> None:
    # FUNNEL_DATA_DIR points elsewhere: the option wins, and the database is found.
    result = funnel("report", "--data-dir", str(migrated), "funnel", data_dir=tmp_path / "x")
    assert result.returncode == 1, one_line(result)
    assert "no funnel rows yet" in one_line(result)
    assert not (tmp_path / "x").exists()


def test_nothing_there_is_said_and_no_directory_is_left_behind(tmp_path: Path) -> None:
    missing = tmp_path / "never-written"
    result = funnel("report", "--data-dir", str(missing), "kpi")
    assert result.returncode == 2
    text = one_line(result)
    assert f"no embedded ClickHouse data at {missing / 'clickhouse'}" in text
    assert ".data/demo" in text  # where the demo writes
    assert not missing.exists()


def test_a_missing_database_names_the_directory(migrated: Path) -> None:
    result = funnel("report", "--data-dir", str(migrated), "kpi", database="other")
    text = one_line(result)
    assert result.returncode == 2, text
    assert f"{migrated / 'clickhouse'} has no database other" in text
    assert "nothing was written there yet" in text


def test_a_directory_held_by_a_worker_is_named_as_such(migrated: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, clickhouse_connect\n"
            f"client = clickhouse_connect.get_client(dsn='chdb://{migrated / 'clickhouse'}')\n"
            "client.command('CREATE DATABASE IF NOT EXISTS shop')\n"
            "print('open', flush=True)\n"
            "time.sleep(60)\n",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        started = time.monotonic()
        result = funnel("report", "--data-dir", str(migrated), "funnel")
        took = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait(10)
    text = one_line(result)
    assert result.returncode == 2, text
    assert "in use by another process" in text and "funnel worker" in text
    assert "Cannot lock" not in text  # chDB's raw line is not what the user reads
    print(f"refused in {took:.1f}s")
