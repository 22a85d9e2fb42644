"""Send simulated records to Kafka with explicit partitions, paced or as fast as possible.

One idempotent aiokafka producer sends everything, so each partition receives its
records in send order (the order the ground truth assumes); a broker outage is retried
with a new producer, in the same order (see :class:`_Delivery`). Pacing: ``speedup`` is
simulated seconds per real second, ``rate`` caps records per second; with both, the
slower wins; with neither, records go out as fast as the broker takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
)

from funnel.settings import TopicNames
from simulator.errors import BrokerUnavailableError, TopicLayoutError
from simulator.records import SimRecord

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 15.0
# A broker outage (restart, leader election) is retried for this long without progress;
# then the simulator stops with an error that says what to do.
RETRY_SECONDS: Final = 300.0
RETRY_BACKOFF_SECONDS: Final = 0.5  # doubled after each failed attempt...
RETRY_BACKOFF_MAX_SECONDS: Final = 10.0  # ...up to this
# Delivery futures awaited at once; bounds memory and surfaces errors early.
ACK_BATCH: Final = 5000
PROGRESS_EVERY: Final = 1000
_UNKNOWN_TOPIC: Final = 3


class ProducerLike(Protocol):
    """What the simulator uses of :class:`aiokafka.AIOKafkaProducer` (tests fake it)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(
        self, topic: str, value: bytes, *, key: bytes, partition: int
    ) -> asyncio.Future[Any]: ...


@dataclass(frozen=True)
class ProduceReport:
    records: int
    bytes: int
    wall_seconds: float
    by_topic: dict[str, int] = field(default_factory=dict)
    # Paced runs: the longest a record went out after its scheduled time. A steady input
    # keeps this small; a pause of the sending process shows here as the burst after it.
    max_behind_seconds: float = 0.0

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
    no earlier than i / rate seconds after the start; ``max_behind`` is the longest a
    record went out after that time (0 unpaced)."""

    def __init__(
        self,
        speedup: float | None,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.speedup = speedup
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self.start = clock()
        self.first_send_ms: int | None = None
        self.max_behind = 0.0

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
        ahead = target - (self._clock() - self.start)
        if ahead > 0.002:  # sleeping for less costs more than it paces
            await self._sleep(ahead)
        elif -ahead > self.max_behind:
            self.max_behind = -ahead


def _new_producer(bootstrap: str) -> ProducerLike:
    producer: ProducerLike = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="funnel-simulator",
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
        request_timeout_ms=30_000,
    )
    return producer


async def produce(
    records: Iterable[SimRecord],
    bootstrap: str,
    topics: TopicNames,
    *,
    speedup: float | None,
    rate: float | None,
    progress: Callable[[int], None] | None = None,
    retry_seconds: float = RETRY_SECONDS,
    producer_factory: Callable[[], ProducerLike] | None = None,
) -> ProduceReport:
    """Send ``records`` in order; ``progress(n)`` gets the number sent so far.

    A broker outage (retriable errors: leader elections, lost connections, timeouts) is
    retried for up to ``retry_seconds`` without progress; see :class:`_Delivery`.
    """
    if speedup is not None and speedup <= 0:
        raise ValueError("speedup must be positive (simulated seconds per real second)")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive (records per second)")
    names = {"clickstream": topics.clickstream, "cart": topics.cart, "orders": topics.orders}
    factory = producer_factory or (lambda: _new_producer(bootstrap))
    delivery = _Delivery(factory, bootstrap, retry_seconds)
    await delivery.start()
    pacer = _Pacer(speedup, rate)
    by_topic: Counter[str] = Counter()
    sent = total_bytes = 0
    started = time.monotonic()
    try:
        for record in records:
            await pacer.wait(sent, record.send_time_ms)
            topic = names[record.stream]
            await delivery.send(_Out(topic, record.partition, record.key, record.value))
            sent += 1
            total_bytes += len(record.value)
            by_topic[topic] += 1
            if delivery.unacknowledged >= ACK_BATCH:
                await delivery.flush()
            if progress is not None and sent % PROGRESS_EVERY == 0:
                progress(sent)
        await delivery.flush()
    finally:
        await delivery.stop()
    if progress is not None:
        progress(sent)
    return ProduceReport(
        records=sent,
        bytes=total_bytes,
        wall_seconds=time.monotonic() - started,
        by_topic=dict(sorted(by_topic.items())),
        max_behind_seconds=pacer.max_behind,
    )


@dataclass(frozen=True, slots=True)
class _Out:
    topic: str
    partition: int
    key: bytes
    value: bytes


def _retriable(exc: BaseException) -> bool:
    """Errors a broker outage or restart causes, which sending again can get past."""
    # KafkaTimeoutError (no metadata or no buffer space within request_timeout_ms) is
    # not marked retriable by aiokafka, but it is what an unreachable broker causes.
    # OutOfOrderSequenceNumber follows a batch the producer gave up on (e.g. expired
    # waiting for a leader): later batches of that partition carry sequence numbers the
    # broker has not seen the predecessors of. A new producer starts new sequences.
    return isinstance(exc, KafkaTimeoutError | OutOfOrderSequenceNumber) or (
        isinstance(exc, KafkaError) and bool(exc.retriable)
    )


def _describe(exc: BaseException) -> str:
    name, text = type(exc).__name__, str(exc)
    return text if name in text else f"{name}: {text}" if text else name


class _Delivery:
    """Sends records in order and gets each one into Kafka across outages.

    Order per partition: aiokafka sends one batch per partition at a time and, with
    idempotence, the broker appends a batch only after its predecessors from the same
    producer; once a batch is lost, the later ones of its partition fail too. So what a
    producer got into a partition is a prefix of what it was given, and every failed
    record after the last acknowledged one is missing. On a retriable failure the
    producer is replaced and those records are sent again, in their order, before any
    later record. Replacing it is needed: the old producer's sequence numbers already
    count the lost batches, so the broker would refuse everything it sends.

    Duplicates: a batch the broker appended but whose acknowledgement was lost (the
    broker went down in between and aiokafka then gave up waiting for a leader) is
    reported failed; if nothing after it was acknowledged it is sent again, and the
    broker cannot recognise the copy (new producer id). Such copies follow the lost
    batch's originals closely, at most a few in-flight batches later. They change no
    count: the pipeline keeps the first record per event_id (docs/semantics.md §1), and
    a copy that arrives late counts nowhere either; they add rows to events_raw (and
    possibly late_events) that the ground truth does not have, as a Kafka producer
    retry outside the simulator would.
    """

    def __init__(
        self, factory: Callable[[], ProducerLike], bootstrap: str, retry_seconds: float
    ) -> None:
        self._factory = factory
        self._bootstrap = bootstrap
        self._retry_seconds = retry_seconds
        self._producer: ProducerLike | None = None
        self._pending: list[tuple[_Out, asyncio.Future[Any]]] = []
        self.acknowledged = 0

    @property
    def unacknowledged(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        """The first connection fails at once: a wrong address is likelier than an outage."""
        producer = self._factory()
        try:
            await _with_timeout("connect to Kafka", self._bootstrap, producer.start())
        except BaseException:
            await self._stop(producer)
            raise
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._stop(self._producer)
            self._producer = None

    async def send(self, out: _Out) -> None:
        assert self._producer is not None, "start() first"
        try:
            future = await self._producer.send(
                out.topic, out.value, key=out.key, partition=out.partition
            )
        except KafkaError as exc:
            # Not queued: it goes again after the records queued before it settle.
            await self._recover([(out, exc)])
            return
        self._pending.append((out, future))

    async def flush(self) -> None:
        """Return once everything sent so far is acknowledged, retrying what failed."""
        await self._recover([])

    async def _recover(self, unsent: list[tuple[_Out, BaseException]]) -> None:
        failed = await self._settle() + unsent
        outage_started = time.monotonic()
        backoff = RETRY_BACKOFF_SECONDS
        attempt = 0
        while failed:
            attempt += 1
            self._check_retriable(failed)
            elapsed = time.monotonic() - outage_started
            if elapsed + backoff > self._retry_seconds:
                raise BrokerUnavailableError(
                    f"Kafka at {self._bootstrap} still fails after {attempt - 1} retries in "
                    f"{elapsed:.0f} s ({len(failed)} records unacknowledged, "
                    f"{self.acknowledged} acknowledged; last error: "
                    f"{_describe(failed[0][1])}); {_fix_hint(self._bootstrap)}. "
                    f"{_rerun_hint(self.acknowledged)}"
                ) from failed[0][1]
            log.warning(
                "Kafka at %s: %s; retrying %d unacknowledged records in order with a new "
                "producer in %.1f s (attempt %d, %.0f s of %.0f s retry budget used)",
                self._bootstrap,
                _describe(failed[0][1]),
                len(failed),
                backoff,
                attempt,
                elapsed,
                self._retry_seconds,
            )
            if self._producer is not None:
                await self._stop(self._producer)
                self._producer = None
            await asyncio.sleep(backoff)
            backoff = min(2 * backoff, RETRY_BACKOFF_MAX_SECONDS)
            producer = self._factory()
            try:
                await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT_S)
            except (TimeoutError, KafkaError) as exc:
                await self._stop(producer)
                error = exc if isinstance(exc, KafkaError) else KafkaTimeoutError("timed out")
                failed = [(out, error) for out, _ in failed]
                continue
            self._producer = producer
            unsent = []
            for index, (out, _) in enumerate(failed):
                try:
                    future = await producer.send(
                        out.topic, out.value, key=out.key, partition=out.partition
                    )
                except KafkaError as exc:
                    unsent = [(o, exc) for o, _ in failed[index:]]
                    break
                self._pending.append((out, future))
            failed = await self._settle() + unsent
        if attempt:
            log.warning(
                "Kafka at %s: delivered after %d retries in %.0f s",
                self._bootstrap,
                attempt,
                time.monotonic() - outage_started,
            )

    async def _settle(self) -> list[tuple[_Out, BaseException]]:
        """Wait for every pending acknowledgement; the failed records, in send order."""
        pending, self._pending = self._pending, []
        waiting = {future for _, future in pending}
        while waiting:
            # aiokafka retries an idempotent batch it sent until the broker answers; give
            # up when nothing at all is acknowledged for the whole retry budget.
            done, waiting = await asyncio.wait(waiting, timeout=self._retry_seconds)
            if not done:
                raise BrokerUnavailableError(
                    f"Kafka at {self._bootstrap} acknowledged none of {len(waiting)} records "
                    f"for {self._retry_seconds:.0f} s; {_fix_hint(self._bootstrap)}. "
                    f"{_rerun_hint(self.acknowledged)}"
                )
        # The broker appends an idempotent producer's batch only after its predecessors:
        # a failed record followed by an acknowledged one of the same partition was
        # appended (only its acknowledgement was lost), so it must not be sent again.
        last_acknowledged: dict[tuple[str, int], int] = {}
        for index, (out, future) in enumerate(pending):
            if not future.cancelled() and future.exception() is None:
                last_acknowledged[(out.topic, out.partition)] = index
        failed: list[tuple[_Out, BaseException]] = []
        for index, (out, future) in enumerate(pending):
            exc = ProducerClosed("delivery cancelled") if future.cancelled() else future.exception()
            if exc is None or index < last_acknowledged.get((out.topic, out.partition), -1):
                self.acknowledged += 1
            else:
                failed.append((out, exc))
        return failed

    def _check_retriable(self, failed: list[tuple[_Out, BaseException]]) -> None:
        for out, exc in failed:
            if not _retriable(exc):
                raise BrokerUnavailableError(
                    f"Kafka at {self._bootstrap} refused a record for {out.topic}"
                    f"[{out.partition}] with {_describe(exc)}, which is not a passing outage "
                    f"and is not retried ({self.acknowledged} records acknowledged); "
                    "check the topic and broker settings named by the error (record size: "
                    "message.max.bytes / max.message.bytes; access: ACLs) and the broker log. "
                    f"{_rerun_hint(self.acknowledged)}"
                ) from exc

    async def _stop(self, producer: ProducerLike) -> None:
        # Everything it was given has settled, so there is nothing left to flush; a
        # producer that cannot even close is abandoned (its connections die with it).
        with contextlib.suppress(TimeoutError, KafkaError):
            await asyncio.wait_for(producer.stop(), CONNECT_TIMEOUT_S)


def _rerun_hint(acknowledged: int) -> str:
    return (
        f"The topics hold the {acknowledged} records acknowledged so far: recreate them "
        "(funnel topics --recreate) before simulating again, or the ground truth will "
        "not match"
    )
