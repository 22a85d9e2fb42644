"""End to end on real parts: Kafka broker, `funnel worker` subprocesses, embedded ClickHouse.

Simulated traffic with duplicates, disorder, late and malformed records is produced to
fresh topics; every aggregate row the workers write must equal the simulator's
independent ground truth (docs/semantics.md), also after SIGKILLs mid-stream, on a
replay into fresh state, and across a ClickHouse outage.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from funnel.settings import load_settings
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.produce import produce
from simulator.records import SimRecord
from simulator.truth import compute_truth
from simulator.truth_model import Truth
from streams.topics import ensure_topics
from tests.pipeline_harness import (
    PipelineEnv,
    WorkerProcess,
    clickhouse,
    differences,
    ids,
    pipeline_tables,
    row_counts,
    run_until_idle,
    truth_tables,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CONFIG = SimConfig(
    seed=11,
    users=700,
    days=0.3,
    duplicate_pct=3,
    out_of_order_pct=8,
    late_pct=1.5,
    malformed_pct=1,
    json_pct=10,
)


@pytest.fixture(scope="module")
def simulated() -> tuple[list[SimRecord], Truth]:
    records = list(generate(CONFIG))
    truth = compute_truth(
        records,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
        window_ms=CONFIG.window_ms,
    )
    return records, truth


def _create_topics(env: PipelineEnv) -> None:
    ensure_topics(
        load_settings(bootstrap_servers=env.bootstrap, topics=env.topics, partitions=env.partitions)
    )


def _produce(env: PipelineEnv, records: list[SimRecord], rate: float | None = None) -> None:
    asyncio.run(produce(records, env.bootstrap, env.topics, speedup=None, rate=rate))


@pytest.fixture(scope="module")
def loaded(
    kafka_bootstrap: str,
    simulated: tuple[list[SimRecord], Truth],
    tmp_path_factory: pytest.TempPathFactory,
) -> PipelineEnv:
    """The simulated run, produced once to fresh topics (workers use fresh groups)."""
    env = PipelineEnv.with_fresh_topics(kafka_bootstrap, tmp_path_factory.mktemp("loaded"))
    _create_topics(env)
    _produce(env, simulated[0])
    return env


def assert_matches_truth(env: PipelineEnv, truth: Truth) -> dict[str, int]:
    client = clickhouse(env)
    got = pipeline_tables(client)
    diff = differences(got, truth_tables(truth))
    assert not diff, f"rows differ from the ground truth: {diff}"
    late = ids(client, "SELECT event_id FROM late_events FINAL")
    assert late == set(truth.late_event_ids)
    dead = Counter(
        {
            (topic, reason): int(n)
            for topic, reason, n in client.query(
                "SELECT source_topic, reason, count() FROM dead_letters FINAL GROUP BY ALL"
            ).result_rows
        }
    )
    names = {
        "clickstream": env.topics.clickstream,
        "cart": env.topics.cart,
        "orders": env.topics.orders,
    }
    assert dead == Counter({(names[r.stream], r.reason): r.records for r in truth.dead_letters})
    client.close()
    return row_counts(got)


def test_worker_rows_equal_the_ground_truth(
    loaded: PipelineEnv, simulated: tuple[list[SimRecord], Truth], tmp_path: Path
) -> None:
    env = loaded.fork(tmp_path)
    worker = run_until_idle(env)
    counts = assert_matches_truth(env, simulated[1])
    assert all(counts.values()), counts
    records = simulated[0]
    assert worker.log_path.exists()
    client = clickhouse(env)
    # Every record is kept: each distinct valid event once (duplicates collapse, late ones
    # included and flagged), each malformed record as a dead letter.
    distinct = {(r.event.anonymous_id, r.event.event_id) for r in records if r.event is not None}
    raw = client.query("SELECT count() FROM events_raw FINAL").result_rows[0][0]
    dead = client.query("SELECT count() FROM dead_letters FINAL").result_rows[0][0]
    assert raw == len(distinct)
    assert dead == sum(1 for r in records if r.event is None)
    late_flagged = ids(client, "SELECT event_id FROM events_raw FINAL WHERE is_late = 1")
    assert late_flagged == set(simulated[1].late_event_ids)


def test_replay_from_offset_zero_into_fresh_state_gives_identical_rows(
    loaded: PipelineEnv, simulated: tuple[list[SimRecord], Truth], tmp_path: Path
) -> None:
    first, second = loaded.fork(tmp_path / "a"), loaded.fork(tmp_path / "b")
    run_until_idle(first)
    run_until_idle(second)
    rows_a, rows_b = pipeline_tables(clickhouse(first)), pipeline_tables(clickhouse(second))
    assert rows_a == rows_b
    assert not differences(rows_b, truth_tables(simulated[1]))


def test_sigkill_at_random_points_leaves_every_aggregate_exact(
    kafka_bootstrap: str, simulated: tuple[list[SimRecord], Truth], tmp_path: Path
) -> None:
    """Traffic is produced live while the worker is SIGKILLed three times mid-stream."""
    records, truth = simulated
    env = PipelineEnv.with_fresh_topics(kafka_bootstrap, tmp_path)
    _create_topics(env)
    # Slow enough that input is still arriving when the last worker is killed.
    rate = len(records) / 60.0
    producer = threading.Thread(target=_produce, args=(env, records, rate), daemon=True)
    producer.start()
    rnd = random.Random(20261124)
    recoveries: list[float] = []
    ingested_at_kill = 0.0
    for _ in range(3):
        worker = WorkerProcess(env, until_idle=None, name="killed")
        started = time.monotonic()
        worker.wait_for_metric("shopfunnel_events_ingested_total", 1, timeout=120)
        recoveries.append(time.monotonic() - started)
        time.sleep(rnd.uniform(0.5, 3.0))
        ingested_at_kill = worker.metric("shopfunnel_events_ingested_total") or 0.0
        worker.kill()
    producer.join(120)
    assert not producer.is_alive()
    final = run_until_idle(env, name="final")
    assert ingested_at_kill < len(records), "the kills must happen before the input is consumed"
    counts = assert_matches_truth(env, truth)
    print(
        f"\nkill test: 3 SIGKILLs, restart-to-first-batch {[round(r, 1) for r in recoveries]} s, "
        f"rows compared {counts}; final log tail:\n{final.log_tail(5)}"
    )


@pytest.fixture
def failing_clickhouse_module(tmp_path: Path) -> Iterator[str]:
    yield "tests.integration.flaky_clickhouse_worker"


def test_clickhouse_outage_loses_nothing(
    loaded: PipelineEnv,
    simulated: tuple[list[SimRecord], Truth],
    tmp_path: Path,
    failing_clickhouse_module: str,
) -> None:
    """Inserts fail for the first seconds of the run; the sink retries and catches up."""
    env = loaded.fork(tmp_path)
    env.extra["FLAKY_CLICKHOUSE_SECONDS"] = "8"
    worker = run_until_idle(env, module=failing_clickhouse_module)
    assert "insert into" in worker.log_path.read_text() and "failed" in worker.log_path.read_text()
    assert_matches_truth(env, simulated[1])
