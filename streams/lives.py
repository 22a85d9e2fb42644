"""A visitor's *lives*: its activity split where it was silent longer than its TTL.

docs/semantics.md section 6: a visitor without a purchase is forgotten 35 days after
its last counted event, a buyer after 400 days; if it comes back it is a new visitor for
retention, lifecycle stages and triggers. The split is a pure function of the event
times, computed from a per-day summary of the visitor's activity, so it does not depend
on the order in which events arrive. (A gap of more than a day is the only place a
split can happen, because TTLs are at least a day.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from streams.lifecycle import DAY_MS, CartEvent, LifecycleRules, Purchase


class DayActivity(NamedTuple):
    """The visitor's counted events on one UTC day: the earliest one and the latest time."""

    day: int
    first_t: int
    first_event_id: str
    channel: str
    platform: str
    last_t: int


def add_activity(
    days: list[DayActivity], t: int, event_id: str, channel: str, platform: str
) -> None:
    """Record a counted event in the sorted per-day summary."""
    day = t // DAY_MS
    # ``days`` is sorted by day, one entry per day: most events fall on the last day or
    # after it, which the scan below would reach last.
    last = len(days) - 1
    if last < 0 or days[last].day < day:
        days.append(DayActivity(day, t, event_id, channel, platform, t))
        return
    scan = ((last, days[last]),) if days[last].day == day else enumerate(days)
    for index, entry in scan:
        if entry.day == day:
            earliest = (t, event_id) < (entry.first_t, entry.first_event_id)
            days[index] = DayActivity(
                day,
                t if earliest else entry.first_t,
                event_id if earliest else entry.first_event_id,
                channel if earliest else entry.channel,
                platform if earliest else entry.platform,
                max(entry.last_t, t),
            )
            return
        if entry.day > day:
            days.insert(index, DayActivity(day, t, event_id, channel, platform, t))
            return
    days.append(DayActivity(day, t, event_id, channel, platform, t))


@dataclass(frozen=True)
class Life:
    days: tuple[DayActivity, ...]
    purchases: tuple[Purchase, ...]
    ttl_ms: int

    @property
    def first(self) -> DayActivity:
        return self.days[0]

    @property
    def first_t(self) -> int:
        return self.days[0].first_t

    @property
    def last_t(self) -> int:
        return self.days[-1].last_t

    @property
    def forgotten_at(self) -> int:
        return self.last_t + self.ttl_ms

    def holds(self, t: int) -> bool:
        return self.first_t <= t <= self.last_t

    def cart(self, events: Sequence[CartEvent]) -> list[CartEvent]:
        return [e for e in events if self.holds(e.t)]


def split_lives(
    days: Sequence[DayActivity], purchases: Sequence[Purchase], rules: LifecycleRules
) -> list[Life]:
    """Lives in time order. A gap longer than the TTL splits; a buyer's TTL applies when
    the life has a purchase at or before the earlier event of the gap."""
    ordered = sorted(purchases, key=lambda p: (p.t, p.transaction_id))
    groups: list[list[DayActivity]] = []
    for entry in days:
        if groups:
            last_t = groups[-1][-1].last_t
            start_t = groups[-1][0].first_t
            bought = any(start_t <= p.t <= last_t for p in ordered)
            ttl = rules.buyer_ttl_ms if bought else rules.anonymous_ttl_ms
            if entry.first_t - last_t <= ttl:
                groups[-1].append(entry)
                continue
        groups.append([entry])
    lives: list[Life] = []
    for group in groups:
        first_t, last_t = group[0].first_t, group[-1].last_t
        held = tuple(p for p in ordered if first_t <= p.t <= last_t)
        ttl = rules.buyer_ttl_ms if held else rules.anonymous_ttl_ms
        lives.append(Life(tuple(group), held, ttl))
    return lives
