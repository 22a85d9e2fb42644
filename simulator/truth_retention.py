"""Visitors, retention cohorts and time between orders (docs/semantics.md §6).

Rules implemented here (all over *counted* events, §1):

**Visitors and forgetting.** A visitor's counted events, sorted by (event_time,
event_id), are split into separate *lives* at every gap between consecutive events
that is longer than the TTL applying at that point: ``buyer_ttl`` when the life so far
(up to and including the earlier event) holds a counted purchase, else
``anonymous_ttl``. A gap exactly equal to the TTL does not split. Each life is a visitor
of its own for §6-§8: own first visit, acquisition channel/platform, first purchase,
cart and lifecycle. A life is forgotten at ``last event + TTL`` (the TTL applying after
its last event); nothing of it happens after that moment.

**Retention.** Per life: ``first_visit`` = its first counted event, whose channel and
platform are the acquisition dimensions of *both* cohort kinds; ``first_purchase`` =
its earliest counted purchase by (event_time, transaction_id) (only lives with one).
For granularity day / ISO week / calendar month (UTC, :mod:`simulator.truth_periods`)
the cohort is the period holding the cohort moment. Activities: ``visit`` (any counted
event), ``purchase`` (any counted purchase), ``repeat_purchase`` (a counted purchase
other than the life's first). The life counts once in period N (0..30 days, 0..12
weeks, 0..12 months) of an activity when it has at least one such activity in the N-th
period after the cohort's; activity outside 0..max is not counted (a visit before the
first purchase is N < 0 of the first-purchase cohort). All-zero rows are left out.

**Time between orders.** For each counted purchase of a life other than its first (in
(event_time, transaction_id) order), the gap to the previous one is counted in the
smallest bucket with ``gap <= le_days`` (bounds 1, 3, 7, 14, 30, 60, 90, 180, +Inf
days), on the UTC day of the later purchase and by that purchase's own channel. Two
purchases in the same millisecond have gap 0 (bucket 1).

Retention and gaps count every counted event, with no watermark cut, like the KPIs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

from schemas.model import Event
from simulator.truth_model import (
    ORDER_GAP_BUCKETS_DAYS,
    LifecycleParams,
    OrderGapRow,
    RetentionRow,
)
from simulator.truth_periods import (
    DAY_MS,
    GRANULARITIES,
    MAX_PERIOD,
    day_text,
    period_of_day,
    period_start,
    utc_day,
)

ChannelOf = Callable[[Event], str]

COHORT_KINDS: Final = ("first_visit", "first_purchase")
ACTIVITIES: Final = ("visit", "purchase", "repeat_purchase")


def purchase_order(event: Event) -> tuple[int, str]:
    """§1/§4: purchases are ordered by (event_time, transaction_id)."""
    return (event.event_time_ms, event.transaction_id or "")


@dataclass(frozen=True, slots=True)
class VisitorLife:
    """One visitor between two forgettings: its counted events in event order."""

    anonymous_id: str
    partition: int
    events: tuple[Event, ...]
    purchases: tuple[Event, ...]  # by purchase_order
    forgotten_at_ms: int  # last event + the TTL applying after it

    @property
    def first(self) -> Event:
        return self.events[0]


def split_lives(
    anonymous_id: str, partition: int, events: Sequence[Event], params: LifecycleParams
) -> list[VisitorLife]:
    """``events`` (one visitor, sorted by (event_time, event_id)) cut at every gap longer
    than the TTL that applies after the earlier event."""
    lives: list[VisitorLife] = []
    current: list[Event] = []
    bought = False
    for event in events:
        if current:
            ttl = params.buyer_ttl_ms if bought else params.anonymous_ttl_ms
            if event.event_time_ms - current[-1].event_time_ms > ttl:
                lives.append(_life(anonymous_id, partition, current, params))
                current, bought = [], False
        current.append(event)
        bought = bought or event.event_type == "purchase"
    if current:
        lives.append(_life(anonymous_id, partition, current, params))
    return lives


def _life(
    anonymous_id: str, partition: int, events: list[Event], params: LifecycleParams
) -> VisitorLife:
    purchases = sorted((e for e in events if e.event_type == "purchase"), key=purchase_order)
    ttl = params.buyer_ttl_ms if purchases else params.anonymous_ttl_ms
    return VisitorLife(
        anonymous_id,
        partition,
        tuple(events),
        tuple(purchases),
        events[-1].event_time_ms + ttl,
    )


def retention_rows(lives: Iterable[VisitorLife], channel_of: ChannelOf) -> tuple[RetentionRow, ...]:
    counts: Counter[tuple[str, str, str, str, int, str, str]] = Counter()
    for life in lives:
        first = life.first
        channel, platform = channel_of(first), first.platform
        activity_days = {
            "visit": {utc_day(e.event_time_ms) for e in life.events},
            "purchase": {utc_day(e.event_time_ms) for e in life.purchases},
            "repeat_purchase": {utc_day(e.event_time_ms) for e in life.purchases[1:]},
        }
        cohort_days = {"first_visit": utc_day(first.event_time_ms)}
        if life.purchases:
            cohort_days["first_purchase"] = utc_day(life.purchases[0].event_time_ms)
        for kind, cohort_day in cohort_days.items():
            for granularity in GRANULARITIES:
                cohort = period_of_day(cohort_day, granularity)
                start = period_start(cohort, granularity)
                limit = MAX_PERIOD[granularity]
                for activity, days in activity_days.items():
                    periods = {period_of_day(day, granularity) - cohort for day in days}
                    for n in periods:
                        if 0 <= n <= limit:
                            key = (kind, granularity, start, activity, n, channel, platform)
                            counts[key] += 1
    return tuple(sorted(RetentionRow(*key, users) for key, users in counts.items()))


def order_gap_rows(lives: Iterable[VisitorLife], channel_of: ChannelOf) -> tuple[OrderGapRow, ...]:
    counts: Counter[tuple[str, str, float]] = Counter()
    for life in lives:
        purchases = life.purchases
        for previous, purchase in pairwise(purchases):
            gap_ms = purchase.event_time_ms - previous.event_time_ms
            le_days = next(b for b in ORDER_GAP_BUCKETS_DAYS if gap_ms <= b * DAY_MS)
            day = day_text(utc_day(purchase.event_time_ms))
            counts[(day, channel_of(purchase), le_days)] += 1
    return tuple(sorted(OrderGapRow(*key, orders) for key, orders in counts.items()))
