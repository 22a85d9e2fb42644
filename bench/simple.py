"""The simple workload: one JSON topic, the same count in every system, one process each.

Every system reads the same pre-loaded topic with its own consumer group, so they see
identical input. A system's number is ``events / (done_at - first_record_at)``: from its
first record in hand to its last count durable in ClickHouse (start-up and group join
excluded, reported separately as ``wall_events_per_s``). ``exact`` compares its final
ClickHouse counts with the recount made from the produced records.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.broker import create_topics
from bench.dataset import CountKey, Dataset, simple_as_sim_records
from bench.errors import PeerFailedError
from bench.procstats import wait_sampled
from bench.simple_spec import PeerResult, SimpleSpec
from funnel.settings import TopicNames
from simulator.produce import produce

REPO_ROOT = Path(__file__).resolve().parents[1]
BASELINE = "aiokafka_loop"
OURS = "shopfunnel_worker"
CH_MODULE = "bench.peers.chdb_kafka"
CH_DEFAULT = "ch_kafka_engine_default"
CH_TUNED = "ch_kafka_engine_tuned"
CH_TUNED_2C = "ch_kafka_engine_tuned_2_consumers"
QUIX_MODULE = "bench.peers.quix_peer"
QUIX_SHORT = "quix_streams_grace_60s"
QUIX_LONG = "quix_streams_grace_1d"

# "Tuned" = the settings that gave the engine its best single-consumer number on this
# machine type: big blocks and polls, so the view runs once per ~64k rows, not per 65k
# default with a 7.5 s flush timer; see BENCHMARKS.md.
CH_TUNED_SETTINGS: dict[str, Any] = {
    "kafka_max_block_size": 262_144,
    "kafka_poll_max_batch_size": 262_144,
    "kafka_flush_interval_ms": 500,
    "kafka_poll_timeout_ms": 100,
}


@dataclass(frozen=True)
class Peer:
    name: str
    module: str
    options: dict[str, Any] = field(default_factory=dict)
    is_peer: bool = True  # an outside system (not the baseline, not ours)
    python: str | None = None  # interpreter; None: this one


def default_peers(smoke: bool, chdb_python: str | None) -> tuple[list[Peer], dict[str, str]]:
    """The systems to run, and the ones left out with the reason."""
    ch_tuned_2c = {**CH_TUNED_SETTINGS, "kafka_thread_per_consumer": 1}
    peers = [
        Peer(BASELINE, "bench.peers.aiokafka_loop", is_peer=False),
        Peer(OURS, "bench.simple_faust", is_peer=False),
        Peer(CH_DEFAULT, CH_MODULE, {"consumers": 1}, python=chdb_python),
        Peer(
            CH_TUNED, CH_MODULE, {"consumers": 1, "settings": CH_TUNED_SETTINGS}, python=chdb_python
        ),
        Peer(CH_TUNED_2C, CH_MODULE, {"consumers": 2, "settings": ch_tuned_2c}, python=chdb_python),
        Peer(QUIX_SHORT, QUIX_MODULE, {"grace_ms": 60_000}),
        Peer(QUIX_LONG, QUIX_MODULE, {"grace_ms": 86_400_000}),
    ]
    skipped: dict[str, str] = {}
    if smoke:  # one of each kind keeps the harness from rotting
        keep = {BASELINE, OURS, CH_TUNED, QUIX_SHORT}
        skipped.update({p.name: "not in --smoke" for p in peers if p.name not in keep})
        peers = [p for p in peers if p.name in keep]
    if importlib.util.find_spec("quixstreams") is None:
        for peer in peers:
            if peer.module == QUIX_MODULE:
                skipped[peer.name] = "quixstreams is not installed: pip install -e '.[bench]'"
        peers = [p for p in peers if p.module != QUIX_MODULE]
    if chdb_python is None:
        for peer in peers:
            if peer.module == CH_MODULE:
                skipped[peer.name] = (
                    "no interpreter with a chDB that runs the Kafka engine "
                    "(see bench/chdb_env.py; the full run creates one)"
                )
        peers = [p for p in peers if p.module != CH_MODULE]
    return peers, skipped


@dataclass
class PeerOutcome:
    name: str
    is_peer: bool
    events_per_s: float
    wall_events_per_s: float
    peak_rss_mb: float
    exact: bool
    events: int
    dropped_late: int | None
    missing_events: int  # expected total minus the total in ClickHouse
    wrong_keys: int  # (window, type, channel) keys whose count differs from the recount
    extra: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "events_per_s": round(self.events_per_s, 1),
            "wall_events_per_s": round(self.wall_events_per_s, 1),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "exact": self.exact,
            "dropped_late": self.dropped_late,
            "events": self.events,
            "missing_events": self.missing_events,
            "wrong_keys": self.wrong_keys,
            "is_external_peer": self.is_peer,
            **({"extra": self.extra} if self.extra else {}),
        }


def compare(
    expected: Mapping[CountKey, int], got: list[tuple[int, str, str, int]]
) -> tuple[int, int]:
    """(missing events, keys that differ) between the recount and a system's answer."""
    found: dict[CountKey, int] = {}
    for window, event_type, channel, n in got:
        key = (window, event_type, channel)
        found[key] = found.get(key, 0) + n
    wrong = sum(1 for k in expected.keys() | found.keys() if expected.get(k, 0) != found.get(k, 0))
    return sum(expected.values()) - sum(found.values()), wrong


async def preload(dataset: Dataset, bootstrap: str, topic: str, partitions: int) -> float:
    """Create the topic and send every simple record; returns records/s of the load."""
    create_topics(bootstrap, [topic], partitions)
    names = TopicNames(clickstream=topic, cart=topic, orders=topic)
    report = await produce(
        simple_as_sim_records(dataset.simple), bootstrap, names, speedup=None, rate=None
    )
    return report.records_per_second


def run_peer(
    peer: Peer,
    dataset: Dataset,
    bootstrap: str,
    topic: str,
    partitions: int,
    run_dir: Path,
    timeout: float,
) -> PeerOutcome:
    peer_dir = run_dir / "simple" / peer.name
    shutil.rmtree(peer_dir, ignore_errors=True)  # a fresh ClickHouse and consumer group
    peer_dir.mkdir(parents=True)
    spec = SimpleSpec(
        name=peer.name,
        bootstrap=bootstrap,
        topic=topic,
        partitions=partitions,
        group_id=f"bench-simple-{peer.name}-{uuid.uuid4().hex[:8]}",
        total_events=dataset.simple_events,
        clickhouse_dir=str(peer_dir / "clickhouse"),
        result_path=str(peer_dir / "result.json"),
        options={**peer.options, "timeout_seconds": timeout},
    )
    spec_path = peer_dir / "spec.json"
    spec.save(spec_path)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with (peer_dir / "output.log").open("wb") as log:
        process = subprocess.Popen(
            [peer.python or sys.executable, "-m", peer.module, str(spec_path)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            sampler = wait_sampled(process, timeout + 60)
        except subprocess.TimeoutExpired as exc:
            raise PeerFailedError(
                f"simple workload: {peer.name} did not finish in {timeout + 60:.0f} s; "
                f"see {peer_dir / 'output.log'}"
            ) from exc
    if process.returncode != 0 or not Path(spec.result_path).exists():
        tail = (peer_dir / "output.log").read_text(errors="replace")[-2000:]
        raise PeerFailedError(
            f"simple workload: {peer.name} exited with {process.returncode}; "
            f"log {peer_dir / 'output.log'} ends:\n{tail}"
        )
    result = PeerResult.load(Path(spec.result_path))
    missing, wrong = compare(dataset.expected, result.counts)
    busy = max(result.done_at - result.first_record_at, 1e-9)
    return PeerOutcome(
        name=peer.name,
        is_peer=peer.is_peer,
        events_per_s=result.events / busy,
        wall_events_per_s=result.events / max(result.done_at - result.started_at, 1e-9),
        peak_rss_mb=sampler.peak_rss_mb,
        exact=missing == 0 and wrong == 0,
        events=result.events,
        dropped_late=result.dropped_late,
        missing_events=missing,
        wrong_keys=wrong,
        extra=result.extra,
    )


def run_simple_workload(
    dataset: Dataset,
    bootstrap: str,
    partitions: int,
    run_dir: Path,
    peers: list[Peer],
    skipped: dict[str, str],
    timeout: float,
    log: Callable[[str], None],
    parallel: bool = False,
) -> dict[str, Any]:
    """Pre-load the topic, run every system on it; ``parallel`` only for --smoke (timings
    of systems sharing the cores mean nothing, but the harness is exercised faster)."""
    topic = f"bench.simple.{uuid.uuid4().hex[:10]}"
    load_rate = asyncio.run(preload(dataset, bootstrap, topic, partitions))
    log(f"simple: pre-loaded {dataset.simple_events:,} events into {topic} ({load_rate:,.0f}/s)")

    def one(peer: Peer) -> PeerOutcome:
        outcome = run_peer(peer, dataset, bootstrap, topic, partitions, run_dir, timeout)
        log(
            f"simple: {peer.name}: {outcome.events_per_s:,.0f} events/s, "
            f"{outcome.peak_rss_mb:,.0f} MB, exact={outcome.exact}"
        )
        return outcome

    if parallel:
        with ThreadPoolExecutor(max_workers=len(peers) or 1) as pool:
            outcomes = list(pool.map(one, peers))
    else:
        outcomes = [one(peer) for peer in peers]
    return {
        "topic": topic,
        "events": dataset.simple_events,
        "partitions": partitions,
        "distinct_keys": len(dataset.expected),
        "preload_events_per_s": round(load_rate, 1),
        "ran_in_parallel": parallel,
        "systems": {o.name: o.as_json() for o in outcomes},
        "skipped": skipped,
    }
