"""The whole compiled core (native/src/core.rs through streams/compiled/processor.py)
against the Python core, batch by batch, with crashes.

Every call goes to both cores through ``tests/native/twin.py``, which asserts identical
state bytes, rows, triggers, dead letters, stats and checkpoints. The oracle tests of
tests/unit/test_core_vs_truth.py and test_forget_core.py run through the same twin (so
the compiled core is also checked against the simulator's truth, with crashes and
forgets). This file adds what those scenarios do not reach:

- two months of traffic with short lifecycle thresholds and lookback, so that visitors'
  lives expire and are dropped (``drop_forgotten_lives``), and states are deleted;
- a forget mark that expires exactly when every input reaches the request time;
- hypothesis runs: a pool of simulated records with malformed, JSON, duplicate and late
  ones, split into random batches, with ticks, redeliveries after a crash (a random
  prefix of the changelog kept) and idle inputs at random points.
"""

from __future__ import annotations

import functools
import random
from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.forget import ForgetRequest
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.records import SimRecord
from streams.attribution import AttributionRules
from streams.funnels import load_funnels
from streams.lifecycle import DAY_MS
from streams.records import Record as InputRecord
from streams.visitor import Rules
from tests.native.test_lifecycle_rows import SHORT
from tests.native.twin import TwinProcessor
from tests.unit.test_core_vs_truth import MIXED_FUNNELS, TOPICS, PartitionRun, Sink
from tests.unit.test_forget_core import ForgetSink, forget_now


def _inputs(config: SimConfig) -> dict[str, list[InputRecord]]:
    per_stream: dict[str, list[InputRecord]] = defaultdict(list)
    for rec in generate(config):
        queue = per_stream[rec.stream]
        queue.append(InputRecord(len(queue), rec.key, rec.value, rec.send_time_ms))
    return per_stream


@functools.cache
def _long_traffic() -> dict[str, list[InputRecord]]:
    return _inputs(SimConfig(seed=5, users=300, days=60, partitions=1, duplicate_pct=2))


def _drive(
    worker: PartitionRun,
    inputs: dict[str, list[InputRecord]],
    rnd: random.Random,
    crashes: int,
    max_batch: int,
) -> list[Any]:
    """Random batches over the inputs with a tick after some, commits at random, and
    crashes that keep the changelog up to the last commit plus a random part of the
    rest, after which the inputs are read again from the commit. The results in order."""
    results = []
    position = dict.fromkeys(TOPICS, 0)
    committed, durable = dict(position), len(worker.log)
    total = sum(len(v) for v in inputs.values())
    crash_at = set(rnd.sample(range(1, max(crashes, 2 * total // max_batch) + 1), crashes))
    batches = 0
    while any(position[s] < len(inputs[s]) for s in TOPICS):
        stream = rnd.choice([s for s in TOPICS if position[s] < len(inputs[s])])
        chunk = inputs[stream][position[stream] : position[stream] + rnd.randint(1, max_batch)]
        position[stream] += len(chunk)
        result = worker.proc.process(stream, chunk, committed[stream])
        worker.keep(result)
        results.append(result)
        batches += 1
        if rnd.random() < 0.2:
            caught_up = {s: len(inputs[s]) for s in TOPICS if position[s] == len(inputs[s])}
            result = worker.proc.tick(caught_up, [s for s in caught_up if rnd.random() < 0.5])
            worker.keep(result)
            results.append(result)
        if rnd.random() < 0.3:
            committed, durable = dict(position), len(worker.log)
        if batches in crash_at:
            worker.crash(rnd, durable)
            position = dict(committed)
    ends = {s: len(inputs[s]) for s in TOPICS}
    for finished in (True, False):  # a finished input stays finished
        result = worker.proc.tick(ends, finished=finished)
        worker.keep(result)
        results.append(result)
    return results


def test_two_months_with_short_lives_and_crashes() -> None:
    rules = Rules(
        load_funnels(MIXED_FUNNELS),
        lifecycle=SHORT,
        attribution=AttributionRules(lookback_ms=DAY_MS),
    )
    compared = TwinProcessor.calls
    worker = PartitionRun(0, rules, Sink(), cache_visitors=30)
    results = _drive(worker, _long_traffic(), random.Random(3), crashes=3, max_batch=400)
    assert TwinProcessor.calls - compared >= len(results)
    # What the scenario must exercise for the comparison to mean something:
    deleted = [k for r in results for k, v in r.state_writes.items() if v is None]
    assert deleted, "no visitor state was deleted (lives expiring)"
    assert any(r.triggers for r in results), "no trigger"
    assert any(r.stats.transitions for r in results), "no lifecycle transition"
    assert any(r.finalized for r in results), "no window became final"
    assert any(r.stats.duplicates for r in results), "no duplicate"


def test_a_forget_mark_expires_exactly_when_the_inputs_reach_the_request() -> None:
    config = SimConfig(seed=9, users=120, days=1, partitions=1)
    records: list[SimRecord] = list(generate(config))
    inputs = _inputs(config)
    rules = Rules(load_funnels(None))
    sink = ForgetSink({})
    codec = PartitionRun(0, rules, Sink()).codec
    for stream, queue in inputs.items():
        for record in queue:
            decoded = codec.decode(record.value, stream, record.timestamp_ms)  # type: ignore[arg-type]
            if not hasattr(decoded, "reason"):
                sink.events[(stream, record.offset)] = decoded  # type: ignore[assignment]
    worker = PartitionRun(0, rules, sink)
    for stream in TOPICS:
        worker.keep(worker.proc.process(stream, inputs[stream], None))
    # Every input has appended up to its last record: the earliest of those is where
    # the inputs have all passed. A mark requested exactly then must stay until later.
    passed = min(queue[-1].timestamp_ms for queue in inputs.values())
    person = records[len(records) // 2].key.decode()  # type: ignore[union-attr]
    forget_now(worker, sink, rules, ForgetRequest("req-1", person), passed, None)
    worker.keep(worker.proc.tick({s: len(q) for s, q in inputs.items()}))
    stub = worker.store.get(person.encode())
    assert stub is not None, "the mark was dropped at the request time"
    later = InputRecord(len(inputs["clickstream"]), b"x", b"{}", passed + 1)
    for stream in TOPICS:  # every input moves past the request
        worker.keep(worker.proc.process(stream, [later._replace(offset=len(inputs[stream]))]))
    worker.keep(worker.proc.tick({s: len(q) + 1 for s, q in inputs.items()}))
    assert worker.store.get(person.encode()) is None, "the stub outlived its mark"


# -- hypothesis runs ----------------------------------------------------------------------


@functools.cache
def _pool() -> dict[str, list[InputRecord]]:
    return _inputs(
        SimConfig(
            seed=23,
            users=60,
            days=2,
            partitions=1,
            malformed_pct=8.0,
            json_pct=35.0,
            duplicate_pct=4.0,
            late_pct=6.0,
            out_of_order_pct=8.0,
        )
    )


@given(
    seed=st.integers(0, 2**32 - 1),
    crashes=st.integers(0, 3),
    max_batch=st.sampled_from([3, 40, 250]),
    cache=st.sampled_from([0, 7]),
)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_hypothesis_runs(seed: int, crashes: int, max_batch: int, cache: int) -> None:
    compared = TwinProcessor.calls
    worker = PartitionRun(0, Rules(load_funnels(MIXED_FUNNELS)), Sink(), cache_visitors=cache)
    results = _drive(worker, _pool(), random.Random(seed), crashes, max_batch)
    assert TwinProcessor.calls - compared >= len(results)
    assert any(r.dead_letters for r in results)
