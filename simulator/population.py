"""Who visits when: first arrivals over the simulated days, returns, and traffic sources.

Each visitor and each visit draws from its own ``random.Random`` seeded by
``"<seed>:<purpose>:<ids>"`` (string seeds hash with SHA-512, independent of
PYTHONHASHSEED), so the same config gives the same visitors on any machine.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Final

from simulator.behaviour import SessionOutcome, Visitor, new_uuid
from simulator.catalog import (
    COUNTRIES,
    EXPERIMENTS,
    LAUNCH_SOURCE,
    REGISTRATION_SOURCES,
    SOURCE_BY_NAME,
    Country,
    TrafficSource,
)
from simulator.daily import diurnal_weight

_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 86_400_000
MAX_SESSIONS_PER_VISITOR: Final = 200
# Customers come back more often, and some of their returns follow a repurchase cycle.
P_CUSTOMER_RETURN_BONUS: Final = 0.15
P_REPURCHASE_CYCLE: Final = 0.35
REPURCHASE_MEDIAN_DAYS: Final = 10.0
_DEVICES: Final = {
    "web": (("desktop", 0.55), ("mobile", 0.38), ("tablet", 0.07)),
    "app": (("mobile", 0.85), ("tablet", 0.15)),
    "mini_program": (("mobile", 1.0),),
}


def first_visit_time(rng: random.Random, start_ms: int, end_ms: int) -> int:
    """A time in [start, end) following the daily traffic curve (rejection sampling)."""
    span = end_ms - start_ms
    while True:
        candidate = start_ms + int(rng.random() * span)
        if rng.random() * 1.6 <= diurnal_weight(candidate):
            return candidate


def _weighted(rng: random.Random, options: tuple[tuple[str, float], ...]) -> str:
    names = [name for name, _ in options]
    weights = [weight for _, weight in options]
    return rng.choices(names, weights)[0]


def pick_source(rng: random.Random, sources: tuple[TrafficSource, ...]) -> TrafficSource:
    return rng.choices(sources, [s.weight for s in sources])[0]


def assign_variant(anonymous_id: str, experiment: str, variants: tuple[str, str]) -> str:
    """Sticky 50/50 assignment by hashing the visitor id, as an experiment SDK would."""
    digest = hashlib.sha256(f"{experiment}:{anonymous_id}".encode()).digest()
    return variants[digest[0] & 1]


def new_visitor(seed: int, index: int, launch: bool) -> Visitor:
    rng = random.Random(f"{seed}:visitor:{index}")
    country: Country = rng.choices(COUNTRIES, [c.weight for c in COUNTRIES])[0]
    source = LAUNCH_SOURCE if launch else pick_source(rng, REGISTRATION_SOURCES)
    web, app, mini = source.platforms
    mini *= country.mini_program_share / 0.35 if country.mini_program_share else 0.0
    platform = rng.choices(("web", "app", "mini_program"), (web, app, mini))[0]
    device = _weighted(rng, _DEVICES[platform])
    anonymous_id = new_uuid(rng)
    experiments = {e.name: assign_variant(anonymous_id, e.name, e.variants) for e in EXPERIMENTS}
    return Visitor(
        index=index,
        anonymous_id=anonymous_id,
        country=country,
        platform=platform,
        device=device,
        experiments=experiments,
        acquisition=source,
    )


def source_for_visit(rng: random.Random, visitor: Visitor, abandoned_cart: bool) -> TrafficSource:
    """The first visit comes from the acquisition source; returns mostly come direct or
    through owned channels (email, push, SMS reminders)."""
    if visitor.sessions == 0:
        return visitor.acquisition
    roll = rng.random()
    if abandoned_cart and roll < 0.3:
        return SOURCE_BY_NAME["sms_reminder"]
    if visitor.user_id is not None and roll < 0.5:
        return SOURCE_BY_NAME["newsletter"]
    if visitor.platform == "app" and roll < 0.6:
        return SOURCE_BY_NAME["app_push"]
    if roll < 0.8:
        return SOURCE_BY_NAME["direct"]
    return pick_source(rng, REGISTRATION_SOURCES)


def next_visit_time(rng: random.Random, visitor: Visitor, outcome: SessionOutcome) -> int | None:
    """When the visitor comes back, or None. Buyers and cart abandoners return more often,
    and most returns are days later, which gives D1/D7/D30 retention its shape. Customers
    (at least one order) also come back on a repurchase cycle of one to a few weeks, which
    gives weekly cohorts, repeat purchases and RFM lifecycle stages their signal."""
    if visitor.sessions >= MAX_SESSIONS_PER_VISITOR:
        return None
    p_return = 0.28 + (0.22 if outcome.purchased else 0.0)
    if visitor.orders:
        p_return += P_CUSTOMER_RETURN_BONUS
    if outcome.carted and not outcome.purchased:
        p_return += 0.12
    p_return *= 0.97 ** max(0, visitor.sessions - 5)
    if rng.random() >= p_return:
        return None
    roll = rng.random()
    if roll < 0.3:
        delay = int(rng.expovariate(1.0 / (3 * _HOUR_MS))) + 35 * 60_000
    elif visitor.orders and roll < 0.3 + P_REPURCHASE_CYCLE:
        delay = int(rng.lognormvariate(math.log(REPURCHASE_MEDIAN_DAYS * _DAY_MS), 0.6))
    else:
        delay = _DAY_MS + int(rng.expovariate(1.0 / (3 * _DAY_MS)))
    return outcome.end_ms + delay
