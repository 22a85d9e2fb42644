"""In-memory fakes for the pure processing core (no broker, no ClickHouse)."""

from __future__ import annotations

from collections.abc import Iterable

from schemas.model import Event
from schemas.reasons import Reason, Rejection


class DictDecoder:
    """Decodes records whose value is a key into a table of prepared events."""

    def __init__(self) -> None:
        self.events: dict[bytes, Event] = {}

    def add(self, event: Event) -> bytes:
        raw = f"{event.event_id}@{len(self.events)}".encode()
        self.events[raw] = event
        return raw

    def decode(self, raw: bytes, stream: str, now_ms: int) -> Event | Rejection:
        event = self.events.get(raw)
        if event is None:
            return Rejection(Reason.UNDECODABLE, "not a prepared test record")
        return event


class SimpleChannels:
    def classify(self, utm_source: str | None, utm_medium: str | None, referrer: str | None) -> str:
        if utm_medium == "cpc":
            return "paid_search"
        if utm_source:
            return "referral"
        return "direct"


class DictStore:
    """The table store: bytes keys -> bytes values, with each key's partition."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.partition_of: dict[bytes, int] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def keys_in_partition(self, partition: int) -> Iterable[bytes]:
        return [k for k, p in self.partition_of.items() if p == partition]

    def put(self, key: bytes, value: bytes | None, partition: int) -> None:
        if value is None:
            self.data.pop(key, None)
            self.partition_of.pop(key, None)
        else:
            self.data[key] = value
            self.partition_of[key] = partition
