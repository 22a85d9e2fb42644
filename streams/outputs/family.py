"""What every output family shares: its identity inside keys, row context and versions.

An output family is one kind of row the pipeline writes (funnel steps, KPIs, triggers,
...). Each has one module in this package that owns its table spec, its typed key, the
function that builds its row and, for aggregates, the reader used at recovery.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sinks.tables import TableSpec

# The dimensions of the funnel and KPI rows, in their column order.
DIMENSIONS = ("channel", "campaign", "device", "platform", "country")

Row = tuple[Any, ...]


class Family:
    """The identity of an output family, carried as the last field of each of its keys.

    Keys are NamedTuples (cheap to hash: they are built for every visitor update), and two
    NamedTuples with equal fields are equal whatever their class: a funnel step 10 would
    equal a 10-second time-to-convert bucket. The family field tells them apart. It is
    compared by identity, which costs nothing when both keys belong to the same family.
    """

    __slots__ = ("name", "table")

    def __init__(self, name: str, table: TableSpec | None) -> None:
        self.name = name
        self.table = table  # None: bookkeeping keys that are never written

    def __repr__(self) -> str:
        return f"Family({self.name})"


@dataclass(frozen=True, slots=True)
class RowContext:
    """What an aggregate row needs besides its key and totals."""

    partition: int
    is_final: int  # 1 when the window is closed and this is its last row
    version: int
    step_names: Mapping[str, tuple[str, ...]]  # funnel -> step event types


# Reads a partition's running total of one aggregate key.
TotalOf = Callable[[Any], int]


class VersionClock:
    """Strictly increasing row versions (nanoseconds since epoch), newest write wins."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        now = time.time_ns()
        self._last = now if now > self._last else self._last + 1
        return self._last

    @property
    def last(self) -> int:
        return self._last

    def now_ns(self) -> int:
        """The wall clock the versions follow (the compiled core takes it per batch)."""
        return time.time_ns()

    def catch_up(self, last: int) -> None:
        """Versions up to ``last`` were handed out elsewhere (by the compiled core)."""
        if last > self._last:
            self._last = last


KPI_THRESHOLD = "kpi"


@lru_cache(maxsize=1024)
def funnel_threshold(funnel: str) -> str:
    """The finality group of a funnel's rows (keys of the checkpoint's thresholds)."""
    return f"funnel:{funnel}"


def day_of_ms(t_ms: int) -> date:
    return date(1970, 1, 1) + timedelta(days=int(t_ms) // 86_400_000)


def ms_of_day(value: date) -> int:
    return (value - date(1970, 1, 1)).days * 86_400_000


def ms_of_datetime(value: Any) -> int:
    """Epoch milliseconds of a ClickHouse DateTime read back (seconds or a datetime)."""
    if isinstance(value, int):
        return value * 1000
    assert isinstance(value, datetime)
    return int(value.replace(tzinfo=value.tzinfo or UTC).timestamp()) * 1000


@dataclass(frozen=True, slots=True)
class AggregateFamily:
    """An output family whose rows are partition totals of visitor contributions.

    ``read_key`` turns the :attr:`key_columns` of a row read back from ClickHouse into its
    key: at recovery a worker re-writes, as zero, open rows its rebuilt state no longer has.
    """

    table: TableSpec
    key_type: type
    build_row: Callable[[Any, TotalOf, RowContext], Row]
    value_columns: tuple[str, ...]  # the counters (all zero: the row counts nothing)
    read_key: Callable[[Any], Any]

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The sorting key without the partition: what identifies the row's key."""
        return tuple(c for c in self.table.order_by if c != "partition")
