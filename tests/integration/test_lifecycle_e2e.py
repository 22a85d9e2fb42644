"""Retention, RFM lifecycle and triggers end to end, on months-old data replayed.

Twenty simulated days that ended five months ago are produced to fresh topics and
replayed by a real worker (FUNNEL_REPLAY=true) with short lifecycle thresholds, so every
kind of transition happens. Retention cells, order gaps, each buyer's RFM row, every
stage transition and every trigger must equal the simulator's independent ground truth
(docs/semantics.md 6-8): replaying last year's data produces last year's transitions.
Every trigger must be on the triggers topic exactly once, also when the worker is
SIGKILLed twice while the traffic is still arriving.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from funnel.settings import load_settings
from schemas.codec import EventCodec
from simulator.config import SimConfig
from simulator.generate import SimRecord, generate
from simulator.produce import produce
from simulator.truth import compute_truth
from simulator.truth_model import LifecycleParams, Truth
from streams.topics import ensure_topics
from tests.integration.live_traffic import LiveTraffic
from tests.pipeline_harness import (
    PipelineEnv,
    WorkerProcess,
    clickhouse,
    differences,
    pipeline_tables,
    read_topic,
    row_counts,
    run_until_idle,
    truth_tables,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

DAY_MS = 86_400_000
START = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp() * 1000)
CONFIG = SimConfig(
    seed=31,
    users=350,
    days=20,
    start_ms=START,
    duplicate_pct=2,
    out_of_order_pct=5,
    late_pct=1,
    malformed_pct=0.5,
    json_pct=5,
)
THRESHOLDS = {  # settings (days) and the same in the truth's milliseconds
    "FUNNEL_RFM_NEW_DAYS": 1,
    "FUNNEL_RFM_DORMANT_DAYS": 3,
    "FUNNEL_RFM_CHURN_DAYS": 7,
    "FUNNEL_ANONYMOUS_TTL_DAYS": 5,
    "FUNNEL_BUYER_TTL_DAYS": 12,
    "FUNNEL_CART_ABANDON_MINUTES": 30,
}
PARAMS = LifecycleParams(
    rfm_new_ms=DAY_MS,
    rfm_dormant_ms=3 * DAY_MS,
    rfm_churn_ms=7 * DAY_MS,
    anonymous_ttl_ms=5 * DAY_MS,
    buyer_ttl_ms=12 * DAY_MS,
    cart_abandon_ms=30 * 60_000,
)

# The runs that declare the inputs finished start once all of them are in the topics: a
# second of idleness means read to the end.
FINAL_IDLE_SECONDS = 1.0


def _scenario(bootstrap: str, data_dir: Path) -> tuple[list[SimRecord], Truth, PipelineEnv]:
    """The simulated traffic, its ground truth, and fresh topics for one run of it."""
    records = list(generate(CONFIG))
    truth = compute_truth(
        records,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
        window_ms=CONFIG.window_ms,
        lifecycle=PARAMS,
        # The workers stop with --until-idle in replay: the inputs end finished.
        inputs_finished=True,
    )
    env = PipelineEnv.with_fresh_topics(
        bootstrap, data_dir, extra={k: str(v) for k, v in THRESHOLDS.items()}
    )
    ensure_topics(load_settings(bootstrap_servers=env.bootstrap, topics=env.topics, partitions=4))
    return records, truth, env


@pytest.fixture(scope="module")
def replayed(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PipelineEnv, Truth]:
    records, truth, env = _scenario(kafka_bootstrap, tmp_path_factory.mktemp("lifecycle"))
    asyncio.run(produce(records, env.bootstrap, env.topics, speedup=None, rate=None))
    run_until_idle(env, timeout=420, until_idle=FINAL_IDLE_SECONDS)
    return env, truth


@pytest.mark.parametrize("run", ["replayed", "killed"])
def test_every_table_equals_the_truth(run: str, request: pytest.FixtureRequest) -> None:
    """Funnels, KPIs, retention cells, order gaps, every buyer's RFM row, every stage
    transition and every trigger row (the same comparison as the pipeline kill test)."""
    env, truth = request.getfixturevalue(run)
    got = pipeline_tables(clickhouse(env))
    want = truth_tables(truth)
    assert not differences(got, want), differences(got, want)
    assert all(want[t] for t in ("retention_cohorts", "user_rfm", "segment_transitions"))
    kinds = Counter(key[3] for key in want["segment_transitions"])
    assert {"new", "active", "dormant", "churned"} <= set(kinds), kinds
    print(f"\n{run}: rows equal to the truth {row_counts(got)}")


@pytest.fixture(scope="module")
def killed(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PipelineEnv, Truth]:
    """The same traffic produced at a pace of ~40 s while the worker is SIGKILLed twice
    (the rest at once after the second kill)."""
    records, truth, env = _scenario(kafka_bootstrap, tmp_path_factory.mktemp("killed"))
    traffic = LiveTraffic(records, env.bootstrap, env.topics, rate=len(records) / 40.0).start()
    rnd = random.Random(20261124)
    ingested_at_kill = 0.0
    for _ in range(2):
        worker = WorkerProcess(env, until_idle=None, name="killed")
        worker.wait_for_metric("shopfunnel_events_ingested_total", 1, timeout=120)
        worker.wait_for_metric("shopfunnel_triggers_total", 1, timeout=120)
        pause = rnd.uniform(0.5, 2.5)
        threading.Event().wait(pause)
        ingested_at_kill = worker.metric("shopfunnel_events_ingested_total") or 0.0
        worker.kill()
    sent_at_last_kill = traffic.hurry()
    traffic.join(120)
    assert ingested_at_kill < len(records), "the kills must happen before the input is consumed"
    assert sent_at_last_kill < len(records), "input must still be arriving at the last kill"
    run_until_idle(env, timeout=420, until_idle=FINAL_IDLE_SECONDS)
    return env, truth


@pytest.mark.parametrize("run", ["replayed", "killed"])
def test_every_trigger_is_published_exactly_once(run: str, request: pytest.FixtureRequest) -> None:
    env, truth = request.getfixturevalue(run)
    codec = EventCodec()
    published = [codec.decode_trigger(v) for v in read_topic(env.bootstrap, env.topics.triggers)]
    counts = Counter(t.trigger_id for t in published)
    assert counts and max(counts.values()) == 1, counts.most_common(3)
    assert set(counts) == {t.trigger_id for t in truth.triggers}
    by_id = {t.trigger_id: t for t in published}
    for expected in truth.triggers:
        got = by_id[expected.trigger_id]
        assert (got.trigger_type, got.anonymous_id, got.occurred_at_ms, got.cart_value_minor) == (
            expected.trigger_type,
            expected.anonymous_id,
            expected.occurred_at_ms,
            expected.cart_value_minor,
        )
    types = Counter(t.trigger_type for t in published)
    assert set(types) == {
        "cart_abandoned",
        "first_purchase",
        "segment_changed",
        "user_became_dormant",
        "user_churned",
        "user_reactivated",
    }, types
    stored = clickhouse(env).query("SELECT count() FROM triggers FINAL").result_rows[0][0]
    assert stored == len(published)
    print(f"\n{run}: {len(published)} triggers, each once, equal to the truth: {dict(types)}")


def test_nothing_is_left_of_forgotten_visitors(
    replayed: tuple[PipelineEnv, Truth], tmp_path: Path
) -> None:
    _env, truth = replayed
    lives = truth.stats["visitor_lives"]
    assert lives > truth.stats["visitors"], "the run must contain forgotten and returning visitors"
