"""Memory over a long run: one worker fed simulator traffic at a fixed rate for N minutes.

Records are generated lazily (the simulator runs ahead of the producer, holding only
records in flight), so the harness's memory stays small however long the run. The
worker's RSS is sampled throughout; after a warm-up (sessions and chDB caches filling),
growth above a few percent would mean state or buffers that never shrink.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any

from bench.full import (
    READY_TIMEOUT_SECONDS,
    FullSetup,
    _worker_configs,
    create_input_topics,
    new_topics,
)
from bench.promscrape import INGESTED, LAG, STATE_BYTES, STATE_KEYS
from bench.worker_proc import WorkerProcess, wait_for
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.produce import produce

# Steady state needs event time past the anonymous TTL (35 days): before that every
# new visitor adds state that nothing expires yet. 30% of 150 days = 45 days.
WARMUP_FRACTION = 0.3
RECORDS_PER_USER = 10.0  # measured: 20,000 users give ~211k records whatever the span
SOAK_DAYS = 150.0
FLAT_GROWTH_PCT = 5.0


def _rss_mb_at(worker: WorkerProcess, at: float) -> float | None:
    samples = worker.sampler.samples if worker.sampler else []
    # A sample of 0 bytes is a process being torn down, not a measurement.
    before = [s for s in samples if s.at <= at and s.rss_bytes > 0]
    return before[-1].rss_bytes / 1024 / 1024 if before else None


def _state_mb_at(worker: WorkerProcess, at: float) -> float | None:
    before = [s for s in worker.snapshots if s.at <= at]
    return round(before[-1].get(STATE_BYTES) / 1024 / 1024, 2) if before else None


def _slope_mb_per_hour(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (y - mean_y) for t, y in points)
    return cov / var * 3600


def run_soak(setup: FullSetup, users: int | None, rate: float, minutes: float) -> dict[str, Any]:
    """``users`` None: enough simulated visitors for the run (each makes ~10 records over
    its lifetime, so a fixed population runs dry); new visitors keep arriving, as live."""
    topics = new_topics("soak")
    create_input_topics(setup, topics)
    app_id = f"bench-soak-{uuid.uuid4().hex[:8]}"
    [config] = _worker_configs(setup, topics, app_id, "soak", 1)
    worker = WorkerProcess(config).start()
    count = int(rate * minutes * 60)
    users = users or max(1000, int(count / RECORDS_PER_USER * 1.2))
    sim = SimConfig(users=users, days=SOAK_DAYS, partitions=setup.partitions)
    try:
        wait_for(
            lambda: worker.last is not None and worker.last.lag_series >= 3 * setup.partitions,
            READY_TIMEOUT_SECONDS,
            "soak: worker assigned",
            [worker],
        )
        started = time.time()
        report = asyncio.run(
            produce(
                itertools.islice(generate(sim), count),
                setup.bootstrap,
                topics,
                speedup=None,
                rate=rate,
            )
        )
        ended = time.time()
        time.sleep(5)
    finally:
        worker.stop()
    span = ended - started
    warm = started + span * WARMUP_FRACTION
    minute_marks = [started + 60 * i for i in range(int(span // 60) + 1)] + [ended]
    rss_by_minute = [round(_rss_mb_at(worker, t) or 0.0, 1) for t in minute_marks]
    after_warmup = [
        (s.at, s.rss_bytes / 1024 / 1024)
        for s in (worker.sampler.samples if worker.sampler else [])
        if warm <= s.at <= ended
    ]
    rss_warm = _rss_mb_at(worker, warm)
    rss_end = _rss_mb_at(worker, ended)
    growth = (rss_end - rss_warm) / rss_warm * 100 if rss_warm and rss_end else None
    snaps = [s for s in worker.snapshots if started <= s.at <= ended]
    return {
        "minutes": round(span / 60, 1),
        "target_events_per_s": rate,
        "produced_events_per_s": round(report.records_per_second, 1),
        "events": report.records,
        "simulated_users": users,
        "rss_mb_by_minute": rss_by_minute,
        "rss_mb_after_warmup": round(rss_warm, 1) if rss_warm else None,
        "rss_mb_end": round(rss_end, 1) if rss_end else None,
        "rss_growth_after_warmup_pct": round(growth, 2) if growth is not None else None,
        "state_mb_after_warmup": _state_mb_at(worker, warm),
        "state_mb_end": _state_mb_at(worker, ended),
        "rss_slope_mb_per_hour_after_warmup": _round(_slope_mb_per_hour(after_warmup)),
        "peak_rss_mb": round(worker.sampler.peak_rss_mb, 1) if worker.sampler else None,
        "max_consumer_lag": max((s.get(LAG) for s in snaps), default=None),
        "state_keys_end": snaps[-1].get(STATE_KEYS) if snaps else None,
        "state_bytes_end": snaps[-1].get(STATE_BYTES) if snaps else None,
        "ingested": snaps[-1].get(INGESTED) if snaps else None,
        "flat": growth is not None and growth < FLAT_GROWTH_PCT,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
