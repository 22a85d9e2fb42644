"""Why a record was rejected: enumerated reason codes (a bounded label set for metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """Dead-letter reason codes. Values are stable: dashboards and ClickHouse rows use them."""

    UNDECODABLE = "undecodable"
    UNKNOWN_SCHEMA_ID = "unknown_schema_id"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    NEGATIVE_PRICE = "negative_price"
    NEGATIVE_QUANTITY = "negative_quantity"
    INVALID_CURRENCY = "invalid_currency"
    INVALID_PLATFORM = "invalid_platform"
    TOO_MANY_ITEMS = "too_many_items"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    EVENT_TIME_IN_FUTURE = "event_time_in_future"
    EVENT_TIME_TOO_OLD = "event_time_too_old"
    # Bounds that keep every stored value and every sum in range (docs/semantics.md 9).
    INVALID_ID = "invalid_id"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
    QUANTITY_OUT_OF_RANGE = "quantity_out_of_range"
    DISCOUNT_EXCEEDS_PRICE = "discount_exceeds_price"
    # Custom events and properties (clickstream schema v3; bounds in schemas/custom.py).
    INVALID_CUSTOM_EVENT = "invalid_custom_event"
    INVALID_PROPERTIES = "invalid_properties"


class CostReason(StrEnum):
    """Dead-letter reasons of the marketing-cost topic only (``schemas/costs.py``).

    Kept apart from :class:`Reason`, which is exactly what an input *event* can fail with
    (the simulator builds a malformed event for every one of them). A cost record that is
    too large, not Confluent-framed Avro or of another schema gets the event reasons
    ``payload_too_large``, ``undecodable`` and ``unknown_schema_id``; every problem with
    its content is ``invalid_cost_record``, with a detail naming the field.
    """

    INVALID_COST_RECORD = "invalid_cost_record"


class ForgetReason(StrEnum):
    """Dead-letter reasons of the forget topic only (``schemas/forget.py``, docs/forget.md).

    Kept apart from :class:`Reason` like :class:`CostReason`. A forget request that is too
    large gets the event reason ``payload_too_large``; every other problem (not a JSON
    object, a missing, unknown or ill-typed field, a bad id, ``from`` not before ``to``)
    is ``invalid_forget_request``, with a detail naming the field and the fix.
    """

    INVALID_FORGET_REQUEST = "invalid_forget_request"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that must go to the dead-letter topic; ``detail`` names the field and the fix."""

    reason: Reason | CostReason | ForgetReason
    detail: str
