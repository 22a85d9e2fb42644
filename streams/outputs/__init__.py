"""The pipeline's outputs: one module per family, each owning everything about its table.

A family module holds its ``TABLE`` (columns, sorting key, version column), its typed key
(for aggregates), the function that builds its row and, for aggregates, the ``AGGREGATE``
descriptor with the reader used at recovery. The DDL is in ``sinks/migrations/``;
``tests/unit/test_output_families.py`` checks that every table the migrations create has
exactly one family here and that both agree. docs/architecture.md has the checklist for
adding a family.
"""

from __future__ import annotations

from collections.abc import Iterable

from sinks.tables import TableSpec
from streams.outputs import (
    dead_letters,
    experiment_decisions,
    experiment_readouts,
    experiment_status,
    forget_audit,
    funnel_attempts,
    funnel_outcomes,
    funnel_steps,
    funnel_ttc,
    kpi,
    late_events,
    marketing_costs,
    order_attribution,
    order_gaps,
    raw_events,
    retention,
    segment_transitions,
    triggers,
    user_rfm,
)
from streams.outputs.family import AggregateFamily, Row, RowContext, TotalOf
from streams.outputs.funnel_attempts import FunnelAttemptKey
from streams.outputs.funnel_outcomes import FunnelOutcomeKey, OpenAttemptKey
from streams.outputs.funnel_steps import FunnelStepKey
from streams.outputs.funnel_ttc import FunnelTtcKey
from streams.outputs.kpi import KpiCellKey, KpiKey
from streams.outputs.order_attribution import OrderAttributionKey
from streams.outputs.order_gaps import OrderGapKey
from streams.outputs.retention import RetentionKey

FAMILY_MODULES = (
    raw_events,
    late_events,
    dead_letters,
    funnel_steps,
    funnel_outcomes,
    funnel_ttc,
    funnel_attempts,
    kpi,
    order_attribution,
    retention,
    order_gaps,
    user_rfm,
    segment_transitions,
    triggers,
    experiment_readouts,
    experiment_status,
    experiment_decisions,
    marketing_costs,
    forget_audit,
)
ALL_TABLES: tuple[TableSpec, ...] = tuple(m.TABLE for m in FAMILY_MODULES)
AGGREGATES: tuple[AggregateFamily, ...] = (
    funnel_steps.AGGREGATE,
    funnel_outcomes.AGGREGATE,
    funnel_ttc.AGGREGATE,
    funnel_attempts.AGGREGATE,
    kpi.AGGREGATE,
    order_attribution.AGGREGATE,
    retention.AGGREGATE,
    order_gaps.AGGREGATE,
)
# Rows emitted once, when the state passes a point (a stage change, a trigger, a new RFM
# snapshot), and not rebuilt from state at recovery: the runtime makes them durable
# before the state that records the transition.
ONCE_ONLY_TABLES = (segment_transitions.TABLE, triggers.TABLE, user_rfm.TABLE)

# A row of an aggregate table, and what visitors contribute to (KPI rows have one cell per
# metric; open attempts are bookkeeping that holds funnel rows back from being final).
RowKey = (
    FunnelStepKey
    | FunnelOutcomeKey
    | FunnelTtcKey
    | FunnelAttemptKey
    | KpiKey
    | OrderAttributionKey
    | RetentionKey
    | OrderGapKey
)
Key = (
    FunnelStepKey
    | FunnelOutcomeKey
    | FunnelTtcKey
    | FunnelAttemptKey
    | OpenAttemptKey
    | KpiCellKey
    | OrderAttributionKey
    | RetentionKey
    | OrderGapKey
)

_BY_KEY_TYPE: dict[type, AggregateFamily] = {f.key_type: f for f in AGGREGATES}


def aggregate_rows(
    keys: Iterable[RowKey], total: TotalOf, ctx: RowContext
) -> dict[TableSpec, list[Row]]:
    """Rows for aggregate ``keys`` with the partition's current totals, grouped by table."""
    out: dict[TableSpec, list[Row]] = {}
    for key in keys:
        family = _BY_KEY_TYPE[type(key)]
        out.setdefault(family.table, []).append(family.build_row(key, total, ctx))
    return out


def merge_rows(target: dict[TableSpec, list[Row]], more: dict[TableSpec, list[Row]]) -> None:
    for spec, rows in more.items():
        target.setdefault(spec, []).extend(rows)


__all__ = [
    "AGGREGATES",
    "ALL_TABLES",
    "FAMILY_MODULES",
    "ONCE_ONLY_TABLES",
    "Key",
    "Row",
    "RowContext",
    "RowKey",
    "aggregate_rows",
    "merge_rows",
]
