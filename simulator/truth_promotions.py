"""The truth of `funnel report promotions` and `funnel report tiers` (docs/semantics.md
section 10a).

Plain Python over the simulator's counted events (section 1, by the truth's own intake:
:func:`simulator.truth_exploration.counted_events`), independent of
``reports/promotions.py`` and of ``streams/`` (no SQL, no import of either).

- *Orders*: the counted purchases over all the emitted time, numbered per visitor by
  (event_time, transaction_id); number 1 is the visitor's first order (section 4).
- An order's coupon codes: its order-level coupon and its items' coupons (non-empty,
  distinct); its discount: order discount + item discount x quantity (KPI
  ``discount_minor``).
- Per row, the *acquired buyers* are the row's first orders in the range; a buyer
  repeats when its second order is before ``to``, and within D days when that order is
  less than D days after the first, among the buyers whose first order is at least D
  days before ``to``.
- An order's tier: the purchase's own ``properties[key]``, else the value on the
  visitor's latest (event_time, event_id) counted event with event_time at or before
  the purchase's that carries a non-empty one; ``""`` when none does.

Rows are NamedTuples with the fields of the report's rows (``Repeat`` nested), sorted
as the report sorts them, so a test compares them with ``dataclasses.astuple``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from schemas.model import Event

__all__ = [
    "PromotionTruth",
    "RepeatTruth",
    "TierCohortTruth",
    "TierKpiTruth",
    "promotions",
    "tier_kpis",
    "tier_retention",
]

DAY_MS: Final = 86_400_000
_KINDS: Final = ("code", "none", "all")


class RepeatTruth(NamedTuple):
    acquired: int
    repeat_buyers: int
    mature: tuple[int, ...]
    within: tuple[int, ...]


class PromotionTruth(NamedTuple):
    currency: str
    kind: str
    coupon: str
    orders: int
    coupon_orders: int
    gmv_minor: int
    discount_minor: int
    repeat: RepeatTruth


class TierKpiTruth(NamedTuple):
    tier: str
    currency: str
    orders: int
    buyers: int
    gmv_minor: int
    first_orders: int
    repeat_orders: int


class TierCohortTruth(NamedTuple):
    tier: str
    repeat: RepeatTruth


class _Order(NamedTuple):
    event: Event
    nth: int  # 1-based, per visitor by (event_time, transaction_id)
    next_ms: int | None  # the visitor's next order's time


def _orders(counted: Iterable[Event]) -> list[_Order]:
    """Every counted purchase (all time), numbered per visitor."""
    by_visitor: dict[str, list[Event]] = defaultdict(list)
    for event in counted:
        if event.event_type == "purchase":
            by_visitor[event.anonymous_id].append(event)
    out = []
    for purchases in by_visitor.values():
        purchases.sort(key=lambda e: (e.event_time_ms, e.transaction_id or ""))
        for n, event in enumerate(purchases):
            following = purchases[n + 1].event_time_ms if n + 1 < len(purchases) else None
            out.append(_Order(event, n + 1, following))
    return out


def _in_range(order: _Order, from_ms: int, to_ms: int, currency: str) -> bool:
    event = order.event
    return from_ms <= event.event_time_ms < to_ms and (
        not currency or (event.currency or "") == currency
    )


def _codes(event: Event) -> list[str]:
    found = [event.coupon or ""] + [item.coupon or "" for item in event.items]
    return sorted({code for code in found if code})


def _discount(event: Event, code: str | None = None) -> int:
    """All the order's discount (``code`` None), or the part given by ``code``."""
    total = (event.discount_minor or 0) if code is None or event.coupon == code else 0
    return total + sum(
        item.discount_minor * item.quantity
        for item in event.items
        if code is None or item.coupon == code
    )


class _Cohort:
    """Counts of a row's first orders (acquired buyers) and their return."""

    def __init__(self, horizons: Sequence[int]) -> None:
        self.horizons = tuple(horizons)
        self.acquired = 0
        self.repeaters = 0
        self.mature = [0] * len(self.horizons)
        self.within = [0] * len(self.horizons)

    def add(self, order: _Order, to_ms: int) -> None:
        if order.nth != 1:
            return
        first, second = order.event.event_time_ms, order.next_ms
        self.acquired += 1
        self.repeaters += second is not None and second < to_ms
        for k, days in enumerate(self.horizons):
            if first + days * DAY_MS <= to_ms:
                self.mature[k] += 1
                self.within[k] += second is not None and second < first + days * DAY_MS

    def result(self) -> RepeatTruth:
        return RepeatTruth(self.acquired, self.repeaters, tuple(self.mature), tuple(self.within))


def promotions(
    counted: Iterable[Event],
    from_ms: int,
    to_ms: int,
    horizons: Sequence[int] = (30,),
    currency: str = "",
) -> list[PromotionTruth]:
    """Per (currency, kind, code): ``code`` rows for each coupon code (orders carrying it
    at order or item level, its own discount), ``none`` (orders without any coupon, all
    their discounts) and ``all`` (every order)."""
    sums: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    cohorts: dict[tuple[str, str, str], _Cohort] = {}
    for order in _orders(counted):
        if not _in_range(order, from_ms, to_ms, currency):
            continue
        event = order.event
        codes = _codes(event)
        keys = [("code", c) for c in codes] + ([("none", "")] if not codes else []) + [("all", "")]
        for kind, code in keys:
            key = (event.currency or "", kind, code)
            acc = sums[key]
            acc[0] += 1
            acc[1] += bool(codes)
            acc[2] += event.value_minor or 0
            acc[3] += _discount(event, code if kind == "code" else None)
            cohorts.setdefault(key, _Cohort(horizons)).add(order, to_ms)
    rows = [
        PromotionTruth(cur, kind, code, *_four(acc), cohorts[(cur, kind, code)].result())
        for (cur, kind, code), acc in sums.items()
    ]
    return sorted(rows, key=lambda r: (r.currency, _KINDS.index(r.kind), -r.orders, r.coupon))


def _four(acc: list[int]) -> tuple[int, int, int, int]:
    return acc[0], acc[1], acc[2], acc[3]


def _tiers(counted: Sequence[Event], orders: Iterable[_Order], key: str) -> dict[int, str]:
    """id(order event) -> its tier (see the module docstring)."""
    seen: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for event in counted:
        value = event.properties.get(key, "")
        if value:
            seen[event.anonymous_id].append((event.event_time_ms, event.event_id, value))
    out = {}
    for order in orders:
        event = order.event
        tier = event.properties.get(key, "")
        if not tier:
            before = [s for s in seen.get(event.anonymous_id, []) if s[0] <= event.event_time_ms]
            tier = max(before)[2] if before else ""
        out[id(event)] = tier
    return out


def _tier_key(tier: str) -> tuple[bool, str]:
    return (tier == "", tier)


def tier_kpis(
    counted: Iterable[Event],
    from_ms: int,
    to_ms: int,
    key: str = "membership_tier",
    currency: str = "",
) -> list[TierKpiTruth]:
    """Per (tier, currency) of the orders in the range."""
    events = list(counted)
    chosen = [o for o in _orders(events) if _in_range(o, from_ms, to_ms, currency)]
    tiers = _tiers(events, chosen, key)
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    buyers: dict[tuple[str, str], set[str]] = defaultdict(set)
    for order in chosen:
        event = order.event
        group = (tiers[id(event)], event.currency or "")
        acc = sums[group]
        acc[0] += 1
        acc[1] += event.value_minor or 0
        acc[2 if order.nth == 1 else 3] += 1
        buyers[group].add(event.anonymous_id)
    rows = [
        TierKpiTruth(tier, cur, acc[0], len(buyers[(tier, cur)]), acc[1], acc[2], acc[3])
        for (tier, cur), acc in sums.items()
    ]
    return sorted(rows, key=lambda r: (*_tier_key(r.tier), r.currency))


def tier_retention(
    counted: Iterable[Event],
    from_ms: int,
    to_ms: int,
    horizons: Sequence[int] = (7, 30),
    key: str = "membership_tier",
    currency: str = "",
) -> list[TierCohortTruth]:
    """Per tier of the first order: the buyers whose first order is in the range and
    their second orders."""
    events = list(counted)
    firsts = [o for o in _orders(events) if o.nth == 1 and _in_range(o, from_ms, to_ms, currency)]
    tiers = _tiers(events, firsts, key)
    cohorts: dict[str, _Cohort] = {}
    for order in firsts:
        cohorts.setdefault(tiers[id(order.event)], _Cohort(horizons)).add(order, to_ms)
    return [
        TierCohortTruth(tier, cohorts[tier].result()) for tier in sorted(cohorts, key=_tier_key)
    ]
