"""Funnel steps: entities that reached each step, per funnel, minute and dimensions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sinks.tables import TableSpec
from streams.outputs._funnel_rows import HEAD_COLUMNS, order_by, read_head, row_head
from streams.outputs.family import (
    AggregateFamily,
    Family,
    Row,
    RowContext,
    TotalOf,
    funnel_threshold,
)
from streams.state import Dims

TABLE = TableSpec(
    "funnel_steps_minute",
    (*HEAD_COLUMNS, "step", "step_name", "partition", "entered", "is_final", "version"),
    order_by=order_by("step"),
    version_column="version",
)
FAMILY = Family("funnel_steps", TABLE)


class FunnelStepKey(NamedTuple):
    """Entities of ``funnel`` whose attempt started in ``window`` and reached ``step``."""

    funnel: str
    window: int  # attempt start, minute window, epoch ms
    dims: Dims
    step: int  # 1-based
    breakdown: tuple[str, ...] = ()  # the funnel's breakdown values, if it has one
    family: Family = FAMILY

    @property
    def threshold(self) -> str:
        return funnel_threshold(self.funnel)

    @property
    def final_at(self) -> int:
        return self.window


def build_row(key: FunnelStepKey, total: TotalOf, ctx: RowContext) -> Row:
    step_name = ctx.step_names[key.funnel][key.step - 1]
    return (
        *row_head(key),
        key.step,
        step_name,
        ctx.partition,
        total(key),
        ctx.is_final,
        ctx.version,
    )


# Recovery: the key columns and the counters of the rows a worker may have left open.
VALUE_COLUMNS = ("entered",)


def read_key(row: Sequence[Any]) -> FunnelStepKey:
    funnel, window, dims, step, breakdown = read_head(row)
    return FunnelStepKey(funnel, window, dims, int(step), breakdown)  # type: ignore[arg-type]


AGGREGATE = AggregateFamily(TABLE, FunnelStepKey, build_row, VALUE_COLUMNS, read_key)
