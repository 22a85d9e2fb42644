"""One Kafka record as the processing core sees it (built once by the batch transport)."""

from __future__ import annotations

from typing import NamedTuple


class Record(NamedTuple):
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
