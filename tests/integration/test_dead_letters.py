"""Every kind of bad record lands in the dead-letter topic with its reason; the worker goes on.

One record per reason code, each followed by a valid event, is produced to fresh topics;
one worker consumes them. The dead-letter topic must hold exactly one record per reason,
pointing at the bad record's topic, partition and offset with its raw bytes, and every
valid event must be in `events_raw` (the worker did not stop at any bad record).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from funnel.settings import load_settings
from schemas.codec import EventCodec
from schemas.deadletter import DeadLetter
from schemas.model import Event, Item
from schemas.reasons import Reason
from simulator.config import SimConfig
from simulator.malformed import CLICKSTREAM_ONLY, MalformedFactory
from streams.topics import ensure_topics
from tests.pipeline_harness import PipelineEnv, clickhouse, ids, read_topic, run_until_idle

pytestmark = [pytest.mark.broker, pytest.mark.slow]

T0 = 1_793_491_200_000  # 2026-11-01T00:00Z; the worker runs in replay mode


def valid_event(n: int, stream: str = "cart") -> Event:
    """A valid cart event, or a clickstream one (custom-event and property reasons)."""
    if stream == "clickstream":
        return Event(
            stream="clickstream",
            event_type="page_view",
            event_id=f"00000000-0000-4000-8000-{n:012d}",
            event_time_ms=T0 + n * 1000,
            sent_time_ms=T0 + n * 1000,
            anonymous_id=f"visitor-{n}",
            session_id=f"session-{n}",
            country="CN",
            page_url="https://shop.example/",
            properties={"page_type": "home"},
        )
    return Event(
        stream="cart",
        event_type="add_to_cart",
        event_id=f"00000000-0000-4000-8000-{n:012d}",
        event_time_ms=T0 + n * 1000,
        sent_time_ms=T0 + n * 1000,
        anonymous_id=f"visitor-{n}",
        session_id=f"session-{n}",
        country="CN",
        currency="CNY",
        items=(Item(item_id="SKU-1", price_minor=9900, quantity=1),),
        value_minor=9900,
    )


async def _produce(env: PipelineEnv, records: list[tuple[str, bytes, bytes]]) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=env.bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        offsets = []
        for topic, key, value in records:
            meta = await producer.send_and_wait(topic, value, key=key, partition=0)
            offsets.append(meta.offset)
        return offsets
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def dead_letter_run(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PipelineEnv, dict[str, DeadLetter], dict[Reason, tuple[str, int, bytes]], list[Event]]:
    env = PipelineEnv.with_fresh_topics(
        kafka_bootstrap, tmp_path_factory.mktemp("dlq"), partitions=1
    )
    ensure_topics(load_settings(bootstrap_servers=env.bootstrap, topics=env.topics, partitions=1))
    codec = EventCodec()
    factory = MalformedFactory(codec, SimConfig(include_too_old=True))
    rng = random.Random(7)
    records: list[tuple[str, bytes, bytes]] = []
    bad: list[tuple[Reason, str, bytes]] = []
    good: list[Event] = []
    for n, reason in enumerate(Reason):
        # Custom-event and property reasons exist on the clickstream only.
        stream = "clickstream" if reason in CLICKSTREAM_ONLY else "cart"
        topic = env.topics.clickstream if stream == "clickstream" else env.topics.cart
        event = valid_event(2 * n, stream)
        raw = factory.build(reason, event, rng)
        records.append((topic, event.anonymous_id.encode(), raw))
        bad.append((reason, topic, raw))
        follower = valid_event(2 * n + 1, stream)
        records.append((topic, follower.anonymous_id.encode(), codec.encode_avro(follower)))
        good.append(follower)
    offsets = asyncio.run(_produce(env, records))
    sent = {reason: (topic, offsets[2 * i], raw) for i, (reason, topic, raw) in enumerate(bad)}
    run_until_idle(env)
    letters = [codec.decode_dead_letter(v) for v in read_topic(env.bootstrap, env.topics.dlq)]
    by_reason = {letter.reason: letter for letter in letters}
    assert len(letters) == len(by_reason) == len(Reason), [letter.reason for letter in letters]
    return env, by_reason, sent, good


@pytest.mark.parametrize("reason", list(Reason), ids=[r.value for r in Reason])
def test_bad_record_lands_in_the_dead_letter_topic_with_its_reason(
    dead_letter_run: tuple[
        PipelineEnv, dict[str, DeadLetter], dict[Reason, tuple[str, int, bytes]], list[Event]
    ],
    reason: Reason,
) -> None:
    _, letters, sent, _ = dead_letter_run
    letter = letters[reason.value]
    topic, offset, raw = sent[reason]
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        topic,
        0,
        offset,
    )
    assert letter.raw == raw
    assert letter.detail, "the dead letter must say what is wrong"


def test_worker_kept_going_and_kept_every_valid_event(
    dead_letter_run: tuple[
        PipelineEnv, dict[str, DeadLetter], dict[Reason, tuple[str, int, bytes]], list[Event]
    ],
    tmp_path: Path,
) -> None:
    env, _, _, good = dead_letter_run
    client = clickhouse(env)
    assert ids(client, "SELECT event_id FROM events_raw FINAL") == {e.event_id for e in good}
    reasons = ids(client, "SELECT reason FROM dead_letters FINAL")
    assert reasons == {r.value for r in Reason}
