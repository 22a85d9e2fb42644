"""Experiment decisions published on the triggers topic, one row each (migration 0008):
the record that makes a decision's trigger go out once."""

from __future__ import annotations

from sinks.tables import TableSpec
from streams.outputs.family import Row

TABLE = TableSpec(
    "experiment_decisions",
    ("decided_at", "experiment", "verdict", "variant", "metric", "reason", "triggers_offset"),
    order_by=("experiment", "verdict", "variant"),
    version_column="decided_at",
)


def build_row(
    decided_at_ms: int,
    experiment: str,
    verdict: str,
    variant: str,
    metric: str,
    reason: str,
    triggers_offset: int,
) -> Row:
    return (decided_at_ms, experiment, verdict, variant, metric, reason, triggers_offset)
