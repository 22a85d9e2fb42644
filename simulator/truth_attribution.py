"""The truth of multi-touch attribution, ROI and LTV (issue #15, docs/semantics.md §10).

Plain Python over the simulator's events, written from the page and independent of the
worker: nothing from ``streams/`` or ``sinks/`` is imported. The events are §1's *counted
events*, the same set the KPI truth (:func:`simulator.truth.compute_truth`) counts: the
truth's own intake (:func:`simulator.truth_exploration.counted_events`, i.e.
``simulator.truth._Intake``) drops dead letters, late records by each topic-partition's
watermark and event_id duplicates per visitor, and keeps a ``purchase`` only in its
earliest (event_time, event_id) copy per (anonymous_id, transaction_id). The channel of
an event is :meth:`schemas.channels.ChannelRules.classify` (§5).

What is computed (all orders of events are (event_time, event_id)):

- **Touchpoints** of a visitor (anonymous_id): per ``session_id``, the earliest counted
  event of that session over all three inputs (any event type, refunds and their
  ``srv-`` sessions included), with ``t`` its event time, ``channel``, ``source``
  (``utm_source``; else ``urlsplit(referrer).hostname``; else ''), ``medium``
  (``utm_medium``), ``campaign`` (``utm_campaign``) and ``kol`` (``utm_content`` when the
  channel is ``kol``, else '').
- **Orders**: the counted purchases (one per (anonymous_id, transaction_id)); *first*
  exactly as the KPI truth counts ``first_orders`` (the visitor's smallest
  (event_time, transaction_id)); value ``value_minor or 0`` in ``currency or ''``.
- An order at ``T`` uses the touchpoints with ``T - lookback <= t <= T`` in (t,
  session_id) order, the latest ``max_touches`` of them. (The page says the order's own
  session is always among them; only a session_id reused across more than the lookback
  could leave none, and then the order's own session is the one touchpoint.)
- **Shares** per model (:data:`MODELS`, the weights of §10), by the largest remainder
  (:func:`largest_remainder`), then summed per touchpoint key (channel, source, medium,
  campaign, kol): :func:`attribution_rows`, one entry per ``order_attribution`` row.
- **Daily ROI** (:func:`daily_roi`), per (UTC day, model, channel, campaign, kol,
  currency), in millionths (``x 10^6``) so that every cell is an exact integer: orders
  and first orders (sum of shares), revenue (value x share) on the order's day; refunded
  (refund value x share, the refund's own currency) on the refund's day. A counted
  refund (every counted ``refund`` event, as the KPI truth counts ``refunds`` and
  ``refunded_minor``) takes the shares of its transaction's order, joined by
  (anonymous_id, transaction_id); a refund whose order is not among the counted orders
  (or that has no transaction_id) goes to channel ``(unattributed)``, campaign and kol
  '', share 1,000,000, for every model. Cells that are all zero are left out.
- **LTV** (:func:`ltv`), per (cohort day, model, channel, campaign, kol, currency): each
  customer (a visitor with a first order) counts on the UTC day of its first order, with
  the first order's shares (aggregated to channel, campaign, kol): ``customers_micro`` =
  share, ``revenue_dN_micro`` = share x the value of the customer's counted orders with
  ``first_t <= t <= first_t + N days`` (both ends inclusive; the first order included).
  ``currency`` is the first order's; as for RFM's monetary (§7), orders in another
  currency add nothing (the simulator never mixes currencies within a visitor).

**From a simulator run to the dicts.** Every function comes in two forms: over counted
events (``attribution_rows``, ``daily_roi``, ``ltv``, ``attribution_truth``) and over
what a run or a test has (``attribution_rows_of`` ... ``attribution_truth_of``), which
takes either the run's records or hand-made events::

    records = list(generate(sim_config))                     # simulator.generate
    config = AttributionConfig(window_ms=sim_config.window_ms)
    rows = attribution_rows_of(records, config, lateness_ms=sim_config.lateness_ms)
    # or once, for all three:
    result = attribution_truth_of(records, config, lateness_ms=sim_config.lateness_ms)
    result.rows, result.roi, result.ltv
    # the worker's settings: AttributionConfig(**settings.attribution_ms(),
    #                                          window_ms=settings.window_ms)

``Truth`` (:mod:`simulator.truth_model`) keeps no events, so pass the records it was
computed from (the e2e test's ``simulated`` fixture has both). With the hand-made events
of ``tests/unit/truth_builders.py`` (``ev``, ``buy``, ...), pass the events themselves:
they are taken as ``truth_of`` sends them (sorted by event time, so none is late) and
§1's duplicate rules still apply: ``attribution_rows_of([ev(...), buy(...)], config)``.
A list of records built with ``truth_builders.rec`` is taken in its own order with
``lateness_ms``. :func:`counted_events_of` gives the counted events themselves.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Final, NamedTuple
from urllib.parse import urlsplit

from schemas.channels import ChannelRules
from schemas.model import Event
from simulator.errors import SimConfigError
from simulator.records import SimRecord
from simulator.truth_exploration import counted_events

__all__ = [
    "MODELS",
    "SHARE_UNIT",
    "UNATTRIBUTED",
    "AttributionConfig",
    "AttributionRowKey",
    "AttributionTruth",
    "LtvCell",
    "LtvKey",
    "RoiCell",
    "RoiKey",
    "Touchpoint",
    "attribution_rows",
    "attribution_rows_of",
    "attribution_truth",
    "attribution_truth_of",
    "counted_events_of",
    "daily_roi",
    "daily_roi_of",
    "largest_remainder",
    "ltv",
    "ltv_of",
    "model_weights",
    "touchpoint_of",
    "touchpoint_shares",
]

MODELS: Final = (
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "position_based",
    "time_decay",
)
SHARE_UNIT: Final = 1_000_000
UNATTRIBUTED: Final = "(unattributed)"
NO_TOUCHPOINT: Final = "(none)"  # an order with no session inside the lookback
DAY_MS: Final = 86_400_000
LTV_DAYS: Final = (7, 30)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class AttributionConfig:
    """§10's settings in milliseconds (``FUNNEL_ATTRIBUTION_*`` give days) and the
    window of ``window_start_ms`` (the worker's window, one minute by default)."""

    lookback_ms: int = 30 * DAY_MS
    half_life_ms: int = 7 * DAY_MS
    max_touches: int = 50
    window_ms: int = 60_000

    def __post_init__(self) -> None:
        for name in ("lookback_ms", "half_life_ms", "max_touches", "window_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SimConfigError(
                    f"attribution setting {name} must be a positive integer, got {value!r}"
                )


class AttributionRowKey(NamedTuple):
    """An ``order_attribution`` row without its share (the dict's value)."""

    window_start_ms: int
    order_time_ms: int
    anonymous_id: str
    transaction_id: str
    currency: str
    value_minor: int
    is_first: int
    model: str
    channel: str
    source: str
    medium: str
    campaign: str
    kol: str


class RoiKey(NamedTuple):
    day: str  # ISO date (UTC) of the order's or the refund's event time
    model: str
    channel: str
    campaign: str
    kol: str
    currency: str


@dataclass(frozen=True)
class RoiCell:
    """Sums in millionths: ``orders_micro / 10^6`` attributed orders,
    ``revenue_micro / 10^6`` attributed revenue in minor units, and so on."""

    orders_micro: int = 0
    revenue_micro: int = 0
    refunded_micro: int = 0
    first_orders_micro: int = 0


class LtvKey(NamedTuple):
    cohort_day: str  # ISO date (UTC) of the customers' first order
    model: str
    channel: str
    campaign: str
    kol: str
    currency: str  # of the first order


@dataclass(frozen=True)
class LtvCell:
    customers_micro: int = 0
    revenue_d7_micro: int = 0
    revenue_d30_micro: int = 0


@dataclass(frozen=True)
class AttributionTruth:
    """The three results of one computation."""

    rows: dict[AttributionRowKey, int]
    roi: dict[RoiKey, RoiCell]
    ltv: dict[LtvKey, LtvCell]


class Touchpoint(NamedTuple):
    """A session's touchpoint: its earliest counted event's time and source fields."""

    t_ms: int
    session_id: str
    channel: str
    source: str
    medium: str
    campaign: str
    kol: str

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """(channel, source, medium, campaign, kol): touchpoints with one key merge."""
        return (self.channel, self.source, self.medium, self.campaign, self.kol)


# -- shares -----------------------------------------------------------------------------------


def largest_remainder(weights: Sequence[int]) -> list[int]:
    """Integer weights (sum > 0) as shares in millionths summing to :data:`SHARE_UNIT`:
    ``floor(10^6 w_i / W)`` each, then one more millionth each to the largest remainders
    ``10^6 w_i mod W``, the earlier index first on equal remainders."""
    total = sum(weights)
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
    shares = [SHARE_UNIT * w // total for w in weights]
    remainders = [SHARE_UNIT * w % total for w in weights]
    left = SHARE_UNIT - sum(shares)
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        shares[index] += 1
    return shares


def model_weights(
    model: str,
    times_ms: Sequence[int],
    channels: Sequence[str],
    order_time_ms: int,
    half_life_ms: int,
) -> list[int]:
    """§10's integer weights of ``model`` for touchpoints oldest first (n >= 1)."""
    n = len(times_ms)
    if n == 0 or len(channels) != n:
        raise ValueError(f"need at least one touchpoint and a channel each ({n}, {channels})")
    if model == "first_touch":
        return [1] + [0] * (n - 1)
    if model == "last_touch":
        return [0] * (n - 1) + [1]
    if model == "last_non_direct":
        chosen = next((i for i in range(n - 1, -1, -1) if channels[i] != "direct"), n - 1)
        return [int(i == chosen) for i in range(n)]
    if model == "linear":
        return [1] * n
    if model == "position_based":
        if n <= 2:
            return [1] * n
        return [40 * (n - 2), *([20] * (n - 2)), 40 * (n - 2)]
    if model == "time_decay":
        return [max(1, int(2.0 ** (-(order_time_ms - t) / half_life_ms) * 2**32)) for t in times_ms]
    raise ValueError(f"unknown attribution model {model!r}; one of {', '.join(MODELS)}")


def touchpoint_shares(
    model: str,
    touchpoints: Sequence[Touchpoint],
    order_time_ms: int,
    config: AttributionConfig,
) -> list[int]:
    """The shares of ``touchpoints`` (an order's, sorted by (t, session_id)), one each,
    before touchpoints with the same key are added up."""
    weights = model_weights(
        model,
        [tp.t_ms for tp in touchpoints],
        [tp.channel for tp in touchpoints],
        order_time_ms,
        config.half_life_ms,
    )
    return largest_remainder(weights)


# -- touchpoints and orders -------------------------------------------------------------------


def _source_of(event: Event) -> str:
    if event.utm_source:
        return event.utm_source
    if event.referrer:
        try:
            return urlsplit(event.referrer).hostname or ""
        except ValueError:  # e.g. an unbalanced '[' in the host
            return ""
    return ""


def touchpoint_of(event: Event, rules: ChannelRules) -> Touchpoint:
    """The touchpoint a session's earliest counted event makes."""
    channel = rules.classify(event.utm_source, event.utm_medium, event.referrer)
    return Touchpoint(
        event.event_time_ms,
        event.session_id,
        channel,
        _source_of(event),
        event.utm_medium or "",
        event.utm_campaign or "",
        (event.utm_content or "") if channel == "kol" else "",
    )


@cache
def _default_rules() -> ChannelRules:
    return ChannelRules.load()


def _event_order(event: Event) -> tuple[int, str]:
    return (event.event_time_ms, event.event_id)


class _Order(NamedTuple):
    event: Event
    is_first: bool
    # model -> touchpoint key -> share (> 0), keys in first-touchpoint order
    shares: dict[str, dict[tuple[str, str, str, str, str], int]]

    @property
    def transaction_id(self) -> str:
        return self.event.transaction_id or ""


def _visitor_touchpoints(events: Sequence[Event], rules: ChannelRules) -> list[Touchpoint]:
    earliest: dict[str, Event] = {}
    for event in events:
        known = earliest.get(event.session_id)
        if known is None or _event_order(event) < _event_order(known):
            earliest[event.session_id] = event
    touchpoints = [touchpoint_of(e, rules) for e in earliest.values()]
    touchpoints.sort(key=lambda tp: (tp.t_ms, tp.session_id))
    return touchpoints


def _order_touchpoints(
    touchpoints: Sequence[Touchpoint],
    times: Sequence[int],
    order: Event,
    own_session: Touchpoint,
    config: AttributionConfig,
) -> Sequence[Touchpoint]:
    end = order.event_time_ms
    lo = bisect_left(times, end - config.lookback_ms)
    hi = bisect_right(times, end)
    chosen = touchpoints[max(lo, hi - config.max_touches) : hi]
    # No session began within the lookback (a session id reused for longer than it):
    # docs/semantics.md 10 credits the order to channel "(none)".
    return chosen if chosen else [Touchpoint(end, "", NO_TOUCHPOINT, "", "", "", "")]


def _orders(
    counted: Iterable[Event], config: AttributionConfig, rules: ChannelRules
) -> list[_Order]:
    by_visitor: dict[str, list[Event]] = defaultdict(list)
    for event in counted:
        by_visitor[event.anonymous_id].append(event)
    orders: list[_Order] = []
    for events in by_visitor.values():
        purchases = [e for e in events if e.event_type == "purchase"]
        if not purchases:
            continue
        touchpoints = _visitor_touchpoints(events, rules)
        times = [tp.t_ms for tp in touchpoints]
        by_session = {tp.session_id: tp for tp in touchpoints}
        # §4's first order: the smallest (event_time, transaction_id), as the KPI truth.
        first = min(purchases, key=lambda e: (e.event_time_ms, e.transaction_id or ""))
        for purchase in sorted(purchases, key=_event_order):
            chosen = _order_touchpoints(
                touchpoints, times, purchase, by_session[purchase.session_id], config
            )
            per_model: dict[str, dict[tuple[str, str, str, str, str], int]] = {}
            for model in MODELS:
                merged: dict[tuple[str, str, str, str, str], int] = {}
                for tp, share in zip(
                    chosen,
                    touchpoint_shares(model, chosen, purchase.event_time_ms, config),
                    strict=True,
                ):
                    merged[tp.key] = merged.get(tp.key, 0) + share
                per_model[model] = {k: s for k, s in merged.items() if s > 0}
            orders.append(_Order(purchase, purchase is first, per_model))
    return orders


# -- results ----------------------------------------------------------------------------------


def _day(time_ms: int) -> str:
    return date.fromordinal(_EPOCH_ORDINAL + time_ms // DAY_MS).isoformat()


def _rows(orders: Sequence[_Order], config: AttributionConfig) -> dict[AttributionRowKey, int]:
    rows: dict[AttributionRowKey, int] = defaultdict(int)
    for order in orders:
        event = order.event
        t = event.event_time_ms
        for model, shares in order.shares.items():
            for (channel, source, medium, campaign, kol), share in shares.items():
                key = AttributionRowKey(
                    t // config.window_ms * config.window_ms,
                    t,
                    event.anonymous_id,
                    order.transaction_id,
                    event.currency or "",
                    event.value_minor or 0,
                    int(order.is_first),
                    model,
                    channel,
                    source,
                    medium,
                    campaign,
                    kol,
                )
                rows[key] += share
    return dict(sorted(rows.items()))


_Triple = tuple[str, str, str]  # channel, campaign, kol


def _by_triple(order: _Order) -> dict[str, dict[_Triple, int]]:
    """The order's shares per model, summed over source and medium."""
    result: dict[str, dict[_Triple, int]] = {}
    for model, shares in order.shares.items():
        summed: dict[_Triple, int] = defaultdict(int)
        for (channel, _source, _medium, campaign, kol), share in shares.items():
            summed[(channel, campaign, kol)] += share
        result[model] = dict(summed)
    return result


_UNATTRIBUTED_SHARES: Final[dict[str, dict[_Triple, int]]] = {
    model: {(UNATTRIBUTED, "", ""): SHARE_UNIT} for model in MODELS
}


def _roi(orders: Sequence[_Order], counted: Sequence[Event]) -> dict[RoiKey, RoiCell]:
    cells: dict[RoiKey, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    by_transaction: dict[tuple[str, str], dict[str, dict[_Triple, int]]] = {}
    for order in orders:
        event = order.event
        shares = _by_triple(order)
        by_transaction[(event.anonymous_id, order.transaction_id)] = shares
        day, currency, value = _day(event.event_time_ms), event.currency or "", event.value_minor
        for model, triples in shares.items():
            for triple, share in triples.items():
                cell = cells[RoiKey(day, model, *triple, currency)]
                cell[0] += share
                cell[1] += (value or 0) * share
                cell[3] += share if order.is_first else 0
    for event in counted:
        if event.event_type != "refund":
            continue
        shares = (
            by_transaction.get((event.anonymous_id, event.transaction_id))
            if event.transaction_id
            else None
        ) or _UNATTRIBUTED_SHARES
        day, currency, value = _day(event.event_time_ms), event.currency or "", event.value_minor
        for model, triples in shares.items():
            for triple, share in triples.items():
                cells[RoiKey(day, model, *triple, currency)][2] += (value or 0) * share
    return {key: RoiCell(*values) for key, values in sorted(cells.items()) if any(values)}


def _ltv(orders: Sequence[_Order]) -> dict[LtvKey, LtvCell]:
    by_visitor: dict[str, list[_Order]] = defaultdict(list)
    for order in orders:
        by_visitor[order.event.anonymous_id].append(order)
    cells: dict[LtvKey, list[int]] = defaultdict(lambda: [0, 0, 0])
    for visitor_orders in by_visitor.values():
        first = next(o for o in visitor_orders if o.is_first)
        first_t, currency = first.event.event_time_ms, first.event.currency or ""
        revenue = [
            sum(
                o.event.value_minor or 0
                for o in visitor_orders
                if (o.event.currency or "") == currency
                and first_t <= o.event.event_time_ms <= first_t + days * DAY_MS
            )
            for days in LTV_DAYS
        ]
        cohort = _day(first_t)
        for model, triples in _by_triple(first).items():
            for triple, share in triples.items():
                cell = cells[LtvKey(cohort, model, *triple, currency)]
                cell[0] += share
                cell[1] += share * revenue[0]
                cell[2] += share * revenue[1]
    return {key: LtvCell(*values) for key, values in sorted(cells.items())}


def attribution_truth(
    counted: Iterable[Event],
    config: AttributionConfig,
    *,
    channel_rules: ChannelRules | None = None,
) -> AttributionTruth:
    """Rows, daily ROI and LTV of §1's counted events (any order), computed once."""
    events = list(counted)
    orders = _orders(events, config, channel_rules or _default_rules())
    return AttributionTruth(_rows(orders, config), _roi(orders, events), _ltv(orders))


def attribution_rows(
    counted: Iterable[Event],
    config: AttributionConfig,
    *,
    channel_rules: ChannelRules | None = None,
) -> dict[AttributionRowKey, int]:
    """``order_attribution`` rows of the counted events: key -> share_micro (> 0)."""
    orders = _orders(counted, config, channel_rules or _default_rules())
    return _rows(orders, config)


def daily_roi(
    counted: Iterable[Event],
    config: AttributionConfig,
    *,
    channel_rules: ChannelRules | None = None,
) -> dict[RoiKey, RoiCell]:
    """The ROI measures' attributed side per day, model, channel, campaign, kol, currency."""
    events = list(counted)
    return _roi(_orders(events, config, channel_rules or _default_rules()), events)


def ltv(
    counted: Iterable[Event],
    config: AttributionConfig,
    *,
    channel_rules: ChannelRules | None = None,
) -> dict[LtvKey, LtvCell]:
    """Customers and their D7/D30 revenue by acquisition day, model and touchpoint."""
    return _ltv(_orders(counted, config, channel_rules or _default_rules()))


# -- from records or hand-made events ---------------------------------------------------------


def counted_events_of(
    source: Iterable[SimRecord] | Iterable[Event], *, lateness_ms: int | None = None
) -> list[Event]:
    """§1's counted events of a run's records (in send order; ``lateness_ms`` required)
    or of events (sent in event-time order, as ``truth_builders.truth_of`` does: none is
    late, duplicates and later copies of a purchase are dropped)."""
    items: list[SimRecord | Event] = list(source)
    if all(isinstance(item, SimRecord) for item in items):
        if lateness_ms is None and items:
            raise SimConfigError(
                "records need the run's lateness_ms (SimConfig.lateness_ms) to tell late ones"
            )
        return counted_events([i for i in items if isinstance(i, SimRecord)], lateness_ms or 0)
    if not all(isinstance(item, Event) for item in items):
        raise TypeError("pass the run's SimRecords or Events, not a mix or other objects")
    events = sorted((i for i in items if isinstance(i, Event)), key=lambda e: e.event_time_ms)
    return counted_events((_record_of(e) for e in events), 0)


def _record_of(event: Event) -> SimRecord:
    return SimRecord(
        stream=event.stream,
        partition=0,
        key=event.anonymous_id.encode(),
        value=b"",
        send_time_ms=event.event_time_ms,
        event=event,
        malformed_reason=None,
        is_duplicate=False,
        intended_late=False,
    )


def attribution_truth_of(
    source: Iterable[SimRecord] | Iterable[Event],
    config: AttributionConfig,
    *,
    lateness_ms: int | None = None,
    channel_rules: ChannelRules | None = None,
) -> AttributionTruth:
    """:func:`attribution_truth` of a run's records or of hand-made events."""
    counted = counted_events_of(source, lateness_ms=lateness_ms)
    return attribution_truth(counted, config, channel_rules=channel_rules)


def attribution_rows_of(
    source: Iterable[SimRecord] | Iterable[Event],
    config: AttributionConfig,
    *,
    lateness_ms: int | None = None,
    channel_rules: ChannelRules | None = None,
) -> dict[AttributionRowKey, int]:
    """:func:`attribution_rows` of a run's records or of hand-made events."""
    counted = counted_events_of(source, lateness_ms=lateness_ms)
    return attribution_rows(counted, config, channel_rules=channel_rules)


def daily_roi_of(
    source: Iterable[SimRecord] | Iterable[Event],
    config: AttributionConfig,
    *,
    lateness_ms: int | None = None,
    channel_rules: ChannelRules | None = None,
) -> dict[RoiKey, RoiCell]:
    """:func:`daily_roi` of a run's records or of hand-made events."""
    counted = counted_events_of(source, lateness_ms=lateness_ms)
    return daily_roi(counted, config, channel_rules=channel_rules)


def ltv_of(
    source: Iterable[SimRecord] | Iterable[Event],
    config: AttributionConfig,
    *,
    lateness_ms: int | None = None,
    channel_rules: ChannelRules | None = None,
) -> dict[LtvKey, LtvCell]:
    """:func:`ltv` of a run's records or of hand-made events."""
    counted = counted_events_of(source, lateness_ms=lateness_ms)
    return ltv(counted, config, channel_rules=channel_rules)
