"""Segment transitions: a visitor moving between lifecycle stages, once per change."""

from __future__ import annotations

from sinks.tables import TableSpec
from streams.lifecycle import Transition
from streams.outputs.family import Row

TABLE = TableSpec(
    "segment_transitions",
    ("anonymous_id", "at", "from_stage", "to_stage", "partition", "version"),
    order_by=("anonymous_id", "at", "to_stage"),
    version_column="version",
)


def build_row(anonymous_id: str, transition: Transition, partition: int) -> Row:
    # Version 1: a transition is a fact; a replay writes the same row, which replaces it.
    return (
        anonymous_id,
        transition.at,
        transition.from_stage,
        transition.to_stage,
        partition,
        1,
    )
