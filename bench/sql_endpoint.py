"""Ingestion with and without heavy queries through the worker's SQL endpoint (issue 13).

Pre-loads simulated traffic to fresh topics on a local broker, then runs `funnel worker`
twice on it (fresh consumer group and data directory each time): alone, and with
``--loops`` threads sending heavy queries to its read-only SQL endpoint without pause.
Prints events/s of each run (from the worker's events_ingested counter: first to last
increment), their ratio, and the latency of a typical Grafana query (the funnel panel's
``v_funnel_now`` query, every 0.5 s while the worker ingests) in each run.

    .venv/bin/python -m bench.sql_endpoint [--users 20000 --days 1 --loops 2]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import clickhouse_connect

from bench.broker import local_broker
from funnel.settings import load_settings
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.produce import produce
from streams.topics import ensure_topics
from tests.pipeline_harness import PipelineEnv, WorkerProcess, free_port

EVENTS = "shopfunnel_events_ingested_total"
HEAVY = (
    # a scan and aggregation of the raw events, grouped by visitor
    "SELECT anonymous_id, count() AS n, uniqExact(event_type) FROM events_raw "
    "GROUP BY anonymous_id ORDER BY n DESC LIMIT 10",
    # pure CPU until the endpoint's execution time limit stops it
    "SELECT count() FROM numbers(100000000000) WHERE cityHash64(number) % 7 = 3",
    # every funnel table at once, FINAL
    "SELECT funnel, step, sum(entered) FROM funnel_steps_minute FINAL GROUP BY ALL",
)
DASHBOARD = (
    "SELECT step, step_name, entered, conversion_from_previous, conversion_from_first "
    "FROM v_funnel_now WHERE funnel = {funnel:String} ORDER BY step"
)


def ingest_rate(worker: WorkerProcess, timeout: float = 900) -> float:
    """events/s from the first to the last increment of the ingested counter (the
    worker stops by itself once idle)."""
    first: tuple[float, float] | None = None
    last: tuple[float, float] = (0.0, 0.0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.process.poll() is None:
        value = worker.metric(EVENTS)
        now = time.monotonic()
        if value:
            if first is None:
                first = (now, value)
            if value > last[1]:
                last = (now, value)
        time.sleep(0.05)
    if first is None or last[0] <= first[0]:
        raise RuntimeError(f"no ingestion measured:\n{worker.log_tail()}")
    return (last[1] - first[1]) / (last[0] - first[0])


def hammer(port: int, stop: threading.Event, outcomes: list[str]) -> None:
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, database="shop")
    index = 0
    while not stop.is_set():
        sql = HEAVY[index % len(HEAVY)]
        index += 1
        try:
            client.query(sql)
            outcomes.append("ok")
        except Exception as exc:
            if "Connection refused" in str(exc):
                return  # the worker stopped
            names = re.findall(r"\(([A-Z_]+)\)", str(exc))
            outcomes.append(names[0] if names else type(exc).__name__)


def dashboard(port: int, stop: threading.Event, latencies: list[float]) -> None:
    """The funnel panel's query every 0.5 s while the worker ingests."""
    client = endpoint_client(port)
    while not stop.is_set():
        started = time.perf_counter()
        try:
            client.query(DASHBOARD, parameters={"funnel": "checkout"})
        except Exception:
            return  # the worker stopped
        latencies.append(time.perf_counter() - started)
        time.sleep(0.5)


def endpoint_client(port: int, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return clickhouse_connect.get_client(host="127.0.0.1", port=port, database="shop")
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def run(env: PipelineEnv, loops: int) -> tuple[float, list[float], list[str]]:
    port = free_port()
    env.extra["FUNNEL_SQL_PORT"] = str(port)
    worker = WorkerProcess(env, until_idle=5.0, name=f"loops{loops}")
    stop = threading.Event()
    outcomes: list[str] = []
    latencies: list[float] = []
    threads = []
    try:
        if loops:
            endpoint_client(port)
            threads = [
                threading.Thread(target=hammer, args=(port, stop, outcomes), daemon=True)
                for _ in range(loops)
            ]
            for thread in threads:
                thread.start()
        threads.append(
            threading.Thread(target=dashboard, args=(port, stop, latencies), daemon=True)
        )
        threads[-1].start()
        rate = ingest_rate(worker)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        worker.wait(300)
    return rate, latencies, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--loops", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sql-endpoint-"))
    records = list(generate(SimConfig(seed=7, users=args.users, days=args.days)))
    print(f"{len(records)} records")
    with local_broker(work) as bootstrap:
        base = PipelineEnv.with_fresh_topics(bootstrap, work / "alone")
        ensure_topics(
            load_settings(
                bootstrap_servers=bootstrap, topics=base.topics, partitions=base.partitions
            )
        )
        asyncio.run(produce(records, bootstrap, base.topics, speedup=None, rate=None))
        alone, alone_latency, _ = run(base, 0)
        loaded, loaded_latency, outcomes = run(base.fork(work / "loaded"), args.loops)
    print(f"ingestion alone: {alone:,.0f} events/s")
    print(f"ingestion with {args.loops} heavy-query loops: {loaded:,.0f} events/s")
    print(f"ratio: {loaded / alone:.2f}")
    counts = {kind: outcomes.count(kind) for kind in sorted(set(outcomes))}
    print(f"heavy queries: {len(outcomes)} ({counts})")
    for name, values in (("ingesting", alone_latency), ("ingesting + heavy loops", loaded_latency)):
        print(
            f"dashboard query latency ({name}): median {statistics.median(values) * 1000:.1f} ms, "
            f"max {max(values) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
