"""Results as Markdown tables, for BENCHMARKS.md after a rerun.

.venv/bin/python -m bench.markdown [bench/results.json]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.chtool import WARM_SECONDS
from bench.simple import BASELINE


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine(results: dict[str, Any]) -> str:
    m = results["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    modified = ", ".join(m.get("git_modified") or []) or "none"
    return "\n".join(
        [
            f"- {m['cpus']} vCPU ({m['cpu_model']}), {m['memory_gb']} GB RAM, {m['platform']}",
            f"- Python {m['python']}, Kafka {m['kafka']} (local, one broker); {packages}",
            f"- commit {m['git_commit']}; uncommitted changes outside bench/: {modified}",
            f"- run at {results['run_at']}, {results.get('wall_seconds')} s; load average "
            f"before {results.get('load_average_before')}, after "
            f"{results.get('load_average_after')}",
        ]
    )


def simple(results: dict[str, Any]) -> str:
    s = results["simple_workload"]
    base = s["systems"].get(BASELINE, {}).get("events_per_s")
    rows = []
    for name, x in sorted(s["systems"].items(), key=lambda kv: -kv[1]["events_per_s"]):
        rows.append(
            [
                f"`{name}`",
                _n(x["events_per_s"]),
                _n(x["events_per_s"] / base if base else None, 2),
                _n(x["wall_events_per_s"]),
                _n(x["peak_rss_mb"]),
                _n(x["exact"]),
                _n(x["dropped_late"]),
            ]
        )
    header = ["system", "events/s", "x aiokafka loop", "incl. start-up", "peak RSS MB"]
    return _table([*header, "exact", "dropped late"], rows)


def full(results: dict[str, Any]) -> str:
    sat = results["full_workload"]["saturation"]
    state = results["full_workload"]["state"]
    scaling = results.get("scaling", {})
    two = scaling.get("workers_2", {})
    rows = [
        ["events/s, 1 worker, saturation", _n(sat["events_per_s"])],
        ["x plain aiokafka loop (simple workload)", _n(results.get("ratio_vs_baseline"), 3)],
        ["events per worker CPU-second", _n(sat["events_per_cpu_second"])],
        [
            "events per worker CPU-second, second half of the pass",
            _n((sat.get("second_half") or {}).get("events_per_cpu_second")),
        ],
        [
            "kernel's share of the worker's CPU: whole pass / second half",
            f"{_n(sat.get('system_cpu_share'), 3)} / "
            f"{_n((sat.get('second_half') or {}).get('system_cpu_share'), 3)}",
        ],
        ["CPU cores used by the worker", _n(sat["cpu_cores_used"], 2)],
        ["peak RSS MB", _n(sat["peak_rss_mb"])],
        ["changelog records per event", _n(sat["changelog_records_per_event"], 3)],
        ["state bytes per active session", _n(state.get("bytes_per_active_session"))],
        ["state bytes per user (end of run)", _n(state.get("bytes_per_user_at_end"))],
        ["mean changelog record bytes", _n(state.get("mean_record_bytes"))],
        [
            "mean events per batch / mean batch seconds",
            f"{_n(sat['mean_events_per_batch'])} / {_n(sat['mean_batch_seconds'], 3)}",
        ],
        [
            "2 workers: events/s (x 1 worker)",
            f"{_n(two.get('events_per_s'))} ({_n(scaling.get('speedup'), 2)}x)",
        ],
        [
            "2 workers: CPU cores used, peak RSS MB each",
            f"{_n(two.get('cpu_cores_used'), 2)}, {two.get('peak_rss_mb_per_worker')}",
        ],
    ]
    pinned = scaling.get("pinned") or {}
    if "speedup" in pinned:
        rows.append(
            [
                "one CPU per worker: 1 worker / 2 workers events/s (x 1 worker)",
                f"{_n(pinned['workers_1']['events_per_s'])} / "
                f"{_n(pinned['workers_2']['events_per_s'])} ({_n(pinned['speedup'], 2)}x)",
            ]
        )
    return _table(["measure", "value"], rows)


def latency(results: dict[str, Any]) -> str:
    rows = []
    for name, x in results.get("latency", {}).items():
        if "error" in x:
            rows.append([f"`{name}`", "failed: " + x["error"].splitlines()[0][:80], *["-"] * 9])
            continue
        q = x["quantiles_ms"]
        warm = x.get(f"quantiles_ms_after_first_{WARM_SECONDS}s", {})
        w = x.get("while_producing", {})
        rows.append(
            [
                f"`{name}`",
                _n(x["produced_events_per_s"]),
                _n(x.get("producer_max_behind_ms")),
                _n(x["events"]),
                _n(q["p50"]),
                _n(q["p99"]),
                _n(warm.get("p99")),
                _n(x["max_ms"]),
                _n(w.get("mean_events_per_batch")),
                _n(w.get("cpu_cores_used"), 2),
                _n(w.get("max_consumer_lag")),
            ]
        )
    header = [
        *("run", "produced/s", "sender behind ms", "events", "p50 ms", "p99 ms"),
        *(f"p99 after {WARM_SECONDS} s ms", "max ms", "events/batch", "worker cores", "max lag"),
    ]
    return _table(header, rows)


def goals(results: dict[str, Any]) -> str:
    rows = [
        [name, g["target"], _n(g["measured"], 2), _n(g["met"])]
        for name, g in results.get("goals", {}).items()
    ]
    return _table(["goal", "target", "measured", "met"], rows)


def render(results: dict[str, Any]) -> str:
    """The tables of ``results``; a section a partial run skipped (``--skip``) is left out."""
    sections: list[tuple[str, str | None, Callable[[dict[str, Any]], str]]] = [
        ("Machine", None, machine),
        ("Goals", None, goals),
        ("Simple workload", "simple_workload", simple),
        ("Full workload", "full_workload", full),
        ("Latency", "latency", latency),
    ]
    parts = [
        f"### {title}\n\n{table(results)}"
        for title, key, table in sections
        if key is None or key in results
    ]
    return "\n\n".join(parts) + "\n"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/results.json")
    print(render(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
