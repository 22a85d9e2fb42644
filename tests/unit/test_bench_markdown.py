"""`python -m bench.markdown` renders the results file, whole or from a partial run."""

from __future__ import annotations

import json
from pathlib import Path

from bench.markdown import render

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results.json"


def test_a_partial_run_renders_the_sections_it_has() -> None:
    results = json.loads(RESULTS.read_text())
    partial = {k: v for k, v in results.items() if k not in ("simple_workload", "latency")}
    text = render(partial)
    assert "### Full workload" in text
    assert "### Simple workload" not in text
    assert "### Latency" not in text


def _latency_cell(changes: dict[str, object], column: str) -> str:
    """The first latency run's ``column`` in the rendered table, with ``changes`` applied."""
    results = json.loads(RESULTS.read_text())
    (name, run), *_ = results["latency"].items()
    text = render({**results, "latency": {name: {**run, **changes}}})
    header = next(line for line in text.splitlines() if line.startswith("| run |"))
    row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
    cells = dict(zip(header.split("|"), row.split("|"), strict=True))
    return cells[f" {column} "].strip()


def test_the_latency_table_shows_how_far_behind_the_sender_fell() -> None:
    assert _latency_cell({"producer_max_behind_ms": 1234.0}, "sender behind ms") == "1,234"


def test_the_latency_table_shows_the_p99_without_the_start_up() -> None:
    warm = {"quantiles_ms_after_first_5s": {"p50": 1.0, "p90": 2.0, "p99": 4321.0}}
    assert _latency_cell(warm, "p99 after 5 s ms") == "4,321"
