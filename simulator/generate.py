"""The simulation loop: visits in event-time order, records out in send order.

Visits are a discrete-event simulation: a heap holds each visitor's next visit; running
a visit yields its events and maybe schedules a return. Before a visit at time t runs,
every record due by t is released, so memory holds only the records in flight (plus
one small object per visitor who will come back), not the whole run.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator

from schemas.codec import EventCodec
from schemas.validation import ValidationBounds
from simulator.behaviour import SessionSimulator, Visitor
from simulator.config import SimConfig
from simulator.delivery import Sequencer
from simulator.population import (
    first_visit_time,
    new_visitor,
    next_visit_time,
    source_for_visit,
)
from simulator.records import SimRecord
from simulator.scenarios import ScenarioEffects

__all__ = ["SimRecord", "generate", "make_codec"]


def make_codec(config: SimConfig) -> EventCodec:
    """A codec whose validation bounds match the ones the malformed records target."""
    return EventCodec(
        bounds=ValidationBounds(
            max_payload_bytes=config.max_payload_bytes,
            max_future_ms=config.max_future_ms,
            max_past_ms=config.max_past_ms,
        )
    )


def generate(config: SimConfig, *, codec: EventCodec | None = None) -> Iterator[SimRecord]:
    """All records of the run, in send order. Same config, same bytes."""
    effects = ScenarioEffects(config)
    sequencer = Sequencer(config, codec or make_codec(config), effects)
    agenda = _first_visits(config, effects)
    visitors: dict[int, Visitor] = {}
    abandoned_cart: dict[int, bool] = {}
    launch = config.scenario == "campaign-launch"
    while agenda:
        visit_ms, index, visit_no = heapq.heappop(agenda)
        yield from sequencer.release_until(visit_ms)
        visitor = visitors.pop(index, None) or new_visitor(
            config.seed, index, launch=launch and index >= config.users
        )
        rng = random.Random(f"{config.seed}:visit:{index}:{visit_no}")
        source = source_for_visit(rng, visitor, abandoned_cart.pop(index, False))
        outcome = SessionSimulator(
            visitor, source, visit_ms, rng, effects, config.end_ms, config.checkout_button_lift
        ).run()
        sequencer.submit(
            outcome.events, random.Random(f"{config.seed}:delivery:{index}:{visit_no}")
        )
        return_rng = random.Random(f"{config.seed}:return:{index}:{visit_no}")
        returns_at = next_visit_time(return_rng, visitor, outcome)
        if returns_at is not None and returns_at < config.end_ms:
            visitors[index] = visitor
            abandoned_cart[index] = outcome.carted and not outcome.purchased
            heapq.heappush(agenda, (returns_at, index, visit_no + 1))
    yield from sequencer.finish()


def _first_visits(config: SimConfig, effects: ScenarioEffects) -> list[tuple[int, int, int]]:
    agenda = []
    for index in range(config.users):
        rng = random.Random(f"{config.seed}:arrival:{index}")
        agenda.append((first_visit_time(rng, config.start_ms, config.end_ms), index, 0))
    for offset, visit_ms in enumerate(effects.extra_arrivals()):
        agenda.append((visit_ms, config.users + offset, 0))
    heapq.heapify(agenda)
    return agenda
