"""Marketing triggers: published to the triggers topic and kept in the ``triggers`` table."""

from __future__ import annotations

from schemas.triggers import Trigger, TriggerItem, trigger_id
from sinks.tables import TableSpec
from streams.lifecycle import TriggerSpec
from streams.outputs.family import Row

TABLE = TableSpec(
    "triggers",
    (
        "trigger_id",
        "trigger_type",
        "anonymous_id",
        "user_id",
        "occurred_at",
        "emitted_at",
        "cart_value_minor",
        "currency",
        "channel",
        "segment",
        "previous_segment",
        "partition",
    ),
    order_by=("trigger_id",),
)

# A cart's units and value grow across events, so validation cannot bound them: a
# trigger carries them saturated at its field types (Avro long / Int64, Avro int).
CART_VALUE_MAX = 2**63 - 1
CART_ITEM_QUANTITY_MAX = 2**31 - 1


def to_trigger(spec: TriggerSpec, anonymous_id: str, user_id: str | None, now_ms: int) -> Trigger:
    value = (
        min(CART_VALUE_MAX, sum(quantity * price for _, quantity, price in spec.cart))
        if spec.cart
        else None
    )
    return Trigger(
        trigger_id=trigger_id(spec.trigger_type, anonymous_id, *spec.id_parts),
        trigger_type=spec.trigger_type,
        anonymous_id=anonymous_id,
        occurred_at_ms=spec.at,
        emitted_at_ms=now_ms,
        user_id=user_id,
        cart_value_minor=value,
        currency=spec.currency or None,
        items=tuple(
            TriggerItem(item, min(quantity, CART_ITEM_QUANTITY_MAX), price)
            for item, quantity, price in spec.cart
        ),
        channel=spec.channel or None,
        segment=spec.segment or None,
        previous_segment=spec.previous_segment or None,
    )


def build_row(trigger: Trigger, partition: int) -> Row:
    return (
        trigger.trigger_id,
        trigger.trigger_type,
        trigger.anonymous_id,
        trigger.user_id,
        trigger.occurred_at_ms,
        trigger.emitted_at_ms,
        trigger.cart_value_minor,
        trigger.currency or "",
        trigger.channel or "",
        trigger.segment or "",
        trigger.previous_segment or "",
        partition,
    )
