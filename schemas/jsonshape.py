"""Check and convert a JSON object into the record shape the Avro reader produces.

A ``kcat`` user may send JSON instead of Avro. The JSON uses the Avro field names; this
module compiles the Avro record schema into a converter so both paths hand
:func:`schemas.validation.build_event` the same dict: missing fields take their Avro
default, ``timestamp-millis`` fields accept epoch-millisecond ints or ISO-8601 strings
with a zone, integers must be JSON integers (money is integer minor units, never
``12.99``), and unknown keys are ignored (as an Avro reader ignores unknown fields).

Two top-level fields of the clickstream (schema v3) give their own reason when their JSON
type is wrong, so the dead letter says what the custom-event contract wants:
``event_name`` (INVALID_CUSTOM_EVENT: a string or null) and ``properties``
(INVALID_PROPERTIES: an object whose values are strings). Their bounds are checked by
:func:`schemas.validation.build_event`, as for Avro.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from schemas.errors import SchemaError
from schemas.reasons import Reason, Rejection

INT32_RANGE: Final = (-(2**31), 2**31 - 1)
INT64_RANGE: Final = (-(2**63), 2**63 - 1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
_MISSING: Final = object()

Convert = Callable[[Any, str], Any]
"""``convert(value, path) -> converted``; raises :class:`BadValue` naming ``path``."""


class BadValue(Exception):
    """Internal: a field failed its check; ``convert`` turns it into the Rejection."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.rejection = Rejection(reason, detail)


def compile_json_converter(definition: Mapping[str, Any]) -> Callable[[Any], Any]:
    """``convert(obj) -> record dict | Rejection`` for one Avro record schema."""
    convert_record = _record(definition, "")

    def convert(obj: Any) -> Any:
        try:
            return convert_record(obj, "")
        except BadValue as bad:
            return bad.rejection

    return convert


def _record(definition: Mapping[str, Any], prefix: str) -> Convert:
    fields: list[tuple[str, Convert, Any]] = []
    for field in definition["fields"]:
        name = field["name"]
        path = f"{prefix}.{name}" if prefix else name
        default = field.get("default", _MISSING)
        convert_field = _TOP_LEVEL.get(path) or _converter(field["type"], path)
        fields.append((name, convert_field, default))

    def convert(obj: Any, path: str) -> dict[str, Any]:
        if type(obj) is not dict:
            raise BadValue(Reason.WRONG_TYPE, f"{path or 'the record'} must be a JSON object")
        out: dict[str, Any] = {}
        for name, convert_field, default in fields:
            value = obj.get(name)
            if value is None:
                # JSON null for a field that is not nullable means "use the default", the
                # friendliest reading of hand-written records.
                if default is _MISSING:
                    raise BadValue(Reason.MISSING_FIELD, f"{_join(path, name)} is required")
                out[name] = _fresh(default)
            else:
                out[name] = convert_field(value, _join(path, name))
        return out

    return convert


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _fresh(default: Any) -> Any:
    # Defaults of {} and [] must not be shared between records.
    if isinstance(default, dict):
        return {}
    if isinstance(default, list):
        return []
    return default


def _converter(schema: Any, path: str) -> Convert:
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) != 1:
            raise SchemaError(f"JSON input supports only [null, T] unions, not {schema} at {path}")
        return _converter(branches[0], path)
    if isinstance(schema, dict):
        if schema.get("logicalType") == "timestamp-millis":
            return _timestamp
        kind = schema["type"]
        if kind == "array":
            return _array(schema["items"], path)
        if kind == "map":
            return _map(schema["values"], path)
        if kind == "record":
            return _record(schema, path)
        return _converter(kind, path)
    simple = _SIMPLE.get(schema)
    if simple is None:
        raise SchemaError(f"JSON input does not support Avro type {schema!r} at {path}")
    return simple


def _array(items: Any, path: str) -> Convert:
    convert_item = _converter(items, path)

    def convert(value: Any, at: str) -> list[Any]:
        if type(value) is not list:
            raise BadValue(Reason.WRONG_TYPE, f"{at} must be a JSON array")
        return [convert_item(item, f"{at}[{i}]") for i, item in enumerate(value)]

    return convert


def _map(values: Any, path: str) -> Convert:
    convert_value = _converter(values, path)

    def convert(value: Any, at: str) -> dict[str, Any]:
        if type(value) is not dict:
            raise BadValue(Reason.WRONG_TYPE, f"{at} must be a JSON object")
        return {key: convert_value(item, f"{at}.{key}") for key, item in value.items()}

    return convert


def _string(value: Any, at: str) -> str:
    if type(value) is not str:
        raise BadValue(Reason.WRONG_TYPE, f"{at} must be a string, got {type(value).__name__}")
    return value


def _integer(bounds: tuple[int, int]) -> Convert:
    low, high = bounds

    def convert(value: Any, at: str) -> int:
        if type(value) is not int:
            raise BadValue(
                Reason.WRONG_TYPE,
                f"{at} must be an integer, got {_shown(value)} (money is integer minor units: "
                "1299 for 12.99)",
            )
        if not low <= value <= high:
            raise BadValue(Reason.WRONG_TYPE, f"{at}={value} is outside {low}..{high}")
        return value

    return convert


def _shown(value: Any) -> str:
    """A bad value for a detail: arrays and objects by type only (their repr can be huge or
    nested deeper than the recursion limit), scalars cut after 40 characters."""
    if isinstance(value, list | dict):
        return "an array" if isinstance(value, list) else "an object"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _boolean(value: Any, at: str) -> bool:
    if type(value) is not bool:
        raise BadValue(Reason.WRONG_TYPE, f"{at} must be true or false")
    return value


def _timestamp(value: Any, at: str) -> int:
    if type(value) is int:
        if not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
            raise BadValue(Reason.WRONG_TYPE, f"{at}={value} is not an epoch-millisecond time")
        return value
    if type(value) is str:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise BadValue(
                Reason.WRONG_TYPE,
                f"{at}={_shown(value)} is not an ISO-8601 time with a zone; send epoch "
                "milliseconds or e.g. 2024-05-01T12:00:00.123Z",
            )
        return (moment - _EPOCH) // _ONE_MS
    raise BadValue(
        Reason.WRONG_TYPE, f"{at} must be epoch milliseconds (int) or an ISO-8601 string"
    )


def _event_name(value: Any, at: str) -> str:
    if type(value) is not str:
        raise BadValue(
            Reason.INVALID_CUSTOM_EVENT,
            f"{at} must be a string (the custom event's name) or null, not " + type(value).__name__,
        )
    return value


def _properties(value: Any, at: str) -> dict[str, str]:
    if type(value) is not dict:
        raise BadValue(
            Reason.INVALID_PROPERTIES,
            f"{at} must be a JSON object of string values, got {type(value).__name__}",
        )
    for key, item in value.items():
        if type(item) is not str:
            raise BadValue(
                Reason.INVALID_PROPERTIES,
                f"{at}[{key[:40]!a}] must be a string, got {type(item).__name__}; values "
                'are strings (send "3", not 3)',
            )
    return value


# Top-level fields whose type errors have a reason of their own (see the module doc).
_TOP_LEVEL: Final[dict[str, Convert]] = {
    "event_name": _event_name,
    "properties": _properties,
}

_SIMPLE: Final[dict[str, Convert]] = {
    "string": _string,
    "long": _integer(INT64_RANGE),
    "int": _integer(INT32_RANGE),
    "boolean": _boolean,
}
