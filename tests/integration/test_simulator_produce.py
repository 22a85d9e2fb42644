"""The simulator's records land in Kafka exactly as generated: same partitions, same bytes,
same order per partition (the order the ground truth's lateness rule assumes)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from funnel.settings import TopicNames
from simulator.config import SimConfig
from simulator.errors import TopicLayoutError
from simulator.generate import generate
from simulator.produce import ProducerLike, ensure_topics, produce
from simulator.records import SimRecord
from tests.kafka_fixture import create_topic, running_script_broker, unique_topic

pytestmark = pytest.mark.broker

RECEIVE_TIMEOUT_SECONDS = 60.0
CONFIG = SimConfig(
    users=300, days=0.05, duplicate_pct=3, out_of_order_pct=5, late_pct=2, malformed_pct=2,
    json_pct=10,
)  # fmt: skip

Log = dict[tuple[str, int], list[tuple[bytes | None, bytes]]]


def topic_names() -> TopicNames:
    prefix = unique_topic("sim")
    return TopicNames(
        clickstream=f"{prefix}.clickstream", cart=f"{prefix}.cart", orders=f"{prefix}.orders"
    )


async def read_all(bootstrap: str, topics: TopicNames, partitions: int, expected: int) -> Log:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(t, p) for t in topics.inputs() for p in range(partitions)])
        await consumer.seek_to_beginning()
        log: Log = defaultdict(list)
        deadline = time.monotonic() + RECEIVE_TIMEOUT_SECONDS
        while sum(map(len, log.values())) < expected and time.monotonic() < deadline:
            for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                log[(tp.topic, tp.partition)].extend((m.key, m.value) for m in messages)
        return log
    finally:
        await consumer.stop()


def test_records_arrive_in_generated_order_per_partition(kafka_bootstrap: str) -> None:
    topics = topic_names()
    records = list(generate(CONFIG))
    seen: list[int] = []

    async def run() -> None:
        await ensure_topics(kafka_bootstrap, topics, CONFIG.partitions, create=True)
        report = await produce(
            records, kafka_bootstrap, topics, speedup=None, rate=None, progress=seen.append
        )
        assert report.records == len(records)

    asyncio.run(run())
    assert seen[-1] == len(records)
    names = {"clickstream": topics.clickstream, "cart": topics.cart, "orders": topics.orders}
    expected: Log = defaultdict(list)
    for record in records:
        expected[(names[record.stream], record.partition)].append((record.key, record.value))
    received = asyncio.run(read_all(kafka_bootstrap, topics, CONFIG.partitions, len(records)))
    assert dict(received) == dict(expected)


def test_a_partition_count_mismatch_names_the_fix(kafka_bootstrap: str) -> None:
    topics = topic_names()
    for name in topics.inputs():
        create_topic(kafka_bootstrap, name, 2)
    with pytest.raises(TopicLayoutError, match="pass --partitions 2"):
        asyncio.run(ensure_topics(kafka_bootstrap, topics, 4, create=True))


def test_missing_topics_without_create_name_the_fix(kafka_bootstrap: str) -> None:
    with pytest.raises(TopicLayoutError, match="--create-topics"):
        asyncio.run(ensure_topics(kafka_bootstrap, topic_names(), 4, create=False))


# The broker restart: stopped once this share of the records went out, started again
# at once (a restart takes ~10 s here). The producer gives up on a batch after
# REQUEST_TIMEOUT_MS without a leader (30 s in `funnel simulate`; shorter here so the
# restart surfaces the drill's LeaderNotAvailableError instead of outlasting it).
RESTART_AFTER_SHARE = 0.25
RESTART_RATE = 150.0  # records per second: about 15 s of sending for CONFIG
REQUEST_TIMEOUT_MS = 3000


def without_retry_copies(received: list[tuple[bytes | None, bytes]], expected: list[Any]) -> int:
    """Check ``received`` is ``expected`` plus copies of records already received (a
    re-sent batch whose first acknowledgement was lost); the number of such copies."""
    matched = copies = 0
    for item in received:
        if matched < len(expected) and item == expected[matched]:
            matched += 1
        else:
            assert item in expected[:matched], f"{item!r} was never sent before this point"
            copies += 1
    assert matched == len(expected), f"only {matched} of {len(expected)} records arrived"
    return copies


def test_a_broker_restart_mid_produce_loses_and_reorders_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A dedicated broker (own ports and data dir; the session broker is never touched)."""
    topics = topic_names()
    records: list[SimRecord] = list(generate(CONFIG))
    restart_at = int(len(records) * RESTART_AFTER_SHARE)
    with running_script_broker(tmp_path / "kafka") as broker:

        def producer() -> ProducerLike:
            made: ProducerLike = AIOKafkaProducer(
                bootstrap_servers=broker.bootstrap,
                enable_idempotence=True,
                acks="all",
                linger_ms=5,
                request_timeout_ms=REQUEST_TIMEOUT_MS,
            )
            return made

        async def run() -> int:
            await ensure_topics(broker.bootstrap, topics, CONFIG.partitions, create=True)
            reached = asyncio.Event()
            sent_at_stop: list[int] = []
            sent = [0]

            def progress(count: int) -> None:
                sent[0] = count
                if count >= restart_at:
                    reached.set()

            async def restart() -> None:
                await reached.wait()
                sent_at_stop.append(sent[0])
                await asyncio.to_thread(broker.stop)
                await asyncio.to_thread(broker.start)

            restarting = asyncio.create_task(restart())
            report = await produce(
                records,
                broker.bootstrap,
                topics,
                speedup=None,
                rate=RESTART_RATE,
                progress=progress,
                producer_factory=producer,
            )
            await restarting
            assert report.records == len(records)
            return sent_at_stop[0]

        with caplog.at_level(logging.WARNING, logger="simulator.produce"):
            sent_at_stop = asyncio.run(run())
        received = asyncio.run(read_all(broker.bootstrap, topics, CONFIG.partitions, len(records)))
    assert sent_at_stop < len(records), "the broker must go down while records are sent"
    names = {"clickstream": topics.clickstream, "cart": topics.cart, "orders": topics.orders}
    expected: Log = defaultdict(list)
    for record in records:
        expected[(names[record.stream], record.partition)].append((record.key, record.value))
    assert set(received) == set(expected)
    copies = sum(without_retry_copies(received[tp], expected[tp]) for tp in expected)
    retried = [
        r.getMessage()
        for r in caplog.records
        if r.name == "simulator.produce" and "retrying" in r.getMessage()
    ]
    # A stopping broker reports its partitions leaderless; batches that wait longer than
    # REQUEST_TIMEOUT_MS for a leader fail with LeaderNotAvailableError: the drill's error.
    assert any("LeaderNotAvailableError" in message for message in retried), retried
    print(f"stopped after {sent_at_stop} records; retries: {retried}; copies: {copies}")
