"""What the ClickHouse writer knows of a table: its name and its insert column order.

The writer is generic: each output family (``streams/outputs/``) declares its table with
a :class:`TableSpec`, next to the key and the row builder that fill it. The DDL itself
is in the numbered migrations (``sinks/migrations/``); ``tests/unit/test_output_families``
checks that both agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, eq=False)
class TableSpec:
    """A table's contract as the migrations create it.

    Compared by identity (``eq=False``): each table has one spec object, and aggregate
    keys carry it, so its hash must be cheap and two tables never compare equal.
    """

    name: str
    columns: tuple[str, ...]
    # The sorting key of the ReplacingMergeTree: rows with equal values replace each other.
    order_by: tuple[str, ...] = ()
    # The ReplacingMergeTree version column (None: the last inserted row wins).
    version_column: str | None = None

    def __repr__(self) -> str:
        return f"TableSpec({self.name})"
