"""Fuzzed records, accepted and rejected mixed, through a real worker (issue 18, item 4).

A few hundred inputs of every kind ``tests/fuzzing.py`` generates (random bytes, broken
Avro, absurd values, hostile JSON) go to the three input topics of fresh topics on the
real broker; one ``funnel worker`` (replay mode, as the harness runs it) consumes them
until idle. The worker must exit 0 with no error in its log; every input the codec
accepts must be in ``events_raw``; every input it rejects must be in ``dead_letters``
with the reason the codec gave, at its topic and offset.

The expected outcome of each input is the codec's, with the worker's validation bounds,
at the produce time (the Kafka CreateTime the worker decodes with). Inputs whose outcome
depends on the clock within the test's time window are left out; so are inputs on which
``decode`` raises (tests/unit/test_fuzz_inputs.py fails on those), which would stop the
worker rather than test what it stores.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from funnel.settings import load_settings
from schemas.codec import EventCodec
from schemas.model import Event
from schemas.reasons import Rejection
from schemas.validation import ValidationBounds
from streams.topics import ensure_topics
from tests.fuzzing import KINDS, FuzzInput, FuzzSource
from tests.pipeline_harness import PipelineEnv, WorkerProcess, clickhouse, run_until_idle

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PER_KIND = 30
WORKER_TIMEOUT_SECONDS = 120.0
CLOCK_WINDOW_MS = 15 * 60_000  # outcomes must not change within this much of produce time
# Error lines of the worker's log format ("<time> ERROR <logger>: ...") and of Faust's.
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|\[ERROR\]|Traceback \(most recent call last\)")
# Not about records: a broker the session fixture just started has no group coordinator
# for the first seconds (aiokafka logs the retried request at ERROR).
BROKER_WARMUP = re.compile(r"aiokafka\.consumer\.group_coordinator: .*CoordinatorNotAvailable")


def _outcome(result: Event | Rejection) -> str:
    return result.reason.value if isinstance(result, Rejection) else "accepted"


def _planned(codec: EventCodec, now_ms: int) -> list[tuple[FuzzInput, Event | Rejection]]:
    source = FuzzSource.from_simulator(codec)
    rng = random.Random(418)
    planned = []
    for fuzz_input in source.stream(rng, PER_KIND * len(KINDS)):
        try:
            results = [
                codec.decode(fuzz_input.raw, fuzz_input.stream, t)
                for t in (now_ms - CLOCK_WINDOW_MS, now_ms, now_ms + CLOCK_WINDOW_MS)
            ]
        except Exception:  # a decode crash: the unit tests report it
            continue
        if len({_outcome(r) for r in results}) == 1:
            planned.append((fuzz_input, results[1]))
    return planned


async def _produce(env: PipelineEnv, planned: list[tuple[FuzzInput, Event | Rejection]]) -> None:
    topics = {"clickstream": env.topics.clickstream, "cart": env.topics.cart,
              "orders": env.topics.orders}  # fmt: skip
    producer = AIOKafkaProducer(
        bootstrap_servers=env.bootstrap, acks="all", max_request_size=2 * 1024 * 1024
    )
    await producer.start()
    try:
        for fuzz_input, _ in planned:
            await producer.send_and_wait(topics[fuzz_input.stream], fuzz_input.raw, partition=0)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def fuzzed_run(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PipelineEnv, list[tuple[FuzzInput, Event | Rejection]], WorkerProcess]:
    env = PipelineEnv.with_fresh_topics(
        kafka_bootstrap, tmp_path_factory.mktemp("fuzz"), partitions=1
    )
    settings = load_settings(
        bootstrap_servers=env.bootstrap, topics=env.topics, partitions=env.partitions, replay=True
    )
    codec = EventCodec(bounds=ValidationBounds.from_settings(settings))
    planned = _planned(codec, int(time.time() * 1000))
    ensure_topics(settings)
    asyncio.run(_produce(env, planned))
    worker = run_until_idle(env, timeout=WORKER_TIMEOUT_SECONDS)  # asserts exit code 0
    return env, planned, worker


def test_the_inputs_mix_accepted_and_rejected_of_every_kind(
    fuzzed_run: tuple[PipelineEnv, list[tuple[FuzzInput, Event | Rejection]], WorkerProcess],
) -> None:
    _, planned, _ = fuzzed_run
    assert len(planned) >= 0.9 * PER_KIND * len(KINDS)
    kinds = {i.kind for i, _ in planned}
    assert kinds == set(KINDS)
    accepted = [r for _, r in planned if isinstance(r, Event)]
    reasons = {r.reason for _, r in planned if isinstance(r, Rejection)}
    assert len(accepted) >= 100
    assert len(reasons) >= 10, reasons


def test_worker_log_has_no_error(
    fuzzed_run: tuple[PipelineEnv, list[tuple[FuzzInput, Event | Rejection]], WorkerProcess],
) -> None:
    _, _, worker = fuzzed_run
    lines = Path(worker.log_path).read_text(errors="replace").splitlines()
    errors = [line for line in lines if ERROR_LINE.search(line) and not BROKER_WARMUP.search(line)]
    assert not errors, "\n".join(errors[:20])


def test_every_accepted_input_is_stored(
    fuzzed_run: tuple[PipelineEnv, list[tuple[FuzzInput, Event | Rejection]], WorkerProcess],
) -> None:
    env, planned, _ = fuzzed_run
    want = {(r.anonymous_id, r.event_id) for _, r in planned if isinstance(r, Event)}
    client = clickhouse(env)
    rows = client.query("SELECT anonymous_id, event_id FROM events_raw").result_rows
    client.close()
    got = {(a, e) for a, e in rows}
    assert got == want, (sorted(want - got)[:5], sorted(got - want)[:5])


def test_every_rejected_input_is_dead_lettered_with_its_reason(
    fuzzed_run: tuple[PipelineEnv, list[tuple[FuzzInput, Event | Rejection]], WorkerProcess],
) -> None:
    env, planned, _ = fuzzed_run
    topics = {"clickstream": env.topics.clickstream, "cart": env.topics.cart,
              "orders": env.topics.orders}  # fmt: skip
    offsets = dict.fromkeys(topics.values(), 0)
    want: dict[tuple[str, int], str] = {}
    for fuzz_input, result in planned:
        topic = topics[fuzz_input.stream]
        if isinstance(result, Rejection):
            want[(topic, offsets[topic])] = result.reason.value
        offsets[topic] += 1
    client = clickhouse(env)
    rows = client.query(
        "SELECT source_topic, source_offset, reason, detail FROM dead_letters FINAL"
    ).result_rows
    client.close()
    got = {(topic, offset): reason for topic, offset, reason, _ in rows}
    assert all(detail for *_, detail in rows)
    keys = want.keys() | got.keys()
    wrong = {k: (want.get(k), got.get(k)) for k in keys if want.get(k) != got.get(k)}
    assert not wrong, list(wrong.items())[:10]
