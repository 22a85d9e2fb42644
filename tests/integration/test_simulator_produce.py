"""The simulator's records land in Kafka exactly as generated: same partitions, same bytes,
same order per partition (the order the ground truth's lateness rule assumes)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from funnel.settings import TopicNames
from simulator.config import SimConfig
from simulator.errors import TopicLayoutError
from simulator.generate import generate
from simulator.produce import ensure_topics, produce
from tests.kafka_fixture import create_topic, unique_topic

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
