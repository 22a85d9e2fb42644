"""The worker's read-only SQL endpoint against a live worker (issue 13).

A worker consumes simulated traffic while clickhouse-connect's HTTP client reads
funnel_steps_minute through the endpoint; `funnel report kpi` works while the worker
holds the embedded directory; after the worker stops, the same query on the embedded
store equals the last result read through the endpoint once the worker was idle.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest

from funnel.settings import load_settings
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.produce import produce
from streams.topics import ensure_topics
from tests.pipeline_harness import (
    AGG_QUERIES,
    REPO_ROOT,
    PipelineEnv,
    WorkerProcess,
    clickhouse,
    free_port,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CONFIG = SimConfig(seed=13, users=600, days=0.3)
RATE = 400  # records/s: production lasts a while, so reads overlap ingestion
STEPS = AGG_QUERIES["funnel_steps_minute"]


def _rows(client: Any) -> list[tuple[Any, ...]]:
    return sorted(tuple(row) for row in client.query(STEPS).result_rows)


def _endpoint_client(port: int, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return clickhouse_connect.get_client(host="127.0.0.1", port=port, database="shop")
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_live_worker_answers_through_the_endpoint(kafka_bootstrap: str, tmp_path: Path) -> None:
    port = free_port()
    env = PipelineEnv.with_fresh_topics(
        kafka_bootstrap, tmp_path, extra={"FUNNEL_SQL_PORT": str(port)}
    )
    ensure_topics(
        load_settings(bootstrap_servers=env.bootstrap, topics=env.topics, partitions=env.partitions)
    )
    records = list(generate(CONFIG))
    worker = WorkerProcess(env, until_idle=None, name="served")
    try:
        client = _endpoint_client(port)
        producer = threading.Thread(
            target=lambda: asyncio.run(
                produce(records, env.bootstrap, env.topics, speedup=None, rate=RATE)
            )
        )
        producer.start()
        totals: list[int] = []
        while producer.is_alive():  # reads while the worker writes
            totals.append(client.command("SELECT sum(entered) FROM funnel_steps_minute"))
            time.sleep(0.2)
        producer.join()
        seen_while_producing = {total for total in totals if total > 0}
        # idle: the same answer for a while after the last record was produced
        last, stable_since = _rows(client), time.monotonic()
        deadline = time.monotonic() + 180
        while time.monotonic() - stable_since < 8:
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(1)
            rows = _rows(client)
            if rows != last:
                last, stable_since = rows, time.monotonic()
        assert last, "no funnel rows read through the endpoint"
        # rows were read while the worker was still ingesting (the sum grew under us)
        assert seen_while_producing, totals

        report = subprocess.run(
            [sys.executable, "-m", "funnel.cli", "report", "kpi"],
            env={**env.env(free_port()), "COLUMNS": "200"},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert report.returncode == 0, report.stdout + report.stderr
        assert "in use by another process" not in report.stdout + report.stderr

        # kill -USR1 / -USR2: the live worker logs its threads' and tasks' stacks and goes
        # on (mode's own handlers, a pdb prompt for SIGUSR2, must not take them over)
        dumps = worker.stack_dumps()
        assert "(most recent call first)" in dumps, dumps  # faulthandler's thread stacks
        assert "asyncio tasks on request" in dumps and "Task" in dumps, dumps
        assert "Starting debugger" not in dumps and "BdbQuit" not in dumps, dumps
        assert worker.process.poll() is None, worker.log_tail()
        assert _rows(client) == last
    finally:
        worker.terminate()
        code = worker.wait(120)
    assert code == 0, worker.log_tail()
    store = clickhouse(env)
    try:
        assert _rows(store) == last
    finally:
        store.close()
