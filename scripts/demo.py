"""The README's first command, after setup: a worker and the simulator for about a minute.

1. (Re)create the demo topics on the local broker and clear the demo's ClickHouse.
2. Start `funnel worker` in the background (embedded ClickHouse, /metrics on :9108).
3. Run `funnel simulate`: one simulated hour of shop traffic (ending now) in about 60 s,
   with duplicates, disorder, late and malformed events.
4. Wait until the worker has consumed everything, stop it, print the funnel and KPI
   reports from ClickHouse and compare them with the simulator's ground truth.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
FUNNEL = [sys.executable, "-m", "funnel.cli"]


def demo_env() -> dict[str, str]:
    env = dict(os.environ)
    data = Path(env.get("FUNNEL_DATA_DIR", REPO / ".data" / "demo")).resolve()
    env.setdefault("FUNNEL_DATA_DIR", str(data))
    env.setdefault("FUNNEL_APP_ID", "shop-funnel-demo")
    for stream in ("clickstream", "cart", "orders", "dlq", "triggers"):
        env.setdefault(f"FUNNEL_TOPICS__{stream.upper()}", f"demo.{stream}")
    env.setdefault("FUNNEL_METRICS_PORT", "9108")
    return env


def run(args: list[str], env: dict[str, str]) -> None:
    result = subprocess.run([*FUNNEL, *args], env=env, cwd=REPO, check=False)
    if result.returncode:
        sys.exit(f"demo: `funnel {' '.join(args)}` failed (exit {result.returncode}); see above")


def lag(metrics_url: str) -> float | None:
    try:
        with urlopen(metrics_url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    samples = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "shopfunnel_consumer_lag_records"
    ]
    return sum(samples) if samples else None


def wait_caught_up(worker: subprocess.Popen[bytes], metrics_url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    zero_since: float | None = None
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            sys.exit(f"demo: the worker exited early (exit {worker.returncode}); see its log above")
        current = lag(metrics_url)
        if current == 0:
            zero_since = zero_since or time.monotonic()
            if time.monotonic() - zero_since >= 3:
                return
        else:
            zero_since = None
        time.sleep(0.5)
    print("demo: the worker did not catch up in time; stopping it anyway", file=sys.stderr)


def main() -> None:
    env = demo_env()
    data_dir = Path(env["FUNNEL_DATA_DIR"])
    truth_path = data_dir / "sim" / "truth.json"
    print("==> recreating the demo topics and clearing the demo ClickHouse")
    run(["topics", "--recreate"], env)
    subprocess.run(["rm", "-rf", str(data_dir / "clickhouse")], check=True)
    metrics_url = f"http://127.0.0.1:{env['FUNNEL_METRICS_PORT']}/metrics"
    print(f"==> starting the worker (metrics: {metrics_url})")
    worker = subprocess.Popen([*FUNNEL, "worker"], env=env, cwd=REPO)
    try:
        print("==> simulating one hour of shop traffic in about a minute")
        run(
            [
                "simulate",
                "--start",
                "now-1h",
                "--days",
                "0.0417",
                "--users",
                "3000",
                "--speedup",
                "60",
                "--duplicate-pct",
                "1",
                "--out-of-order-pct",
                "3",
                "--late-pct",
                "0.5",
                "--malformed-pct",
                "0.5",
                "--json-pct",
                "5",
                "--truth-out",
                str(truth_path),
            ],
            env,
        )
        print("==> waiting for the worker to consume everything")
        wait_caught_up(worker, metrics_url)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(120)
    print("==> reports from ClickHouse")
    run(["report", "funnel"], env)
    run(["report", "kpi"], env)
    truth = json.loads(truth_path.read_text())
    print(
        f"==> ground truth written by the simulator: {truth_path} "
        f"({len(truth.get('funnel_steps', []))} funnel rows, {len(truth.get('kpi', []))} KPI rows)"
    )


if __name__ == "__main__":
    main()
