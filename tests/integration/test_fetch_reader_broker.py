"""The compiled fetch reader on a real broker's fetches, against aiokafka's own reader.

Two consumers read the same partition from the start: one with the compiled reader
installed on its fetcher (``streams.faust_private.install_fetch_reader``, as the worker's
consumer thread does), one as aiokafka ships. The partition holds what producers really
write: every compression codec, transactions committed and aborted (control batches),
and the broker's append time (the input topics' ``LogAppendTime``). Both must give the
same records at the same offsets, and end at the same position; only the first gives
Records, so the hook stays on its own consumer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from streams.faust_private import install_fetch_reader
from streams.fetch_reader import KeptFetch, partition_records_for
from streams.records import Record
from streams.topics import TOPIC_CONFIGS
from tests.kafka_fixture import create_topic, unique_topic

pytestmark = pytest.mark.broker
pytest.importorskip("shopfunnel_core", reason="the compiled core is not built: run `make setup`")

CODECS = (None, "gzip", "snappy", "lz4", "zstd")
PER_CODEC = 300
READ_TIMEOUT_SECONDS = 60.0


def value(codec: str | None, i: int) -> bytes:
    return f'{{"codec": "{codec}", "i": {i}, "pad": "{"x" * (i % 97)}"}}'.encode()


async def produce(bootstrap: str, topic: str) -> int:
    """Every codec's records, then a committed and an aborted transaction; the count."""
    sent = 0
    for codec in CODECS:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, compression_type=codec, linger_ms=20
        )
        await producer.start()
        try:
            futures = [
                await producer.send(
                    topic, key=None if i % 5 == 0 else f"v{i}".encode(), value=value(codec, i)
                )
                for i in range(PER_CODEC)
            ]
            await asyncio.gather(*futures)
            sent += PER_CODEC
        finally:
            await producer.stop()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=unique_topic("fetch-reader-txn")
    )
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(10):
                await producer.send_and_wait(topic, value=value("committed", i))
        await producer.begin_transaction()
        for i in range(10):
            await producer.send_and_wait(topic, value=value("aborted", i))
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, key=b"t", value=None)  # a null value
        sent += 21
    finally:
        await producer.stop()
    return sent


async def read_all(
    bootstrap: str, tp: TopicPartition, end: int, compiled: bool
) -> tuple[list[Any], int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4096,  # many fetches, batches cut at a fetch's end
    )
    await consumer.start()
    try:
        if compiled:
            install_fetch_reader(
                consumer._fetcher, KeptFetch, partition_records_for(lambda: frozenset({tp.topic}))
            )
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        records: list[Any] = []
        deadline = time.monotonic() + READ_TIMEOUT_SECONDS
        while await consumer.position(tp) < end and time.monotonic() < deadline:
            batches = await consumer.getmany(tp, timeout_ms=500, max_records=37)
            records.extend(batches.get(tp, []))
        return records, await consumer.position(tp)
    finally:
        await consumer.stop()


def test_the_same_records_as_aiokafkas_reader(kafka_bootstrap: str) -> None:
    topic = unique_topic("fetch-reader")
    create_topic(kafka_bootstrap, topic, 1, TOPIC_CONFIGS)
    tp = TopicPartition(topic, 0)

    async def scenario() -> None:
        sent = await produce(kafka_bootstrap, topic)
        probe = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
        await probe.start()
        try:
            end = (await probe.end_offsets([tp]))[tp]
        finally:
            await probe.stop()
        ours, our_position = await read_all(kafka_bootstrap, tp, end, compiled=True)
        theirs, their_position = await read_all(kafka_bootstrap, tp, end, compiled=False)

        assert len(theirs) == sent  # read_uncommitted: the aborted records too
        assert all(type(r) is Record for r in ours)
        assert not any(type(r) is Record for r in theirs)
        assert ours == [
            Record(r.offset, r.key, r.value if r.value is not None else b"", r.timestamp)
            for r in theirs
        ]
        assert our_position == their_position == end  # past the last control batch
        assert {r.timestamp_type for r in theirs} == {1}  # the broker's append time

    asyncio.run(scenario())
