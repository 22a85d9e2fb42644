"""RFM lifecycle stages, their transitions and the stage triggers (docs/semantics.md §7-§8).

Rules implemented here, per visitor life (:mod:`simulator.truth_retention`) with at
least one counted purchase:

**Horizon.** Everything is as of the life's *horizon* ``H = min(final watermark of the
visitor's partition, time the life is forgotten)``. Only purchases with
``event_time < H`` exist; only transitions and triggers at times ``< H`` happen (an
on-time event can still arrive at exactly the watermark). A life whose first purchase is
at or after ``H`` is not (yet) a buyer.

**Stage** at time T (purchases at times <= T; first/last by (event_time,
transaction_id)): ``new`` if ``T - first < rfm_new``, else ``active`` if
``T - last < rfm_dormant``, else ``dormant`` if ``T - last < rfm_churn``, else
``churned``; before the first purchase the stage is ``prospect`` (never a row). The
stage is right-continuous in T (each threshold is reached *at* ``first + rfm_new``,
``last + rfm_dormant``, ``last + rfm_churn`` exactly).

**Transitions** are the points where the stage differs from its value just before:

- at a purchase time p: from the stage just before p to the stage at p computed with p
  as the last purchase. prospect -> new at the first purchase; dormant/churned ->
  active; new/active stay (no transition) but the dormancy deadline moves. A threshold
  that falls exactly on a purchase time is absorbed by the purchase (the stage at p
  already counts p); several purchases in one millisecond are one step.
- at a threshold time b strictly between two purchase times (or after the last one and
  ``<= H``), when the stage at b differs from the current one. With the default
  thresholds these are new -> active, active -> dormant, dormant -> churned; with
  unusual thresholds the stage formula may jump further (e.g. new -> dormant when
  ``rfm_dormant <= rfm_new``), and that jump is one transition.

Since ``new`` needs ``T - first < rfm_new`` and dormant/churned need the opposite, a
purchase can never take dormant/churned back to ``new``.

**Forgotten.** When the final watermark is past the time the life is forgotten, the
buyer leaves its last stage: one more transition, at that time, to ``forgotten`` (no
trigger; the RFM row keeps its values).

**RFM row** (per anonymous_id: its latest life that is a buyer as of its horizon):
stage just before H, first/last purchase time, frequency = purchases < H, monetary = sum of
``value_minor`` of those in the first purchase's currency, currency of the first
purchase, acquisition channel, ``as_of_ms = H``.

**Stage triggers** (ids by :func:`schemas.triggers.trigger_id`):

- ``first_purchase`` at the first purchase (p < H); id parts: its transaction_id;
- ``segment_changed`` at every transition (incl. prospect -> new); id: at_ms, to_stage;
- ``user_became_dormant`` / ``user_churned`` at every transition into dormant / churned;
  id: at_ms (decimal);
- ``user_reactivated`` at a purchase transition dormant/churned -> active; id: the
  transaction_id of the earliest purchase (by transaction_id) in that millisecond.

``segment``/``previous_segment`` carry the stage after/before (first_purchase:
new/prospect).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Final

from schemas.model import Event
from schemas.triggers import trigger_id
from simulator.truth_model import LifecycleParams, RfmRow, TransitionRow, TriggerRow
from simulator.truth_retention import ChannelOf, VisitorLife

PROSPECT: Final = "prospect"
FORGOTTEN: Final = "forgotten"  # a buyer's life forgotten after the buyer TTL
STAGES: Final = ("new", "active", "dormant", "churned")
_REACTIVATED_FROM: Final = frozenset({"dormant", "churned"})


def stage_at(time_ms: int, first_ms: int, last_ms: int, params: LifecycleParams) -> str:
    """The stage formula of §7 (``last_ms`` is the last purchase at or before ``time_ms``)."""
    if time_ms - first_ms < params.rfm_new_ms:
        return "new"
    since_last = time_ms - last_ms
    if since_last < params.rfm_dormant_ms:
        return "active"
    if since_last < params.rfm_churn_ms:
        return "dormant"
    return "churned"


@dataclass(frozen=True, slots=True)
class _Step:
    at_ms: int
    from_stage: str
    to_stage: str
    purchase: Event | None  # the earliest purchase at at_ms for purchase-driven steps


@dataclass(slots=True)
class LifecycleResult:
    """What one life contributes: its transitions, RFM row and stage triggers."""

    transitions: list[TransitionRow] = field(default_factory=list)
    rfm: RfmRow | None = None
    triggers: list[TriggerRow] = field(default_factory=list)


def life_horizon(life: VisitorLife, watermark_ms: int | None) -> int | None:
    if watermark_ms is None:
        return None
    return min(watermark_ms, life.forgotten_at_ms)


def lifecycle_of(
    life: VisitorLife,
    watermark_ms: int | None,
    params: LifecycleParams,
    channel_of: ChannelOf,
) -> LifecycleResult:
    result = LifecycleResult()
    horizon = life_horizon(life, watermark_ms)
    if horizon is None:
        return result
    purchases = [p for p in life.purchases if p.event_time_ms < horizon]
    if not purchases:
        return result
    steps = _steps(purchases, horizon, params)
    anonymous_id = life.anonymous_id
    result.transitions = [
        TransitionRow(anonymous_id, s.at_ms, s.from_stage, s.to_stage) for s in steps
    ]
    if watermark_ms is not None and watermark_ms > life.forgotten_at_ms:
        # The life is forgotten: the buyer leaves its last stage (no trigger).
        result.transitions.append(
            TransitionRow(anonymous_id, life.forgotten_at_ms, steps[-1].to_stage, FORGOTTEN)
        )
    first = purchases[0]
    last_ms = purchases[-1].event_time_ms
    currency = first.currency or ""
    result.rfm = RfmRow(
        anonymous_id=anonymous_id,
        stage=steps[-1].to_stage,
        first_purchase_ms=first.event_time_ms,
        last_purchase_ms=last_ms,
        frequency=len(purchases),
        monetary_minor=sum(p.value_minor or 0 for p in purchases if (p.currency or "") == currency),
        currency=currency,
        channel=channel_of(life.first),
        as_of_ms=horizon,
    )
    result.triggers = _stage_triggers(anonymous_id, first, steps)
    return result


def _steps(purchases: Sequence[Event], horizon_ms: int, params: LifecycleParams) -> list[_Step]:
    """Walk purchase times and threshold times in order (purchases all < horizon)."""
    first_ms = purchases[0].event_time_ms
    by_time = [
        (time_ms, next(group))
        for time_ms, group in groupby(purchases, key=lambda p: p.event_time_ms)
    ]
    steps: list[_Step] = []
    stage = PROSPECT
    for index, (purchase_ms, purchase) in enumerate(by_time):
        at_purchase = stage_at(purchase_ms, first_ms, purchase_ms, params)
        if at_purchase != stage:
            steps.append(_Step(purchase_ms, stage, at_purchase, purchase))
            stage = at_purchase
        # Thresholds strictly before the next purchase (which absorbs one at its time),
        # or up to the horizon after the last purchase.
        next_ms = by_time[index + 1][0] if index + 1 < len(by_time) else None
        thresholds = {
            first_ms + params.rfm_new_ms,
            purchase_ms + params.rfm_dormant_ms,
            purchase_ms + params.rfm_churn_ms,
        }
        for at_ms in sorted(thresholds):
            if at_ms <= purchase_ms:
                continue
            if (next_ms is not None and at_ms >= next_ms) or at_ms >= horizon_ms:
                break
            after = stage_at(at_ms, first_ms, purchase_ms, params)
            if after != stage:
                steps.append(_Step(at_ms, stage, after, None))
                stage = after
    return steps


def _stage_triggers(anonymous_id: str, first: Event, steps: Sequence[_Step]) -> list[TriggerRow]:
    def row(kind: str, at_ms: int, step: _Step, *parts: str | int) -> TriggerRow:
        return TriggerRow(
            trigger_id=trigger_id(kind, anonymous_id, *parts),
            trigger_type=kind,
            anonymous_id=anonymous_id,
            occurred_at_ms=at_ms,
            segment=step.to_stage,
            previous_segment=step.from_stage,
        )

    triggers: list[TriggerRow] = []
    for step in steps:
        at_ms = step.at_ms
        if step.from_stage == PROSPECT:
            triggers.append(row("first_purchase", at_ms, step, first.transaction_id or ""))
        if step.to_stage == "dormant":
            triggers.append(row("user_became_dormant", at_ms, step, at_ms))
        elif step.to_stage == "churned":
            triggers.append(row("user_churned", at_ms, step, at_ms))
        if step.purchase is not None and step.from_stage in _REACTIVATED_FROM:
            transaction = step.purchase.transaction_id or ""
            triggers.append(row("user_reactivated", at_ms, step, transaction))
        triggers.append(row("segment_changed", at_ms, step, at_ms, step.to_stage))
    return triggers
