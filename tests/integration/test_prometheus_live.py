"""A real Prometheus scrapes a live exporter and evaluates the time-scaled project rules.

The exporter is PipelineMetrics served by prometheus_client on a free 127.0.0.1 port,
driven by a thread that adds counts every 100 ms at per-second rates (with the rules at
time scale 60, one test second is one production minute). Two phases:

1. payment outage: checkouts flow, purchases stop -> CheckoutPurchaseCollapse fires,
   TrackingBroken never does;
2. tracking break: purchases are back, 20% of records become dead letters ->
   TrackingBroken fires, CheckoutPurchaseCollapse resolves, no funnel-drop alert.

No broker needed. Takes about half a minute (the scaled windows and ``for:`` durations).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from sinks.metrics import PipelineMetrics
from tests.prom_fixture import (
    firing_alerts,
    free_port,
    prometheus_server,
    scrape_targets_up,
    wait_for,
)

TICK_S = 0.1
PHASE_TIMEOUT_S = 60.0
TOPICS = ("shop.clickstream", "shop.cart", "shop.orders")


@dataclass
class TrafficRates:
    """Events per second the fake worker counts; changed between phases under the lock."""

    checkouts: float = 20.0
    purchases: float = 12.0
    ingested_per_topic: float = 200.0
    dead_letters: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, **rates: float) -> None:
        with self.lock:
            for name, value in rates.items():
                setattr(self, name, value)


def _tick(metrics: PipelineMetrics, rates: TrafficRates) -> None:
    with rates.lock:
        checkouts, purchases = rates.checkouts, rates.purchases
        ingested, dead = rates.ingested_per_topic, rates.dead_letters
    entries = metrics.step_entries
    entries.labels(funnel="checkout", step="begin_checkout", channel="direct").inc(
        checkouts * TICK_S
    )
    entries.labels(funnel="checkout", step="purchase", channel="direct").inc(purchases * TICK_S)
    for topic in TOPICS:
        metrics.events_ingested.labels(topic=topic).inc(ingested * TICK_S)
    metrics.dead_letters.labels(topic="shop.clickstream", reason="schema_mismatch").inc(
        dead * TICK_S
    )


@pytest.fixture
def fake_worker() -> Iterator[tuple[str, TrafficRates]]:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry, channels=("direct",))
    metrics.set_worker_info("fake-worker", "test")
    rates = TrafficRates()
    port = free_port()
    server, server_thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()

    def drive() -> None:
        while not stop.wait(TICK_S):
            _tick(metrics, rates)

    driver = threading.Thread(target=drive, name="fake-worker-traffic", daemon=True)
    driver.start()
    try:
        yield f"127.0.0.1:{port}", rates
    finally:
        stop.set()
        driver.join(timeout=5)
        server.shutdown()
        server.server_close()
        server_thread.join(timeout=5)


def test_checkout_outage_and_tracking_break_fire_the_right_alerts(
    tmp_path: Path, fake_worker: tuple[str, TrafficRates]
) -> None:
    target, rates = fake_worker
    rates.set(purchases=0.0)  # phase 1: payment outage from the start
    with prometheus_server(tmp_path / "prometheus", [target], time_scale=60) as prom:
        wait_for(lambda: scrape_targets_up(prom.url), timeout=15, what="first scrape")
        started = time.monotonic()

        def outage_alerts() -> set[str] | None:
            firing = firing_alerts(prom.url)
            assert "TrackingBroken" not in firing, firing
            return firing if "CheckoutPurchaseCollapse" in firing else None

        firing = wait_for(outage_alerts, timeout=PHASE_TIMEOUT_S, what="CheckoutPurchaseCollapse")
        outage_seconds = time.monotonic() - started
        assert firing == {"CheckoutPurchaseCollapse"}

        rates.set(purchases=12.0, dead_letters=40.0)  # phase 2: tracking break, payments back
        switched = time.monotonic()

        def tracking_alerts() -> set[str] | None:
            firing = firing_alerts(prom.url)
            assert "FunnelStepConversionDrop" not in firing, firing
            return firing if firing == {"TrackingBroken"} else None

        wait_for(tracking_alerts, timeout=PHASE_TIMEOUT_S, what="only TrackingBroken firing")
        tracking_seconds = time.monotonic() - switched
    print(
        f"CheckoutPurchaseCollapse fired after {outage_seconds:.1f}s; "
        f"TrackingBroken alone after {tracking_seconds:.1f}s more"
    )
