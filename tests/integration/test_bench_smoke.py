"""The benchmark harness end to end on tiny data (``python -m bench.run --smoke``).

It keeps the harness from rotting: every section runs against a real broker and the
results file has the keys the issue names. No timing is asserted; correctness is:
the exactness flags are computed from a recount, and this project's worker and the
plain aiokafka loop count exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.broker

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_TIMEOUT_SECONDS = 300
TOP_LEVEL_KEYS = {
    "pipeline_events_per_s",
    "ratio_vs_baseline",
    "peers",
    "simple_workload",
    "full_workload",
    "latency",
    "scaling",
    "machine",
    "run_at",
    "goals",
}


@pytest.fixture(scope="module")
def smoke_results(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    output = out / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--smoke",
            "--bootstrap",
            kafka_bootstrap,
            "--output",
            str(output),
            "--run-dir",
            str(out / "run"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, f"bench.run --smoke failed:\n{result.stdout}\n{result.stderr}"
    loaded: dict[str, Any] = json.loads(output.read_text())
    return loaded


def test_results_file_has_the_issue_keys(smoke_results: dict[str, Any]) -> None:
    assert smoke_results.keys() >= TOP_LEVEL_KEYS
    assert smoke_results["mode"] == "smoke"
    assert isinstance(smoke_results["pipeline_events_per_s"], float)
    assert isinstance(smoke_results["ratio_vs_baseline"], float)


def test_every_peer_has_its_measures_and_an_exactness_flag(smoke_results: dict[str, Any]) -> None:
    peers = smoke_results["peers"]
    skipped = smoke_results["simple_workload"]["skipped"]
    assert {"aiokafka_loop", "shopfunnel_worker"} <= peers.keys()
    # Optional systems either ran or say why not (quix-streams is in the `bench` extra).
    for optional in ("quix_streams_grace_60s", "ch_kafka_engine_tuned"):
        assert (optional in peers) != (optional in skipped), optional
    for name, peer in peers.items():
        assert set(peer) == {"events_per_s", "peak_rss_mb", "exact", "dropped_late"}, name
        assert isinstance(peer["exact"], bool), name
        assert peer["peak_rss_mb"] > 0, name


def test_exactness_comes_from_the_recount(smoke_results: dict[str, Any]) -> None:
    simple = smoke_results["simple_workload"]
    for name, system in simple["systems"].items():
        complete = system["missing_events"] == 0 and system["wrong_keys"] == 0
        assert system["exact"] is complete, name
    for name, system in simple["systems"].items():
        if system["dropped_late"] is not None:
            # What a system dropped as late is missing from its counts, and nothing else.
            assert system["missing_events"] == system["dropped_late"], name


def test_our_worker_and_the_baseline_count_exactly(smoke_results: dict[str, Any]) -> None:
    peers = smoke_results["peers"]
    assert peers["shopfunnel_worker"]["exact"] is True
    assert peers["aiokafka_loop"]["exact"] is True


def test_full_workload_sections_are_measured(smoke_results: dict[str, Any]) -> None:
    full = smoke_results["full_workload"]
    dataset = smoke_results["dataset"]
    assert full["saturation"]["events"] == dataset["records"]
    assert full["saturation"]["events_ingested_incl_replays"] >= dataset["records"]
    assert full["saturation"]["changelog_records_per_event"] > 0
    assert full["state"]["bytes_per_user_at_end"] > 0
    assert full["state"]["users_at_end"] == full["saturation"]["state_keys_end"]
    [latency] = smoke_results["latency"].values()
    assert latency["events"] > 0
    assert set(latency["quantiles_ms"]) == {"p50", "p90", "p99", "p99.9"}
    assert smoke_results["scaling"]["workers_2"]["workers"] == 2
