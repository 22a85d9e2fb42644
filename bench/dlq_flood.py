"""Memory after a burst of dead letters (issue #19): the RSS a worker keeps once idle.

    .venv/bin/python -m bench.dlq_flood --records 400000

A real broker and a real `funnel worker` (embedded ClickHouse): ``--records`` malformed
records (undecodable bytes, ``--payload-bytes`` each) go to the clickstream topic; the
worker dead-letters every one, then idles. The worker's RSS is sampled every 0.5 s: the
peak while it works and the RSS after ``--idle-seconds`` of idleness are printed as JSON.
Before issue #19's fix, every ClickHouse insert left a reference cycle holding its
columns, and the worker's GC tuning let such cycles live on: a burst of 400k dead letters
left about 220 MB behind after the worker went idle.
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
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench.broker import free_ports, local_broker
from bench.procstats import vm_rss_bytes

REPO_ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


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
    )
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--payload-bytes", type=int, default=400)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
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
