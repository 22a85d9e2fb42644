"""Per-visitor state: the one record per ``anonymous_id`` that every aggregate derives from.

A visitor's record is written to the Faust table's changelog once per batch in which
the visitor appears. It is self-contained, so a record is applied atomically; it
remembers the highest source offset applied per input topic, so replaying a record
after a crash is recognised and skipped (no double counting without ``exactly_once``).

Wire format: orjson of nested lists (compact, fast); ``FORMAT_VERSION`` first.
Bytes per visitor are reported by ``streams.processor`` (``state_bytes`` metric) and
measured by ``bench.state_memory`` (BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from streams.attribution import Touch
from streams.errors import StateCorruptError
from streams.funnel_eval import FunnelEvent
from streams.lifecycle import PROSPECT, CartEvent, Purchase
from streams.lives import DayActivity

FORMAT_VERSION = 2

Dims = tuple[str, str, str, str, str]  # channel, campaign, device, platform, country


class ClosedCredit(NamedTuple):
    """A closed entity's frozen funnel credit, kept until its window is final."""

    funnel: str
    window: int
    dims: int
    level: int
    ttc_ms: int | None
    # Appended fields (states written before them decode with the defaults).
    entity: str = ""  # session segment id; '' for user scope
    start_event_id: str = ""
    step_times: tuple[int, ...] = ()
    breakdown: tuple[str, ...] = ()


class ForgetMark(NamedTuple):
    """A forget request applied to this visitor (streams/forget.py).

    While it is kept, records of the visitor appended to an input before the request
    (``requested_at``, broker time) and inside its range are dropped: they were in flight
    when the person asked. It is dropped once every input has moved past that time.
    """

    request_id: str
    requested_at: int
    from_ms: int | None
    to_ms: int | None

    def covers(self, event_time_ms: int, appended_at_ms: int) -> bool:
        return (
            appended_at_ms <= self.requested_at
            and (self.from_ms is None or event_time_ms >= self.from_ms)
            and (self.to_ms is None or event_time_ms < self.to_ms)
        )


class OrderLine(NamedTuple):
    """A counted orders-topic event kept until its KPI window is final."""

    t: int
    event_id: str
    kind: str  # purchase | refund | payment_failed | order_cancelled
    transaction_id: str
    value_minor: int
    items: int
    has_coupon: bool
    discount_minor: int
    dims: int
    currency: str


@dataclass(slots=True)
class OpenSession:
    """Counted events of a session id whose last segment is still open, sorted."""

    session_id: str
    closed_segments: int = 0
    events: list[FunnelEvent] = field(default_factory=list)


@dataclass(slots=True)
class VisitorState:
    partition: int
    anonymous_id: str = ""
    dims: list[Dims] = field(default_factory=list)
    sessions: dict[str, OpenSession] = field(default_factory=dict)
    closed: list[ClosedCredit] = field(default_factory=list)
    orders: list[OrderLine] = field(default_factory=list)
    transactions: list[str] = field(default_factory=list)
    # Earliest counted purchase ever, as (event_time, transaction_id): first vs repeat.
    first_purchase: tuple[int, str] | None = None
    first_seen_t: int | None = None
    last_seen_t: int | None = None
    user_id: str | None = None
    # Highest source offset applied, per input stream name ("clickstream", ...).
    applied: dict[str, int] = field(default_factory=dict)
    # User-scope funnels only: the visitor's funnel-relevant events inside the horizon.
    user_events: list[FunnelEvent] = field(default_factory=list)
    user_closed_groups: int = 0
    # Per user-scope funnel: events before this time belong to its closed attempt groups.
    # The events themselves stay while another user funnel still needs them.
    user_consumed: dict[str, int] = field(default_factory=dict)
    # Retention and lifecycle (docs/semantics.md 6-8).
    days: list[DayActivity] = field(default_factory=list)  # per-day activity summary
    purchases: list[Purchase] = field(default_factory=list)
    cart: list[CartEvent] = field(default_factory=list)
    stage: str = PROSPECT
    lifecycle_as_of: int | None = None  # transitions/triggers emitted for times before this
    # Attribution touchpoints (one per session, its earliest counted event), by (t, session).
    touches: list[Touch] = field(default_factory=list)
    # Forget requests applied, kept while records in flight before them may still arrive.
    forgets: list[ForgetMark] = field(default_factory=list)

    def intern_dims(self, dims: Dims) -> int:
        try:
            return self.dims.index(dims)
        except ValueError:
            self.dims.append(dims)
            return len(self.dims) - 1


def _compact_dims(state: VisitorState) -> tuple[list[Dims], dict[int, int]]:
    """Dimension tuples still referenced, and the old->new index map."""
    used: set[int] = set()
    for session in state.sessions.values():
        used.update(event.dims for event in session.events)
    used.update(credit.dims for credit in state.closed)
    used.update(order.dims for order in state.orders)
    used.update(event.dims for event in state.user_events)
    order = sorted(used)
    return [state.dims[i] for i in order], {old: new for new, old in enumerate(order)}


def _encode_event(event: FunnelEvent, remap: dict[int, int]) -> list[Any]:
    encoded: list[Any] = [event.t, event.event_id, event.event_type, remap[event.dims]]
    if event.props:  # only funnels with filters or breakdowns store properties
        encoded.append(event.props)
    return encoded


def _decode_event(raw: list[Any]) -> FunnelEvent:
    if len(raw) > 4:
        props = tuple((str(k), str(v)) for k, v in raw[4])
        return FunnelEvent(raw[0], raw[1], raw[2], raw[3], props)
    return FunnelEvent(raw[0], raw[1], raw[2], raw[3])


def _decode_credit(raw: list[Any]) -> ClosedCredit:
    credit = ClosedCredit(*raw)
    if len(raw) > 5:
        return credit._replace(
            step_times=tuple(credit.step_times), breakdown=tuple(credit.breakdown)
        )
    return credit


def encode_state(state: VisitorState) -> bytes:
    dims, remap = _compact_dims(state)
    sessions = [
        [
            s.session_id,
            s.closed_segments,
            [
                [e.t, e.event_id, e.event_type, remap[e.dims]]
                if not e.props
                else _encode_event(e, remap)
                for e in s.events
            ],
        ]
        for s in state.sessions.values()
    ]
    closed = [
        [
            c.funnel,
            c.window,
            remap[c.dims],
            c.level,
            c.ttc_ms,
            c.entity,
            c.start_event_id,
            c.step_times,
            c.breakdown,
        ]
        for c in state.closed
    ]
    orders = [
        [
            o.t,
            o.event_id,
            o.kind,
            o.transaction_id,
            o.value_minor,
            o.items,
            o.has_coupon,
            o.discount_minor,
            remap[o.dims],
            o.currency,
        ]
        for o in state.orders
    ]
    user_events = [
        [e.t, e.event_id, e.event_type, remap[e.dims]] if not e.props else _encode_event(e, remap)
        for e in state.user_events
    ]
    payload: list[Any] = [
        FORMAT_VERSION,
        state.partition,
        [list(d) for d in dims],
        sessions,
        closed,
        orders,
        state.transactions,
        list(state.first_purchase) if state.first_purchase else None,
        state.first_seen_t,
        state.last_seen_t,
        state.user_id,
        state.applied,
        user_events,
        state.user_closed_groups,
        [list(d) for d in state.days],
        [list(p) for p in state.purchases],
        [
            [c.t, c.event_id, c.kind, [list(line) for line in c.lines], c.currency, c.channel]
            for c in state.cart
        ],
        state.stage,
        state.lifecycle_as_of,
        state.user_consumed,
        [list(t) for t in state.touches],
        [list(m) for m in state.forgets],
    ]
    # orjson hands back a bytes object on a buffer of at least 4 KiB whatever its length
    # (measured, orjson 3.13); the table keeps this value for as long as the visitor
    # lives, so keep an exact-size copy: ~600 B instead of 4 KiB per visitor.
    return memoryview(orjson.dumps(payload)).tobytes()


def decode_state(raw: bytes, anonymous_id: str = "") -> VisitorState:
    """The state stored under the table key ``anonymous_id`` (not repeated in the value:
    the caller knows it)."""
    try:
        payload = orjson.loads(raw)
        if payload[0] != FORMAT_VERSION:
            raise StateCorruptError(
                f"visitor state format {payload[0]} is not {FORMAT_VERSION}; this worker is "
                "older or newer than the one that wrote it: run matching versions"
            )
        (
            _,
            partition,
            dims,
            sessions,
            closed,
            orders,
            transactions,
            first_purchase,
            first_seen_t,
            last_seen_t,
            user_id,
            applied,
            user_events,
            user_closed_groups,
            days,
            purchases,
            cart,
            stage,
            lifecycle_as_of,
        ) = payload[:19]
        # Appended in place of a format bump: states written before it have none.
        user_consumed = payload[19] if len(payload) > 19 else {}
        touches = payload[20] if len(payload) > 20 else []
        forgets = payload[21] if len(payload) > 21 else []
        return VisitorState(
            partition=partition,
            anonymous_id=anonymous_id,
            dims=[tuple(d) for d in dims],
            sessions={
                sid: OpenSession(
                    sid,
                    closed_segments,
                    [FunnelEvent(*e) if len(e) == 4 else _decode_event(e) for e in events],
                )
                for sid, closed_segments, events in sessions
            },
            closed=[_decode_credit(c) for c in closed],
            orders=[OrderLine(*o) for o in orders],
            transactions=list(transactions),
            first_purchase=(first_purchase[0], first_purchase[1]) if first_purchase else None,
            first_seen_t=first_seen_t,
            last_seen_t=last_seen_t,
            user_id=user_id,
            applied=dict(applied),
            user_events=[FunnelEvent(*e) if len(e) == 4 else _decode_event(e) for e in user_events],
            user_closed_groups=user_closed_groups,
            days=[DayActivity(*d) for d in days],
            purchases=[Purchase(*p) for p in purchases],
            cart=[
                CartEvent(t, eid, kind, tuple((i, q, pr) for i, q, pr in lines), cur, ch)
                for t, eid, kind, lines, cur, ch in cart
            ],
            stage=stage,
            lifecycle_as_of=lifecycle_as_of,
            user_consumed={str(k): int(v) for k, v in user_consumed.items()},
            touches=[Touch(*t) for t in touches],
            forgets=[ForgetMark(*m) for m in forgets],
        )
    except StateCorruptError:
        raise
    except (
        orjson.JSONDecodeError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        AttributeError,
    ) as exc:
        raise StateCorruptError(
            f"visitor state record is unreadable ({exc}); the changelog topic holds data "
            "from another application: use a fresh app id (FUNNEL_APP_ID)"
        ) from exc
