"""The README's first command, after setup: a worker and the simulator for about a minute.

1. (Re)create the demo topics on the local broker and clear the demo's ClickHouse.
2. Start `funnel worker` in the background (embedded ClickHouse, /metrics on :9108).
3. Run `funnel simulate`: an hour of new visitors (2.6 simulated hours of traffic with
   their later sessions, ending before now) in about a minute, with duplicates, disorder,
   late and malformed events.
4. Import the run's marketing costs (`funnel costs import`), wait until the worker has
   consumed everything, stop it, print the funnel, KPI, experiment and attribution
   reports from ClickHouse, write them as one HTML page (.data/demo/report.html), and
   compare the numbers with the simulator's ground truth.
"""

from __future__ import annotations

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
    for stream in ("clickstream", "cart", "orders", "dlq", "triggers", "marketing_costs"):
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
                "now-3h",
                "--days",
                "0.0417",
                "--users",
                "3000",
                "--speedup",
                "160",
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
        print("==> importing the simulated campaigns' marketing costs")
        run(["costs", "import", str(truth_path.with_name("costs.csv"))], env)
        print("==> waiting for the worker to consume everything")
        wait_caught_up(worker, metrics_url)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(120)
    print("==> reports from ClickHouse")
    run(["report", "funnel"], env)
    run(["report", "kpi"], env)
    run(["report", "experiments"], env)
    run(["report", "attribution"], env)
    html = Path(env["FUNNEL_DATA_DIR"]) / "report.html"
    run(["report", "--html", str(html)], env)
    print(f"==> the same numbers as charts (one self-contained HTML file): {html}")
    compare_with_truth(env, truth_path)


def compare_with_truth(env: dict[str, str], truth_path: Path) -> None:
    """The funnel and KPI totals from ClickHouse next to the simulator's ground truth."""
    import clickhouse_connect
    from rich.console import Console
    from rich.table import Table

    from simulator.truth import read_truth

    truth = read_truth(truth_path)
    dsn = f"chdb://{Path(env['FUNNEL_DATA_DIR']).resolve() / 'clickhouse'}"
    client = clickhouse_connect.get_client(dsn=dsn, database="shop")
    table = Table(
        "number",
        "pipeline (ClickHouse)",
        "ground truth",
        "equal",
        title="Pipeline vs the simulator's ground truth",
    )
    steps = {
        (f, s): int(n)
        for f, s, n in client.query(
            "SELECT funnel, step, sum(entered) FROM funnel_steps_minute FINAL GROUP BY ALL"
        ).result_rows
    }
    want_steps: dict[tuple[str, int], int] = {}
    for row in truth.funnel_steps:
        key = (row.funnel, row.step)
        want_steps[key] = want_steps.get(key, 0) + row.entered
    for key in sorted(want_steps):
        got, want = steps.get(key, 0), want_steps[key]
        table.add_row(
            f"{key[0]} step {key[1]} entered",
            f"{got:,}",
            f"{want:,}",
            "yes" if got == want else "NO",
        )
    orders, gmv = client.query(
        "SELECT sum(orders), sum(gmv_minor) FROM kpi_minute FINAL"
    ).result_rows[0]
    checks = [
        ("orders", int(orders), sum(r.orders for r in truth.kpi)),
        ("GMV (minor units, all currencies)", int(gmv), sum(r.gmv_minor for r in truth.kpi)),
        (
            "late events (distinct)",
            int(client.query("SELECT uniqExact(event_id) FROM late_events").result_rows[0][0]),
            len(truth.late_event_ids),
        ),
    ]
    # Every attribution model credits exactly the GMV (docs/semantics.md 10).
    credited = client.query(
        "SELECT model, sum(value_minor * share_micro) FROM order_attribution FINAL "
        "WHERE share_micro > 0 GROUP BY model ORDER BY model"
    ).result_rows
    gmv_micro = sum(r.gmv_minor for r in truth.kpi) * 1_000_000
    for model, micro in credited:
        checks.append((f"GMV credited by {model} (x10^6)", int(micro), gmv_micro))
    for label, got, want in checks:
        table.add_row(label, f"{got:,}", f"{want:,}", "yes" if got == want else "NO")
    Console().print(table)
    print(f"==> ground truth file: {truth_path}")


if __name__ == "__main__":
    main()
