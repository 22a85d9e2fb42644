"""What one live experiment evaluation costs, on a store a worker filled.

    python -m bench.experiment_readout --data-dir DIR [--experiments FILE] [--repeat 5]

Times ``reports.experiment_readout.experiment_sums`` (the SQL of one evaluation, with the
monitor's read settings) for every configured experiment on the embedded store under
``DIR``, beside a baseline in the same run: one ``SELECT count() FROM events_raw FINAL``
(a full deduplicating scan of the counted events). Figures are medians; quote them as
ratios against the baseline, and as the share of one core an evaluation takes at the
monitor's interval. Memory: the process's peak RSS during an evaluation over its RSS
just before (the kernel's high-water mark, reset before each evaluation; Linux), the
largest of the runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import clickhouse_connect

from reports.experiment_readout import experiment_sums
from sinks.clickhouse import BACKGROUND_READ_SETTINGS
from streams.experiments import load_experiments
from streams.funnels import load_funnels


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def _measured(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median seconds, largest peak RSS over the RSS before, MB) of ``repeat`` runs."""
    times, peaks = [], []
    for _ in range(repeat):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = _rss_mb("VmRSS")
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
        peaks.append(_rss_mb("VmHWM") - before)
    return statistics.median(times), max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="a worker's data dir")
    parser.add_argument("--experiments", type=Path, default=None, help="experiment file")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per query")
    parser.add_argument("--interval", type=float, default=30.0, help="evaluation interval, s")
    args = parser.parse_args()
    # The worker's monitor reads with these settings (one thread, low priority).
    client = clickhouse_connect.get_client(
        dsn=f"chdb://{(args.data_dir / 'clickhouse').resolve()}",
        database="shop",
        settings=BACKGROUND_READ_SETTINGS,
    )
    experiments = load_experiments(args.experiments, load_funnels())
    events = int(client.query("SELECT count() FROM events_raw").result_rows[0][0])
    baseline, baseline_mb = _measured(
        lambda: client.query("SELECT count() FROM events_raw FINAL"), args.repeat
    )
    print(
        f"events_raw rows: {events:,}; baseline scan (count FINAL): {baseline * 1000:.0f} ms, "
        f"peak RSS +{baseline_mb:.0f} MB"
    )
    print(
        "| experiment | evaluation ms | x baseline | share of a core at the interval "
        "| peak RSS over the start, MB |"
    )
    print("|---|---|---|---|---|")
    total = 0.0
    for exp in experiments:
        seconds, peak_mb = _measured(partial(experiment_sums, client, exp), args.repeat)
        total += seconds
        print(
            f"| {exp.name} | {seconds * 1000:.0f} | {seconds / baseline:.1f} "
            f"| {seconds / args.interval:.1%} | {peak_mb:.0f} |"
        )
    print(f"| all | {total * 1000:.0f} | {total / baseline:.1f} | {total / args.interval:.1%} |")


if __name__ == "__main__":
    main()
