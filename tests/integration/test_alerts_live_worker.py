"""A real Prometheus scrapes a live `funnel worker` fed by the simulator's incident scenarios.

The rules are the project's generated rules at time scale 60 (a production minute is a
test second); the simulator replays traffic at 60x, so one simulated minute also passes
per second and the alert conditions see the same volumes per window as production.

- `checkout-outage`: CheckoutPurchaseCollapse must fire (read from Prometheus's ALERTS)
  while TrackingBroken stays silent.
- `tracking-broken`: TrackingBroken must fire and no funnel-drop or checkout alert may.
- In both, the worker exports its store's disk space (``ClickHouseDiskLow``'s input), equal
  to what the operating system says of the same directory.
The closing note reports how many simulated minutes each alert took to fire.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from funnel.settings import load_settings
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.produce import produce
from sinks.disk import READ_SECONDS as DISK_READ_SECONDS
from streams.topics import ensure_topics
from tests.pipeline_harness import PipelineEnv, WorkerProcess
from tests.prom_fixture import firing_alerts, prometheus_server, scrape_targets_up, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SPEEDUP = 60.0  # simulated seconds per real second, equal to the rules' time scale
LEAD_IN_S = 900  # simulated seconds of normal traffic before the incident
INCIDENT_S = 1800
FUNNEL_ALERTS = {"FunnelStepConversionDrop", "CheckoutPurchaseCollapse", "NoOrders"}


def _scenario_records(scenario: str, seed: int) -> list[object]:
    config = SimConfig(
        seed=seed,
        users=12_000,
        days=0.04,
        scenario=scenario,
        scenario_start_s=LEAD_IN_S,
        scenario_duration_s=INCIDENT_S,
    )
    end = config.start_ms + (LEAD_IN_S + INCIDENT_S) * 1000
    return [r for r in generate(config) if r.send_time_ms <= end]


def _run_incident(
    kafka_bootstrap: str, tmp_path: Path, scenario: str, seed: int, expect: str, forbidden: set[str]
) -> float:
    records = _scenario_records(scenario, seed)
    env = PipelineEnv.with_fresh_topics(kafka_bootstrap, tmp_path / "pipeline")
    ensure_topics(load_settings(bootstrap_servers=env.bootstrap, topics=env.topics, partitions=4))
    worker = WorkerProcess(env, until_idle=None, name="alerting")
    try:
        worker.wait_for_metric("shopfunnel_batch_events_count", 0, timeout=60)
        with prometheus_server(
            tmp_path / "prometheus", [f"127.0.0.1:{worker.metrics_port}"], time_scale=60
        ) as prom:
            wait_for(lambda: scrape_targets_up(prom.url), timeout=20, what="first scrape")
            started = time.monotonic()
            stop = threading.Event()

            def until_stopped() -> Iterator[object]:
                for record in records:
                    if stop.is_set():
                        return
                    yield record

            producer = threading.Thread(
                target=lambda: asyncio.run(
                    produce(
                        until_stopped(),
                        env.bootstrap,
                        env.topics,  # type: ignore[arg-type]
                        speedup=SPEEDUP,
                        rate=None,
                    )
                ),
                daemon=True,
            )
            producer.start()

            def check() -> set[str] | None:
                firing = firing_alerts(prom.url)
                assert not firing & forbidden, f"{firing & forbidden} fired during {scenario}"
                return firing if expect in firing else None

            wait_for(check, timeout=LEAD_IN_S / SPEEDUP + INCIDENT_S / SPEEDUP + 30, what=expect)
            fired_after = time.monotonic() - started
            stop.set()
            producer.join(timeout=30)
        _check_disk_space_exported(worker, env.data_dir / "clickhouse")
    finally:
        worker.kill()
    simulated_minutes = (fired_after * SPEEDUP - LEAD_IN_S) / 60
    print(
        f"\n{scenario}: {expect} fired {simulated_minutes:.1f} simulated minutes after the "
        f"incident began ({fired_after:.0f}s wall clock from the first event)"
    )
    return simulated_minutes


def _check_disk_space_exported(worker: WorkerProcess, store: Path) -> None:
    total = worker.wait_for_metric(
        "shopfunnel_clickhouse_disk_total_bytes", 1, timeout=DISK_READ_SECONDS + 30
    )
    free = worker.metric("shopfunnel_clickhouse_disk_free_bytes")
    disk = os.statvfs(store)
    assert total == disk.f_blocks * disk.f_frsize
    # The test's own writes move the free space between the two readings.
    assert free is not None and abs(free - disk.f_bavail * disk.f_frsize) < 2**30


def test_checkout_outage_fires_the_checkout_alert(kafka_bootstrap: str, tmp_path: Path) -> None:
    minutes = _run_incident(
        kafka_bootstrap,
        tmp_path,
        "checkout-outage",
        seed=5,
        expect="CheckoutPurchaseCollapse",
        forbidden={"TrackingBroken"},
    )
    assert minutes > 0, "the alert must not fire before the outage begins"


def test_tracking_break_fires_the_tracking_alert_not_the_funnel_ones(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    minutes = _run_incident(
        kafka_bootstrap,
        tmp_path,
        "tracking-broken",
        seed=6,
        expect="TrackingBroken",
        forbidden=FUNNEL_ALERTS,
    )
    assert minutes > 0, "the alert must not fire before the tracking break begins"
