"""Inputs declared finished: the last allowed-lateness interval is applied (issue #12 bug 5).

A replay that ends stops with the watermark at its last event time minus the allowed
lateness, so lifecycle transitions and triggers in that last interval never happened
(55 of 23,570 users on real order data). ``funnel worker --until-idle`` in replay now
declares the inputs finished before it stops; the watermark moves just past the last
event, in the pipeline and in the simulator's truth alike.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from simulator.truth import compute_truth
from simulator.truth_model import LifecycleParams
from streams.lifecycle import LifecycleRules
from streams.outputs import segment_transitions
from streams.processor import PartitionProcessor
from streams.records import Record
from streams.visitor import Rules
from streams.watermarks import PartitionClock
from tests.unit.fakes import DictDecoder, DictStore, SimpleChannels
from tests.unit.truth_builders import MIN, T0, TIMEOUT, buy, ev, rec

TOPICS = {"clickstream": "c", "cart": "k", "orders": "o"}
LATENESS = 5 * MIN
NEW = 60 * MIN  # new -> active one hour after the first purchase


def test_a_finished_clock_moves_past_the_last_event() -> None:
    clock = PartitionClock(LATENESS, tuple(TOPICS))
    clock.clocks["clickstream"].observe(T0 + 10 * MIN)
    clock.clocks["orders"].observe(T0 + 20 * MIN)
    for c in clock.clocks.values():
        c.has_data = c.max_t is not None
    clock.caught_up = set(TOPICS)
    assert clock.watermark() == T0 + 10 * MIN - LATENESS
    clock.finished = True
    assert clock.watermark() == T0 + 20 * MIN + 1
    clock.caught_up = {"clickstream"}  # records still to read: finishing waits for them
    assert clock.watermark() != T0 + 20 * MIN + 1


def run(events: list[Any], finish: bool) -> list[tuple[int, str, str]]:
    rules = Rules(
        (),
        lateness_ms=LATENESS,
        session_timeout_ms=TIMEOUT,
        lifecycle=LifecycleRules(new_ms=NEW),
    )
    decoder, store = DictDecoder(), DictStore()
    processor = PartitionProcessor(0, rules, decoder, SimpleChannels(), TOPICS, store)
    processor.recover()
    offsets: Counter[str] = Counter()
    transitions: list[tuple[Any, ...]] = []

    def keep(result: Any) -> None:
        for key, value in result.state_writes.items():
            if value is not None:
                store.data[key], store.partition_of[key] = value, 0
        transitions.extend(result.rows.get(segment_transitions.TABLE, []))

    for event in sorted(events, key=lambda e: e.event_time_ms):
        record = Record(offsets[event.stream], b"k", decoder.add(event), event.event_time_ms)
        offsets[event.stream] += 1
        keep(processor.process(event.stream, [record]))
    keep(processor.tick({s: offsets[s] for s in TOPICS}, set(TOPICS), finished=finish))
    return sorted(((r[1] - T0) // MIN, r[2], r[3]) for r in transitions if r[0] == "a1")


def truth_transitions(events: list[Any], finished: bool) -> list[tuple[int, str, str]]:
    truth = compute_truth(
        [rec(e) for e in sorted(events, key=lambda e: e.event_time_ms)],
        lateness_ms=LATENESS,
        session_timeout_ms=TIMEOUT,
        lifecycle=LifecycleParams(rfm_new_ms=NEW),
        inputs_finished=finished,
    )
    return sorted(
        ((t.at_ms - T0) // MIN, t.from_stage, t.to_stage)
        for t in truth.transitions
        if t.anonymous_id == "a1"
    )


def test_the_last_lateness_interval_is_applied_only_when_the_inputs_are_finished() -> None:
    # The last events are 62 min after the purchase: new -> active (at 60 min) lies in
    # the last allowed-lateness interval (57..62 min).
    events = [
        buy(T0, "T1"),
        ev("page_view", T0 + 62 * MIN, "late-c", anon="other"),
        ev("add_to_cart", T0 + 62 * MIN, "late-k", anon="other"),
        ev("payment_failed", T0 + 62 * MIN, "late-o", anon="other"),
    ]
    open_ended = run(events, finish=False)
    assert open_ended == [(0, "prospect", "new")] == truth_transitions(events, False)
    finished = run(events, finish=True)
    assert finished == [(0, "prospect", "new"), (60, "new", "active")]
    assert finished == truth_transitions(events, True)
