"""Send simulated records to Kafka with explicit partitions, paced or as fast as possible.

One idempotent aiokafka producer sends everything, so each partition receives its
records in send order (the order the ground truth assumes). Pacing: ``speedup`` is
simulated seconds per real second, ``rate`` caps records per second; with both, the
slower wins; with neither, records go out as fast as the broker takes them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from funnel.settings import TopicNames
from simulator.errors import BrokerUnavailableError, TopicLayoutError
from simulator.records import SimRecord

CONNECT_TIMEOUT_S: Final = 15.0
# Delivery futures awaited at once; bounds memory and surfaces errors early.
ACK_BATCH: Final = 5000
PROGRESS_EVERY: Final = 1000
_UNKNOWN_TOPIC: Final = 3


@dataclass(frozen=True)
class ProduceReport:
    records: int
    bytes: int
    wall_seconds: float
    by_topic: dict[str, int] = field(default_factory=dict)

    @property
    def records_per_second(self) -> float:
        return self.records / self.wall_seconds if self.wall_seconds > 0 else 0.0


def _fix_hint(bootstrap: str) -> str:
    return (
        f"check that a Kafka broker listens on {bootstrap} (start the local one from "
        "deploy/local) or pass --bootstrap host:port / set KAFKA_BOOTSTRAP_SERVERS"
    )


async def _with_timeout(what: str, bootstrap: str, coro: Any) -> Any:
    try:
        return await asyncio.wait_for(coro, CONNECT_TIMEOUT_S)
    except (TimeoutError, KafkaConnectionError) as exc:
        raise BrokerUnavailableError(
            f"cannot {what} at {bootstrap}: {exc or 'timed out'}; {_fix_hint(bootstrap)}"
        ) from exc
    except KafkaError as exc:
        raise BrokerUnavailableError(f"Kafka refused to {what}: {exc}") from exc


async def ensure_topics(
    bootstrap: str, topics: TopicNames, partitions: int, *, create: bool
) -> None:
    """Check the input topics have ``partitions`` partitions; create missing ones if asked."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await _with_timeout("connect to Kafka", bootstrap, admin.start())
    try:
        described = await _with_timeout(
            "describe topics", bootstrap, admin.describe_topics(list(topics.inputs()))
        )
        missing = []
        for info in described:
            name = info["topic"]
            if info["error_code"] == _UNKNOWN_TOPIC:
                missing.append(name)
                continue
            found = len(info["partitions"])
            if found != partitions:
                raise TopicLayoutError(
                    f"topic {name} has {found} partitions but the simulation uses {partitions}; "
                    f"pass --partitions {found} (partitions decide lateness and the ground truth)"
                )
        if missing and not create:
            raise TopicLayoutError(
                f"topics missing: {', '.join(missing)}; create them with {partitions} "
                "partitions or pass --create-topics"
            )
        if missing:
            new = [
                NewTopic(
                    name,
                    num_partitions=partitions,
                    replication_factor=1,
                    # Same as streams/topics.py: arrival-time stamps, so replays of old
                    # events are not deleted by retention on arrival.
                    topic_configs={"message.timestamp.type": "LogAppendTime"},
                )
                for name in missing
            ]
            await _with_timeout("create topics", bootstrap, admin.create_topics(new))
            await _with_timeout("elect partition leaders", bootstrap, _leaders(admin, missing))
    finally:
        await admin.close()


async def _leaders(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Wait until new topics have a leader for every partition: producing before that
    gets NotLeaderForPartition errors."""
    while True:
        described = await admin.describe_topics(names)
        if all(
            info["error_code"] == 0
            and info["partitions"]
            and all(p["leader"] >= 0 for p in info["partitions"])
            for info in described
        ):
            return
        await asyncio.sleep(0.1)


class _Pacer:
    """Sleeps so record i goes out no earlier than its simulated send time / speedup and
    no earlier than i / rate seconds after the start."""

    def __init__(self, speedup: float | None, rate: float | None) -> None:
        self.speedup = speedup
        self.rate = rate
        self.start = time.monotonic()
        self.first_send_ms: int | None = None

    async def wait(self, index: int, send_time_ms: int) -> None:
        if self.speedup is None and self.rate is None:
            return
        if self.first_send_ms is None:
            self.first_send_ms = send_time_ms
        target = 0.0
        if self.speedup is not None:
            target = (send_time_ms - self.first_send_ms) / 1000.0 / self.speedup
        if self.rate is not None:
            target = max(target, index / self.rate)
        ahead = target - (time.monotonic() - self.start)
        if ahead > 0.002:  # sleeping for less costs more than it paces
            await asyncio.sleep(ahead)


async def produce(
    records: Iterable[SimRecord],
    bootstrap: str,
    topics: TopicNames,
    *,
    speedup: float | None,
    rate: float | None,
    progress: Callable[[int], None] | None = None,
) -> ProduceReport:
    """Send ``records`` in order; ``progress(n)`` gets the number sent so far."""
    if speedup is not None and speedup <= 0:
        raise ValueError("speedup must be positive (simulated seconds per real second)")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive (records per second)")
    names = {"clickstream": topics.clickstream, "cart": topics.cart, "orders": topics.orders}
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="funnel-simulator",
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
        request_timeout_ms=30_000,
    )
    await _with_timeout("connect to Kafka", bootstrap, producer.start())
    pacer = _Pacer(speedup, rate)
    by_topic: Counter[str] = Counter()
    sent = total_bytes = 0
    pending: list[asyncio.Future[Any]] = []
    started = time.monotonic()
    try:
        for record in records:
            await pacer.wait(sent, record.send_time_ms)
            topic = names[record.stream]
            future = await producer.send(
                topic, record.value, key=record.key, partition=record.partition
            )
            pending.append(future)
            sent += 1
            total_bytes += len(record.value)
            by_topic[topic] += 1
            if len(pending) >= ACK_BATCH:
                await _await_acks(pending, bootstrap)
            if progress is not None and sent % PROGRESS_EVERY == 0:
                progress(sent)
        await _await_acks(pending, bootstrap)
        await producer.flush()
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"sending to Kafka at {bootstrap} failed after {sent} records: {exc}; "
            f"{_fix_hint(bootstrap)}"
        ) from exc
    finally:
        await producer.stop()
    if progress is not None:
        progress(sent)
    return ProduceReport(
        records=sent,
        bytes=total_bytes,
        wall_seconds=time.monotonic() - started,
        by_topic=dict(sorted(by_topic.items())),
    )


async def _await_acks(pending: list[asyncio.Future[Any]], bootstrap: str) -> None:
    results = await asyncio.gather(*pending, return_exceptions=True)
    pending.clear()
    for result in results:
        if isinstance(result, BaseException):
            raise BrokerUnavailableError(
                f"Kafka at {bootstrap} did not accept a record: {result}; {_fix_hint(bootstrap)}"
            ) from result
