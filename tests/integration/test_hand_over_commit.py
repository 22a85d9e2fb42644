"""A worker that gives partitions up commits what it applied of them first.

Worker A runs with its timer commits off (an hour apart) over pre-loaded topics, so the
only way its work reaches the group's commits is the commit at hand-over
(``BatchConsumer._commit_before_hand_over``). Worker B then joins the group:

- the partitions A gave up are committed to their end before B reads them;
- B reads none of their records again (its ingested count stays 0);
- A's clean stop commits the rest: the group has committed everything.

Without the hand-over commit, B would read every record of its partitions again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from funnel.settings import load_settings
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.produce import produce
from streams.topics import ensure_topics
from tests.multi_worker import committed_lag
from tests.pipeline_harness import PipelineEnv, WorkerProcess

pytestmark = [pytest.mark.broker]

PARTITIONS = 4
CONFIG = SimConfig(seed=5, users=200, days=0.1, partitions=PARTITIONS)
INGESTED = "shopfunnel_events_ingested_total"


def committed_and_ends(env: PipelineEnv) -> dict[TopicPartition, tuple[int | None, int]]:
    consumer = KafkaConsumer(
        bootstrap_servers=env.bootstrap, group_id=env.app_id, enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(t, p) for t in env.topics.inputs() for p in range(env.partitions)]
        ends = consumer.end_offsets(tps)
        return {tp: (consumer.committed(tp), ends[tp]) for tp in tps}
    finally:
        consumer.close()


def wait_until_steady(worker: WorkerProcess, seconds: float = 4.0, timeout: float = 180) -> float:
    """The worker's ingested count once it has not moved for ``seconds``."""
    deadline = time.monotonic() + timeout
    last, since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        value = worker.metric(INGESTED) or 0.0
        if value != last:
            last, since = value, time.monotonic()
        elif value > 0 and time.monotonic() - since >= seconds:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{INGESTED} never settled; log:\n{worker.log_tail()}")


def test_partitions_given_up_are_committed_first_so_nothing_is_read_twice(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    no_timer_commits = {"FUNNEL_COMMIT_INTERVAL_SECONDS": "3600"}
    a_env = PipelineEnv.with_fresh_topics(
        kafka_bootstrap, tmp_path / "a", partitions=PARTITIONS, extra=no_timer_commits
    )
    b_env = PipelineEnv(
        a_env.bootstrap,
        a_env.topics,
        tmp_path / "b",
        app_id=a_env.app_id,
        partitions=PARTITIONS,
        extra=dict(no_timer_commits),
    )
    ensure_topics(
        load_settings(bootstrap_servers=a_env.bootstrap, topics=a_env.topics, partitions=PARTITIONS)
    )
    records = list(generate(CONFIG))
    asyncio.run(produce(records, a_env.bootstrap, a_env.topics, speedup=None, rate=None))
    total = len(records)

    a = WorkerProcess(a_env, until_idle=None, name="a")
    b: WorkerProcess | None = None
    try:
        a.wait_for_metric(INGESTED, 1, timeout=180)
        applied = wait_until_steady(a)
        # The premise: A's timer has committed nothing, so only a hand-over can.
        assert committed_lag(a_env) == total

        b = WorkerProcess(b_env, until_idle=None, name="b")
        deadline = time.monotonic() + 120
        # B took its partitions at the commits: nothing of them is left to read.
        while "Worker ready" not in b.log_path.read_text(errors="replace"):  # Faust's line
            assert time.monotonic() < deadline, f"B never got ready; its log:\n{b.log_tail()}"
            assert b.process.poll() is None, b.log_tail()
            time.sleep(0.5)
        time.sleep(5)  # room for B to read anything it was going to read again
        assert (b.metric(INGESTED) or 0.0) == 0.0, b.log_tail()
        assert "committed at hand-over" in a.log_path.read_text(errors="replace"), a.log_tail()
        offsets = committed_and_ends(a_env)
        handed_over = {tp: c for tp, (c, end) in offsets.items() if c is not None}
        assert handed_over, offsets
        assert all(c == offsets[tp][1] for tp, c in handed_over.items()), offsets
        assert (a.metric(INGESTED) or 0.0) == applied  # and A read nothing more

        for worker in (b, a):
            worker.terminate()
            assert worker.wait(60) == 0, worker.log_tail()
        assert committed_lag(a_env) == 0  # A's stop committed the partitions it kept
    finally:
        for worker in (a, b):
            if worker is not None and worker.process.poll() is None:
                worker.kill()
