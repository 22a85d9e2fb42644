"""Schema ids and versions: ``schemas/registry.json`` plus the ``.avsc`` files next to it.

``registry.json`` maps a schema name to its versions and their Confluent schema ids::

    {"clickstream": {"1": 101, "2": 102, "3": 103}, "cart": {"1": 201}, ...}

Version ``N`` of ``name`` lives in ``avro/<name>.v<N>.avsc`` beside the registry file.
Versions run 1..n without gaps, ids are unique positive 32-bit ints, and every ``.avsc``
file must be registered, so a schema can never be shipped without an id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro

from schemas.errors import SchemaError

DEFAULT_REGISTRY_PATH = Path(__file__).with_name("registry.json")
AVSC_NAME = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")
MAX_SCHEMA_ID = 2**31 - 1


@dataclass(frozen=True)
class RegisteredSchema:
    """One version of one schema, with its id and its JSON definition as written."""

    name: str
    version: int
    schema_id: int
    path: Path
    definition: Mapping[str, Any] = field(repr=False)

    @property
    def header(self) -> bytes:
        """Confluent wire-format prefix: magic byte 0 + 4-byte big-endian schema id."""
        return b"\x00" + self.schema_id.to_bytes(4, "big")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.definition.get("fields", ()))


def strip_logical_types(definition: Any) -> Any:
    """A copy of a schema without ``logicalType`` annotations.

    The binary encoding is identical (timestamp-millis is a plain long on the wire); readers
    that skip the annotation get ints instead of ``datetime`` objects, which is what the
    hot path wants and costs nothing to build.
    """
    if isinstance(definition, dict):
        return {k: strip_logical_types(v) for k, v in definition.items() if k != "logicalType"}
    if isinstance(definition, list):
        return [strip_logical_types(v) for v in definition]
    return definition


def load_avsc(path: Path) -> dict[str, Any]:
    """Read and check one ``.avsc`` file; errors name the file."""
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchemaError(f"cannot read schema file {path}: {exc}; restore the file") from exc
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"schema file {path} is not valid JSON (line {exc.lineno}: {exc.msg}); fix the syntax"
        ) from exc
    if not isinstance(definition, dict) or definition.get("type") != "record":
        raise SchemaError(f"schema file {path} must hold one Avro record schema (a JSON object)")
    try:
        fastavro.parse_schema(definition, {})
    except Exception as exc:  # fastavro raises several unrelated types for bad schemas
        raise SchemaError(f"schema file {path} is not a valid Avro schema: {exc}") from exc
    return definition


class SchemaRegistry:
    """All schema versions by name and by id; build with :meth:`load`."""

    def __init__(self, schemas: Iterable[RegisteredSchema]) -> None:
        self._by_id: dict[int, RegisteredSchema] = {}
        self._by_name: dict[str, list[RegisteredSchema]] = {}
        for schema in schemas:
            if schema.schema_id in self._by_id:
                other = self._by_id[schema.schema_id]
                raise SchemaError(
                    f"schema id {schema.schema_id} is used by both {other.name} v{other.version} "
                    f"and {schema.name} v{schema.version}; give each version its own id"
                )
            self._by_id[schema.schema_id] = schema
            self._by_name.setdefault(schema.name, []).append(schema)
        for name, versions in self._by_name.items():
            versions.sort(key=lambda s: s.version)
            numbers = [s.version for s in versions]
            if numbers != list(range(1, len(numbers) + 1)):
                raise SchemaError(
                    f"schema {name} has versions {numbers}; versions must run 1..n without gaps"
                )

    @classmethod
    def load(cls, path: Path | None = None) -> SchemaRegistry:
        """Load ``registry.json`` (default: the packaged one) and every schema it names."""
        registry_path = path or DEFAULT_REGISTRY_PATH
        entries = _read_registry_file(registry_path)
        avro_dir = registry_path.parent / "avro"
        schemas = [
            RegisteredSchema(name, version, schema_id, avsc, load_avsc(avsc))
            for name, version, schema_id in entries
            for avsc in [avro_dir / f"{name}.v{version}.avsc"]
        ]
        _check_every_file_registered(avro_dir, {(n, v) for n, v, _ in entries}, registry_path)
        return cls(schemas)

    def by_id(self, schema_id: int) -> RegisteredSchema | None:
        return self._by_id.get(schema_id)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_name))

    def versions(self, name: str) -> tuple[RegisteredSchema, ...]:
        try:
            return tuple(self._by_name[name])
        except KeyError:
            raise SchemaError(
                f"no schema named {name!r} in the registry (known: {', '.join(self.names())}); "
                "add it to schemas/registry.json"
            ) from None

    def get(self, name: str, version: int) -> RegisteredSchema:
        versions = self.versions(name)
        if not 1 <= version <= len(versions):
            raise SchemaError(f"schema {name} has no version {version} (latest is {len(versions)})")
        return versions[version - 1]

    def latest(self, name: str) -> RegisteredSchema:
        return self.versions(name)[-1]

    def __iter__(self) -> Iterator[RegisteredSchema]:
        return iter(sorted(self._by_id.values(), key=lambda s: (s.name, s.version)))


def _read_registry_file(path: Path) -> list[tuple[str, int, int]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SchemaError(f"cannot read schema registry {path}: {exc}; restore the file") from exc
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"schema registry {path} is not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from exc
    shape_hint = 'expected {"<name>": {"<version>": <schema id>, ...}, ...}'
    if not isinstance(raw, dict):
        raise SchemaError(f"schema registry {path}: {shape_hint}")
    entries: list[tuple[str, int, int]] = []
    for name, versions in raw.items():
        if not isinstance(versions, dict) or not versions:
            raise SchemaError(f"schema registry {path}, entry {name!r}: {shape_hint}")
        for version_text, schema_id in versions.items():
            if not str(version_text).isdigit() or int(version_text) < 1:
                raise SchemaError(
                    f"schema registry {path}, {name}: version {version_text!r} must be a "
                    "positive integer string"
                )
            if type(schema_id) is not int or not 1 <= schema_id <= MAX_SCHEMA_ID:
                raise SchemaError(
                    f"schema registry {path}, {name} v{version_text}: schema id {schema_id!r} "
                    f"must be an integer in 1..{MAX_SCHEMA_ID}"
                )
            entries.append((name, int(version_text), schema_id))
    return entries


def _check_every_file_registered(
    avro_dir: Path, registered: set[tuple[str, int]], registry_path: Path
) -> None:
    for avsc in sorted(avro_dir.glob("*.avsc")):
        match = AVSC_NAME.match(avsc.name)
        if match is None:
            raise SchemaError(f"schema file {avsc} is not named <name>.v<N>.avsc; rename it")
        if (match["name"], int(match["version"])) not in registered:
            raise SchemaError(
                f"schema file {avsc} has no id in {registry_path}; add "
                f'"{match["version"]}": <new id> under "{match["name"]}"'
            )
