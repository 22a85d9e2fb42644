"""Funnel attempts: one row per credited entity, with its step times (exact time to
convert, who reached or dropped at a step; docs/semantics.md section 3).

A row is an aggregate whose value is 1 while the entity is credited that way: when the
credit changes (a later step, an outcome, a different credited attempt) the old key's
total becomes 0 and a new key appears. Readers take ``FINAL`` rows with ``attempts > 0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sinks.tables import TableSpec
from streams.outputs._funnel_rows import HEAD_COLUMNS, order_by, row_head
from streams.outputs.family import (
    AggregateFamily,
    Family,
    Row,
    RowContext,
    TotalOf,
    funnel_threshold,
    ms_of_datetime,
)
from streams.state import Dims

DETAIL_COLUMNS = ("anonymous_id", "entity", "start_event_id", "outcome", "level", "step_times")
TABLE = TableSpec(
    "funnel_attempts",
    (*HEAD_COLUMNS, *DETAIL_COLUMNS, "partition", "attempts", "is_final", "version"),
    order_by=order_by(*DETAIL_COLUMNS),
    version_column="version",
)
FAMILY = Family("funnel_attempts", TABLE)


class FunnelAttemptKey(NamedTuple):
    """The credit of one entity: who, where it started, how far it got and when."""

    funnel: str
    window: int  # attempt start, minute window, epoch ms
    dims: Dims  # of the start event
    breakdown: tuple[str, ...]
    anonymous_id: str
    entity: str  # session segment id (session scope); '' for user scope
    start_event_id: str
    outcome: str
    level: int
    step_times: tuple[int, ...]  # epoch ms of steps 1..level
    family: Family = FAMILY

    @property
    def threshold(self) -> str:
        return funnel_threshold(self.funnel)

    @property
    def final_at(self) -> int:
        return self.window


def build_row(key: FunnelAttemptKey, total: TotalOf, ctx: RowContext) -> Row:
    return (
        *row_head(key),
        key.anonymous_id,
        key.entity,
        key.start_event_id,
        key.outcome,
        key.level,
        list(key.step_times),  # DateTime64(3): integers are milliseconds
        ctx.partition,
        total(key),
        ctx.is_final,
        ctx.version,
    )


VALUE_COLUMNS = ("attempts",)


def read_key(row: Sequence[Any]) -> FunnelAttemptKey:
    """A key from its key columns: order_by without the partition."""
    funnel, window, *rest = row
    dims = tuple(str(v) for v in rest[:5])
    anonymous_id, entity, start_event_id, outcome, level, step_times, breakdown = rest[5:]
    return FunnelAttemptKey(
        str(funnel),
        ms_of_datetime(window),
        dims,  # type: ignore[arg-type]
        tuple(breakdown),
        str(anonymous_id),
        str(entity),
        str(start_event_id),
        str(outcome),
        int(level),
        tuple(datetime64_ms(t) for t in step_times),
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime64_ms(value: Any) -> int:
    """Milliseconds of a DateTime64(3) value read back (a datetime, or an int)."""
    if isinstance(value, int):
        return value
    aware: datetime = value.replace(tzinfo=value.tzinfo or UTC)
    return (aware - _EPOCH) // timedelta(milliseconds=1)  # exact, no float


AGGREGATE = AggregateFamily(TABLE, FunnelAttemptKey, build_row, VALUE_COLUMNS, read_key)
