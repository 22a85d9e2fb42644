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


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that must go to the dead-letter topic; ``detail`` names the field and the fix."""

    reason: Reason
    detail: str
