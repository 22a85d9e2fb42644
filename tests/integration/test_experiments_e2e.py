"""Live experiment readouts end to end (issue #14): a real broker and worker, the
experiment-payment-failures scenario with duplicates, out-of-order, late and malformed
records, produced while the worker is SIGKILLed twice.

- Every experiment's sufficient statistics, read by the SQL of
  ``reports/experiment_readout.py`` from the worker's ClickHouse, equal the simulator's
  independent truth (``simulator/truth_experiments.py``).
- The worker's experiment monitor wrote readouts whose statistics equal the same truth at
  its last evaluation, and published each decision on the triggers topic exactly once
  (the test's experiment file makes a sample-ratio mismatch certain: the simulator
  splits checkout_button 50/50, the file says 90/10).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from funnel.settings import load_settings
from reports.experiment_readout import experiment_sums
from schemas.codec import EventCodec
from simulator.config import SimConfig
from simulator.generate import SimRecord, generate
from simulator.truth_experiments import experiment_truth
from streams.experiments import ExperimentDef, load_experiments
from streams.funnels import load_funnels
from streams.topics import ensure_topics
from tests.experiment_sums import normalised
from tests.integration.live_traffic import LiveTraffic
from tests.pipeline_harness import (
    PipelineEnv,
    WorkerProcess,
    clickhouse,
    read_topic,
    run_until_idle,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CONFIG = SimConfig(
    seed=41,
    users=500,
    days=0.25,
    scenario="experiment-payment-failures",
    duplicate_pct=2,
    out_of_order_pct=5,
    late_pct=1,
    malformed_pct=0.5,
)
# free_shipping_banner with revenue per user as the primary, and checkout_button read
# against a 90/10 split that
# the simulator's 50/50 assignment breaks: its sample-ratio mismatch is a certain decision.
EXPERIMENTS = """
experiments:
  - name: checkout_button
    description: "the simulator's 50/50 assignment read against a 90/10 split"
    variants:
      - {name: A, weight: 90%}
      - {name: B, weight: 10%}
    control: A
    primary: {funnel: checkout, step: purchase}
    guardrails: [payment_failure_rate, refund_rate]
    cuped: pre_exposure_activity
  - name: free_shipping_banner
    description: "revenue per user as the primary, exposure at the first view_item"
    variants: [control, treatment]
    control: control
    primary: revenue_per_user
    guardrails: [payment_failure_rate]
    exposure: {event: view_item}
    cuped: {covariate: pre_exposure_revenue, lookback: 1d}
"""


def experiments_file(directory: Path) -> Path:
    path = directory / "experiments.yaml"
    path.write_text(EXPERIMENTS)
    return path


def _scenario(
    bootstrap: str, data_dir: Path
) -> tuple[list[SimRecord], tuple[ExperimentDef, ...], PipelineEnv]:
    records = list(generate(CONFIG))
    data_dir.mkdir(parents=True, exist_ok=True)
    path = experiments_file(data_dir)
    experiments = load_experiments(path, load_funnels())
    env = PipelineEnv.with_fresh_topics(
        bootstrap,
        data_dir,
        extra={"FUNNEL_EXPERIMENTS_FILE": str(path), "FUNNEL_EXPERIMENT_EVAL_SECONDS": "2"},
    )
    ensure_topics(load_settings(bootstrap_servers=env.bootstrap, topics=env.topics, partitions=4))
    return records, experiments, env


@pytest.fixture(scope="module")
def killed(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PipelineEnv, list[SimRecord], tuple[ExperimentDef, ...]]:
    """The traffic produced at a pace of ~30 s while the worker is SIGKILLed twice (the
    rest at once after the second kill)."""
    records, experiments, env = _scenario(kafka_bootstrap, tmp_path_factory.mktemp("exp"))
    traffic = LiveTraffic(records, env.bootstrap, env.topics, rate=len(records) / 30.0).start()
    rnd = random.Random(20261205)
    ingested_at_kill = 0.0
    for _ in range(2):
        worker = WorkerProcess(env, until_idle=None, name="killed")
        worker.wait_for_metric("shopfunnel_events_ingested_total", 1, timeout=120)
        threading.Event().wait(rnd.uniform(1.0, 3.0))
        ingested_at_kill = worker.metric("shopfunnel_events_ingested_total") or 0.0
        worker.kill()
    sent_at_last_kill = traffic.hurry()
    traffic.join(120)
    assert ingested_at_kill < len(records), "the kills must happen before the input is consumed"
    assert sent_at_last_kill < len(records), "input must still be arriving at the last kill"
    run_until_idle(env, timeout=420)
    return env, records, experiments


def test_the_sufficient_statistics_equal_the_truth(
    killed: tuple[PipelineEnv, list[SimRecord], tuple[ExperimentDef, ...]],
) -> None:
    env, records, experiments = killed
    truth = experiment_truth(
        records,
        experiments,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
    )
    client = clickhouse(env)
    for exp in experiments:
        got = normalised(experiment_sums(client, exp))
        want = normalised(truth[exp.name])
        assert got == want, exp.name
        assert sum(v["exposed"] for v in want["variants"].values()) > 100
    # Not a trivial comparison: orders, revenue and conversions are in both variants.
    for v in truth["checkout_button"].variants.values():
        assert v.orders > 0 and v.primary is not None and v.primary.conversions > 0
        assert any(r.total > 0 for r in v.revenue.values())
        assert v.cuped[""].total_y == v.primary.conversions
        assert len(v.reached) >= 4 and v.reached[3] == v.primary.conversions
        assert set(v.guardrails) == {"payment_failure_rate", "refund_rate", "checkout_error_rate"}
    for v in truth["free_shipping_banner"].variants.values():
        assert any(c.total_y > 0 for c in v.cuped.values())


def test_the_monitor_wrote_the_readout_and_published_each_decision_once(
    killed: tuple[PipelineEnv, list[SimRecord], tuple[ExperimentDef, ...]],
) -> None:
    env, _, experiments = killed
    client = clickhouse(env)
    # The newest readout rows carry the same statistics the SQL reads now (the last
    # evaluation came after the last flush: the worker idles for seconds before it stops).
    for exp in experiments:
        sums = experiment_sums(client, exp)
        rows = client.query(
            "SELECT variant, metric, currency, n, total, total_sq, denominator, "
            "denominator_sq, cross_products FROM v_experiment_readouts_latest "
            "WHERE experiment = {e:String}",
            parameters={"e": exp.name},
        ).result_rows
        got = {(r[0], r[1], r[2]): tuple(int(x) for x in r[3:]) for r in rows}
        want = {}
        for name, v in sums.variants.items():
            n = v.exposed
            if v.converted is not None:
                want[(name, "primary", "")] = (n, v.converted, v.converted, 0, 0, 0)
            for c, rev in v.revenue.items():
                want[(name, "revenue_per_user", c)] = (n, rev.total, rev.total_sq, rev.orders, 0, 0)
            for step, visitors in enumerate(v.reached, start=1):
                want[(name, f"step_{step}", "")] = (n, visitors, visitors, 0, 0, 0)
            want[(name, "orders", "")] = (n, v.orders, 0, 0, 0, 0)
            primary = "primary" if v.converted is not None else "revenue_per_user"
            for c, x in v.cuped.items():
                want[(name, f"{primary}_cuped", c)] = (
                    n,
                    x.total_y,
                    x.total_y_sq,
                    x.total_x,
                    x.total_x_sq,
                    x.total_xy,
                )
            for g, r in v.guardrails.items():
                want[(name, g, "")] = (
                    n,
                    r.numerator,
                    r.numerator_sq,
                    r.denominator,
                    r.denominator_sq,
                    r.cross,
                )
        assert got == want, exp.name
    status = dict(
        client.query(
            "SELECT experiment, argMax(verdict, evaluated_at) FROM experiment_status "
            "GROUP BY experiment"
        ).result_rows
    )
    assert status["checkout_button"] == "srm", status
    # Each decision is on the triggers topic exactly once, though the worker was killed
    # twice and re-evaluated after every restart.
    codec = EventCodec()
    decisions = Counter(
        (t.detail["experiment"], t.detail["verdict"], t.trigger_id)
        for t in (codec.decode_trigger(v) for v in read_topic(env.bootstrap, env.topics.triggers))
        if t.trigger_type == "experiment_decision"
    )
    assert decisions, "no decision was published"
    assert all(count == 1 for count in decisions.values()), decisions
    assert ("checkout_button", "srm") in {(e, v) for e, v, _ in decisions}
    recorded = client.query(
        "SELECT experiment, verdict FROM experiment_decisions FINAL"
    ).result_rows
    assert sorted(map(tuple, recorded)) == sorted((e, v) for e, v, _ in decisions)


def test_funnel_report_experiments_prints_the_readout(
    killed: tuple[PipelineEnv, list[SimRecord], tuple[ExperimentDef, ...]],
) -> None:
    env, _, experiments = killed
    sums = experiment_sums(clickhouse(env), experiments[0])

    def report(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "funnel.cli",
                "report",
                "--data-dir",
                str(env.data_dir),
                "experiments",
                "--experiments",
                str(env.data_dir / "experiments.yaml"),
                *args,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "160"},
            check=False,
        )

    done = report()
    assert done.returncode == 0, done.stderr
    out = done.stdout
    counts = sums.counts()
    assert f"A: {counts['A']:,} (90% planned), B: {counts['B']:,} (10% planned)" in out
    assert "decision now: srm" in out
    assert "worker's live readout at" in out  # the monitor's newest status row
    assert "revenue/user CNY" in out  # free_shipping_banner's primary, per currency
    sql = report("--sql", "--experiment", "checkout_button")
    assert sql.returncode == 0 and "FROM events_raw FINAL" in sql.stdout
    assert "free_shipping_banner" not in sql.stdout
    missing = report("--experiment", "nope")
    assert missing.returncode != 0
    assert "no experiment 'nope'" in missing.stderr + missing.stdout
