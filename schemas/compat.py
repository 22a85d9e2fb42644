"""Avro compatibility between neighbouring versions of each schema (the ``avro`` package).

For every schema name, each version ``N`` is checked against version ``N-1`` both ways:

* **backward**: a consumer on ``vN`` can read data written with ``vN-1`` (the worker is
  upgraded before producers, or replays old data);
* **forward**: a consumer on ``vN-1`` can read data written with ``vN`` (producers are
  upgraded first).

The rules are Avro's schema resolution rules as implemented by
``avro.compatibility.ReaderWriterCompatibilityChecker`` (avro 1.12): a field the reader
has and the writer lacks needs a default; types must match or promote (int -> long ->
float -> double, string <-> bytes); a reader union must cover every writer branch; named
types keep their names. In practice: add fields only with a default (``null`` for a
nullable field), never change a field's type, never remove a field without a default.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
)

from schemas.errors import CompatibilityError, SchemaError
from schemas.registry import AVSC_NAME, load_avsc

DEFAULT_SCHEMA_DIR = Path(__file__).with_name("avro")

_FIX_HINTS = {
    SchemaIncompatibilityType.reader_field_missing_default_value: (
        "give the field a default (null for a nullable field)"
    ),
    SchemaIncompatibilityType.type_mismatch: (
        "keep the field's type; add a new field with a default instead"
    ),
    SchemaIncompatibilityType.missing_union_branch: "keep every branch of the union",
    SchemaIncompatibilityType.name_mismatch: "keep the record name (or add an alias)",
    SchemaIncompatibilityType.missing_enum_symbols: "keep every enum symbol (or add a default)",
    SchemaIncompatibilityType.fixed_size_mismatch: "keep the fixed size",
}


@dataclass(frozen=True)
class CompatResult:
    """One schema version against its predecessor (``previous`` None: the only version)."""

    stream: str
    version: int
    previous: int | None = None
    backward: bool | None = None
    forward: bool | None = None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.backward is not False and self.forward is not False

    @property
    def versions(self) -> str:
        if self.previous is None:
            return f"v{self.version}"
        return f"v{self.previous} -> v{self.version}"


def check_all(schema_dir: Path | None = None) -> list[CompatResult]:
    """Check every ``<name>.v<N>.avsc`` in ``schema_dir`` (default: the shipped schemas)."""
    directory = schema_dir if schema_dir is not None else DEFAULT_SCHEMA_DIR
    if not directory.is_dir():
        raise SchemaError(f"schema directory {directory} does not exist; pass the avro/ folder")
    by_name: dict[str, dict[int, Path]] = {}
    for path in sorted(directory.glob("*.avsc")):
        match = AVSC_NAME.match(path.name)
        if match is None:
            raise SchemaError(f"schema file {path} is not named <name>.v<N>.avsc; rename it")
        by_name.setdefault(match["name"], {})[int(match["version"])] = path
    results: list[CompatResult] = []
    for name in sorted(by_name):
        versions = sorted(by_name[name].items())
        if len(versions) == 1:
            results.append(CompatResult(stream=name, version=versions[0][0]))
        for (old_version, old_path), (new_version, new_path) in pairwise(versions):
            results.append(
                check_pair(name, old_version, load_avsc(old_path), new_version, load_avsc(new_path))
            )
    return results


def check_pair(
    stream: str,
    old_version: int,
    old_definition: dict[str, Any],
    new_version: int,
    new_definition: dict[str, Any],
) -> CompatResult:
    """Backward and forward compatibility of ``new`` against ``old``."""
    old, new = (
        _parse(old_definition, stream, old_version),
        _parse(new_definition, stream, new_version),
    )
    backward = _compatibility(reader=new, writer=old)
    forward = _compatibility(reader=old, writer=new)
    problems: list[str] = []
    if backward.compatibility is SchemaCompatibilityType.incompatible:
        problems.append(
            f"{stream} v{new_version} cannot read v{old_version} data (backward): "
            + _describe(backward, new_definition)
        )
    if forward.compatibility is SchemaCompatibilityType.incompatible:
        problems.append(
            f"{stream} v{old_version} cannot read v{new_version} data (forward): "
            + _describe(forward, old_definition)
        )
    return CompatResult(
        stream=stream,
        version=new_version,
        previous=old_version,
        backward=backward.compatibility is not SchemaCompatibilityType.incompatible,
        forward=forward.compatibility is not SchemaCompatibilityType.incompatible,
        problems=tuple(problems),
    )


def assert_compatible(results: Iterable[CompatResult]) -> None:
    """Raise :class:`CompatibilityError` listing every breaking change in ``results``."""
    problems = [p for result in results for p in result.problems]
    if problems:
        raise CompatibilityError("incompatible schema change: " + " | ".join(problems))


def _compatibility(
    *, reader: avro.schema.Schema, writer: avro.schema.Schema
) -> SchemaCompatibilityResult:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result: SchemaCompatibilityResult = checker.get_compatibility(reader, writer)
    return result


def _parse(definition: dict[str, Any], stream: str, version: int) -> avro.schema.Schema:
    try:
        return avro.schema.parse(json.dumps(definition))
    except Exception as exc:  # avro raises its own and json errors alike
        raise SchemaError(f"{stream} v{version} is not a valid Avro schema: {exc}") from exc


def _describe(result: SchemaCompatibilityResult, reader_definition: dict[str, Any]) -> str:
    fields = sorted(
        {path for loc in result.locations if (path := _field_path(reader_definition, loc))}
    )
    kinds = set(result.incompatibilities)
    leaf_names = {path.rsplit(".", 1)[-1] for path in fields}
    # avro reports a missing default with the bare field name as its message.
    details = sorted(m for m in result.messages if m not in leaf_names)
    if SchemaIncompatibilityType.reader_field_missing_default_value in kinds:
        details.append("the reader has it without a default and the writer does not write it")
    hints = sorted({_FIX_HINTS.get(kind, kind.value) for kind in kinds})
    where = f"field {', '.join(fields)}" if fields else "record"
    return f"{where}: {'; '.join(details)}; fix: {'; '.join(hints)}"


def _field_path(definition: Any, location: str) -> str:
    """Turn an avro location such as ``/fields/20/type/items/fields/5/type`` into
    ``items[].price`` by walking the reader schema."""
    node = definition
    path: list[str] = []
    tokens = [t for t in location.split("/") if t]
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == "fields" and index + 1 < len(tokens) and isinstance(node, dict):
            fields = node.get("fields", [])
            position = int(tokens[index + 1])
            if position >= len(fields):
                break
            field = fields[position]
            path.append(field["name"])
            node = field
            index += 2
            continue
        if token == "type" and isinstance(node, dict):
            node = node["type"]
        elif token == "items" and isinstance(node, dict):
            path[-1:] = [f"{path[-1]}[]"] if path else []
            node = node["items"]
        elif token == "values" and isinstance(node, dict):
            path[-1:] = [f"{path[-1]}{{}}"] if path else []
            node = node["values"]
        elif token.isdigit() and isinstance(node, list):
            node = node[int(token)]
        else:
            break
        index += 1
    return ".".join(path)
