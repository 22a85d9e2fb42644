"""The local Kafka broker (deploy/local/kafka.sh) does what the pipeline relies on:
partitioned topics, consumer groups that resume at committed offsets, transactions,
and a start script that is idempotent and stops cleanly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from tests.kafka_fixture import (
    REPO_ROOT,
    ScriptBroker,
    create_topic,
    free_port_pair,
    new_script_broker,
    running_script_broker,
    session_script_broker,
    unique_topic,
)

pytestmark = pytest.mark.broker

# Generous: these bound waits for records that should arrive in milliseconds, and only
# matter when something is broken.
RECEIVE_TIMEOUT_SECONDS = 30.0
READY_PROBE = REPO_ROOT / "deploy" / "local" / "kafka_ready.py"

# (partition, offset) -> (key, value): identifies a record and what it carried.
RecordLog = dict[tuple[int, int], tuple[bytes | None, bytes]]


async def consume_from_start(
    bootstrap: str, topic: str, partitions: int, expected: int
) -> RecordLog:
    """Read a topic from the beginning without a group until `expected` records arrived."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        received: RecordLog = {}
        deadline = time.monotonic() + RECEIVE_TIMEOUT_SECONDS
        while len(received) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    received[(record.partition, record.offset)] = (record.key, record.value)
        return received
    finally:
        await consumer.stop()


async def produce_keyed(bootstrap: str, topic: str, count: int) -> RecordLog:
    """Send `count` records keyed by visitor id; the default partitioner spreads them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        pending = []
        for i in range(count):
            key, value = f"visitor-{i}".encode(), f"event-{i}".encode()
            pending.append((key, value, await producer.send(topic, key=key, value=value)))
        sent: RecordLog = {}
        for key, value, future in pending:
            metadata = await future
            sent[(metadata.partition, metadata.offset)] = (key, value)
        return sent
    finally:
        await producer.stop()


async def partitions_in_metadata(bootstrap: str, topic: str) -> set[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        return set(await producer.partitions_for(topic))
    finally:
        await producer.stop()


def test_four_partition_topic_round_trips_keyed_records(kafka_bootstrap: str) -> None:
    topic = unique_topic("test.roundtrip")
    create_topic(kafka_bootstrap, topic, partitions=4)

    assert asyncio.run(partitions_in_metadata(kafka_bootstrap, topic)) == {0, 1, 2, 3}
    sent = asyncio.run(produce_keyed(kafka_bootstrap, topic, count=40))
    received = asyncio.run(consume_from_start(kafka_bootstrap, topic, 4, expected=len(sent)))

    assert {partition for partition, _ in sent} == {0, 1, 2, 3}
    assert received == sent


# ------------------------------------------------------------------ consumer groups

RECORDS_PER_PARTITION = 10


async def produce_per_partition(bootstrap: str, topic: str, partitions: int) -> set[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition in range(partitions):
            for i in range(RECORDS_PER_PARTITION):
                value = f"p{partition}-{i}".encode()
                await producer.send_and_wait(topic, value=value, partition=partition)
    finally:
        await producer.stop()
    return set(range(partitions))


def group_consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def consume_some_and_commit(
    bootstrap: str, topic: str, group: str, count: int
) -> tuple[set[tuple[int, int]], dict[int, int]]:
    """Process `count` records one by one, commit exactly past them, leave the group."""
    consumer = group_consumer(bootstrap, topic, group)
    await consumer.start()
    try:
        processed: set[tuple[int, int]] = set()
        next_offsets: dict[int, int] = {}
        for _ in range(count):
            record = await asyncio.wait_for(consumer.getone(), RECEIVE_TIMEOUT_SECONDS)
            processed.add((record.partition, record.offset))
            next_offsets[record.partition] = record.offset + 1
        # Explicit offsets: the consumer has prefetched more than it processed.
        await consumer.commit(
            {TopicPartition(topic, p): offset for p, offset in next_offsets.items()}
        )
        return processed, next_offsets
    finally:
        await consumer.stop()


async def consume_rest(
    bootstrap: str, topic: str, group: str, expected: int
) -> tuple[list[tuple[int, int]], dict[int, int | None]]:
    """Rejoin the group; return what it reads and the offsets the group had committed."""
    consumer = group_consumer(bootstrap, topic, group)
    await consumer.start()
    try:
        read: list[tuple[int, int]] = []
        deadline = time.monotonic() + RECEIVE_TIMEOUT_SECONDS
        while len(read) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            read.extend((r.partition, r.offset) for records in batches.values() for r in records)
        committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
        return read, committed
    finally:
        await consumer.stop()


def test_restarted_group_member_resumes_exactly_at_committed_offsets(
    kafka_bootstrap: str,
) -> None:
    topic = unique_topic("test.group")
    group = unique_topic("test-group")
    create_topic(kafka_bootstrap, topic, partitions=4)
    partitions = asyncio.run(produce_per_partition(kafka_bootstrap, topic, 4))
    every_record = {(p, o) for p in partitions for o in range(RECORDS_PER_PARTITION)}

    first, committed_by_first = asyncio.run(
        consume_some_and_commit(kafka_bootstrap, topic, group, count=15)
    )
    rest, committed_seen_by_second = asyncio.run(
        consume_rest(kafka_bootstrap, topic, group, expected=len(every_record) - 15)
    )

    assert committed_seen_by_second == {p: committed_by_first.get(p) for p in range(4)}, (
        "the group's committed offsets are not the ones the first member committed"
    )
    assert len(rest) == len(set(rest)), "the restarted member read a record twice"
    assert first.isdisjoint(rest), "records before the committed offsets were read again"
    assert first | set(rest) == every_record, "records were skipped"
    first_read_per_partition = {p: min(o for q, o in rest if q == p) for p, _ in rest}
    assert first_read_per_partition == {
        p: committed_by_first.get(p, 0) for p in first_read_per_partition
    }


# --------------------------------------------------------------------- transactions

COMMITTED_FIRST = [b"committed-0", b"committed-1", b"committed-2"]
ABORTED = [b"aborted-0", b"aborted-1", b"aborted-2"]
COMMITTED_LAST = [b"committed-3"]


async def produce_committed_aborted_committed(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=unique_topic("test-txn")
    )
    await producer.start()  # runs InitProducerId for the transactional id
    try:
        async with producer.transaction():
            for value in COMMITTED_FIRST:
                await producer.send_and_wait(topic, value=value)
        await producer.begin_transaction()
        for value in ABORTED:
            await producer.send_and_wait(topic, value=value)
        await producer.abort_transaction()
        async with producer.transaction():
            for value in COMMITTED_LAST:
                await producer.send_and_wait(topic, value=value)
    finally:
        await producer.stop()


async def read_to_end(bootstrap: str, topic: str, isolation_level: str) -> list[bytes]:
    """Every value up to the end offset that this isolation level may read."""
    partition = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level=isolation_level,
    )
    await consumer.start()
    try:
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        # For read_committed this is the last stable offset; no transaction is open.
        end = (await consumer.end_offsets([partition]))[partition]
        values: list[bytes] = []
        deadline = time.monotonic() + RECEIVE_TIMEOUT_SECONDS
        while await consumer.position(partition) < end and time.monotonic() < deadline:
            batches = await consumer.getmany(partition, timeout_ms=500)
            values.extend(record.value for record in batches.get(partition, []))
        return values
    finally:
        await consumer.stop()


def test_read_committed_sees_only_committed_transactions(kafka_bootstrap: str) -> None:
    topic = unique_topic("test.txn")
    create_topic(kafka_bootstrap, topic, partitions=1)
    asyncio.run(produce_committed_aborted_committed(kafka_bootstrap, topic))

    committed_view = asyncio.run(read_to_end(kafka_bootstrap, topic, "read_committed"))
    uncommitted_view = asyncio.run(read_to_end(kafka_bootstrap, topic, "read_uncommitted"))

    assert committed_view == COMMITTED_FIRST + COMMITTED_LAST
    assert uncommitted_view == COMMITTED_FIRST + ABORTED + COMMITTED_LAST


# ------------------------------------------------------------------ the start script


@pytest.fixture(scope="module")
def script_broker(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ScriptBroker]:
    """The session's broker when kafka.sh started it, else (outside cluster) one of our own."""
    session_broker = session_script_broker(request.config)
    if session_broker is not None:
        yield session_broker
        return
    with running_script_broker(tmp_path_factory.mktemp("kafka-script")) as broker:
        yield broker


def test_start_again_keeps_the_running_broker(script_broker: ScriptBroker) -> None:
    pids_before = script_broker.process_ids()

    result = script_broker.run("start")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "already running" in result.stdout
    assert len(pids_before) == 1
    assert script_broker.process_ids() == pids_before
    assert script_broker.pid_file.read_text().strip() == str(pids_before[0])


def test_status_reports_running_broker_and_its_address(script_broker: ScriptBroker) -> None:
    result = script_broker.run("status")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "running" in result.stdout
    assert script_broker.bootstrap in result.stdout


def test_stop_leaves_no_process_and_status_says_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Also: several workers started together want the group's first rebalance held back.
    monkeypatch.setenv("KAFKA_GROUP_INITIAL_DELAY_MS", "3000")
    # A broker of its own: stopping the session's broker would break the other tests.
    with running_script_broker(tmp_path / "kafka") as broker:
        assert len(broker.process_ids()) == 1
        config = (broker.data_dir / "server.properties").read_text().splitlines()
        assert "group.initial.rebalance.delay.ms=3000" in config

        stopped = broker.run("stop")
        status = broker.run("status")

        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert broker.process_ids() == []
        assert not broker.pid_file.exists()
        assert status.returncode == 1
        assert "stopped" in status.stdout


def test_a_group_delay_that_is_not_milliseconds_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_GROUP_INITIAL_DELAY_MS", "3s")
    broker = new_script_broker(tmp_path / "kafka")
    try:
        result = broker.run("start")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "KAFKA_GROUP_INITIAL_DELAY_MS is '3s'" in result.stderr
        assert "fix:" in result.stderr
        assert broker.process_ids() == []
    finally:
        broker.stop()


def run_ready_probe(bootstrap: str) -> int:
    probe = [sys.executable, str(READY_PROBE), bootstrap, "2"]
    return subprocess.run(probe, capture_output=True, check=False, timeout=30).returncode


def test_ready_probe_tells_a_broker_from_a_closed_port(kafka_bootstrap: str) -> None:
    closed_port, _ = free_port_pair()

    assert run_ready_probe(kafka_bootstrap) == 0
    assert run_ready_probe(f"127.0.0.1:{closed_port}") == 1
