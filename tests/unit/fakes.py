"""In-memory fakes for the pure processing core (no broker, no ClickHouse)."""

from __future__ import annotations

from collections.abc import Iterable

from schemas.model import Event
from schemas.reasons import Reason, Rejection
from sinks.tables import TableSpec
from streams.outputs import AGGREGATES
from streams.outputs.family import AggregateFamily


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


def _hashable(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value  # type: ignore[arg-type]


class RowLayout:
    """Where an aggregate table's key, partition, values and version sit in its rows, like
    ClickHouse's ReplacingMergeTree sees them (the family's sorting key)."""

    def __init__(self, family: AggregateFamily) -> None:
        columns = family.table.columns
        self.family = family
        self._key = [columns.index(c) for c in family.key_columns]
        self._partition = columns.index("partition")
        meta = {*family.key_columns, "partition", "is_final", "version"}
        # Values: the counters, plus descriptive columns (funnel_steps.step_name).
        self._values = [i for i, c in enumerate(columns) if c not in meta]
        self._counters = [columns.index(c) for c in family.value_columns]
        self._is_final = columns.index("is_final")
        self._version = columns.index("version")

    def key(self, row: tuple[object, ...]) -> tuple[object, ...]:
        """The sorting key's values, the partition last."""
        return (*(_hashable(row[i]) for i in self._key), row[self._partition])

    def values(self, row: tuple[object, ...]) -> tuple[object, ...]:
        return tuple(_hashable(row[i]) for i in self._values)

    def counters(self, row: tuple[object, ...]) -> tuple[object, ...]:
        return tuple(row[i] for i in self._counters)

    def is_final(self, row: tuple[object, ...]) -> bool:
        return bool(row[self._is_final])

    def version(self, row: tuple[object, ...]) -> int:
        return int(row[self._version])  # type: ignore[call-overload]

    def read_key(self, key: tuple[object, ...]) -> object:
        """What recovery reads back for a row with this key (partition dropped)."""
        return self.family.read_key(key[:-1])


def row_layouts() -> dict[TableSpec, RowLayout]:
    return {family.table: RowLayout(family) for family in AGGREGATES}
