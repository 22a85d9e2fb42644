"""Fault drill: a SIGKILL storm against a live worker, then every table against the truth.

Not part of the suite (it takes minutes); run it after changes to the state or sink path:

    .venv/bin/python -m tests.drills.kill_storm --users 5000 --kills 9

Traffic is produced live to fresh topics over ``--produce-seconds`` while workers are
started and SIGKILLed at random intervals; a final worker runs until idle. Every table
the pipeline writes (``tests.pipeline_harness.assert_matches_truth``) must equal the
simulator's independent ground truth. Exits non-zero, with the differences, otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.request import urlopen

from prometheus_client.parser import text_string_to_metric_families

from funnel.settings import load_settings
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.produce import produce
from simulator.truth import compute_truth
from streams.topics import ensure_topics
from tests.kafka_fixture import running_script_broker
from tests.pipeline_harness import PipelineEnv, WorkerProcess, assert_matches_truth, run_until_idle


def stacks(pid: int) -> str:
    """The stuck worker's Python stacks (py-spy, installed with the bench extras)."""
    spy = Path(sys.executable).with_name("py-spy")
    done = subprocess.run(
        [str(spy), "dump", "--pid", str(pid)], capture_output=True, text=True, check=False
    )
    return done.stdout + done.stderr


def lag_samples(worker: WorkerProcess) -> list[float]:
    try:
        with urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return []
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "shopfunnel_consumer_lag_records"
    ]


def wait_until_working(worker: WorkerProcess, timeout: float) -> None:
    """Until the worker processes records, or has none left to read (late in the storm the
    earlier workers may have consumed everything: there is nothing to ingest then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited early; log:\n{worker.log_tail()}")
        if (worker.metric("shopfunnel_events_ingested_total") or 0) >= 1:
            return
        lags = lag_samples(worker)
        if len(lags) == 12 and not any(lags):  # 3 inputs x 4 partitions, all read to the end
            return
        time.sleep(0.5)
    raise AssertionError(f"worker neither ingested nor caught up in {timeout}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--days", type=float, default=0.3)
    parser.add_argument("--kills", type=int, default=9)
    parser.add_argument("--min-interval", type=float, default=15.0)
    parser.add_argument("--max-interval", type=float, default=30.0)
    parser.add_argument("--produce-seconds", type=float, default=220.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    config = SimConfig(
        seed=args.seed,
        users=args.users,
        days=args.days,
        duplicate_pct=3,
        out_of_order_pct=8,
        late_pct=1.5,
        malformed_pct=1,
        json_pct=10,
    )
    records = list(generate(config))
    truth = compute_truth(
        records,
        lateness_ms=config.lateness_ms,
        session_timeout_ms=config.session_timeout_ms,
        window_ms=config.window_ms,
        # The workers stop with --until-idle in replay: the inputs end finished.
        inputs_finished=True,
    )
    print(f"{len(records)} records of {args.users} users; {args.kills} kills", flush=True)
    root = Path(tempfile.mkdtemp(prefix="kill-storm-"))  # kept: the workers' logs
    print(f"logs under {root}", flush=True)
    with running_script_broker(root / "broker") as broker:
        env = PipelineEnv.with_fresh_topics(broker.bootstrap, root / "pipeline")
        ensure_topics(
            load_settings(
                bootstrap_servers=env.bootstrap, topics=env.topics, partitions=env.partitions
            )
        )
        rate = len(records) / args.produce_seconds
        producer = threading.Thread(
            target=lambda: asyncio.run(
                produce(records, env.bootstrap, env.topics, speedup=None, rate=rate)
            ),
            daemon=True,
        )
        producer.start()
        rnd = random.Random(args.seed)
        restarts: list[float] = []
        for kill in range(args.kills):
            worker = WorkerProcess(env, until_idle=None, name=f"storm{kill}")
            started = time.monotonic()
            try:
                wait_until_working(worker, timeout=180)
            except AssertionError:
                print(stacks(worker.process.pid), file=sys.stderr)
                worker.kill()  # never leave a worker running behind the drill
                raise
            restarts.append(time.monotonic() - started)
            time.sleep(rnd.uniform(args.min_interval, args.max_interval))
            worker.kill()
            print(f"kill {kill + 1}: restart-to-first-batch {restarts[-1]:.1f}s", flush=True)
        producer.join(600)
        run_until_idle(env, timeout=900, name="final")
        try:
            counts = assert_matches_truth(env, truth, records)
        except AssertionError as exc:
            print(f"MISMATCH: {exc}", file=sys.stderr)
            return 1
    print(f"every table equals the truth after {args.kills} SIGKILLs: {counts}")
    print(f"restart to first batch (s): {[round(r, 1) for r in restarts]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
