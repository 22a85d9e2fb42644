"""Avro binary readers compiled from a schema: the decode hot path.

fastavro's reader interprets the schema for every datum and costs about 0.35 µs per
field; our event records have 33 to 35 fields, which caps fastavro at ~50k records/s on one
core before an :class:`~schemas.model.Event` is even built. This module turns a record
schema into straight-line Python source once (one local variable per field, a one-byte
fast path for short strings, small ints and union indexes) and ``exec``s it. The result
reads the same bytes about twice as fast and returns exactly what
``fastavro.schemaless_reader`` returns for the schema with its logical types stripped
(the tests hold the two equal on generated data and on random bytes).

Only the schema text (our own ``.avsc`` files) reaches the code generator, and names are
embedded with ``repr``; record bytes are only ever data. Schemas this module does not
handle (recursive types, zero-width array items) raise :class:`UnsupportedSchemaError`
and the codec falls back to fastavro.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from io import BytesIO
from itertools import count
from typing import Any

import fastavro

from schemas.errors import SchemaError

Reader = Callable[[bytes, int], tuple[Any, int]]


def fastavro_reader(parsed: Any) -> Reader:
    """fastavro's schemaless reader in :data:`Reader` form (for schemas the compiled
    reader does not support)."""

    def read(buf: bytes, pos: int) -> tuple[Any, int]:
        stream = BytesIO(buf)
        stream.seek(pos)
        value = fastavro.schemaless_reader(stream, parsed, None)
        return value, stream.tell()

    return read


"""``reader(buf, pos) -> (value, end_pos)``; raises (IndexError, ValueError, ...) on bad bytes."""

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
# A 64-bit zig-zag varint never needs more than 10 bytes (70 payload bits).
_MAX_VARINT_SHIFT = 63


class UnsupportedSchemaError(SchemaError):
    """The schema uses a construct the compiled reader does not handle; use fastavro."""


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode one zig-zag varint (Avro int/long) at ``pos``."""
    byte = buf[pos]
    pos += 1
    value = byte & 0x7F
    shift = 7
    while byte & 0x80:
        if shift > _MAX_VARINT_SHIFT:
            raise ValueError("varint longer than 10 bytes")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
    if value >> 64:
        raise ValueError("varint exceeds 64 bits")
    return (value >> 1) ^ -(value & 1), pos


def read_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    size, pos = read_long(buf, pos)
    end = pos + size
    if size < 0 or end > len(buf):
        raise ValueError(f"bad length {size} at offset {pos}")
    return buf[pos:end], end


def read_string(buf: bytes, pos: int) -> tuple[str, int]:
    raw, pos = read_bytes(buf, pos)
    return raw.decode(), pos


def check_count(items: int, buf: bytes, pos: int) -> None:
    # Every element takes at least one byte, so a count larger than the bytes left is
    # corrupt; refusing it early keeps a hostile count from spinning a long loop.
    if items > len(buf) - pos:
        raise ValueError(f"block count {items} exceeds the {len(buf) - pos} bytes left")


_RUNTIME: Mapping[str, Any] = {
    "_read_long": read_long,
    "_read_bytes": read_bytes,
    "_read_string": read_string,
    "_check_count": check_count,
    "_unpack_float": struct.Struct("<f").unpack_from,
    "_unpack_double": struct.Struct("<d").unpack_from,
}


def compile_reader(definition: Mapping[str, Any]) -> Reader:
    """Compile a record schema (logical types are ignored: timestamps read as ints)."""
    try:
        expanded = fastavro.parse_schema(dict(definition), {}, expand=True)
    except Exception as exc:  # fastavro raises several unrelated types for bad schemas
        raise SchemaError(f"invalid Avro schema: {exc}") from exc
    if not isinstance(expanded, dict) or expanded.get("type") != "record":
        raise SchemaError("compile_reader needs a record schema")
    generator = _Generator()
    entry = generator.record_function(expanded)
    namespace: dict[str, Any] = {**_RUNTIME, **generator.constants}
    source = "\n\n".join(generator.functions)
    exec(compile(source, f"<avro reader {expanded.get('name')}>", "exec"), namespace)
    reader: Reader = namespace[entry]
    return reader


class _Generator:
    """Emits one Python function per record type; values land in fresh local names."""

    def __init__(self) -> None:
        self.functions: list[str] = []
        self.constants: dict[str, Any] = {}
        self._ids = count()
        self._in_progress: set[str] = set()

    def _name(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def record_function(self, schema: Mapping[str, Any]) -> str:
        name = str(schema.get("name", "record"))
        if name in self._in_progress:
            raise UnsupportedSchemaError(f"recursive record {name} is not supported")
        self._in_progress.add(name)
        function = self._name("_record")
        body: list[str] = []
        entries: list[str] = []
        for field in schema["fields"]:
            var = self._name("v")
            body += self.value(field["type"], var, "    ")
            entries.append(f"{field['name']!r}: {var}")
        lines = [f"def {function}(buf, pos):", *body]
        lines.append("    return {" + ", ".join(entries) + "}, pos")
        self.functions.append("\n".join(lines))
        self._in_progress.discard(name)
        return function

    def value(self, schema: Any, var: str, ind: str) -> list[str]:
        kind = _kind(schema)
        if isinstance(schema, list):
            return self._union(schema, var, ind)
        if kind in PRIMITIVES:
            return _primitive(kind, var, ind)
        if kind == "record":
            return [f"{ind}{var}, pos = {self.record_function(schema)}(buf, pos)"]
        if kind == "enum":
            symbols = self._name("_symbols")
            self.constants[symbols] = tuple(schema["symbols"])
            return [
                f"{ind}{var}, pos = _read_long(buf, pos)",
                f"{ind}if {var} < 0:",
                f"{ind}    raise ValueError('negative enum index')",
                f"{ind}{var} = {symbols}[{var}]",
            ]
        if kind == "fixed":
            size = int(schema["size"])
            return [f"{ind}{var} = buf[pos:pos + {size}]", f"{ind}pos += {size}"]
        if kind == "array":
            return self._blocks(schema["items"], var, ind, is_map=False)
        if kind == "map":
            return self._blocks(schema["values"], var, ind, is_map=True)
        raise UnsupportedSchemaError(f"unsupported Avro type {schema!r}")

    def _union(self, branches: list[Any], var: str, ind: str) -> list[str]:
        if len(branches) > 63:
            raise UnsupportedSchemaError("unions of more than 63 branches are not supported")
        # Branch k is encoded as the one-byte zig-zag varint 2k.
        lines = [f"{ind}b = buf[pos]", f"{ind}pos += 1"]
        for index, branch in enumerate(branches):
            keyword = "if" if index == 0 else "elif"
            lines.append(f"{ind}{keyword} b == {2 * index}:")
            lines += self.value(branch, var, ind + "    ")
        lines += [f"{ind}else:", f"{ind}    raise ValueError('bad union index')"]
        return lines

    def _blocks(self, element: Any, var: str, ind: str, *, is_map: bool) -> list[str]:
        if _min_width(element) == 0 and not is_map:
            raise UnsupportedSchemaError("arrays of zero-width items are not supported")
        items, item, key = self._name("n"), self._name("x"), self._name("k")
        lines = [f"{ind}{var} = {{}}" if is_map else f"{ind}{var} = []"]
        lines += _varint(items, ind)
        lines += [
            f"{ind}while {items}:",
            f"{ind}    if {items} < 0:",
            f"{ind}        {items} = -{items}",
            f"{ind}        _, pos = _read_long(buf, pos)",
            f"{ind}    _check_count({items}, buf, pos)",
            f"{ind}    for _ in range({items}):",
        ]
        inner = ind + "        "
        if is_map:
            lines += _primitive("string", key, inner)
        lines += self.value(element, item, inner)
        lines.append(f"{inner}{var}[{key}] = {item}" if is_map else f"{inner}{var}.append({item})")
        lines += _varint(items, ind + "    ")
        return lines


def _kind(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, dict):
        return str(schema["type"]) if isinstance(schema["type"], str) else _kind(schema["type"])
    return "union"


def _min_width(schema: Any) -> int:
    kind = _kind(schema)
    if kind == "null":
        return 0
    if kind == "fixed":
        return int(schema["size"])
    if kind == "record":
        return sum(_min_width(f["type"]) for f in schema["fields"])
    return 1


def _varint(var: str, ind: str) -> list[str]:
    # Inlined zig-zag varint: one byte for -64..63 (counts, quantities, union-free ints),
    # a loop otherwise (timestamps take 6 bytes). At most 10 bytes / 64 bits, as read_long.
    return [
        f"{ind}b = buf[pos]",
        f"{ind}pos += 1",
        f"{ind}if b < 0x80:",
        f"{ind}    {var} = (b >> 1) ^ -(b & 1)",
        f"{ind}else:",
        f"{ind}    {var} = b & 0x7F",
        f"{ind}    shift = 7",
        f"{ind}    while True:",
        f"{ind}        b = buf[pos]",
        f"{ind}        pos += 1",
        f"{ind}        {var} |= (b & 0x7F) << shift",
        f"{ind}        if b < 0x80:",
        f"{ind}            break",
        f"{ind}        shift += 7",
        f"{ind}        if shift > 63:",
        f"{ind}            raise ValueError('varint longer than 10 bytes')",
        f"{ind}    if {var} >> 64:",
        f"{ind}        raise ValueError('varint exceeds 64 bits')",
        f"{ind}    {var} = ({var} >> 1) ^ -({var} & 1)",
    ]


def _primitive(kind: str, var: str, ind: str) -> list[str]:
    if kind == "null":
        return [f"{ind}{var} = None"]
    if kind == "boolean":
        return [
            f"{ind}{var} = buf[pos]",
            f"{ind}pos += 1",
            f"{ind}if {var} > 1:",
            f"{ind}    raise ValueError('bad boolean')",
            f"{ind}{var} = {var} == 1",
        ]
    if kind in ("int", "long"):
        return _varint(var, ind)
    if kind in ("float", "double"):
        size = 4 if kind == "float" else 8
        return [f"{ind}{var} = _unpack_{kind}(buf, pos)[0]", f"{ind}pos += {size}"]
    # string / bytes: a length below 64 is one even byte; the slice may come up short on
    # truncated input, which the caller's final "consumed every byte" check reports.
    convert = ".decode()" if kind == "string" else ""
    slow = "_read_string" if kind == "string" else "_read_bytes"
    return [
        f"{ind}b = buf[pos]",
        f"{ind}if b < 0x80 and not b & 1:",
        f"{ind}    end = pos + 1 + (b >> 1)",
        f"{ind}    {var} = buf[pos + 1:end]{convert}",
        f"{ind}    pos = end",
        f"{ind}else:",
        f"{ind}    {var}, pos = {slow}(buf, pos)",
    ]
