"""What the funnel families (steps, outcomes, time to convert, attempts) share: the
leading columns and key fields, the finality group, and how a row starts and is read
back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from streams.outputs.family import DIMENSIONS, funnel_threshold, ms_of_datetime

# Leading columns of every funnel table; each family adds its detail column. The
# per-funnel breakdown values (docs/semantics.md section 3) come last in the sorting key:
# migration 0007 added them, and ClickHouse only appends a new column to a sorting key.
HEAD_COLUMNS = ("funnel", "window_start", *DIMENSIONS, "breakdown")


class FunnelKeyHead(Protocol):
    @property
    def funnel(self) -> str: ...
    @property
    def window(self) -> int: ...  # attempt start, minute window, epoch ms
    @property
    def dims(self) -> tuple[str, ...]: ...
    @property
    def breakdown(self) -> tuple[str, ...]: ...


def order_by(*detail: str) -> tuple[str, ...]:
    return (*HEAD_COLUMNS[:-1], *detail, "partition", "breakdown")


def threshold(key: FunnelKeyHead) -> str:
    """A funnel's rows turn final together (the attempts still open hold them back)."""
    return funnel_threshold(key.funnel)


def final_at(key: FunnelKeyHead) -> int:
    return key.window


def row_head(key: FunnelKeyHead) -> tuple[Any, ...]:
    return (key.funnel, key.window // 1000, *key.dims, list(key.breakdown))


def read_head(row: Sequence[Any]) -> tuple[str, int, tuple[str, ...], Any, tuple[str, ...]]:
    """(funnel, window ms, dims, detail, breakdown) of a row read by its key columns
    (``order_by`` without the partition)."""
    funnel, window, *rest = row
    *dims, detail, breakdown = rest
    return str(funnel), ms_of_datetime(window), tuple(dims), detail, tuple(breakdown)
