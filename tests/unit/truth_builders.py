"""Hand-made events for the §6-§8 ground-truth tests (retention, lifecycle, triggers)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from schemas.model import STREAM_OF_EVENT, Event, Item
from simulator.records import SimRecord
from simulator.truth import compute_truth
from simulator.truth_model import LifecycleParams, Truth

MIN: Final = 60_000
HOUR: Final = 3_600_000
DAY: Final = 86_400_000
LATENESS: Final = 5 * MIN
TIMEOUT: Final = 30 * MIN
TICK_VISITOR: Final = "zz-watermark"


def at(iso: str) -> int:
    """Epoch ms of an ISO time, 'Z' for UTC."""
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


T0: Final = at("2026-11-01T00:00:00Z")  # a Sunday


def ev(event_type: str, t: int, event_id: str, **fields: Any) -> Event:
    """An event at absolute time ``t`` (ms); ``anon``/``session`` default to a1 / s1."""
    anon = fields.pop("anon", "a1")
    session = fields.pop("session", "s1")
    return Event(
        stream=STREAM_OF_EVENT[event_type],  # type: ignore[arg-type]
        event_type=event_type,
        event_id=event_id,
        event_time_ms=t,
        sent_time_ms=t,
        anonymous_id=anon,
        session_id=session,
        **fields,
    )


def buy(t: int, txn: str, value: int = 1000, currency: str = "CNY", **fields: Any) -> Event:
    """A purchase whose event_id is ``p-<txn>``."""
    fields.update(transaction_id=txn, currency=currency, value_minor=value)
    return ev("purchase", t, f"p-{txn}", **fields)


def cart(
    event_type: str,
    t: int,
    event_id: str,
    lines: Sequence[tuple[str, int, int]] = (),
    **fields: Any,
) -> Event:
    """A cart event with (item_id, quantity, price_minor) lines, in CNY."""
    items = tuple(Item(item_id=i, quantity=q, price_minor=p) for i, q, p in lines)
    fields.setdefault("currency", "CNY")
    return ev(event_type, t, event_id, items=items, **fields)


def rec(event: Event, partition: int = 0) -> SimRecord:
    return SimRecord(
        stream=event.stream,
        partition=partition,
        key=event.anonymous_id.encode(),
        value=b"",
        send_time_ms=event.event_time_ms,
        event=event,
        malformed_reason=None,
        is_duplicate=False,
        intended_late=False,
    )


def watermark_ticks(watermark_ms: int) -> list[Event]:
    """Events of another visitor on all three streams that set partition 0's final
    watermark to ``watermark_ms`` (when nothing else is later). None of them is a cart
    activity, checkout or purchase."""
    t = watermark_ms + LATENESS
    return [
        ev("page_view", t, "tick-c", anon=TICK_VISITOR),
        ev("add_shipping_info", t, "tick-k", anon=TICK_VISITOR),
        ev("payment_failed", t, "tick-o", anon=TICK_VISITOR),
    ]


def truth_of(
    events: Sequence[Event],
    params: LifecycleParams | None = None,
    *,
    watermark: int | None = None,
) -> Truth:
    """The truth of ``events`` (sent in time order); ``watermark`` adds the ticks."""
    everything = [*events, *(watermark_ticks(watermark) if watermark is not None else [])]
    everything.sort(key=lambda e: e.event_time_ms)  # on time: nothing is late
    return compute_truth(
        [rec(e) for e in everything],
        lateness_ms=LATENESS,
        session_timeout_ms=TIMEOUT,
        lifecycle=params,
    )
