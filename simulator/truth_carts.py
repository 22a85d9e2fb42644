"""Abandoned-cart triggers (docs/semantics.md §8), per visitor life.

Rules implemented here:

- **Order.** The life's counted ``add_to_cart``, ``remove_from_cart``, ``view_cart``
  (*cart activities*), ``begin_checkout`` and ``purchase`` (*cart resets*) are taken in
  (event_time, rank, event_id) order with rank 0 for activities and 1 for resets: a
  checkout in the same millisecond as an add (the "buy now" button) checks that add out,
  whatever the random event ids say.
- **Contents.** The cart is, per ``item_id``, the running sum of the quantities of the
  items of ``add_to_cart`` minus those of ``remove_from_cart`` since the last reset (or the
  start of the life). A removal never takes a line below zero (removing what is not in
  the cart does nothing). ``view_cart`` does not change the contents, whatever items it
  lists. An item's price is its ``price_minor`` on its latest ``add_to_cart``; items keep
  the order in which they (re)entered the cart.
- **Firing.** For every cart activity ``a``: if the cart after ``a`` is non-empty and no
  other cart activity or reset follows ``a`` (in the order above) with
  ``event_time <= a.event_time + cart_abandon``, a ``cart_abandoned`` trigger occurs at
  ``a.event_time + cart_abandon`` -- one per such last activity; a later activity after
  that moment starts a new wait. It is emitted only if that time is ``<`` the life's
  horizon (final watermark of the partition, and the moment the life is forgotten).
- **Payload.** id parts: ``a.event_id``; ``cart_value_minor`` = sum of quantity x price
  over the lines; ``items`` = (item_id, quantity, price_minor) per line; ``currency`` =
  the latest currency seen on a cart activity since the last reset (None if none had one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from schemas.model import Event
from schemas.triggers import TriggerItem, trigger_id
from simulator.truth_model import LifecycleParams, TriggerRow
from simulator.truth_retention import VisitorLife

CART_ACTIVITIES: Final = frozenset({"add_to_cart", "remove_from_cart", "view_cart"})
CART_RESETS: Final = frozenset({"begin_checkout", "purchase"})


def cart_order(event: Event) -> tuple[int, int, str]:
    return (event.event_time_ms, event.event_type in CART_RESETS, event.event_id)


@dataclass(frozen=True, slots=True)
class _Waiting:
    """The latest cart activity and the cart right after it."""

    activity: Event
    items: tuple[TriggerItem, ...]
    currency: str | None


class _Cart:
    def __init__(self) -> None:
        self.quantity: dict[str, int] = {}
        self.price: dict[str, int] = {}
        self.currency: str | None = None

    def apply(self, event: Event) -> None:
        if event.currency:
            self.currency = event.currency
        if event.event_type == "add_to_cart":
            for line in event.items:
                total = self.quantity.get(line.item_id, 0) + line.quantity
                if total > 0:
                    self.quantity[line.item_id] = total
                    self.price[line.item_id] = line.price_minor
        elif event.event_type == "remove_from_cart":
            for line in event.items:
                left = self.quantity.get(line.item_id, 0) - line.quantity
                if left > 0:
                    self.quantity[line.item_id] = left
                else:
                    self.quantity.pop(line.item_id, None)  # re-adding puts it last

    def lines(self) -> tuple[TriggerItem, ...]:
        return tuple(
            TriggerItem(item_id, quantity, self.price[item_id])
            for item_id, quantity in self.quantity.items()
        )


def cart_triggers(
    life: VisitorLife, horizon_ms: int | None, params: LifecycleParams
) -> list[TriggerRow]:
    """The life's ``cart_abandoned`` triggers up to ``horizon_ms`` (None: none)."""
    if horizon_ms is None:
        return []
    wait_ms = params.cart_abandon_ms
    relevant = sorted(
        (e for e in life.events if e.event_type in CART_ACTIVITIES or e.event_type in CART_RESETS),
        key=cart_order,
    )
    triggers: list[TriggerRow] = []
    cart = _Cart()
    waiting: _Waiting | None = None
    for event in relevant:
        if waiting is not None and event.event_time_ms > waiting.activity.event_time_ms + wait_ms:
            triggers.extend(_fired(life.anonymous_id, waiting, wait_ms, horizon_ms))
        if event.event_type in CART_RESETS:
            cart = _Cart()
            waiting = None
            continue
        cart.apply(event)
        waiting = _Waiting(event, cart.lines(), cart.currency)
    if waiting is not None:
        triggers.extend(_fired(life.anonymous_id, waiting, wait_ms, horizon_ms))
    return triggers


def _fired(anonymous_id: str, waiting: _Waiting, wait_ms: int, horizon_ms: int) -> list[TriggerRow]:
    at_ms = waiting.activity.event_time_ms + wait_ms
    if not waiting.items or at_ms >= horizon_ms:
        return []
    return [
        TriggerRow(
            trigger_id=trigger_id("cart_abandoned", anonymous_id, waiting.activity.event_id),
            trigger_type="cart_abandoned",
            anonymous_id=anonymous_id,
            occurred_at_ms=at_ms,
            cart_value_minor=sum(line.quantity * line.price_minor for line in waiting.items),
            currency=waiting.currency,
            items=waiting.items,
        )
    ]
