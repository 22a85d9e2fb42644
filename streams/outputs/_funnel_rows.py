"""What the three funnel families (steps, outcomes, time to convert) share: the leading
columns and key fields, the finality group, and how a row starts and is read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from streams.outputs.family import DIMENSIONS, funnel_threshold, ms_of_datetime

# Leading key columns of every funnel table; each family adds its detail column.
HEAD_COLUMNS = ("funnel", "window_start", *DIMENSIONS)


class FunnelKeyHead(Protocol):
    @property
    def funnel(self) -> str: ...
    @property
    def window(self) -> int: ...  # attempt start, minute window, epoch ms
    @property
    def dims(self) -> tuple[str, ...]: ...


def order_by(detail: str) -> tuple[str, ...]:
    return (*HEAD_COLUMNS, detail, "partition")


def threshold(key: FunnelKeyHead) -> str:
    """A funnel's rows turn final together (the attempts still open hold them back)."""
    return funnel_threshold(key.funnel)


def final_at(key: FunnelKeyHead) -> int:
    return key.window


def row_head(key: FunnelKeyHead) -> tuple[Any, ...]:
    return (key.funnel, key.window // 1000, *key.dims)


def read_head(row: Sequence[Any]) -> tuple[str, int, tuple[str, ...], Any]:
    """(funnel, window ms, dims, detail) of a row read with ``HEAD_COLUMNS + detail``."""
    funnel, window, *rest = row
    *dims, detail = rest
    return str(funnel), ms_of_datetime(window), tuple(dims), detail
