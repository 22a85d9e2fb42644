"""`funnel simulate` rides out a broker outage: retriable errors are retried, in order.

Issue 19 §5: the simulator died with LeaderNotAvailableError during a broker restart.
The fake below behaves like an idempotent producer in front of one broker: a lost batch
makes every later batch of its partition fail (OutOfOrderSequenceNumber) until a new
producer starts new sequences, and an acknowledgement can be lost after the append.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    RequestTimedOutError,
)

import simulator.produce as produce_module
from funnel.settings import TopicNames
from simulator.errors import BrokerUnavailableError
from simulator.produce import ProduceReport, ProducerLike, produce
from simulator.records import SimRecord

TOPICS = TopicNames(clickstream="t.clickstream", cart="t.cart", orders="t.orders")
STREAMS: tuple[Literal["clickstream", "cart", "orders"], ...] = ("clickstream", "cart", "orders")
BOOTSTRAP = "fake:9092"

TP = tuple[str, int]
# lost: never appended; ack_lost: appended, then reported failed; raise: send() raises;
# hang: never answered.
Kind = Literal["lost", "ack_lost", "raise", "hang"]


@dataclass(frozen=True)
class Fault:
    kind: Kind
    error: Callable[[], BaseException]


@dataclass
class FakeKafka:
    """One broker: the partitions' logs, and faults by the index of the send() call."""

    faults: Callable[[int], Fault | None] = lambda index: None
    start_errors: list[BaseException] = field(default_factory=list)
    log: dict[TP, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    sends: int = 0
    starts: int = 0
    live_producers: int = 0

    def producer(self) -> ProducerLike:
        return FakeProducer(self)


class FakeProducer:
    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka
        self.broken: set[TP] = set()  # a batch was lost: the broker refuses what follows
        self.started = False

    async def start(self) -> None:
        self.kafka.starts += 1
        if self.kafka.starts > 1 and self.kafka.start_errors:  # restarts during the outage
            raise self.kafka.start_errors.pop(0)
        self.started = True
        self.kafka.live_producers += 1
        assert self.kafka.live_producers == 1, "the old producer must be stopped first"

    async def stop(self) -> None:
        if self.started:
            self.kafka.live_producers -= 1
            self.started = False

    async def send(
        self, topic: str, value: bytes, *, key: bytes, partition: int
    ) -> asyncio.Future[Any]:
        assert self.started
        index = self.kafka.sends
        self.kafka.sends += 1
        fault = self.kafka.faults(index)
        if fault is not None and fault.kind == "raise":
            raise fault.error()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        tp = (topic, partition)
        if tp in self.broken:
            future.set_exception(OutOfOrderSequenceNumber())
        elif fault is None:
            self.kafka.log[tp].append(value)
            future.set_result(None)
        elif fault.kind == "lost":
            self.broken.add(tp)
            future.set_exception(fault.error())
        elif fault.kind == "ack_lost":
            self.kafka.log[tp].append(value)
            future.set_exception(fault.error())
        # "hang": never resolved
        return future


def records(count: int, partitions: int = 2) -> list[SimRecord]:
    return [
        SimRecord(
            stream=STREAMS[i % 3],
            partition=(i // 3) % partitions,
            key=b"visitor-%d" % (i % 7),
            value=b"record-%d" % i,
            send_time_ms=i,
            event=None,
            malformed_reason=None,
            is_duplicate=False,
            intended_late=False,
        )
        for i in range(count)
    ]


def expected_log(sent: list[SimRecord]) -> dict[TP, list[bytes]]:
    names = {"clickstream": TOPICS.clickstream, "cart": TOPICS.cart, "orders": TOPICS.orders}
    log: dict[TP, list[bytes]] = defaultdict(list)
    for record in sent:
        log[(names[record.stream], record.partition)].append(record.value)
    return dict(log)


def run(kafka: FakeKafka, sent: list[SimRecord], retry_seconds: float = 30.0) -> ProduceReport:
    return asyncio.run(
        produce(
            sent,
            BOOTSTRAP,
            TOPICS,
            speedup=None,
            rate=None,
            retry_seconds=retry_seconds,
            producer_factory=kafka.producer,
        )
    )


def at(faults: dict[int, Fault]) -> Callable[[int], Fault | None]:
    return faults.get


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(produce_module, "RETRY_BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(produce_module, "RETRY_BACKOFF_MAX_SECONDS", 0.02)


@pytest.mark.parametrize("ack_batch", [7, 5000])
def test_retriable_errors_are_retried_and_every_record_lands_once_in_order(
    ack_batch: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(produce_module, "ACK_BATCH", ack_batch)
    sent = records(90)
    kafka = FakeKafka(
        faults=at(
            {
                5: Fault("lost", LeaderNotAvailableError),
                40: Fault("raise", KafkaTimeoutError),
                41: Fault("lost", RequestTimedOutError),
                60: Fault("lost", NotLeaderForPartitionError),
            }
        ),
        start_errors=[KafkaConnectionError("Connect call failed"), KafkaConnectionError()],
    )
    with caplog.at_level(logging.WARNING, logger="simulator.produce"):
        report = run(kafka, sent)
    assert report.records == len(sent)
    assert dict(kafka.log) == expected_log(sent)  # each record once, in order
    assert kafka.live_producers == 0
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retries, "a retry must be logged"
    assert "LeaderNotAvailableError" in retries[0]
    assert f"Kafka at {BOOTSTRAP}" in retries[0]
    assert "unacknowledged records in order" in retries[0]
    assert any("KafkaConnectionError" in message for message in retries)


def test_a_record_acknowledged_after_a_lost_acknowledgement_proves_it_was_appended() -> None:
    sent = records(30, partitions=1)
    kafka = FakeKafka(faults=at({4: Fault("ack_lost", RequestTimedOutError)}))
    run(kafka, sent)
    assert dict(kafka.log) == expected_log(sent)


def test_a_lost_acknowledgement_at_the_end_may_duplicate_right_after_the_original() -> None:
    sent = records(30, partitions=1)
    last_clickstream = 27
    kafka = FakeKafka(faults=at({last_clickstream: Fault("ack_lost", RequestTimedOutError)}))
    report = run(kafka, sent)
    assert report.records == len(sent)
    log = dict(kafka.log)
    expected = expected_log(sent)
    duplicate = sent[last_clickstream].value
    assert log[(TOPICS.clickstream, 0)] == [*expected[(TOPICS.clickstream, 0)], duplicate]
    assert {tp: values for tp, values in log.items() if tp[0] != TOPICS.clickstream} == {
        tp: values for tp, values in expected.items() if tp[0] != TOPICS.clickstream
    }


def test_a_non_retriable_error_stops_at_once_and_names_the_fix() -> None:
    kafka = FakeKafka(faults=at({10: Fault("lost", MessageSizeTooLargeError)}))
    with pytest.raises(BrokerUnavailableError) as caught:
        run(kafka, records(30))
    message = str(caught.value)
    assert "MessageSizeTooLargeError" in message
    assert "not retried" in message
    assert "max.message.bytes" in message
    assert "funnel topics --recreate" in message
    assert kafka.starts == 1, "a non-retriable error must not be retried"
    assert kafka.live_producers == 0


def test_a_lasting_outage_exhausts_the_retry_budget_with_a_clear_error() -> None:
    def down_after_8(index: int) -> Fault | None:
        return Fault("lost", LeaderNotAvailableError) if index >= 8 else None

    kafka = FakeKafka(faults=down_after_8)
    with pytest.raises(BrokerUnavailableError) as caught:
        run(kafka, records(30), retry_seconds=0.3)
    message = str(caught.value)
    assert "still fails after" in message
    assert "LeaderNotAvailableError" in message
    assert f"check that a Kafka broker listens on {BOOTSTRAP}" in message
    assert "The topics hold the 8 records acknowledged so far" in message
    assert kafka.starts > 2
    assert kafka.live_producers == 0


def test_no_acknowledgement_within_the_budget_stops_with_a_clear_error() -> None:
    kafka = FakeKafka(faults=at({3: Fault("hang", KafkaConnectionError)}))
    with pytest.raises(BrokerUnavailableError, match="acknowledged none of 1 records for"):
        run(kafka, records(10), retry_seconds=0.2)
