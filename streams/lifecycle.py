"""RFM lifecycle stages, their transitions, and marketing triggers (docs/semantics.md 7-8).

Pure functions of a visitor's counted purchases and cart events. The stage is a step
function of event time; the worker emits the steps between the time it last looked
and its watermark, so every transition and trigger happens at an exact event time and a
replay of old data produces the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

DAY_MS = 86_400_000

PROSPECT, NEW, ACTIVE, DORMANT, CHURNED = "prospect", "new", "active", "dormant", "churned"
# Not a stage: a buyer's life forgotten after its TTL leaves the segments (a transition
# into it, no trigger). If the visitor comes back it is a new prospect.
FORGOTTEN = "forgotten"


@dataclass(frozen=True, slots=True)
class LifecycleRules:
    new_ms: int = 30 * DAY_MS
    dormant_ms: int = 60 * DAY_MS
    churn_ms: int = 180 * DAY_MS
    cart_abandon_ms: int = 30 * 60_000
    anonymous_ttl_ms: int = 35 * DAY_MS
    buyer_ttl_ms: int = 400 * DAY_MS


class Purchase(NamedTuple):
    t: int
    transaction_id: str
    value_minor: int
    currency: str
    channel: str


class CartEvent(NamedTuple):
    t: int
    event_id: str
    kind: str  # add_to_cart | remove_from_cart | view_cart | begin_checkout | purchase
    lines: tuple[tuple[str, int, int], ...]  # (item_id, quantity, unit price minor)
    currency: str
    channel: str


class Transition(NamedTuple):
    at: int
    from_stage: str
    to_stage: str
    transaction_id: str  # the purchase that caused it, "" for a threshold crossing


class TriggerSpec(NamedTuple):
    trigger_type: str
    at: int
    id_parts: tuple[str, ...]
    cart: tuple[tuple[str, int, int], ...] = ()
    currency: str = ""
    channel: str = ""
    segment: str = ""
    previous_segment: str = ""


def stage_at(purchases: list[Purchase], t: int, rules: LifecycleRules) -> str:
    """The stage at event time ``t`` given the purchases (sorted by time)."""
    first: Purchase | None = None
    last: Purchase | None = None
    for purchase in purchases:
        if purchase.t > t:
            break
        first = first or purchase
        last = purchase
    if first is None or last is None:
        return PROSPECT
    if t - first.t < rules.new_ms:
        return NEW
    since_last = t - last.t
    if since_last < rules.dormant_ms:
        return ACTIVE
    if since_last < rules.churn_ms:
        return DORMANT
    return CHURNED


def _breakpoints(purchases: list[Purchase], rules: LifecycleRules) -> list[tuple[int, str]]:
    """Every time the stage may change, once each, with the purchase at that time (the
    smallest transaction id; "" for a threshold crossing)."""
    if not purchases:
        return []
    points: dict[int, str] = {}
    for at in (
        purchases[0].t + rules.new_ms,
        *(p.t + rules.dormant_ms for p in purchases),
        *(p.t + rules.churn_ms for p in purchases),
    ):
        points.setdefault(at, "")
    for purchase in purchases:
        current = points.get(purchase.t, "")
        if not current or purchase.transaction_id < current:
            points[purchase.t] = purchase.transaction_id
    return sorted(points.items())


def transitions_between(
    purchases: list[Purchase], after: int | None, until: int, rules: LifecycleRules
) -> list[Transition]:
    """Stage changes at times in [after, until); ``after=None`` means from the start.

    Half-open: an on-time event can still arrive at exactly the watermark, so times
    equal to it are decided on the next advance.
    """
    out: list[Transition] = []
    for at, txn in _breakpoints(purchases, rules):
        if (after is not None and at < after) or at >= until:
            continue
        before, now = stage_at(purchases, at - 1, rules), stage_at(purchases, at, rules)
        if before != now:
            out.append(Transition(at, before, now, txn))
    return out


def next_breakpoint(purchases: list[Purchase], after: int, rules: LifecycleRules) -> int | None:
    later = [at for at, _ in _breakpoints(purchases, rules) if at >= after]
    return min(later) if later else None


def lifecycle_triggers(
    transitions: list[Transition], purchases: list[Purchase]
) -> list[TriggerSpec]:
    by_txn = {p.transaction_id: p for p in purchases}
    out: list[TriggerSpec] = []
    for tr in transitions:
        # Stage triggers carry the segment change and the purchase's channel; the
        # currency belongs to carts (docs/semantics.md 8).
        channel = by_txn[tr.transaction_id].channel if tr.transaction_id in by_txn else ""
        common = {"segment": tr.to_stage, "previous_segment": tr.from_stage, "channel": channel}
        out.append(TriggerSpec("segment_changed", tr.at, (str(tr.at), tr.to_stage), **common))  # type: ignore[arg-type]
        if tr.from_stage == PROSPECT:
            out.append(TriggerSpec("first_purchase", tr.at, (tr.transaction_id,), **common))  # type: ignore[arg-type]
        elif tr.to_stage == DORMANT and not tr.transaction_id:
            out.append(TriggerSpec("user_became_dormant", tr.at, (str(tr.at),), **common))  # type: ignore[arg-type]
        elif tr.to_stage == CHURNED:
            out.append(TriggerSpec("user_churned", tr.at, (str(tr.at),), **common))  # type: ignore[arg-type]
        elif tr.transaction_id and tr.from_stage in (DORMANT, CHURNED):
            out.append(TriggerSpec("user_reactivated", tr.at, (tr.transaction_id,), **common))  # type: ignore[arg-type]
    return out


CART_ACTIVITY = frozenset({"add_to_cart", "remove_from_cart", "view_cart"})
CART_RESET = frozenset({"begin_checkout", "purchase"})


def cart_order(event: CartEvent) -> tuple[int, bool, str]:
    """Time order; within one millisecond cart changes come before checkout/purchase."""
    return (event.t, event.kind in CART_RESET, event.event_id)


def cart_lines(events: list[CartEvent]) -> dict[str, tuple[int, int]]:
    """Item -> (quantity, unit price) after ``events`` (in cart order): adds minus removes,
    price of the latest add, items in the order they (re)entered the cart."""
    lines: dict[str, tuple[int, int]] = {}
    for event in events:
        if event.kind in CART_RESET:
            lines = {}
        elif event.kind == "add_to_cart":
            for item_id, quantity, price in event.lines:
                held = lines.get(item_id, (0, price))[0] + quantity
                if held > 0:
                    lines[item_id] = (held, price)
        elif event.kind == "remove_from_cart":
            for item_id, quantity, _ in event.lines:
                if item_id in lines:
                    held, price = lines[item_id]
                    if held - quantity > 0:
                        lines[item_id] = (held - quantity, price)
                    else:
                        del lines[item_id]
    return lines


def _cart_currency(events: list[CartEvent]) -> str:
    """The latest currency seen on a cart activity since the last reset."""
    currency = ""
    for event in events:
        if event.kind in CART_RESET:
            currency = ""
        elif event.currency:
            currency = event.currency
    return currency


def abandoned_carts(
    events: list[CartEvent], after: int | None, until: int, rules: LifecycleRules
) -> list[TriggerSpec]:
    """cart_abandoned triggers whose fire time lies in [after, until)."""
    ordered = sorted(events, key=cart_order)
    out: list[TriggerSpec] = []
    for index, event in enumerate(ordered):
        if event.kind not in CART_ACTIVITY:
            continue
        fire_at = event.t + rules.cart_abandon_ms
        if (after is not None and fire_at < after) or fire_at >= until:
            continue
        later = [e for e in ordered[index + 1 :] if e.t <= fire_at]
        if any(e.kind in CART_ACTIVITY or e.kind in CART_RESET for e in later):
            continue  # not the last cart activity, or checkout/purchase followed
        lines = cart_lines(ordered[: index + 1])
        if not lines:
            continue
        cart = tuple((item, qty, price) for item, (qty, price) in lines.items())
        currency = _cart_currency(ordered[: index + 1])
        out.append(
            TriggerSpec("cart_abandoned", fire_at, (event.event_id,), cart, currency, event.channel)
        )
    return out


def next_cart_deadline(events: list[CartEvent], after: int, rules: LifecycleRules) -> int | None:
    deadlines = [
        e.t + rules.cart_abandon_ms
        for e in events
        if e.kind in CART_ACTIVITY and e.t + rules.cart_abandon_ms >= after
    ]
    return min(deadlines) if deadlines else None


def prune_cart(events: list[CartEvent], watermark: int, rules: LifecycleRules) -> list[CartEvent]:
    """Drop what no future trigger can need: everything before the last reset that is
    older than the abandonment delay."""
    ordered = sorted(events, key=cart_order)
    keep_from = 0
    for index, event in enumerate(ordered):
        if event.kind in CART_RESET and event.t + rules.cart_abandon_ms < watermark:
            keep_from = index + 1
    return ordered[keep_from:]
