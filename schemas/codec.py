"""Bytes <-> events: Confluent-framed Avro (the contract) and JSON (for humans and ``kcat``).

Wire format of an Avro record (Confluent): ``b"\\x00"`` + 4-byte big-endian schema id
(``schemas/registry.json``) + the Avro binary body. ``decode`` accepts every registered
version of the topic's schema; ``encode_avro`` writes the latest one (or ``version=``).

``decode`` never raises on bad input: it returns a :class:`~schemas.reasons.Rejection`
for the dead-letter topic. Per record it checks, in order: size (PAYLOAD_TOO_LARGE);
framing (first byte 0x00 -> Avro, unknown id -> UNKNOWN_SCHEMA_ID; first non-space byte
``{`` -> JSON; anything else or a body that does not parse -> UNDECODABLE); JSON field
types (MISSING_FIELD, WRONG_TYPE); then :func:`schemas.validation.build_event`.

Encoding checks types against the schema with fastavro and raises
:class:`~schemas.errors.EncodeError` rather than writing silently wrong bytes (fastavro
alone would write ``12.99`` into a ``long`` field as 12). It does not check semantic
rules (negative prices, unknown event types): the simulator produces such records on
purpose to exercise the dead-letter path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from io import BytesIO
from typing import Any, Final

import fastavro
import orjson
from fastavro.validation import ValidationError, validate

from schemas.avroread import Reader, UnsupportedSchemaError, compile_reader, fastavro_reader
from schemas.deadletter import DeadLetter
from schemas.errors import DecodeError, EncodeError, SchemaError
from schemas.jsonshape import compile_json_converter
from schemas.model import Event, Item, StreamKind
from schemas.properties import CUSTOM_EVENT_PREFIX
from schemas.reasons import Reason, Rejection
from schemas.registry import RegisteredSchema, SchemaRegistry, strip_logical_types
from schemas.triggers import TRIGGER_TYPES, Trigger, TriggerItem
from schemas.validation import CUSTOM_EVENT_TYPE, ValidationBounds, build_event

INPUT_STREAMS: Final[tuple[StreamKind, ...]] = ("clickstream", "cart", "orders")
DEADLETTER_SCHEMA: Final = "deadletter"
TRIGGER_SCHEMA: Final = "trigger"
# Fields build_event reads; every registered version of an input schema must have them.
# (event_name and properties, clickstream v3 on, are read when present.)
EVENT_RECORD_FIELDS: Final = frozenset(
    {
        "event_id", "event_type", "event_time", "sent_time", "anonymous_id", "session_id",
        "user_id", "platform", "device", "country", "page_url", "referrer", "utm_source",
        "utm_medium", "utm_campaign", "utm_content", "utm_term", "experiments",
        "referral_code", "search_term", "items", "cart_id", "transaction_id", "currency",
        "value", "tax", "shipping", "coupon", "discount", "payment_type", "refund_reason",
        "payment_error_code",
    }
)  # fmt: skip
_DETAIL_LIMIT: Final = 300


class EventCodec:
    """Encode and decode input events, dead letters and triggers; build once, share freely.

    ``compiled_reader=False`` decodes Avro with fastavro instead of the compiled reader
    (same results, about a third fewer records/s); it exists for comparison and as a
    fallback.
    """

    def __init__(
        self,
        registry: SchemaRegistry | None = None,
        bounds: ValidationBounds | None = None,
        *,
        compiled_reader: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else SchemaRegistry.load()
        self.bounds = bounds if bounds is not None else ValidationBounds()
        self._compiled = compiled_reader
        self._parsed: dict[int, Any] = {}
        self._readers: dict[int, Reader] = {}
        self._stream_readers: dict[str, dict[int, Reader]] = {}
        self._json: dict[str, Callable[[Any], Any]] = {}
        for stream in INPUT_STREAMS:
            versions = self.registry.versions(stream)
            for schema in versions:
                _require_event_fields(schema)
            self._stream_readers[stream] = {s.schema_id: self._reader(s) for s in versions}
            self._json[stream] = compile_json_converter(versions[-1].definition)
        for name in (DEADLETTER_SCHEMA, TRIGGER_SCHEMA):
            for schema in self.registry.versions(name):
                self._reader(schema)

    # -- decoding input events (hot path) ---------------------------------------------

    def decode(self, raw: bytes, stream: StreamKind, now_ms: int) -> Event | Rejection:
        """The validated Event, or why ``raw`` belongs on the dead-letter topic."""
        if len(raw) > self.bounds.max_payload_bytes:
            return Rejection(
                Reason.PAYLOAD_TOO_LARGE,
                f"record is {len(raw)} bytes; the limit is {self.bounds.max_payload_bytes}",
            )
        try:
            readers = self._stream_readers[stream]
        except KeyError:
            raise SchemaError(
                f"unknown stream {stream!r}; expected one of {', '.join(INPUT_STREAMS)}"
            ) from None
        if raw[:1] == b"\x00":
            record = self._read_avro(raw, stream, readers)
        elif raw.lstrip()[:1] == b"{":
            record = self._read_json(raw, stream)
        else:
            return Rejection(
                Reason.UNDECODABLE,
                "record is neither Confluent Avro (first byte 0x00) nor a JSON object "
                f"(starts with {bytes(raw[:8])!r})",
            )
        if isinstance(record, Rejection):
            return record
        return build_event(record, stream, now_ms, self.bounds)

    def _read_avro(
        self, raw: bytes, stream: str, readers: Mapping[int, Reader]
    ) -> Mapping[str, Any] | Rejection:
        if len(raw) < 5:
            return Rejection(Reason.UNDECODABLE, f"Avro frame of {len(raw)} bytes has no schema id")
        schema_id = int.from_bytes(raw[1:5], "big")
        reader = readers.get(schema_id)
        if reader is None:
            return Rejection(Reason.UNKNOWN_SCHEMA_ID, self._unknown_id_detail(schema_id, stream))
        try:
            record, end = reader(raw, 5)
        except Exception as exc:  # any parse failure of hostile bytes is a dead letter
            return Rejection(Reason.UNDECODABLE, _avro_failure(schema_id, exc))
        if end != len(raw):
            problem = "is truncated" if end > len(raw) else f"has {len(raw) - end} trailing bytes"
            return Rejection(Reason.UNDECODABLE, f"Avro body for schema id {schema_id} {problem}")
        result: Mapping[str, Any] = record
        return result

    def _read_json(self, raw: bytes, stream: str) -> Mapping[str, Any] | Rejection:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Rejection(Reason.UNDECODABLE, _clip(f"invalid JSON: {exc}"))
        if type(obj) is not dict:
            return Rejection(Reason.UNDECODABLE, "JSON record must be an object")
        if obj.get("sent_time") is None and "event_time" in obj:
            # Hand-written records may leave out the tracker's send time.
            obj["sent_time"] = obj["event_time"]
        result: Mapping[str, Any] | Rejection = self._json[stream](obj)
        return result

    def _unknown_id_detail(self, schema_id: int, stream: str) -> str:
        known = ", ".join(str(i) for i in self._stream_readers[stream])
        other = self.registry.by_id(schema_id)
        if other is not None:
            return (
                f"schema id {schema_id} is {other.name} v{other.version}, not a {stream} "
                f"schema (expected one of {known}); produce to the right topic"
            )
        return (
            f"schema id {schema_id} is not registered for {stream} (expected one of {known}); "
            "register the schema in schemas/registry.json or fix the producer"
        )

    # -- encoding input events ------------------------------------------------------------

    def encode_avro(self, event: Event, *, version: int | None = None) -> bytes:
        """Confluent-framed Avro of ``event`` with its stream's latest (or given) schema.

        Deterministic: the same Event always gives the same bytes (map keys are sorted).
        A custom event (``custom:<name>``) is written as event_type ``custom`` plus
        ``event_name``; it and ``properties`` need a schema with those fields
        (clickstream v3 on), else EncodeError rather than silently dropped fields.
        """
        schema = self._event_schema(event, version)
        record = event_to_record(event)
        _require_custom_fields(schema, record, event)
        return self._write_avro(schema, record, f"event {event.event_id!r}")

    def encode_json(self, event: Event) -> bytes:
        """UTF-8 JSON object with the latest schema's field names; null fields are left out."""
        schema = self._event_schema(event, None)
        record = event_to_record(event)
        _require_custom_fields(schema, record, event)
        self._check(schema, record, f"event {event.event_id!r}")
        fields = set(schema.field_names)
        record = {k: v for k, v in record.items() if k in fields}
        record["items"] = [_without_nulls(item) for item in record["items"]]
        return orjson.dumps(_without_nulls(record))

    def _event_schema(self, event: Event, version: int | None) -> RegisteredSchema:
        if event.stream not in self._stream_readers:
            raise EncodeError(
                f"event {event.event_id!r} has stream {event.stream!r}; expected one of "
                f"{', '.join(INPUT_STREAMS)}"
            )
        if version is None:
            return self.registry.latest(event.stream)
        return self.registry.get(event.stream, version)

    # -- dead letters and triggers --------------------------------------------------------

    def encode_dead_letter(self, dl: DeadLetter) -> bytes:
        record = {
            "raw": dl.raw,
            "reason": dl.reason,
            "detail": dl.detail,
            "source_topic": dl.source_topic,
            "source_partition": dl.source_partition,
            "source_offset": dl.source_offset,
            "key": dl.key,
            "received_at": dl.received_at_ms,
        }
        schema = self.registry.latest(DEADLETTER_SCHEMA)
        return self._write_avro(schema, record, f"dead letter at offset {dl.source_offset}")

    def decode_dead_letter(self, raw: bytes) -> DeadLetter:
        """Inverse of :meth:`encode_dead_letter`; raises DecodeError on foreign bytes."""
        rec = self._read_own(raw, DEADLETTER_SCHEMA)
        return DeadLetter(
            raw=rec["raw"],
            reason=rec["reason"],
            detail=rec["detail"],
            source_topic=rec["source_topic"],
            source_partition=rec["source_partition"],
            source_offset=rec["source_offset"],
            key=rec["key"],
            received_at_ms=rec["received_at"],
        )

    def encode_trigger(self, trig: Trigger) -> bytes:
        """Confluent-framed Avro of a :class:`~schemas.triggers.Trigger` (schema trigger.v1)."""
        if trig.trigger_type not in TRIGGER_TYPES:
            raise EncodeError(
                f"trigger_type {trig.trigger_type!r} is not one of {', '.join(TRIGGER_TYPES)}"
            )
        record = {
            "trigger_id": trig.trigger_id,
            "trigger_type": trig.trigger_type,
            "anonymous_id": trig.anonymous_id,
            "user_id": trig.user_id,
            "occurred_at": trig.occurred_at_ms,
            "emitted_at": trig.emitted_at_ms,
            "cart_value_minor": trig.cart_value_minor,
            "currency": trig.currency,
            "items": [
                {"item_id": i.item_id, "quantity": i.quantity, "price": i.price_minor}
                for i in trig.items
            ],
            "channel": trig.channel,
            "segment": trig.segment,
            "previous_segment": trig.previous_segment,
            "detail": dict(sorted(trig.detail.items())),
        }
        schema = self.registry.latest(TRIGGER_SCHEMA)
        return self._write_avro(schema, record, f"trigger {trig.trigger_id!r}")

    def decode_trigger(self, raw: bytes) -> Trigger:
        """Inverse of :meth:`encode_trigger`; raises DecodeError on foreign bytes."""
        rec = self._read_own(raw, TRIGGER_SCHEMA)
        return Trigger(
            trigger_id=rec["trigger_id"],
            trigger_type=rec["trigger_type"],
            anonymous_id=rec["anonymous_id"],
            occurred_at_ms=rec["occurred_at"],
            emitted_at_ms=rec["emitted_at"],
            user_id=rec["user_id"],
            cart_value_minor=rec["cart_value_minor"],
            currency=rec["currency"],
            items=tuple(TriggerItem(i["item_id"], i["quantity"], i["price"]) for i in rec["items"]),
            channel=rec["channel"],
            segment=rec["segment"],
            previous_segment=rec["previous_segment"],
            detail=rec["detail"],
        )

    # -- plumbing -------------------------------------------------------------------------

    def _reader(self, schema: RegisteredSchema) -> Reader:
        stripped = strip_logical_types(schema.definition)
        self._parsed[schema.schema_id] = fastavro.parse_schema(stripped, {})
        reader: Reader
        try:
            if not self._compiled:
                raise UnsupportedSchemaError("compiled reader disabled")
            reader = compile_reader(stripped)
        except UnsupportedSchemaError:
            reader = fastavro_reader(self._parsed[schema.schema_id])
        self._readers[schema.schema_id] = reader
        return reader

    def _check(self, schema: RegisteredSchema, record: Mapping[str, Any], what: str) -> None:
        parsed = self._parsed[schema.schema_id]
        # The raising mode builds an exception per union branch it tries (slow); run it
        # only to describe a record already known to be wrong.
        if validate(record, parsed, raise_errors=False):
            return
        try:
            validate(record, parsed, raise_errors=True)
        except ValidationError as exc:
            raise EncodeError(
                f"{what} does not fit schema {schema.name} v{schema.version}: "
                f"{_clip(str(exc))}; fix the field types in the producer"
            ) from exc

    def _write_avro(self, schema: RegisteredSchema, record: Mapping[str, Any], what: str) -> bytes:
        self._check(schema, record, what)
        out = BytesIO()
        out.write(schema.header)
        fastavro.schemaless_writer(out, self._parsed[schema.schema_id], record)
        return out.getvalue()

    def _read_own(self, raw: bytes, name: str) -> Mapping[str, Any]:
        schema_id = int.from_bytes(raw[1:5], "big") if len(raw) >= 5 else -1
        schema = self.registry.by_id(schema_id)
        if raw[:1] != b"\x00" or schema is None or schema.name != name:
            raise DecodeError(f"bytes are not a Confluent-framed {name} record ({raw[:5]!r})")
        try:
            record, end = self._readers[schema_id](raw, 5)
        except Exception as exc:  # parse failures of any type mean "not our record"
            raise DecodeError(_avro_failure(schema_id, exc)) from exc
        if end != len(raw):
            raise DecodeError(f"{name} record has {len(raw) - end} unexpected trailing bytes")
        result: Mapping[str, Any] = record
        return result


def split_event_type(event_type: str) -> tuple[str, str | None]:
    """Wire ``(event_type, event_name)`` of an Event's type: ``custom:x`` -> ``("custom", "x")``."""
    if event_type.startswith(CUSTOM_EVENT_PREFIX):
        return CUSTOM_EVENT_TYPE, event_type[len(CUSTOM_EVENT_PREFIX) :]
    return event_type, None


def event_to_record(event: Event) -> dict[str, Any]:
    """The Avro record dict of an Event (field names as in the ``.avsc`` files).

    ``event_name`` and ``properties`` exist in clickstream v3 on; writers of other
    schemas ignore them (after :func:`_require_custom_fields` made sure they are empty).
    """
    event_type, event_name = split_event_type(event.event_type)
    return {
        "event_id": event.event_id,
        "event_type": event_type,
        "event_time": event.event_time_ms,
        "sent_time": event.sent_time_ms,
        "anonymous_id": event.anonymous_id,
        "session_id": event.session_id,
        "user_id": event.user_id,
        "platform": event.platform,
        "device": event.device,
        "country": event.country,
        "page_url": event.page_url,
        "referrer": event.referrer,
        "utm_source": event.utm_source,
        "utm_medium": event.utm_medium,
        "utm_campaign": event.utm_campaign,
        "utm_content": event.utm_content,
        "utm_term": event.utm_term,
        # Sorted so equal Events always encode to identical bytes.
        "experiments": dict(sorted(event.experiments.items())),
        "referral_code": event.referral_code,
        "search_term": event.search_term,
        "items": [_item_to_record(item) for item in event.items],
        "cart_id": event.cart_id,
        "transaction_id": event.transaction_id,
        "currency": event.currency,
        "value": event.value_minor,
        "tax": event.tax_minor,
        "shipping": event.shipping_minor,
        "coupon": event.coupon,
        "discount": event.discount_minor,
        "payment_type": event.payment_type,
        "refund_reason": event.refund_reason,
        "payment_error_code": event.payment_error_code,
        "event_name": event_name,
        # Sorted, as experiments.
        "properties": dict(sorted(event.properties.items())),
    }


def _require_custom_fields(
    schema: RegisteredSchema, record: Mapping[str, Any], event: Event
) -> None:
    names = schema.field_names
    lost = [
        name
        for name in ("event_name", "properties")
        if record[name] not in (None, {}) and name not in names
    ]
    if lost:
        raise EncodeError(
            f"event {event.event_id!r} ({event.event_type}) sets {' and '.join(lost)}, which "
            f"schema {schema.name} v{schema.version} does not have; custom events and "
            "properties need clickstream v3 or later"
        )


def _item_to_record(item: Item) -> dict[str, Any]:
    return {
        "item_id": item.item_id,
        "item_name": item.item_name,
        "item_category": item.item_category,
        "item_brand": item.item_brand,
        "item_variant": item.item_variant,
        "price": item.price_minor,
        "quantity": item.quantity,
        "coupon": item.coupon,
        "discount": item.discount_minor,
    }


def _without_nulls(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not None}


def _require_event_fields(schema: RegisteredSchema) -> None:
    missing = EVENT_RECORD_FIELDS.difference(schema.field_names)
    if missing:
        raise SchemaError(
            f"{schema.path} lacks fields the Event needs: {', '.join(sorted(missing))}; "
            "keep every field (add new ones with a default) so all versions decode"
        )


def _avro_failure(schema_id: int, exc: Exception) -> str:
    return _clip(f"Avro body does not match schema id {schema_id}: {type(exc).__name__}: {exc}")


def _clip(text: str) -> str:
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 3] + "..."
