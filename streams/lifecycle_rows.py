"""Lifecycle outputs of one visitor as the watermark passes: stage transitions, marketing
triggers (first purchase, segment change, abandoned cart) and the buyer's RFM snapshot.

These rows are emitted once, when the state passes a point, and not rebuilt at recovery
(``streams.outputs.ONCE_ONLY_TABLES``): the runtime makes them durable before the state.
"""

from __future__ import annotations

from streams.batch import BatchResult
from streams.lifecycle import (
    FORGOTTEN,
    PROSPECT,
    LifecycleRules,
    Transition,
    abandoned_carts,
    lifecycle_triggers,
    prune_cart,
    stage_at,
    transitions_between,
)
from streams.lives import Life, split_lives
from streams.outputs import segment_transitions, triggers, user_rfm
from streams.outputs.family import VersionClock
from streams.state import VisitorState


def advance_lifecycle(
    anonymous_id: str,
    state: VisitorState,
    watermark: int,
    rules: LifecycleRules,
    partition: int,
    now_ms: int,
    versions: VersionClock,
    result: BatchResult,
) -> None:
    """Transitions and triggers of every life for event times in [as of, watermark)."""
    after = state.lifecycle_as_of
    if after is not None and watermark <= after:
        return
    low = after if after is not None else -1
    latest_buyer: tuple[Life, str] | None = None
    for life in split_lives(state.days, state.purchases, rules):
        until = min(watermark, life.forgotten_at + 1)
        purchases = list(life.purchases)
        transitions = transitions_between(purchases, after, until, rules)
        specs = lifecycle_triggers(transitions, purchases)
        specs += abandoned_carts(life.cart(state.cart), after, until, rules)
        ended: list[Transition] = []
        if purchases and low <= life.forgotten_at < watermark:
            # The life ends: it leaves its segment (docs/semantics.md section 7). No
            # trigger, and the RFM row keeps its last values.
            last_stage = stage_at(purchases, life.forgotten_at - 1, rules)
            ended.append(Transition(life.forgotten_at, last_stage, FORGOTTEN, ""))
        for tr in [*transitions, *ended]:
            result.add_row(
                segment_transitions.TABLE,
                segment_transitions.build_row(anonymous_id, tr, partition),
            )
            result.stats.transitions[(tr.from_stage, tr.to_stage)] += 1
        for spec in sorted(specs, key=lambda s: (s.at, s.trigger_type)):
            trigger = triggers.to_trigger(spec, anonymous_id, state.user_id, now_ms)
            result.triggers.append(trigger)
            result.add_row(triggers.TABLE, triggers.build_row(trigger, partition))
        stage = stage_at(purchases, watermark - 1, rules)
        if stage != PROSPECT:
            changed = transitions or any(low <= p.t < watermark for p in purchases)
            latest_buyer = (life, stage) if changed else None
        state.stage = stage
    if latest_buyer is not None:
        life, stage = latest_buyer
        row = user_rfm.build_row(
            anonymous_id, state.user_id, life, stage, watermark, partition, versions.next()
        )
        result.add_row(user_rfm.TABLE, row)
    state.lifecycle_as_of = watermark
    state.cart = prune_cart(state.cart, watermark, rules)
