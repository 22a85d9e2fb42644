"""Pure transitions of one visitor's state, and the aggregate contributions it implies.

Every aggregate row is a sum of :func:`contributions` over visitors. The processor
applies ``contributions(after) - contributions(before)`` to the partition's totals, and
after a crash rebuilds the totals by summing :func:`contributions` over the recovered
states: the numbers never depend on which writes survived, only on the state.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import NamedTuple

from schemas.model import Event
from schemas.properties import property_values
from streams.attribution import (
    MODELS,
    AttributionRules,
    order_touches,
    prune_touches,
    record_touch,
    shares,
    touch_of,
)
from streams.funnel_eval import Credit, FunnelEvent, evaluate, user_group_ranges
from streams.funnels import DIMENSION_NAMES, FunnelDef
from streams.lifecycle import (
    DAY_MS,
    CartEvent,
    LifecycleRules,
    Purchase,
    cart_order,
    next_breakpoint,
    next_cart_deadline,
)
from streams.lives import DayActivity, add_activity, split_lives
from streams.outputs import Key
from streams.outputs import kpi as kpi_rows
from streams.outputs.family import KPI_THRESHOLD, funnel_threshold
from streams.outputs.funnel_attempts import FunnelAttemptKey
from streams.outputs.funnel_outcomes import (
    CONVERTED,
    DROPPED,
    IN_PROGRESS,
    FunnelOutcomeKey,
    OpenAttemptKey,
)
from streams.outputs.funnel_steps import FunnelStepKey
from streams.outputs.funnel_ttc import FunnelTtcKey, bucket_of
from streams.outputs.kpi import KpiCellKey
from streams.outputs.order_attribution import OrderAttributionKey
from streams.outputs.order_gaps import OrderGapKey
from streams.outputs.retention import RetentionKey
from streams.retention import GAPS_FAMILY, RETENTION_FAMILY, order_gaps, retention_cells
from streams.state import ClosedCredit, Dims, OpenSession, OrderLine, VisitorState

ORDER_KINDS = frozenset({"purchase", "refund", "payment_failed", "order_cancelled"})

Contributions = dict[Key, int]
Thresholds = dict[str, int]  # finality group (key.threshold) -> first window not final yet


@dataclass(frozen=True)
class Rules:
    """What processing needs to know besides the events."""

    funnels: tuple[FunnelDef, ...]
    window_ms: int = 60_000
    session_timeout_ms: int = 1_800_000
    lateness_ms: int = 300_000
    max_transactions: int = 100
    lifecycle: LifecycleRules = field(default_factory=LifecycleRules)
    attribution: AttributionRules = field(default_factory=AttributionRules)
    families: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.session_timeout_ms <= self.lateness_ms:
            # A session could then close while on-time events for it may still arrive.
            raise ValueError("session timeout must be longer than the allowed lateness")
        object.__setattr__(
            self,
            "families",
            (
                KPI_THRESHOLD,
                *(funnel_threshold(f.name) for f in self.funnels),
                *RETENTION_FAMILY.values(),
                GAPS_FAMILY,
            ),
        )

    @cached_property
    def session_funnels(self) -> tuple[FunnelDef, ...]:
        return tuple(f for f in self.funnels if f.scope == "session")

    @cached_property
    def user_funnels(self) -> tuple[FunnelDef, ...]:
        return tuple(f for f in self.funnels if f.scope == "user")

    @cached_property
    def user_funnel_types(self) -> frozenset[str] | None:
        """Event types user-scope funnels can use; None: every type (a strict one)."""
        if any(f.needs_all_events for f in self.user_funnels):
            return None
        return frozenset(t for f in self.user_funnels for t in f.event_types)

    @cached_property
    def property_names(self) -> tuple[str, ...]:
        """Properties some funnel's filters or breakdown read: kept on funnel events."""
        return tuple(sorted({p for f in self.funnels for p in f.property_names}))

    @cached_property
    def steps_by_funnel(self) -> dict[str, tuple[str, ...]]:
        return {f.name: f.steps for f in self.funnels}

    @cached_property
    def funnel_by_name(self) -> dict[str, FunnelDef]:
        return {f.name: f for f in self.funnels}

    def window_of(self, t: int) -> int:
        return t - t % self.window_ms


class Applied(Enum):
    COUNTED = "counted"
    DUPLICATE = "duplicate"
    REPLAYED = "replayed"


def split_segments(events: list[FunnelEvent], timeout_ms: int) -> list[list[FunnelEvent]]:
    """Session segments: split where consecutive events are more than the timeout apart."""
    if not events:
        return []
    segments: list[list[FunnelEvent]] = []
    start = 0
    previous_t = events[0].t
    for index in range(1, len(events)):
        t = events[index].t
        if t - previous_t > timeout_ms:
            segments.append(events[start:index])
            start = index
        previous_t = t
    segments.append(events[start:])
    return segments


def first_segment_end(events: list[FunnelEvent], timeout_ms: int) -> int:
    """Time of the last event of ``split_segments(events, timeout_ms)[0]`` (events given)."""
    previous_t = events[0].t
    for index in range(1, len(events)):
        t = events[index].t
        if t - previous_t > timeout_ms:
            break
        previous_t = t
    return previous_t


def _order_line(event: Event, dims: int) -> OrderLine:
    quantity = sum(item.quantity for item in event.items)
    item_discount = sum(item.discount_minor * item.quantity for item in event.items)
    has_coupon = bool(event.coupon) or any(item.coupon for item in event.items)
    return OrderLine(
        t=event.event_time_ms,
        event_id=event.event_id,
        kind=event.event_type,
        transaction_id=event.transaction_id or "",
        value_minor=event.value_minor or 0,
        items=quantity,
        has_coupon=has_coupon,
        discount_minor=(event.discount_minor or 0) + item_discount,
        dims=dims,
        currency=event.currency or "",
    )


def _remove_event(state: VisitorState, event_id: str) -> None:
    for session in state.sessions.values():
        session.events = [e for e in session.events if e.event_id != event_id]
    state.user_events = [e for e in state.user_events if e.event_id != event_id]
    removed = {o.transaction_id for o in state.orders if o.event_id == event_id}
    state.orders = [o for o in state.orders if o.event_id != event_id]
    state.cart = [c for c in state.cart if c.event_id != event_id]
    state.touches = [t for t in state.touches if t.event_id != event_id]
    state.purchases = [p for p in state.purchases if p.transaction_id not in removed]


def _purchase_is_duplicate(state: VisitorState, event: Event) -> bool:
    """Purchases count once per transaction id: the earliest (event_time, event_id) wins."""
    txn = event.transaction_id or ""
    if txn not in state.transactions:
        return False
    for order in state.orders:
        if order.kind == "purchase" and order.transaction_id == txn:
            if (event.event_time_ms, event.event_id) < (order.t, order.event_id):
                _remove_event(state, order.event_id)
                return False
            return True
    return True  # the counted copy's window is already final; this one cannot be earlier


def apply_event(
    state: VisitorState, event: Event, dims: Dims, stream: str, offset: int, rules: Rules
) -> Applied:
    """Add one on-time event to the visitor; idempotent for replays and duplicates."""
    if offset <= state.applied.get(stream, -1):
        return Applied.REPLAYED
    state.applied[stream] = offset
    session = state.sessions.get(event.session_id)
    if session is not None:
        event_id = event.event_id  # seen in this session already: a duplicate
        for seen in session.events:
            if seen.event_id == event_id:
                return Applied.DUPLICATE
    if event.event_type == "purchase" and _purchase_is_duplicate(state, event):
        return Applied.DUPLICATE
    dims_index = state.intern_dims(dims)
    props = _funnel_props(event, rules.property_names) if rules.property_names else ()
    funnel_event = FunnelEvent(
        event.event_time_ms, event.event_id, event.event_type, dims_index, props
    )
    if session is None:
        session = state.sessions[event.session_id] = OpenSession(event.session_id)
    insort(session.events, funnel_event)
    user_types = rules.user_funnel_types
    if rules.user_funnels and (user_types is None or event.event_type in user_types):
        insort(state.user_events, funnel_event)
    if not state.anonymous_id:
        state.anonymous_id = event.anonymous_id
    if event.event_type in ORDER_KINDS:
        state.orders.append(_order_line(event, dims_index))
    if event.event_type == "purchase":
        txn = event.transaction_id or ""
        state.transactions.append(txn)
        del state.transactions[: -rules.max_transactions]
        candidate = (event.event_time_ms, txn)
        if state.first_purchase is None or candidate < state.first_purchase:
            state.first_purchase = candidate
    t = event.event_time_ms
    state.first_seen_t = t if state.first_seen_t is None else min(state.first_seen_t, t)
    state.last_seen_t = t if state.last_seen_t is None else max(state.last_seen_t, t)
    if event.user_id:
        state.user_id = event.user_id
    _track_lifecycle(state, event, dims)
    record_touch(state.touches, touch_of(event, dims[0], dims[1]), rules.attribution)
    return Applied.COUNTED


def _funnel_props(event: Event, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((name, value) for name in names for value in property_values(event, name))


CART_KINDS = frozenset(
    {"add_to_cart", "remove_from_cart", "view_cart", "begin_checkout", "purchase"}
)


def _track_lifecycle(state: VisitorState, event: Event, dims: Dims) -> None:
    """Retention activity, purchases and cart events of a counted event."""
    t, channel = event.event_time_ms, dims[0]
    add_activity(state.days, t, event.event_id, channel, event.platform)
    if event.event_type == "purchase":
        purchase = Purchase(
            t, event.transaction_id or "", event.value_minor or 0, event.currency or "", channel
        )
        insort(state.purchases, purchase)
    if event.event_type in CART_KINDS:
        lines = tuple((i.item_id, i.quantity, i.price_minor) for i in event.items)
        insort(
            state.cart,
            CartEvent(t, event.event_id, event.event_type, lines, event.currency or "", channel),
            key=cart_order,
        )


def segment_id(session_id: str, segment: list[FunnelEvent]) -> str:
    """A session segment's entity id (docs/semantics.md section 2): the session id and its
    first event's time. It needs no history (a count of earlier segments would be lost
    with the session's state once all its segments closed)."""
    return f"{session_id}@{segment[0].t}"


def breakdown_values(funnel: FunnelDef, credit: Credit, state: VisitorState) -> tuple[str, ...]:
    """The funnel's breakdown values on the credited attempt's attributed event."""
    breakdown = funnel.breakdown
    if breakdown is None:
        return ()
    if breakdown.attribution == "first_touch":
        event: FunnelEvent | None = credit.steps[0]
    elif breakdown.attribution == "last_touch":
        event = credit.steps[-1]
    else:
        step = breakdown.attributed_step or 1
        event = credit.steps[step - 1] if len(credit.steps) >= step else None
    if event is None:
        return tuple("" for _ in breakdown.dimensions)
    values: list[str] = []
    for name in breakdown.dimensions:
        if name in DIMENSION_NAMES:
            values.append(state.dims[event.dims][DIMENSION_NAMES.index(name)])
        else:
            found = event.values(name)
            values.append(found[0] if found else "")
    return tuple(values)


def _freeze(
    funnel: FunnelDef, credit: Credit | None, entity: str, state: VisitorState, rules: Rules
) -> ClosedCredit | None:
    if credit is None:
        return None
    return ClosedCredit(
        funnel.name,
        rules.window_of(credit.start_t),
        credit.dims,
        credit.level,
        credit.time_to_convert_ms,
        entity,
        credit.start_event_id,
        tuple([e.t for e in credit.steps]),
        breakdown_values(funnel, credit, state) if funnel.breakdown is not None else (),
    )


def _close_sessions(state: VisitorState, watermark: int, rules: Rules) -> None:
    timeout = rules.session_timeout_ms
    for session_id in list(state.sessions):
        session = state.sessions[session_id]
        segments = split_segments(session.events, timeout)
        open_from = 0
        for segment in segments:
            if segment[-1].t + timeout >= watermark:
                break
            entity = segment_id(session_id, segment)
            for funnel in rules.session_funnels:
                frozen = _freeze(funnel, evaluate(funnel, segment), entity, state, rules)
                if frozen is not None:
                    state.closed.append(frozen)
            open_from += 1
            session.closed_segments += 1
        if open_from == len(segments):
            del state.sessions[session_id]
        elif open_from:
            session.events = [e for segment in segments[open_from:] for e in segment]


def user_funnel_events(state: VisitorState, funnel: FunnelDef) -> list[FunnelEvent]:
    """The visitor's events ``funnel`` can use (those of its step and exclusion types;
    every event for a strict funnel) not used by its closed groups."""
    consumed = state.user_consumed.get(funnel.name)
    if funnel.needs_all_events:
        return [e for e in state.user_events if consumed is None or e.t >= consumed]
    types = funnel.event_types
    return [
        e
        for e in state.user_events
        if e.event_type in types and (consumed is None or e.t >= consumed)
    ]


def _close_user_groups(state: VisitorState, watermark: int, rules: Rules) -> None:
    """Freeze each user funnel's groups that no on-time event can change any more.

    A group closes once the watermark passes ``low + 2W`` (its last attempt may start at
    ``low + W`` and run for ``W``). Its events are consumed for that funnel only: up to the
    next group's first start event (which may lie inside ``(low + W, low + 2W]``), or up
    to the watermark when there is none yet. An event is dropped once every user funnel
    that could use it has consumed it (docs/semantics.md section 3).
    """
    changed = False
    for funnel in rules.user_funnels:
        events = user_funnel_events(state, funnel)
        ranges = user_group_ranges(funnel, events)
        closed = 0
        for low, high in ranges:
            horizon = low + 2 * funnel.window_ms
            if horizon >= watermark:
                break
            frozen = _freeze(funnel, evaluate(funnel, events, (low, high)), "", state, rules)
            if frozen is not None:
                state.closed.append(frozen)
            state.user_closed_groups += 1
            closed += 1
        # What this funnel can still use: the events from its first open group on, or,
        # with none open, from the watermark on (a later group starts at an on-time
        # event, at or after the watermark, and uses no earlier event). Without this,
        # events that start no group (a purchase without a sign_up) stayed for good.
        floor = ranges[closed][0] if closed < len(ranges) else watermark
        if (
            floor > state.user_consumed.get(funnel.name, floor - 1)
            and events
            and (events[0].t < floor)
        ):
            state.user_consumed[funnel.name] = floor
            changed = True
    if changed:
        _drop_consumed_user_events(state, rules)


def _drop_consumed_user_events(state: VisitorState, rules: Rules) -> None:
    consumed = state.user_consumed
    needing: dict[str, list[str]] = {}
    every_type = [f.name for f in rules.user_funnels if f.needs_all_events]
    for funnel in rules.user_funnels:
        for event_type in funnel.event_types:
            needing.setdefault(event_type, []).append(funnel.name)
    state.user_events = [
        e
        for e in state.user_events
        if any(
            e.t >= consumed.get(name, e.t) for name in (*needing.get(e.event_type, ()), *every_type)
        )
    ]
    for name in [n for n in consumed if n not in rules.funnel_by_name]:
        del consumed[name]  # a funnel no longer configured


def close_expired(state: VisitorState, watermark: int, rules: Rules) -> None:
    """Freeze entities no on-time event can change any more (watermark-driven)."""
    _close_sessions(state, watermark, rules)
    if rules.user_funnels:
        _close_user_groups(state, watermark, rules)


def prune_final(
    state: VisitorState, thresholds: Thresholds, attribution: AttributionRules | None = None
) -> None:
    """Drop what only final (already written, excluded) windows needed."""
    state.closed = [
        c for c in state.closed if c.window >= thresholds.get(funnel_threshold(c.funnel), 0)
    ]
    kpi_threshold = thresholds.get(KPI_THRESHOLD, 0)
    state.orders = [o for o in state.orders if o.t >= kpi_threshold]
    if attribution is not None and state.touches:
        # Every order still to be attributed (non-final, or on time later) is at or after
        # the KPI threshold.
        prune_touches(state.touches, kpi_threshold, attribution)


def expired(state: VisitorState, watermark: int, rules: Rules) -> bool:
    """Every life forgotten (docs/semantics.md 6) and no session or funnel group open."""
    if state.sessions or state.user_events:
        return False
    if state.touches and state.touches[-1].t >= watermark - rules.attribution.lookback_ms:
        return False  # an order may still come and need them
    lives = split_lives(state.days, state.purchases, rules.lifecycle)
    return not lives or watermark > lives[-1].forgotten_at


def drop_forgotten_lives(
    state: VisitorState, watermark: int, thresholds: Thresholds, rules: Rules
) -> None:
    """Forget the data of earlier lives once forgotten and all their cells are final."""
    lives = split_lives(state.days, state.purchases, rules.lifecycle)
    for life in lives[:-1]:
        if watermark <= life.forgotten_at:
            break
        inputs = RetentionInputs(life.days, life.purchases)
        if retention_contributions(inputs, thresholds, rules.lifecycle):
            break
        state.days = [d for d in state.days if not life.holds(d.first_t)]
        state.purchases = [p for p in state.purchases if not life.holds(p.t)]
        state.cart = [c for c in state.cart if not life.holds(c.t)]


def next_due(state: VisitorState, rules: Rules, watermark: int) -> int | None:
    """Watermark at which this visitor next needs attention without new events."""
    candidates: list[int] = []
    timeout = rules.session_timeout_ms
    for session in state.sessions.values():
        if session.events:  # the earliest segment closes first
            candidates.append(first_segment_end(session.events, timeout) + timeout + 1)
    for funnel in rules.user_funnels:
        events = user_funnel_events(state, funnel)
        ranges = user_group_ranges(funnel, events)
        if ranges:
            candidates.append(ranges[0][0] + 2 * funnel.window_ms + 1)
    if state.closed or state.orders:
        # Pruning waits for windows to become final; look again a window later.
        candidates.append(watermark + rules.window_ms)
    if state.touches:
        candidates.append(state.touches[-1].t + rules.attribution.lookback_ms + 1)
    as_of = state.lifecycle_as_of if state.lifecycle_as_of is not None else 0
    for due in (
        next_breakpoint(state.purchases, as_of, rules.lifecycle),
        next_cart_deadline(state.cart, as_of, rules.lifecycle),
    ):
        if due is not None:
            candidates.append(due + 1)
    lives = split_lives(state.days, state.purchases, rules.lifecycle)
    if lives:
        candidates.append(lives[-1].forgotten_at + 1)
        if len(lives) > 1:
            candidates.append(watermark + DAY_MS)  # drop earlier lives once final
    return min(candidates) if candidates else None


def _add(out: Contributions, key: Key, value: int) -> None:
    if value:
        out[key] = out.get(key, 0) + value


def _add_credit(
    out: Contributions,
    funnel: FunnelDef,
    credit: ClosedCredit,
    dims: Dims,
    anonymous_id: str,
    is_open: bool,
) -> None:
    """One credited entity's rows (``credit`` is frozen, or the open one's snapshot)."""
    name, window, breakdown, level = funnel.name, credit.window, credit.breakdown, credit.level
    get = out.get  # each key counts 1: _add(out, key, 1) inline
    for step in range(1, level + 1):
        key: Key = FunnelStepKey(name, window, dims, step, breakdown)
        out[key] = get(key, 0) + 1
    converted = level == len(funnel.steps)
    outcome = CONVERTED if converted else (IN_PROGRESS if is_open else DROPPED)
    key = FunnelOutcomeKey(name, window, dims, outcome, breakdown)
    out[key] = get(key, 0) + 1
    if converted and credit.ttc_ms is not None:
        key = FunnelTtcKey(name, window, dims, bucket_of(credit.ttc_ms), breakdown)
        out[key] = get(key, 0) + 1
    if is_open:
        key = OpenAttemptKey(name, window)
        out[key] = get(key, 0) + 1
    attempt = FunnelAttemptKey(
        name,
        window,
        dims,
        breakdown,
        anonymous_id,
        credit.entity,
        credit.start_event_id,
        outcome,
        level,
        credit.step_times,
    )
    out[attempt] = get(attempt, 0) + 1


def _add_open_credit(
    out: Contributions,
    state: VisitorState,
    funnel: FunnelDef,
    credit: Credit | None,
    entity: str,
    rules: Rules,
    thresholds: Thresholds,
) -> None:
    """The credit of an attempt still open (a session or user group not closed yet)."""
    if credit is None:
        return
    if rules.window_of(credit.start_t) >= thresholds.get(funnel_threshold(funnel.name), 0):
        snapshot = _freeze(funnel, credit, entity, state, rules)
        assert snapshot is not None
        dims = state.dims[credit.dims]
        _add_credit(out, funnel, snapshot, dims, state.anonymous_id, True)


def _funnel_contributions(
    state: VisitorState, rules: Rules, thresholds: Thresholds, out: Contributions
) -> None:
    for session_id, session in state.sessions.items():
        segments = split_segments(session.events, rules.session_timeout_ms)
        for segment in segments:
            entity = segment_id(session_id, segment)
            for funnel in rules.session_funnels:
                credit = evaluate(funnel, segment)
                _add_open_credit(out, state, funnel, credit, entity, rules, thresholds)
    for funnel in rules.user_funnels:
        events = user_funnel_events(state, funnel)
        for low, high in user_group_ranges(funnel, events):
            credit = evaluate(funnel, events, (low, high))
            _add_open_credit(out, state, funnel, credit, "", rules, thresholds)
    for closed in state.closed:
        if closed.window < thresholds.get(funnel_threshold(closed.funnel), 0):
            continue
        closed_funnel = rules.funnel_by_name.get(closed.funnel)
        if closed_funnel is not None:
            dims = state.dims[closed.dims]
            _add_credit(out, closed_funnel, closed, dims, state.anonymous_id, False)


def _kpi_contributions(
    state: VisitorState, rules: Rules, thresholds: Thresholds, out: Contributions
) -> None:
    threshold = thresholds.get(KPI_THRESHOLD, 0)
    for order in state.orders:
        window = rules.window_of(order.t)
        if window < threshold:
            continue
        dims, currency = state.dims[order.dims], order.currency
        if order.kind == "purchase":
            is_first = state.first_purchase == (order.t, order.transaction_id)
            for metric, value in (
                (kpi_rows.ORDERS, 1),
                (kpi_rows.GMV, order.value_minor),
                (kpi_rows.ITEMS, order.items),
                (kpi_rows.COUPON_ORDERS, 1 if order.has_coupon else 0),
                (kpi_rows.DISCOUNT, order.discount_minor),
                (kpi_rows.FIRST_ORDERS if is_first else kpi_rows.REPEAT_ORDERS, 1),
            ):
                _add(out, KpiCellKey(window, dims, currency, metric), value)
        elif order.kind == "refund":
            _add(out, KpiCellKey(window, dims, currency, kpi_rows.REFUNDS), 1)
            _add(out, KpiCellKey(window, dims, currency, kpi_rows.REFUNDED), order.value_minor)
        elif order.kind == "payment_failed":
            _add(out, KpiCellKey(window, dims, currency, kpi_rows.PAYMENT_FAILURES), 1)
        elif order.kind == "order_cancelled":
            _add(out, KpiCellKey(window, dims, currency, kpi_rows.CANCELLATIONS), 1)


def _attribution_contributions(
    state: VisitorState, rules: Rules, thresholds: Thresholds, out: Contributions
) -> None:
    """Each non-final counted order's shares per model and touchpoint key (section 10)."""
    threshold = thresholds.get(KPI_THRESHOLD, 0)
    attribution = rules.attribution
    for order in state.orders:
        if order.kind != "purchase":
            continue
        window = rules.window_of(order.t)
        if window < threshold:
            continue
        touches = order_touches(state.touches, order.t, attribution)
        is_first = 1 if state.first_purchase == (order.t, order.transaction_id) else 0
        for model in MODELS:
            for key, share in shares(model, touches, order.t, attribution).items():
                credit = OrderAttributionKey(
                    window,
                    state.anonymous_id,
                    order.transaction_id,
                    model,
                    key.channel,
                    key.source,
                    key.medium,
                    key.campaign,
                    key.kol,
                    order.t,
                    order.currency,
                    order.value_minor,
                    is_first,
                )
                _add(out, credit, share)


class RetentionInputs(NamedTuple):
    """The part of a visitor's state that retention depends on (a cheap snapshot)."""

    days: tuple[DayActivity, ...]
    purchases: tuple[Purchase, ...]

    @classmethod
    def of(cls, state: VisitorState) -> RetentionInputs:
        return cls(tuple(state.days), tuple(state.purchases))


def retention_signature(state: VisitorState) -> tuple[object, ...]:
    """Equal signatures, equal retention contributions: what they depend on, except the
    latest event time of the last active day (it affects no gap between days)."""
    days = state.days
    return (tuple(days[:-1]), days[-1][:5] if days else None, tuple(state.purchases))


def inputs_signature(inputs: RetentionInputs) -> tuple[object, ...]:
    """:func:`retention_signature` of the state ``inputs`` was taken from."""
    days = inputs.days
    return (days[:-1], days[-1][:5] if days else None, inputs.purchases)


def live_only(contrib: Contributions, thresholds: Thresholds) -> Contributions:
    """Contributions to windows that are not final yet (cached ones age)."""
    return {
        key: value
        for key, value in contrib.items()
        if key.final_at >= thresholds.get(key.threshold, 0)
    }


def retention_contributions(
    inputs: RetentionInputs, thresholds: Thresholds, lifecycle: LifecycleRules
) -> Contributions:
    """Retention cells and order gaps (docs/semantics.md 6) of every life; non-final only."""
    out: Contributions = {}
    gaps_threshold = thresholds.get(GAPS_FAMILY, 0)
    cell_threshold = {g: thresholds.get(f, 0) for g, f in RETENTION_FAMILY.items()}
    for life in split_lives(inputs.days, inputs.purchases, lifecycle):
        channel, platform = life.first.channel, life.first.platform
        purchases = list(life.purchases)
        cells = retention_cells(
            life.first_t, [d.day for d in life.days], purchases, channel, platform
        )
        for kind, granularity, cohort_ms, activity, n, start_ms in cells:
            if start_ms >= cell_threshold[granularity]:
                cell = RetentionKey(
                    kind, granularity, cohort_ms, activity, n, start_ms, channel, platform
                )
                _add(out, cell, 1)
        for day_ms, gap_channel, bucket in order_gaps(purchases):
            if day_ms >= gaps_threshold:
                _add(out, OrderGapKey(day_ms, gap_channel, bucket), 1)
    return out


def contributions(state: VisitorState, rules: Rules, thresholds: Thresholds) -> Contributions:
    """Funnel and KPI contributions of this visitor to non-final aggregates.

    Retention is separate (:func:`retention_contributions`): it changes rarely and is
    comparatively costly, so the processor recomputes it only when its
    :class:`RetentionInputs` changed.
    """
    out: Contributions = {}
    _funnel_contributions(state, rules, thresholds, out)
    _kpi_contributions(state, rules, thresholds, out)
    _attribution_contributions(state, rules, thresholds, out)
    return out


def diff(before: Contributions, after: Contributions) -> Contributions:
    delta: Contributions = {}
    for key, value in after.items():
        change = value - before.get(key, 0)
        if change:
            delta[key] = change
    for key, value in before.items():
        if key not in after:
            delta[key] = -value
    return delta
