"""The unit the simulator emits: one Kafka record plus what the simulator meant by it."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.model import Event, StreamKind
from schemas.reasons import Reason


@dataclass(frozen=True, slots=True)
class SimRecord:
    """One record, in send order.

    ``event`` is what a correct decoder must return for ``value`` (None when the record is
    malformed, with ``malformed_reason`` saying why the codec must reject it).
    ``send_time_ms`` is the simulated time the record is handed to Kafka; pacing uses it.
    ``is_duplicate``: a byte copy of an earlier record, or a purchase re-sent with a new
    event_id and the same transaction_id. ``intended_late``: sent more than the allowed
    lateness after it happened (the truth decides lateness independently, from the order
    of records per topic-partition). ``out_of_order``: delayed, but within the lateness.
    """

    stream: StreamKind
    partition: int
    key: bytes
    value: bytes
    send_time_ms: int
    event: Event | None
    malformed_reason: Reason | None
    is_duplicate: bool
    intended_late: bool
    out_of_order: bool = False
