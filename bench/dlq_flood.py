"""Memory after a burst of dead letters (issue #19): the RSS a worker keeps once idle.

    .venv/bin/python -m bench.dlq_flood --records 400000
    .venv/bin/python -m bench.dlq_flood --good-users 3000 --records 150000

A real broker and a real `funnel worker` (embedded ClickHouse): ``--records`` malformed
records (undecodable bytes, ``--payload-bytes`` each) go to the clickstream topic; the
worker dead-letters every one, then idles. The worker's RSS is sampled every 0.5 s: the
peak while it works and the RSS after ``--idle-seconds`` of idleness are printed as JSON.
Before issue #19's fix, every ClickHouse insert left a reference cycle holding its
columns, and the worker's GC tuning let such cycles live on: a burst of 400k dead letters
left about 220 MB behind after the worker went idle.

With ``--good-users N`` (issue #18, item 5: a dead-letter flood must neither grow the
worker's memory without bound nor stall good records), two passes run, each on fresh
topics with a fresh worker that is already assigned its inputs when producing starts:

- baseline: the simulator's records for N users (no malformed records, no duplicates)
  go to the three input topics with their own partitions and keys;
- flood: the same good records, while ``--records`` (default 150,000) undecodable
  records go to the clickstream topic from the same moment on.

Counting uses the worker's /metrics (scraped every 0.5 s): events ingested counts every
record read, dead letters the rejected ones, so good records ingested = ingested - dead
letters (the baseline's dead letters, printed, show that no good record is rejected).
Per pass: seconds from the first good record produced to the scrape that saw all good
records ingested, good records/s over that span, dead letters/s (first produced to the
scrape that saw all dead letters), peak RSS (the kernel's high-water mark) and the RSS
after ``--idle-seconds`` of idleness. One JSON object holds both passes and the
flood/baseline ratio of good-record throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.broker import INPUT_TOPIC_CONFIGS, create_topics, free_ports, local_broker
from bench.procstats import vm_rss_bytes
from bench.promscrape import DEAD_LETTERS, INGESTED, SINK_QUEUE, Snapshot
from bench.worker_proc import SCRAPE_SECONDS, WorkerConfig, WorkerProcess, wait_for
from funnel.settings import TopicNames
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.produce import produce
from simulator.records import SimRecord

REPO_ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
DEFAULT_RECORDS = 400_000
DEFAULT_FLOOD_RECORDS = 150_000
PARTITIONS = 4
READY_TIMEOUT_SECONDS = 120.0


async def _produce(bootstrap: str, topic: str, records: int, payload_bytes: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        pending = []
        for n in range(records):
            # Not JSON, not Avro framing: every record is `undecodable`.
            value = b"\x07not an event " + str(n).encode().ljust(payload_bytes, b".")
            pending.append(await producer.send(topic, value, key=str(n % 5000).encode()))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def _worker_env(bootstrap: str, prefix: str, data_dir: Path, metrics_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        FUNNEL_BOOTSTRAP_SERVERS=bootstrap,
        FUNNEL_APP_ID=f"{prefix}-app",
        FUNNEL_DATA_DIR=str(data_dir),
        FUNNEL_METRICS_PORT=str(metrics_port),
        FUNNEL_TOPICS__CLICKSTREAM=f"{prefix}.clickstream",
        FUNNEL_TOPICS__CART=f"{prefix}.cart",
        FUNNEL_TOPICS__ORDERS=f"{prefix}.orders",
        FUNNEL_TOPICS__DLQ=f"{prefix}.dlq",
        FUNNEL_TOPICS__TRIGGERS=f"{prefix}.triggers",
        FUNNEL_TOPICS__FORGET=f"{prefix}.forget",
    )
    return env


def _good_ingested(snapshot: Snapshot) -> float:
    return snapshot.get(INGESTED) - snapshot.get(DEAD_LETTERS)


def _first_at(snapshots: list[Snapshot], reached: Callable[[Snapshot], bool]) -> float | None:
    return next((s.at for s in snapshots if reached(s)), None)


def _rate(count: int, seconds: float | None) -> float | None:
    return round(count / seconds, 1) if seconds else None


def _run_pass(
    bootstrap: str,
    work: Path,
    label: str,
    good: list[SimRecord],
    bad_records: int,
    payload_bytes: int,
    idle_seconds: float,
    timeout: float,
) -> dict[str, Any]:
    """Fresh topics and worker; good records (and ``bad_records`` at the same time)."""
    prefix = f"flood{uuid.uuid4().hex[:6]}.{label}"
    topics = TopicNames(
        clickstream=f"{prefix}.clickstream",
        cart=f"{prefix}.cart",
        orders=f"{prefix}.orders",
        dlq=f"{prefix}.dlq",
        triggers=f"{prefix}.triggers",
        forget=f"{prefix}.forget",
    )
    create_topics(bootstrap, list(topics.inputs()), PARTITIONS, INPUT_TOPIC_CONFIGS)
    create_topics(bootstrap, [topics.dlq, topics.triggers], PARTITIONS)
    config = WorkerConfig(
        bootstrap=bootstrap,
        topics=topics,
        partitions=PARTITIONS,
        app_id=f"{prefix}-app",
        data_dir=work / label,
        metrics_port=free_ports(1)[0],
    )
    worker = WorkerProcess(config).start()
    inputs = 3 * PARTITIONS
    try:
        wait_for(
            lambda: worker.last is not None and worker.last.lag_series >= inputs,
            READY_TIMEOUT_SECONDS,
            f"{label}: worker assigned all {inputs} input partitions",
            [worker],
        )
        rss_ready = vm_rss_bytes(worker.pid)
        started = time.time()

        async def _both() -> float:
            good_job = produce(good, bootstrap, topics, speedup=None, rate=None)
            if bad_records:
                flood = _produce(bootstrap, topics.clickstream, bad_records, payload_bytes)
                await asyncio.gather(good_job, flood)
            else:
                await good_job
            return time.time()

        produced = asyncio.run(_both())
        wait_for(
            lambda: (
                worker.last is not None
                and _good_ingested(worker.last) >= len(good)
                and worker.last.get(DEAD_LETTERS) >= bad_records
                and worker.last.get(SINK_QUEUE) == 0
            ),
            timeout,
            f"{label}: {len(good)} good records ingested and {bad_records} dead-lettered",
            [worker],
        )
        done = time.time()
        time.sleep(idle_seconds)
        worker.check_alive(f"{label}: idle")
        snapshots = list(worker.snapshots)
        assert worker.sampler is not None
        samples = list(worker.sampler.samples)
        peak_rss = worker.sampler.peak_rss_mb
    finally:
        worker.stop()
    good_at = _first_at(snapshots, lambda s: _good_ingested(s) >= len(good))
    bad_at = _first_at(snapshots, lambda s: s.get(DEAD_LETTERS) >= bad_records)
    good_s = None if good_at is None else good_at - started
    bad_s = None if bad_at is None or not bad_records else bad_at - started
    idle = [s.rss_bytes / MB for s in samples if s.at >= done + idle_seconds * 2 / 3]
    last = snapshots[-1]
    return {
        "good_records": len(good),
        "bad_records": bad_records,
        "produce_seconds": round(produced - started, 1),
        "good_ingested_seconds": None if good_s is None else round(good_s, 1),
        "good_records_per_s": _rate(len(good), good_s),
        "dead_letter_seconds": None if bad_s is None else round(bad_s, 1),
        "dead_letters_per_s": _rate(bad_records, bad_s),
        "ingested_total": int(last.get(INGESTED)),
        "dead_letters_total": int(last.get(DEAD_LETTERS)),
        "rss_ready_mb": None if rss_ready is None else round(rss_ready / MB),
        "rss_peak_mb": round(peak_rss),
        "rss_idle_mb": round(min(idle)) if idle else None,
        "idle_seconds": idle_seconds,
        "scrape_seconds": SCRAPE_SECONDS,
        "logs": str(config.data_dir / "worker.log"),
    }


def run_good_and_flood(args: argparse.Namespace, records: int) -> dict[str, Any]:
    sim = SimConfig(users=args.good_users, partitions=PARTITIONS)
    good = list(generate(sim))
    work = Path(tempfile.mkdtemp(prefix="dlq-flood-"))
    with local_broker(work / "broker") as bootstrap:
        passes = {
            label: _run_pass(
                bootstrap,
                work,
                label,
                good,
                bad,
                args.payload_bytes,
                args.idle_seconds,
                args.timeout,
            )
            for label, bad in (("baseline", 0), ("flood", records))
        }
    base = passes["baseline"]["good_records_per_s"]
    flood = passes["flood"]["good_records_per_s"]
    return {
        "code": str(REPO_ROOT),
        "good_users": args.good_users,
        "payload_bytes": args.payload_bytes,
        **passes,
        "good_throughput_ratio_flood_vs_baseline": (
            round(flood / base, 3) if base and flood else None
        ),
        "run_dir": str(work),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records",
        type=int,
        default=None,
        help=f"bad records (default {DEFAULT_RECORDS}; {DEFAULT_FLOOD_RECORDS} with --good-users)",
    )
    parser.add_argument("--payload-bytes", type=int, default=400)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument(
        "--good-users",
        type=int,
        default=None,
        help="simulator users whose records run alone, then during the flood",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="per pass, with --good-users")
    args = parser.parse_args(argv)
    if args.good_users is not None:
        records = DEFAULT_FLOOD_RECORDS if args.records is None else args.records
        print(json.dumps(run_good_and_flood(args, records)))
        return 0
    if args.records is None:
        args.records = DEFAULT_RECORDS
    work = Path(tempfile.mkdtemp(prefix="dlq-flood-"))
    prefix = f"flood{uuid.uuid4().hex[:6]}"
    with local_broker(work / "broker") as bootstrap:
        env = _worker_env(bootstrap, prefix, work / "worker", free_ports(1)[0])
        subprocess.run(
            [sys.executable, "-m", "funnel.cli", "topics"], env=env, cwd=REPO_ROOT, check=True
        )
        started = time.monotonic()
        asyncio.run(_produce(bootstrap, f"{prefix}.clickstream", args.records, args.payload_bytes))
        produced_s = time.monotonic() - started
        log = (work / "worker.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "funnel.cli", "worker", "--until-idle", str(args.idle_seconds)],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        samples: list[tuple[float, float]] = []
        while worker.poll() is None:
            rss = vm_rss_bytes(worker.pid)
            if rss is not None:
                samples.append((time.monotonic(), rss / MB))
            time.sleep(0.5)
        log.close()
    if worker.returncode != 0 or not samples:
        print(f"worker exited with {worker.returncode}; log in {work}", file=sys.stderr)
        return 1
    # The worker stops after --idle-seconds of idleness: the last samples are idle ones.
    idle = [rss for t, rss in samples if t >= samples[-1][0] - args.idle_seconds / 3]
    print(
        json.dumps(
            {
                "code": str(REPO_ROOT),
                "records": args.records,
                "payload_bytes": args.payload_bytes,
                "produce_seconds": round(produced_s, 1),
                "worker_seconds": round(samples[-1][0] - samples[0][0], 1),
                "rss_start_mb": round(samples[0][1]),
                "rss_peak_mb": round(max(rss for _, rss in samples)),
                "rss_idle_mb": round(min(idle)),
                "logs": str(work),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
