"""What the ClickHouse writer knows of a table: its name and its insert column order.

The writer is generic: each output family (``streams/outputs/``) declares its table with
a :class:`TableSpec`, next to the key and the row builder that fill it. The DDL itself
is in the numbered migrations (``sinks/migrations/``); ``tests/unit/test_output_families``
checks that both agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


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


@runtime_checkable
class EncodedRows(Protocol):
    """A table's rows kept outside Python objects until the writer inserts them (the
    compiled core's blocks, ``streams/compiled/rows.py``): inserted as Native, sliced to
    find a row ClickHouse refuses, and read as Python rows only for that row's dead letter
    and for tests."""

    def __len__(self) -> int: ...

    def slice(self, start: int, stop: int) -> EncodedRows: ...

    def row(self, index: int) -> Sequence[Any]:
        """Row ``index`` as the Python row a row builder makes."""
        ...

    def python_rows(self) -> list[tuple[Any, ...]]: ...

    def row_binary(self, columns: Sequence[tuple[str, str]]) -> bytes:
        """The rows as RowBinary for ``columns``: (name, ClickHouse type) in insert order.
        Raises ValueError when a value does not fit its column."""
        ...

    @classmethod
    def native(
        cls, blocks: Sequence[EncodedRows], columns: Sequence[tuple[str, str]]
    ) -> memoryview:
        """The rows of ``blocks`` (of this class), in order, as one block of ClickHouse's
        Native format for ``columns`` (as ``row_binary``; empty for no rows). The writer
        inserts this: the engine reads it at about half the CPU of RowBinary, and one
        block per insert, not one per core call (a Native block has a per-block cost in
        the engine that many small ones add up). A view, not ``bytes``: the encoder
        reuses a table's buffer from one insert to the next once the view is gone."""
        ...
