"""Broker restart mid-run (issue #18, item 2): nothing lost, nothing doubled.

A dedicated broker (its own data directory and ports; the session's broker is never
touched) takes live traffic from the simulator while a worker consumes. A third of the
way in, the broker is stopped, kept down for 20 s and started again on the same data
directory and ports. The producer retries in order; the worker is left alone.

Then:
- the worker survived the outage (it is still running, and reads again after it);
- every table equals the simulator's truth over the records as they are in the topics
  (a producer's retry may append a copy of a record whose acknowledgement was lost: the
  truth sees the same copies, in the same order, as the worker did);
- every trigger was published exactly once;
- the recovery time, from the broker being back to the worker's first records read
  after the outage, is printed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.request import urlopen

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from funnel.settings import load_settings
from schemas.codec import EventCodec
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.produce import produce
from simulator.records import SimRecord
from simulator.truth import compute_truth
from streams.topics import ensure_topics
from tests.kafka_fixture import running_script_broker
from tests.multi_worker import committed_lag
from tests.pipeline_harness import (
    PipelineEnv,
    WorkerProcess,
    assert_matches_truth,
    read_topic,
    run_until_idle,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CONFIG = SimConfig(
    seed=41,
    users=800,
    days=0.5,
    duplicate_pct=2,
    out_of_order_pct=5,
    late_pct=1,
    malformed_pct=0.5,
)
SEND_SECONDS = 35.0  # the produce pace: the outage falls in the middle of live traffic
DOWN_SECONDS = 20.0


def ingested(worker: WorkerProcess) -> float:
    """The worker's records read so far (0 while its endpoint does not answer)."""
    try:
        with urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "shopfunnel_events_ingested_total"
    )


def records_as_stored(env: PipelineEnv, sent: list[SimRecord]) -> list[SimRecord]:
    """The simulator's records in the order the topics hold them, copies included."""
    by_bytes = {(r.stream, r.partition, r.key, r.value): r for r in sent}
    stream_of = {
        env.topics.clickstream: "clickstream",
        env.topics.cart: "cart",
        env.topics.orders: "orders",
    }

    async def read() -> dict[tuple[str, int], list[SimRecord]]:
        consumer = AIOKafkaConsumer(
            *env.topics.inputs(),
            bootstrap_servers=env.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        out: dict[tuple[str, int], list[SimRecord]] = defaultdict(list)
        try:
            while batch := await consumer.getmany(timeout_ms=3000):
                for tp, rows in batch.items():
                    stream = stream_of[tp.topic]
                    for row in rows:
                        key = (stream, tp.partition, row.key or b"", row.value or b"")
                        out[(stream, tp.partition)].append(by_bytes[key])
        finally:
            await consumer.stop()
        return out

    per_partition = asyncio.run(read())
    # compute_truth decides lateness per topic-partition from the records' order there;
    # across partitions the send order is kept.
    position = {id(r): i for i, r in enumerate(sent)}
    merged: list[tuple[int, int, SimRecord]] = []
    for records in per_partition.values():
        last = -1
        for n, record in enumerate(records):
            last = max(last, position[id(record)])
            merged.append((last, n, record))
    merged.sort(key=lambda item: (item[0], item[1]))
    return [record for _, _, record in merged]


def test_a_broker_restart_mid_run_loses_and_doubles_nothing(tmp_path: Path) -> None:
    records = list(generate(CONFIG))
    with running_script_broker(tmp_path / "kafka") as broker:
        env = PipelineEnv.with_fresh_topics(
            broker.bootstrap, tmp_path / "pipeline", partitions=CONFIG.partitions
        )
        ensure_topics(
            load_settings(
                bootstrap_servers=env.bootstrap, topics=env.topics, partitions=env.partitions
            )
        )
        third = threading.Event()

        def progress(count: int) -> None:
            if count >= len(records) // 3:
                third.set()

        def send() -> None:
            asyncio.run(
                produce(
                    records,
                    env.bootstrap,
                    env.topics,
                    speedup=None,
                    rate=len(records) / SEND_SECONDS,
                    progress=progress,
                    retry_seconds=180.0,
                )
            )

        producer = threading.Thread(target=send, daemon=True)
        producer.start()
        worker = WorkerProcess(env, until_idle=None, name="through-restart")
        assert third.wait(180), "the producer never reached a third of the records"
        broker.stop()
        stopped = time.monotonic()
        time.sleep(DOWN_SECONDS)
        # What the worker read before the broker is back (records it had fetched before
        # the stop may still have been processed during the outage).
        read_at_stop = ingested(worker)
        starting = time.monotonic()
        broker.start()  # returns once the broker answers
        back = time.monotonic()
        recovery: float | None = None
        while time.monotonic() - back < 240:
            assert worker.process.poll() is None, f"worker exited: {worker.log_tail()}"
            if ingested(worker) > read_at_stop:
                recovery = time.monotonic() - back
                break
            time.sleep(0.25)
        assert recovery is not None, f"the worker never read again:\n{worker.log_tail()}"
        producer.join(300)
        assert not producer.is_alive(), "the producer did not finish"
        lag = None
        for _ in range(480):
            lag = committed_lag(env)
            if lag == 0:
                break
            time.sleep(0.5)
        assert lag == 0, f"{lag} records never committed:\n{worker.log_tail()}"
        assert worker.process.poll() is None, "the worker must survive the outage"
        worker.terminate()
        assert worker.wait(60) == 0, worker.log_tail()
        run_until_idle(env, name="final")  # declares the inputs finished, as the truth does

        stored = records_as_stored(env, records)
        copies = len(stored) - len(records)
        truth = compute_truth(
            stored,
            lateness_ms=CONFIG.lateness_ms,
            session_timeout_ms=CONFIG.session_timeout_ms,
            window_ms=CONFIG.window_ms,
            inputs_finished=True,
        )
        assert_matches_truth(env, truth, stored)
        codec = EventCodec()
        published = Counter(
            codec.decode_trigger(v).trigger_id
            for v in read_topic(env.bootstrap, env.topics.triggers)
        )
        assert published, "the scenario must publish triggers"
        doubled = {t: n for t, n in published.items() if n > 1}
        assert not doubled, f"triggers published more than once: {doubled}"
        assert set(published) == {t.trigger_id for t in truth.triggers}
        stopping = starting - stopped - DOWN_SECONDS
        print(
            f"broker unreachable {back - stopped:.1f} s (stop {stopping:.1f}"
            f" s, down {DOWN_SECONDS:.0f} s, start {back - starting:.1f} s); the worker read "
            f"again {recovery:.1f} s after the broker answered; producer copies: {copies}"
        )
