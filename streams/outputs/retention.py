"""Retention cohorts: users of a cohort active in period N, per activity (semantics §6)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sinks.tables import TableSpec
from streams.outputs.family import (
    AggregateFamily,
    Family,
    Row,
    RowContext,
    TotalOf,
    day_of_ms,
    ms_of_day,
)
from streams.retention import RETENTION_FAMILY, add_periods

_KEY = ("cohort_kind", "granularity", "cohort_start", "activity", "period", "channel", "platform")
TABLE = TableSpec(
    "retention_cohorts",
    (*_KEY, "partition", "users", "is_final", "version"),
    order_by=(*_KEY, "partition"),
    version_column="version",
)
FAMILY = Family("retention", TABLE)


class RetentionKey(NamedTuple):
    cohort_kind: str  # first visit or first purchase
    granularity: str  # day, week, month
    cohort_ms: int  # cohort period start
    activity: str
    period: int  # N
    period_start_ms: int  # start of period N: the row is final once it has passed
    channel: str
    platform: str
    family: Family = FAMILY

    @property
    def threshold(self) -> str:
        return RETENTION_FAMILY[self.granularity]

    @property
    def final_at(self) -> int:
        return self.period_start_ms


def build_row(key: RetentionKey, total: TotalOf, ctx: RowContext) -> Row:
    return (
        key.cohort_kind,
        key.granularity,
        day_of_ms(key.cohort_ms),
        key.activity,
        key.period,
        key.channel,
        key.platform,
        ctx.partition,
        total(key),
        ctx.is_final,
        ctx.version,
    )


VALUE_COLUMNS = ("users",)


def read_key(row: Sequence[Any]) -> RetentionKey:
    cohort_kind, granularity, cohort_start, activity, n, channel, platform = row
    start = add_periods(cohort_start, int(n), granularity)
    return RetentionKey(
        cohort_kind,
        granularity,
        ms_of_day(cohort_start),
        activity,
        int(n),
        ms_of_day(start),
        channel,
        platform,
    )


AGGREGATE = AggregateFamily(TABLE, RetentionKey, build_row, VALUE_COLUMNS, read_key)
