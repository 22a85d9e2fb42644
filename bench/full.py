"""The full workload: the real worker (sessions, funnels, KPIs, state) into ClickHouse.

Passes, each with its own consumer group (``FUNNEL_APP_ID``), data dirs and ports:

- saturation: the whole dataset pre-loaded, one worker (or N for scaling) started on it;
  events/s = events processed after the first scrape that saw ingestion, divided by the
  time from that scrape to the scrape where every worker had ingested its last record
  with an empty sink queue. "Done" is decided by the group's committed offsets reaching
  the end offsets (commits wait for the ClickHouse flush), so replays after a rebalance
  cannot end a pass early; the numerator counts each event once (replays are waste).
- latency: fresh topics, the worker started on them and assigned, then records produced
  at a fixed rate; per event, ClickHouse insert time minus broker append time
  (``bench/chtool.py`` explains the method).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from bench.broker import INPUT_TOPIC_CONFIGS, create_topics, free_ports
from bench.changelog_stats import changelog_state_stats
from bench.dataset import Dataset, InputRecord, as_sim_records
from bench.errors import BenchError, PeerFailedError
from bench.live import restamp
from bench.profiling import Profiler
from bench.promscrape import (
    BATCH_SECONDS_COUNT,
    BATCH_SECONDS_SUM,
    CHANGELOG,
    INGESTED,
    LAG,
    SINK_QUEUE,
    SINK_SECONDS_COUNT,
    SINK_SECONDS_SUM,
    STATE_BYTES,
    STATE_KEYS,
)
from bench.worker_proc import REPO_ROOT, SCRAPE_SECONDS, WorkerConfig, WorkerProcess, wait_for
from funnel.settings import TopicNames
from simulator.produce import produce

Log = Callable[[str], None]
READY_TIMEOUT_SECONDS = 120.0
DONE_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class FullSetup:
    dataset: Dataset
    bootstrap: str
    partitions: int
    run_dir: Path
    timeout: float
    log: Log
    worker_env: tuple[tuple[str, str], ...] = ()


def new_topics(tag: str) -> TopicNames:
    prefix = f"bench.{tag}.{uuid.uuid4().hex[:8]}"
    return TopicNames(
        clickstream=f"{prefix}.clickstream",
        cart=f"{prefix}.cart",
        orders=f"{prefix}.orders",
        dlq=f"{prefix}.dlq",
        triggers=f"{prefix}.triggers",
        forget=f"{prefix}.forget",
    )


def create_input_topics(setup: FullSetup, topics: TopicNames) -> None:
    create_topics(setup.bootstrap, list(topics.inputs()), setup.partitions, INPUT_TOPIC_CONFIGS)
    create_topics(setup.bootstrap, [topics.dlq, topics.triggers], setup.partitions)


def preload(setup: FullSetup, topics: TopicNames, records: list[InputRecord]) -> float:
    create_input_topics(setup, topics)
    report = asyncio.run(
        produce(as_sim_records(records), setup.bootstrap, topics, speedup=None, rate=None)
    )
    return report.records_per_second


def end_offsets(bootstrap: str, topics: TopicNames, partitions: int) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","))
    try:
        tps = [TopicPartition(t, p) for t in topics.inputs() for p in range(partitions)]
        return {tp: int(o) for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def group_caught_up(admin: KafkaAdminClient, group: str, ends: dict[TopicPartition, int]) -> bool:
    try:
        committed = admin.list_group_offsets({group: list(ends)}).get(group, {})
    except KafkaError:
        return False
    return all(
        end == 0 or (tp in committed and committed[tp] is not None and committed[tp].offset >= end)
        for tp, end in ends.items()
    )


def _worker_configs(
    setup: FullSetup, topics: TopicNames, app_id: str, label: str, count: int
) -> list[WorkerConfig]:
    ports = free_ports(count)
    return [
        WorkerConfig(
            bootstrap=setup.bootstrap,
            topics=topics,
            partitions=setup.partitions,
            app_id=app_id,
            data_dir=setup.run_dir / "full" / f"{label}-worker{i + 1}",
            metrics_port=ports[i],
            extra_env=setup.worker_env,
        )
        for i in range(count)
    ]


def _done_time(worker: WorkerProcess) -> float:
    """When this worker had ingested its last record and its sink queue was empty."""
    final = worker.snapshots[-1].get(INGESTED)
    for snap in worker.snapshots:
        if snap.get(INGESTED) >= final and snap.get(SINK_QUEUE) == 0:
            return snap.at
    return worker.snapshots[-1].at


def _ingested_at(worker: WorkerProcess, at: float) -> float:
    before = [s for s in worker.snapshots if s.at <= at]
    return before[-1].get(INGESTED) if before else 0.0


def _first_ingestion(workers: list[WorkerProcess], total: int) -> tuple[float, float]:
    """(time, events ingested by all workers then) at the first scrape that saw ingestion.

    The first batch is left out of the rate (its start is not observable to a scraper),
    unless it was everything (tiny runs): then the clock starts at the last empty scrape.
    """
    times = sorted(snap.at for w in workers for snap in w.snapshots if snap.get(INGESTED) > 0)
    if not times:
        raise PeerFailedError("full workload: no worker ever reported ingested events")
    first = times[0]
    seen_then = sum(_ingested_at(w, first) for w in workers)
    if seen_then < total:
        return first, seen_then
    empty = [s.at for w in workers for s in w.snapshots if s.at < first]
    return (max(empty) if empty else first - 0.25), 0.0


def run_saturation(
    setup: FullSetup,
    topics: TopicNames,
    total: int,
    workers: int,
    label: str,
    profile_to: Path | None = None,
    pin: bool = False,
) -> dict[str, Any]:
    """Workers on pre-loaded topics until the group has committed everything; ``pin``:
    worker i runs on CPU i only (all its threads)."""
    app_id = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    configs = _worker_configs(setup, topics, app_id, label, workers)
    if pin:
        configs = [dataclasses.replace(c, cpus=(i,)) for i, c in enumerate(configs)]
    procs = [WorkerProcess(c).start() for c in configs]
    ends = end_offsets(setup.bootstrap, topics, setup.partitions)
    admin = KafkaAdminClient(bootstrap_servers=setup.bootstrap.split(","))
    profiler: Profiler | None = None
    try:
        if profile_to is not None:
            wait_for(
                lambda: procs[0].last is not None and procs[0].last.get(INGESTED) > 0,
                READY_TIMEOUT_SECONDS,
                f"{label}: first ingestion",
                procs,
                interval=0.05,
            )
            profiler = Profiler(procs[0].pid, profile_to).start()
        wait_for(
            lambda: group_caught_up(admin, app_id, ends),
            setup.timeout,
            f"{label}: consumer group {app_id} committed all input offsets",
            procs,
            interval=DONE_POLL_SECONDS,
        )
        time.sleep(2 * DONE_POLL_SECONDS)  # a last scrape after the final flush
        for p in procs:
            p.record_thread_cpu()
    finally:
        if profiler is not None:
            profiler.stop()
        admin.close()
        for p in procs:
            p.stop()
    return summarise_pass(procs, total, app_id)


def _system_share(procs: list[WorkerProcess], start: float, end: float) -> float | None:
    """The kernel's share of the workers' CPU between two times (None without samples)."""
    cpu = system = 0.0
    for p in procs:
        if p.sampler is None:
            continue
        spent = p.sampler.cpu_between(start, end)
        kernel = p.sampler.system_between(start, end)
        if spent is None or kernel is None:
            continue
        cpu += spent
        system += kernel
    return round(system / cpu, 3) if cpu else None


def second_half(
    procs: list[WorkerProcess], total: int, first_at: float, done_at: float
) -> dict[str, Any] | None:
    """The pass from the first scrape that saw half the input ingested, to its end.

    A fresh worker grows by about a GB in its first seconds, and the kernel zeroes every
    new page: a third of its CPU then, under a tenth once its memory stops growing
    (BENCHMARKS.md). The second half is the warmed-up worker's cost per event; the whole
    pass stays the headline figure.
    """
    times = sorted({s.at for p in procs for s in p.snapshots if first_at < s.at < done_at})
    for at in times:
        ingested = sum(_ingested_at(p, at) for p in procs)
        if ingested < total / 2:
            continue
        if ingested >= total:  # the rest came in one scrape (tiny runs)
            return None
        cpu = [p.sampler.cpu_between(at, done_at) for p in procs if p.sampler]
        if not cpu or any(c is None for c in cpu):
            return None
        spent = sum(c for c in cpu if c is not None)
        if spent <= 0:
            return None
        return {
            "from_s": round(at - first_at, 2),
            "events": int(total - ingested),
            "events_per_s": round((total - ingested) / (done_at - at), 1),
            "events_per_cpu_second": round((total - ingested) / spent, 1),
            "system_cpu_share": _system_share(procs, at, done_at),
        }
    return None


def _require_every_event_counted(procs: list[WorkerProcess], total: int) -> None:
    """Refuse a pass whose workers' last scrapes do not account for every input event:
    its rate and CPU would be read between the wrong scrapes."""
    reported = sum(p.snapshots[-1].get(INGESTED) if p.snapshots else 0.0 for p in procs)
    if reported < total:
        raise PeerFailedError(
            f"full workload: the workers' last scrapes report {int(reported)} of {total} "
            "events ingested, though the group committed every input offset; a scrape "
            "missed the worker's series (see its log), so the pass is not summarised"
        )


def summarise_pass(procs: list[WorkerProcess], total: int, app_id: str) -> dict[str, Any]:
    first_at, ingested_first = _first_ingestion(procs, total)
    _require_every_event_counted(procs, total)
    done_at = max(_done_time(p) for p in procs)
    # Never below one scrape interval: tiny (smoke) runs finish between two scrapes.
    busy = max(done_at - first_at, SCRAPE_SECONDS)
    counted = total - ingested_first
    cpu = [p.sampler.cpu_between(first_at, done_at) if p.sampler else None for p in procs]
    cpu_total = sum(c for c in cpu if c is not None)
    last = [p.snapshots[-1] for p in procs]
    ingested_total = sum(s.get(INGESTED) for s in last)
    changelog_total = sum(s.get(CHANGELOG) for s in last)
    state_bytes = sum(s.get(STATE_BYTES) for s in last)
    state_keys = sum(s.get(STATE_KEYS) for s in last)
    batches = sum(s.get(BATCH_SECONDS_COUNT) for s in last)
    inserts = sum(s.get(SINK_SECONDS_COUNT) for s in last)
    return {
        "app_id": app_id,
        "workers": len(procs),
        "events": total,
        "events_ingested_incl_replays": int(ingested_total),
        "events_per_s": round(counted / busy, 1),
        "busy_seconds": round(busy, 2),
        "cpu_seconds": round(cpu_total, 2),
        "events_per_cpu_second": round(counted / cpu_total, 1) if cpu_total else None,
        "cpu_cores_used": round(cpu_total / busy, 2),
        "system_cpu_share": _system_share(procs, first_at, done_at),
        "second_half": second_half(procs, total, first_at, done_at),
        "peak_rss_mb": round(max(p.sampler.peak_rss_mb for p in procs if p.sampler), 1),
        "peak_rss_mb_per_worker": [round(p.sampler.peak_rss_mb, 1) for p in procs if p.sampler],
        "changelog_records": int(changelog_total),
        "changelog_records_per_event": round(changelog_total / ingested_total, 4)
        if ingested_total
        else None,
        "state_bytes_end": int(state_bytes),
        "state_keys_end": int(state_keys),
        "state_bytes_per_key_end": round(state_bytes / state_keys, 1) if state_keys else None,
        "mean_batch_seconds": round(sum(s.get(BATCH_SECONDS_SUM) for s in last) / batches, 4)
        if batches
        else None,
        "mean_events_per_batch": round(ingested_total / batches, 1) if batches else None,
        "mean_insert_seconds": round(sum(s.get(SINK_SECONDS_SUM) for s in last) / inserts, 4)
        if inserts
        else None,
        "cpu_seconds_by_thread": [
            {k: round(v, 2) for k, v in list(p.thread_cpu.items())[:8]} for p in procs
        ],
    }


def chtool(command: str, directory: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.chtool", command, str(directory)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(
            f"bench.chtool {command} {directory} failed:\n{result.stdout}{result.stderr}"
        )
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def freeze_heap() -> None:
    """Keep this process's collector off everything alive now (the records a paced
    producer is about to send among them).

    The bench holds the dataset: about half a million records, millions of objects. A
    full collection scanned them all every 4 s or so and took 1.2-1.4 s, and the producer
    in this process stopped for that long, then sent what it owed as a burst. The worker
    then saw holes and double-rate bursts instead of the fixed rate the pass names.
    Frozen objects are not scanned; reference counting still frees them.
    """
    gc.collect()
    gc.freeze()


def run_latency(
    setup: FullSetup, rate: float, seconds: float, label: str, live: bool
) -> dict[str, Any]:
    """Produce at ``rate`` into fresh topics a live worker already listens on.

    ``live``: event times re-stamped to the wall clock (``bench/live.py``); otherwise the
    simulated history as generated, paced (event time runs far ahead of the clock).
    """
    count = min(int(rate * seconds), len(setup.dataset.records))
    records = setup.dataset.records[:count]
    if live:
        records = restamp(records, rate)
    topics = new_topics(label)
    create_input_topics(setup, topics)
    app_id = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    [config] = _worker_configs(setup, topics, app_id, label, 1)
    chtool("prepare", config.clickhouse_dir)
    worker = WorkerProcess(config).start()
    inputs = 3 * setup.partitions
    try:
        wait_for(
            lambda: worker.last is not None and worker.last.lag_series >= inputs,
            READY_TIMEOUT_SECONDS,
            f"{label}: worker assigned all {inputs} input partitions",
            [worker],
        )
        freeze_heap()
        produce_started = time.time()
        report = asyncio.run(
            produce(
                as_sim_records(records),
                setup.bootstrap,
                topics,
                speedup=None,
                rate=rate,
            )
        )
        wait_for(
            lambda: (
                worker.last is not None
                and worker.last.get(INGESTED) >= count
                and worker.last.get(SINK_QUEUE) == 0
            ),
            setup.timeout,
            f"{label}: all {count} events ingested and written",
            [worker],
        )
        produce_ended = time.time()
        time.sleep(1.0)  # a last scrape after the final flush
    finally:
        worker.stop()
    measured = chtool("latency", config.clickhouse_dir)
    return {
        "event_time": "wall clock (re-stamped)" if live else "simulated history, paced",
        "target_events_per_s": round(rate, 1),
        "produced_events_per_s": round(report.records_per_second, 1),
        "producer_max_behind_ms": round(report.max_behind_seconds * 1000, 1),
        "events": count,
        "peak_rss_mb": round(worker.sampler.peak_rss_mb, 1) if worker.sampler else None,
        **measured,
        "while_producing": _activity(worker, produce_started, produce_ended),
    }


def _activity(worker: WorkerProcess, start: float, end: float) -> dict[str, Any]:
    """What the worker did per second while records arrived at the fixed rate."""
    inside = [s for s in worker.snapshots if start <= s.at <= end]
    cpu = worker.sampler.cpu_between(start, end) if worker.sampler else None
    if len(inside) < 2:
        return {}
    first, last = inside[0], inside[-1]
    span = max(last.at - first.at, 1e-9)
    batches = last.get(BATCH_SECONDS_COUNT) - first.get(BATCH_SECONDS_COUNT)
    return {
        "cpu_cores_used": round(cpu / (end - start), 2) if cpu is not None else None,
        "batches_per_s": round(batches / span, 1),
        "mean_events_per_batch": round((last.get(INGESTED) - first.get(INGESTED)) / batches, 1)
        if batches
        else None,
        "mean_batch_seconds": round(
            (last.get(BATCH_SECONDS_SUM) - first.get(BATCH_SECONDS_SUM)) / batches, 4
        )
        if batches
        else None,
        "clickhouse_inserts_per_s": round(
            (last.get(SINK_SECONDS_COUNT) - first.get(SINK_SECONDS_COUNT)) / span, 1
        ),
        "max_consumer_lag": max(s.get(LAG) for s in inside),
    }


def _pinned_scaling(
    setup: FullSetup, topics: TopicNames, total: int, workers: int
) -> dict[str, Any]:
    """One worker on one CPU against ``workers`` workers on one CPU each.

    One worker unpinned uses about 1.3 of this machine's 2 cores (its engine's threads
    beside the core's), so the unpinned ratio is capped near 2 / 1.3 whatever the workers
    do. With every worker held to one CPU, each has the same share as the one did, and
    the ratio measures how the partitions' work splits between workers (rebalance,
    duplicate reads, the shared broker), as it would with a machine per worker. The
    broker, the harness and the rest of the machine share the same CPUs, so it is a
    lower bound."""
    cpus = os.cpu_count() or 1
    if cpus < workers:
        return {"skipped": f"{workers} workers need {workers} CPUs, this machine has {cpus}"}
    one = _attempt(
        setup,
        "sat1-pinned",
        lambda: run_saturation(setup, topics, total, 1, "sat1-pinned", pin=True),
    )
    label = f"sat{workers}-pinned"
    many = _attempt(
        setup, label, lambda: run_saturation(setup, topics, total, workers, label, pin=True)
    )
    result: dict[str, Any] = {"cpus_per_worker": 1, "workers_1": one, f"workers_{workers}": many}
    if "error" not in one and "error" not in many:
        result["speedup"] = round(many["events_per_s"] / one["events_per_s"], 3)
        setup.log(
            f"full: pinned, 1 worker {one['events_per_s']:,.0f} events/s, {workers} workers "
            f"{many['events_per_s']:,.0f} ({result['speedup']:.2f}x)"
        )
    return result


def _attempt(setup: FullSetup, label: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One pass; a failure is recorded in the results instead of ending the benchmark."""
    try:
        return run()
    except PeerFailedError as exc:
        setup.log(f"full: {label} FAILED: {str(exc).splitlines()[0]}")
        return {"error": str(exc)[:4000]}


def run_full_workload(
    setup: FullSetup,
    *,
    scaling_workers: int,
    profile_to: Path | None,
    latency_rates: list[float | None],
    latency_seconds: float,
    latency_modes: tuple[bool, ...] = (True, False),
    pinned_scaling: bool = True,
) -> dict[str, Any]:
    """Saturation (1 worker), state, scaling (also with each worker on one CPU of its
    own: ``pinned_scaling``), profile, latency.

    A ``None`` latency rate means half of the measured saturation; ``latency_modes``:
    True = live-like event time, False = paced simulated history.
    """
    records = setup.dataset.records
    topics = new_topics("full")
    load_rate = preload(setup, topics, records)
    setup.log(f"full: pre-loaded {len(records):,} records ({load_rate:,.0f}/s)")
    one = run_saturation(setup, topics, len(records), 1, "sat1")
    setup.log(f"full: 1 worker {one['events_per_s']:,.0f} events/s, {one['peak_rss_mb']:,.0f} MB")
    state = changelog_state_stats(setup.bootstrap, one["app_id"], setup.partitions)
    scaling: dict[str, Any] = {"workers_1": one}
    if scaling_workers > 1:
        label = f"sat{scaling_workers}"
        many = _attempt(
            setup,
            label,
            lambda: run_saturation(setup, topics, len(records), scaling_workers, label),
        )
        scaling[f"workers_{scaling_workers}"] = many
        if "error" not in many:
            scaling["speedup"] = round(many["events_per_s"] / one["events_per_s"], 3)
            setup.log(f"full: {scaling_workers} workers {many['events_per_s']:,.0f} events/s")
    if scaling_workers > 1 and pinned_scaling:
        scaling["pinned"] = _pinned_scaling(setup, topics, len(records), scaling_workers)
    profile: dict[str, Any] | None = None
    if profile_to is not None:
        profiled = _attempt(
            setup,
            "profile",
            lambda: run_saturation(setup, topics, len(records), 1, "profile", profile_to),
        )
        profile = {
            "events_per_s_while_profiled": profiled.get("events_per_s"),
            "file": str(profile_to),
        }
        if "error" in profiled:
            profile["error"] = profiled["error"]
    latency: dict[str, Any] = {}
    for live in latency_modes:
        mode = "live" if live else "replay"
        for rate in latency_rates:
            target = rate if rate is not None else one["events_per_s"] / 2
            key = f"{mode}_" + ("half_saturation" if rate is None else f"rate_{int(rate)}")
            label = f"lat-{mode}-{int(target)}"
            latency[key] = _attempt(
                setup, label, partial(run_latency, setup, target, latency_seconds, label, live)
            )
            if "error" not in latency[key]:
                q = latency[key]["quantiles_ms"]
                setup.log(
                    f"full: latency ({mode}) at {target:,.0f}/s: p50 {q['p50']:,.0f} ms, "
                    f"p99 {q['p99']:,.0f} ms"
                )
    return {
        "preload_events_per_s": round(load_rate, 1),
        "saturation": one,
        "state": state,
        "scaling": scaling,
        "latency": latency,
        "profile": profile,
    }
