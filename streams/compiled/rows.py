"""A table's rows from the compiled core, kept in Rust until the writer inserts them.

The core returns each table's rows of a call as one ``RowBlock`` (native/src/pyrows.rs).
:class:`CompiledRows` is the writer's view of it (``sinks.tables.EncodedRows``): the
writer asks for a Native block in the table's column types (native/src/native_block.rs;
RowBinary, native/src/row_binary.rs, on request), so the rows go to ClickHouse without
becoming Python objects. Python rows, exactly as the row
builders in ``streams/outputs/`` make them, are built only on request: for a row
ClickHouse refuses (its dead letter), a forget's corrections and the tests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from sinks.tables import EncodedRows, TableSpec
from streams.outputs import ALL_TABLES, Row

# Columns whose values the core hands over in a form JSON carries: dates as ISO text,
# floats as Python's repr.
_DATE_COLUMNS = frozenset({"cohort_start", "day"})
_FLOAT_COLUMNS = frozenset({"le_seconds", "le_days"})


@functools.cache
def _fixes() -> dict[str, tuple[tuple[int, Callable[[Any], Any]], ...]]:
    """Table name -> (column index, conversion) for the columns above."""
    out = {}
    for spec in ALL_TABLES:
        fixes: list[tuple[int, Callable[[Any], Any]]] = []
        for i, column in enumerate(spec.columns):
            if column in _DATE_COLUMNS:
                fixes.append((i, date.fromisoformat))
            elif column in _FLOAT_COLUMNS:
                fixes.append((i, float))
        out[spec.name] = tuple(fixes)
    return out


@functools.cache
def table_spec(name: str) -> TableSpec:
    for spec in ALL_TABLES:
        if spec.name == name:
            return spec
    raise KeyError(f"the compiled core made rows for an unknown table {name!r}")


def _python_row(table: str, raw: tuple[Any, ...]) -> Row:
    fixes = _fixes()[table]
    if not fixes:
        return raw
    values = list(raw)
    for i, fix in fixes:
        values[i] = fix(values[i])
    return tuple(values)


class CompiledRows(EncodedRows):
    """One ``RowBlock`` (or a slice of it) as ``EncodedRows``."""

    __slots__ = ("_block",)

    def __init__(self, block: Any) -> None:
        self._block = block

    @property
    def table(self) -> str:
        name: str = self._block.table
        return name

    def __len__(self) -> int:
        return len(self._block)

    def __repr__(self) -> str:
        return f"CompiledRows({self.table}, {len(self)} rows)"

    def slice(self, start: int, stop: int) -> CompiledRows:
        return CompiledRows(self._block.slice(start, stop))

    def row(self, index: int) -> Row:
        return _python_row(self.table, self._block.row(index))

    def python_rows(self) -> list[Row]:
        table = self.table
        return [_python_row(table, raw) for raw in self._block.rows()]

    def row_binary(self, columns: Sequence[tuple[str, str]]) -> bytes:
        import shopfunnel_core  # built: this object came from it

        payload: bytes = shopfunnel_core.row_binary([self._block], list(columns))
        return payload

    @classmethod
    def native(
        cls, blocks: Sequence[EncodedRows], columns: Sequence[tuple[str, str]]
    ) -> memoryview:
        import shopfunnel_core  # built: these objects came from it

        rows = [b._block for b in blocks if isinstance(b, CompiledRows)]
        if len(rows) != len(blocks):
            raise TypeError("CompiledRows.native takes CompiledRows blocks only")
        # The crate's NativePayload: its bytes through the buffer protocol, no copy.
        return memoryview(shopfunnel_core.native_block(rows, list(columns)))
