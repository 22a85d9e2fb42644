"""What processing one batch produces: rows, triggers, dead letters, state writes, stats.

The processor fills a :class:`BatchResult`; the runtime makes it durable in the order
``streams/runtime.py`` documents and exports the :class:`BatchStats` as metrics.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from schemas.deadletter import DeadLetter
from schemas.triggers import Trigger
from sinks.tables import EncodedRows, TableSpec
from streams.outputs import ONCE_ONLY_TABLES, Row
from streams.outputs.funnel_steps import FunnelStepKey
from streams.outputs.kpi import GMV, ORDERS, KpiCellKey
from streams.visitor import Contributions


@dataclass
class BatchStats:
    ingested: Counter[str] = field(default_factory=Counter)  # stream -> records
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stream, reason)
    late: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stream, reason)
    duplicates: Counter[str] = field(default_factory=Counter)
    replayed: int = 0
    # (funnel, step index, window, channel, campaign) -> net change of entities
    step_entries: Counter[tuple[str, int, int, str, str]] = field(default_factory=Counter)
    # (channel, currency) -> (orders, gmv_minor) net change
    orders: Counter[tuple[str, str]] = field(default_factory=Counter)
    gmv_minor: Counter[tuple[str, str]] = field(default_factory=Counter)
    visitors_touched: int = 0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    expired: int = 0
    forgotten: int = 0  # records of forgotten people dropped in flight (streams/forget.py)

    def count_changes(self, delta: Contributions) -> None:
        """Step entries, orders and GMV that a visitor update changed (live metrics)."""
        for key, change in delta.items():
            if isinstance(key, FunnelStepKey):
                channel, campaign = key.dims[:2]
                self.step_entries[(key.funnel, key.step, key.window, channel, campaign)] += change
            elif isinstance(key, KpiCellKey) and key.metric in (ORDERS, GMV):
                target = self.orders if key.metric == ORDERS else self.gmv_minor
                target[(key.dims[0], key.currency)] += change


@dataclass
class BatchResult:
    rows: dict[TableSpec, list[Row]] = field(default_factory=dict)
    # Rows the compiled core keeps encoded until the writer inserts them, one block per
    # table (streams/compiled/rows.py); a table can have rows in both.
    encoded_rows: dict[TableSpec, EncodedRows] = field(default_factory=dict)
    # Marketing triggers to publish before the state writes (streams/runtime.py).
    triggers: list[Trigger] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    state_writes: dict[bytes, bytes | None] = field(default_factory=dict)
    meta: bool = False  # write processor.meta_record() after the state
    finalized: bool = False
    stats: BatchStats = field(default_factory=BatchStats)
    watermark: int | None = None

    def add_row(self, table: TableSpec, row: Row) -> None:
        self.rows.setdefault(table, []).append(row)

    @property
    def once_only_rows(self) -> bool:
        """Rows emitted once, at a state transition, that recovery cannot rebuild."""
        return any(self.rows.get(spec) or self.encoded_rows.get(spec) for spec in ONCE_ONLY_TABLES)

    @property
    def row_count(self) -> int:
        return sum(map(len, self.rows.values())) + sum(map(len, self.encoded_rows.values()))

    def decode_rows(self) -> BatchResult:
        """Move the encoded rows into ``rows`` as Python rows (a forget's corrections and
        the tests read rows); returns this result."""
        for spec, encoded in self.encoded_rows.items():
            self.rows.setdefault(spec, []).extend(encoded.python_rows())
        self.encoded_rows = {}
        return self
