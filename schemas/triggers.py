"""Marketing-automation triggers emitted on ``shop.triggers`` (Avro schema ``trigger.v1``).

Encode with :meth:`schemas.codec.EventCodec.encode_trigger`, decode with
:meth:`~schemas.codec.EventCodec.decode_trigger`. A trigger's id is derived from what it
is about (:func:`trigger_id`), so a worker that replays input after a crash emits the
same id again and consumers can drop the copy.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Final

TRIGGER_TYPES: Final = (
    "cart_abandoned",
    "first_purchase",
    "user_became_dormant",
    "user_churned",
    "user_reactivated",
    "segment_changed",
    # An experiment reached a decision (streams/experiment_monitor.py); anonymous_id is
    # empty and ``detail`` says which experiment, verdict, variant and metric.
    "experiment_decision",
)
# Fixed namespace so ids are stable across processes and releases; never change it.
_TRIGGER_NAMESPACE: Final = uuid.UUID("5b0e6f64-0d5e-4c43-9a53-6f7c1d2b9e10")


@dataclass(frozen=True, slots=True)
class TriggerItem:
    item_id: str
    quantity: int
    price_minor: int


@dataclass(frozen=True, slots=True)
class Trigger:
    trigger_id: str
    trigger_type: str
    anonymous_id: str
    occurred_at_ms: int
    emitted_at_ms: int
    user_id: str | None = None
    cart_value_minor: int | None = None
    currency: str | None = None
    items: tuple[TriggerItem, ...] = ()
    channel: str | None = None
    segment: str | None = None
    previous_segment: str | None = None
    detail: dict[str, str] = field(default_factory=dict)


def trigger_id(trigger_type: str, anonymous_id: str, *parts: str | int) -> str:
    """Deterministic UUID (v5) for a trigger about ``anonymous_id``.

    Pass what makes the trigger unique, e.g. the cart id and the time of the last cart
    event for ``cart_abandoned``, or the new segment and the event time for
    ``segment_changed``.
    """
    name = "\x1f".join([trigger_type, anonymous_id, *(str(p) for p in parts)])
    return str(uuid.uuid5(_TRIGGER_NAMESPACE, name))
