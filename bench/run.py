"""One command for the whole benchmark (issue #7).

    .venv/bin/python -m bench.run            # full run, ~10 minutes, writes bench/results.json
    .venv/bin/python -m bench.run --smoke    # seconds; writes bench/out/smoke-results.json
    .venv/bin/python -m bench.run --soak-minutes 30   # memory over a long run, merged in

Unless ``--bootstrap`` names a broker, a fresh one is started (deploy/local/kafka.sh,
free ports, in the run directory) and stopped at the end. Every pass uses fresh topics
and consumer groups. See BENCHMARKS.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import report
from bench.broker import local_broker
from bench.chdb_env import chdb_python
from bench.dataset import Dataset, load
from bench.errors import BenchError, PeerFailedError
from bench.full import FullSetup, run_full_workload
from bench.profiling import render, summarise
from bench.simple import default_peers, run_simple_workload
from bench.soak import require_dead_letter_share, run_soak
from funnel.errors import FunnelError
from simulator.config import SimConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results.json"
SMOKE_OUTPUT = REPO_ROOT / "bench" / "out" / "smoke-results.json"
CACHE_DIR = REPO_ROOT / ".data" / "bench-cache"
SECTIONS = ("simple", "full", "scaling", "pinned", "latency", "profile")
LATENCY_MODES = ("live", "replay")


@dataclass(frozen=True)
class Plan:
    smoke: bool
    users: int
    days: float
    partitions: int
    latency_rates: list[float | None]
    latency_seconds: float
    latency_modes: tuple[bool, ...]  # True: live-like event time, False: paced history
    scaling_workers: int
    timeout: float


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny data, seconds; for CI")
    parser.add_argument("--bootstrap", help="use this Kafka broker instead of starting one")
    parser.add_argument("--partitions", type=int, default=4, help="partitions per topic (4)")
    parser.add_argument("--users", type=int, help="simulated users (60000; smoke 150)")
    parser.add_argument("--days", type=float, default=1.0, help="simulated days (1)")
    parser.add_argument("--output", type=Path, help="results file (bench/results.json)")
    parser.add_argument("--run-dir", type=Path, help="logs, data dirs, profile (bench/out/<time>)")
    parser.add_argument("--latency-seconds", type=float, help="length of each latency run (30)")
    parser.add_argument(
        "--latency-mode",
        action="append",
        choices=LATENCY_MODES,
        help="latency input to measure, repeatable (both: live, replay)",
    )
    parser.add_argument(
        "--latency-rate",
        action="append",
        type=_latency_rate,
        help="latency input rate in events/s or 'half' (of saturation), repeatable "
        "(both: 10000, half)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        help=f"skip a section ({', '.join(SECTIONS)}) or a simple-workload system by name",
    )
    parser.add_argument("--no-cache", action="store_true", help="regenerate the dataset")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy run")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the measured workers, soak included "
        "(e.g. FUNNEL_SINK_BATCH_ROWS=50000)",
    )
    parser.add_argument(
        "--soak-minutes", type=float, help="run only the memory soak; merge into --output"
    )
    parser.add_argument("--soak-rate", type=float, default=2500.0, help="soak events/s (2500)")
    return parser.parse_args(argv)


def _latency_rate(text: str) -> float | None:
    if text == "half":
        return None
    rate = float(text)
    if rate <= 0:
        raise argparse.ArgumentTypeError(f"a latency rate must be > 0 or 'half', got {text!r}")
    return rate


def make_plan(args: argparse.Namespace) -> Plan:
    chosen = args.latency_mode or (["live"] if args.smoke else list(LATENCY_MODES))
    modes = tuple(mode == "live" for mode in LATENCY_MODES if mode in chosen)
    if args.smoke:
        return Plan(
            True, args.users or 150, args.days, 2, [400.0], args.latency_seconds or 2.0, modes,
            2, 120.0,
        )  # fmt: skip
    return Plan(
        False,
        args.users or 60_000,
        args.days,
        args.partitions,
        args.latency_rate or [10_000.0, None],
        args.latency_seconds or 30.0,
        modes,
        2,
        300.0,
    )


class Clock:
    def __init__(self, console: Console) -> None:
        self.start = time.monotonic()
        self.console = console

    def log(self, message: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self.start:7.1f}s[/] {message}")


def run_benchmark(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    plan = make_plan(args)
    clock = Clock(console)
    run_dir = args.run_dir or REPO_ROOT / "bench" / "out" / time.strftime("run-%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    skip = set(args.skip)
    results: dict[str, Any] = {
        "run_at": report.now_iso(),
        "worker_env": dict(_worker_env(args.worker_env)),
        "mode": "smoke" if plan.smoke else "full",
        "command": " ".join(["python -m bench.run", *args.argv]),
        "machine": report.machine_info(),
        "load_average_before": report.load_average(),
    }
    started = time.monotonic()
    config = SimConfig(users=plan.users, days=plan.days, partitions=plan.partitions)
    cache = None if (plan.smoke or args.no_cache) else CACHE_DIR
    dataset, cached = load(config, cache)
    results["dataset"] = _dataset_info(dataset, cached, time.monotonic() - started)
    clock.log(
        f"dataset: {len(dataset.records):,} records, {dataset.simple_events:,} simple events "
        f"({'cache' if cached else 'generated'})"
    )
    broker = nullcontext(args.bootstrap) if args.bootstrap else local_broker(run_dir)
    with broker as bootstrap:
        clock.log(f"broker: {bootstrap}")
        if "simple" not in skip:
            chdb = chdb_python(create=not plan.smoke, log=clock.log)
            peers, skipped = default_peers(plan.smoke, chdb)
            skipped.update({p.name: "--skip" for p in peers if p.name in skip})
            peers = [p for p in peers if p.name not in skip]
            simple = run_simple_workload(
                dataset, bootstrap, plan.partitions, run_dir, peers, skipped, plan.timeout,
                clock.log, parallel=plan.smoke,
            )  # fmt: skip
            simple["ratios"] = report.simple_ratios(simple)
            results["simple_workload"] = simple
            results["peers"] = {
                name: {k: s[k] for k in ("events_per_s", "peak_rss_mb", "exact", "dropped_late")}
                for name, s in simple["systems"].items()
            }
        if "full" not in skip:
            setup = FullSetup(
                dataset,
                bootstrap,
                plan.partitions,
                run_dir,
                plan.timeout,
                clock.log,
                worker_env=_worker_env(args.worker_env),
            )
            no_profile = plan.smoke or args.no_profile or "profile" in skip
            profile_to = None if no_profile else run_dir / "profile-worker.folded"
            try:
                full = run_full_workload(
                    setup,
                    scaling_workers=1 if "scaling" in skip else plan.scaling_workers,
                    pinned_scaling=not plan.smoke and "pinned" not in skip,
                    profile_to=profile_to,
                    latency_rates=[] if "latency" in skip else plan.latency_rates,
                    latency_seconds=plan.latency_seconds,
                    latency_modes=plan.latency_modes,
                )
            except PeerFailedError as exc:  # the simple workload's results still count
                clock.log(f"full workload FAILED: {str(exc).splitlines()[0]}")
                results["full_workload"] = {"error": str(exc)[:4000]}
                results["failed"] = True
            else:
                if profile_to is not None and profile_to.exists():
                    summary = summarise(profile_to)
                    full["profile"] = {**(full["profile"] or {}), **summary.as_json()}
                    (run_dir / "profile-worker.txt").write_text(render(summary) + "\n")
                _place_full(results, full)
    results["load_average_after"] = report.load_average()
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    failures = _failed_passes(results)
    if failures:
        results["failed"] = True
        results["failed_passes"] = failures
    results["goals"] = report.goals(results)
    return results


def _failed_passes(node: Any, path: str = "") -> list[str]:
    """Where a pass recorded an error instead of numbers (the run exits non-zero)."""
    if not isinstance(node, dict):
        return []
    found = [path or "/"] if "error" in node else []
    for key, value in node.items():
        found += _failed_passes(value, f"{path}/{key}")
    return found


def _worker_env(pairs: list[str]) -> tuple[tuple[str, str], ...]:
    env: list[tuple[str, str]] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BenchError(f"--worker-env wants KEY=VALUE, got {pair!r}")
        if key == "PYTHONPATH":  # relative to the repository, where workers run
            value = ":".join(str((REPO_ROOT / p).resolve()) for p in value.split(":") if p)
        env.append((key, value))
    return tuple(env)


def _dataset_info(dataset: Dataset, cached: bool, seconds: float) -> dict[str, Any]:
    config = dataset.config
    return {
        "users": config.users,
        "days": config.days,
        "partitions": config.partitions,
        "seed": config.seed,
        "records": len(dataset.records),
        "mean_record_bytes": round(
            sum(len(r.value) for r in dataset.records) / len(dataset.records), 1
        )
        if dataset.records
        else None,
        "simple_events": dataset.simple_events,
        "mean_simple_bytes": round(
            sum(len(r.value) for r in dataset.simple) / len(dataset.simple), 1
        )
        if dataset.simple
        else None,
        "distinct_simple_keys": len(dataset.expected),
        "from_cache": cached,
        "load_seconds": round(seconds, 1),
    }


def _place_full(results: dict[str, Any], full: dict[str, Any]) -> None:
    saturation = full["saturation"]
    baseline = results.get("simple_workload", {}).get("ratios", {}).get("baseline_events_per_s")
    results["pipeline_events_per_s"] = saturation["events_per_s"]
    results["ratio_vs_baseline"] = (
        round(saturation["events_per_s"] / baseline, 4) if baseline else None
    )
    results["full_workload"] = {
        "preload_events_per_s": full["preload_events_per_s"],
        "saturation": saturation,
        "state": full["state"],
        "profile": full["profile"],
    }
    results["latency"] = full["latency"]
    results["scaling"] = full["scaling"]


def run_soak_only(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    clock = Clock(console)
    output: Path = args.output or DEFAULT_OUTPUT
    results: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
    run_dir = args.run_dir or REPO_ROOT / "bench" / "out" / time.strftime("soak-%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    machine = report.machine_info()
    load_before = report.load_average()
    broker = nullcontext(args.bootstrap) if args.bootstrap else local_broker(run_dir)
    with broker as bootstrap:
        config = SimConfig(users=1, partitions=args.partitions)  # placeholder: soak generates
        setup = FullSetup(
            Dataset(config, [], [], {}),
            bootstrap,
            args.partitions,
            run_dir,
            args.soak_minutes * 60 + 600,
            clock.log,
            worker_env=_worker_env(args.worker_env),
        )
        clock.log(f"soak: {args.soak_minutes} min at {args.soak_rate:,.0f} events/s")
        soak = run_soak(setup, args.users, args.soak_rate, args.soak_minutes)
    soak["run_at"] = report.now_iso()
    soak["command"] = " ".join(["python -m bench.run", *args.argv])
    soak["git_commit"] = machine["git_commit"]
    soak["git_modified"] = machine["git_modified"]
    soak["load_average_before"] = load_before
    soak["load_average_after"] = report.load_average()
    results["soak"] = soak
    results["goals"] = report.goals(results)
    report.write(results, output)
    # Written first, so a failed scenario can still be looked at.
    require_dead_letter_share(soak["dead_letters"])
    return results


def keep_earlier_soak(results: dict[str, Any], output: Path) -> None:
    """A run without a soak keeps the soak ``output`` holds (it has its own date and
    commit), and the goals are judged again with it: a soak takes 30 minutes, so it is
    run apart and merged (``--soak-minutes``)."""
    if "soak" in results or not output.exists():
        return
    try:
        earlier = json.loads(output.read_text())
    except (OSError, ValueError):
        return  # not a results file: it is overwritten, as before
    if isinstance(earlier, dict) and isinstance(earlier.get("soak"), dict):
        results["soak"] = earlier["soak"]
        results["goals"] = report.goals(results)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    console = Console()
    try:
        if args.soak_minutes:
            results = run_soak_only(args, console)
            report.print_soak(results["soak"], console)
            return 0
        results = run_benchmark(args, console)
    except (FunnelError, BenchError) as exc:
        console.print(f"[bold red]benchmark failed:[/] {exc}")
        return 2
    output: Path = args.output or (SMOKE_OUTPUT if args.smoke else DEFAULT_OUTPUT)
    keep_earlier_soak(results, output)
    report.write(results, output)
    if "error" not in results.get("full_workload", {}):
        report.print_report(results, console)
    console.print(f"results: {output}")
    return 1 if results.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
