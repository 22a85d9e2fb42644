"""Funnel outcomes: attempts converted, dropped or still in progress, per minute and dims."""

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
    "funnel_outcomes_minute",
    (*HEAD_COLUMNS, "outcome", "partition", "entities", "is_final", "version"),
    order_by=order_by("outcome"),
    version_column="version",
)
FAMILY = Family("funnel_outcomes", TABLE)
CONVERTED, DROPPED, IN_PROGRESS = "converted", "dropped", "in_progress"


class FunnelOutcomeKey(NamedTuple):
    funnel: str
    window: int
    dims: Dims
    outcome: str  # CONVERTED, DROPPED or IN_PROGRESS
    breakdown: tuple[str, ...] = ()  # the funnel's breakdown values, if it has one
    family: Family = FAMILY

    @property
    def threshold(self) -> str:
        return funnel_threshold(self.funnel)

    @property
    def final_at(self) -> int:
        return self.window


# Attempts still open hold their funnel's rows back from being final (a reference count
# per funnel and window); bookkeeping only, never written.
OPEN_ATTEMPTS = Family("open_attempts", None)


class OpenAttemptKey(NamedTuple):
    funnel: str
    window: int
    family: Family = OPEN_ATTEMPTS

    @property
    def threshold(self) -> str:
        return funnel_threshold(self.funnel)

    @property
    def final_at(self) -> int:
        return self.window


def build_row(key: FunnelOutcomeKey, total: TotalOf, ctx: RowContext) -> Row:
    return (
        *row_head(key),
        key.outcome,
        ctx.partition,
        total(key),
        ctx.is_final,
        ctx.version,
    )


VALUE_COLUMNS = ("entities",)


def read_key(row: Sequence[Any]) -> FunnelOutcomeKey:
    funnel, window, dims, outcome, breakdown = read_head(row)
    return FunnelOutcomeKey(funnel, window, dims, str(outcome), breakdown)  # type: ignore[arg-type]


AGGREGATE = AggregateFamily(TABLE, FunnelOutcomeKey, build_row, VALUE_COLUMNS, read_key)
