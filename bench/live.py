"""Live-like input for latency runs: simulator records re-stamped to the wall clock.

Simulated history paced at a fixed rate moves event time 300-1,800x faster than the
wall clock (a simulated day holds ~490k records), so a one-minute window closes every
few hundred records and every batch finalises windows. Live traffic closes a window
once a minute. Re-stamping keeps the records, their order and their partitions, and
spaces their event times by the production rate (record i at ``base + i / rate``), so
event time advances one second per second, as it does live. Sessions and funnels get
denser (a visitor's day fits in the run), which is the price of a realistic clock.
"""

from __future__ import annotations

import dataclasses
import time

from bench.dataset import InputRecord
from schemas.codec import EventCodec
from schemas.reasons import Rejection
from schemas.validation import ValidationBounds

# Decode anything the simulator wrote (its validation bounds are not the point here).
_LENIENT = ValidationBounds(max_payload_bytes=1 << 24, max_future_ms=1 << 50, max_past_ms=1 << 50)


def restamp(
    records: list[InputRecord], rate: float, base_ms: int | None = None
) -> list[InputRecord]:
    """``records`` with event/sent times moved to ``base_ms + i / rate`` (ms)."""
    codec = EventCodec(bounds=_LENIENT)
    base = int(time.time() * 1000) if base_ms is None else base_ms
    out: list[InputRecord] = []
    for i, record in enumerate(records):
        event = codec.decode(record.value, record.stream, record.send_time_ms)  # type: ignore[arg-type]
        if isinstance(event, Rejection):  # malformed on purpose: send it unchanged
            out.append(record)
            continue
        t = base + int(i * 1000 / rate)
        moved = dataclasses.replace(
            event, event_time_ms=t, sent_time_ms=t + (event.sent_time_ms - event.event_time_ms)
        )
        out.append(record._replace(value=codec.encode_avro(moved), send_time_ms=moved.sent_time_ms))
    return out
