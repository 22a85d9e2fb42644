"""Property tests: decode(encode(e)) == e, and the compiled Avro reader == fastavro."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.avroread import compile_reader, read_long
from schemas.codec import EventCodec
from schemas.iso4217 import ACTIVE_CODES
from schemas.model import EVENTS_BY_STREAM, PLATFORMS, Event, Item
from schemas.registry import SchemaRegistry, strip_logical_types
from schemas.validation import (
    EARLIEST_EVENT_TIME_MS,
    MAX_ITEM_UNITS,
    MAX_MONEY_MINOR,
    id_problem,
)

NOW_MS = 1_714_567_890_123
REGISTRY = SchemaRegistry.load()
COMPILED = EventCodec(REGISTRY)
FASTAVRO = EventCodec(REGISTRY, compiled_reader=False)
# Per stream: (compiled reader, fastavro-parsed schema) of the latest version.
READERS = {
    stream: (
        compile_reader(strip_logical_types(REGISTRY.latest(stream).definition)),
        fastavro.parse_schema(strip_logical_types(REGISTRY.latest(stream).definition), {}),
    )
    for stream in EVENTS_BY_STREAM
}

texts = st.text(max_size=12)
# Valid ids (schemas/validation.py): no control characters, not blank, not too long.
ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40
).filter(lambda s: id_problem(s) is None)
optional_ids = st.none() | st.just("") | ids
optional_texts = st.none() | texts
# Amounts within the validation bounds; the extremes are the interesting cases.
money = st.integers(0, MAX_MONEY_MINOR) | st.sampled_from([0, 1, MAX_MONEY_MINOR])
MAX_LINES = 4


@st.composite
def items(draw: st.DrawFn) -> Item:
    # Each of up to MAX_LINES lines takes at most a quarter of the per-event bounds.
    price = draw(st.integers(0, MAX_MONEY_MINOR // MAX_LINES) | st.just(0))
    most = MAX_ITEM_UNITS // MAX_LINES
    if price:
        most = min(most, MAX_MONEY_MINOR // MAX_LINES // price)
    return Item(
        item_id=draw(ids),
        price_minor=price,
        quantity=draw(st.integers(0, most)),
        item_name=draw(optional_texts),
        item_category=draw(optional_texts),
        item_brand=draw(optional_texts),
        item_variant=draw(optional_texts),
        coupon=draw(optional_texts),
        discount_minor=draw(st.integers(0, price)),
    )


@st.composite
def valid_events(draw: st.DrawFn) -> Event:
    stream = draw(st.sampled_from(sorted(EVENTS_BY_STREAM)))
    lines = tuple(draw(st.lists(items(), max_size=MAX_LINES)))
    amounts = {
        name: draw(st.none() | money) for name in ("value_minor", "tax_minor", "shipping_minor")
    }
    item_discount = sum(i.discount_minor * i.quantity for i in lines)
    amounts["discount_minor"] = draw(st.none() | st.integers(0, MAX_MONEY_MINOR - item_discount))
    needs_currency = bool(lines) or any(v is not None for v in amounts.values())
    currency_choice = st.sampled_from(sorted(ACTIVE_CODES))
    currency = draw(currency_choice if needs_currency else st.none() | currency_choice)
    return Event(
        stream=stream,  # type: ignore[arg-type]
        event_type=draw(st.sampled_from(sorted(EVENTS_BY_STREAM[stream]))),
        event_id=draw(ids),
        event_time_ms=draw(st.integers(NOW_MS - 6 * 86_400_000, NOW_MS + 200_000)),
        sent_time_ms=draw(st.integers(EARLIEST_EVENT_TIME_MS, NOW_MS + 300_000)),
        anonymous_id=draw(ids),
        session_id=draw(ids),
        user_id=draw(optional_ids),
        platform=draw(st.sampled_from(PLATFORMS)),
        device=draw(texts),
        country=draw(texts),
        page_url=draw(optional_texts),
        referrer=draw(optional_texts),
        utm_source=draw(optional_texts),
        utm_medium=draw(optional_texts),
        utm_campaign=draw(optional_texts),
        utm_content=draw(optional_texts),
        utm_term=draw(optional_texts),
        experiments=draw(st.dictionaries(texts, texts, max_size=3)),
        referral_code=draw(optional_texts),
        search_term=draw(optional_texts),
        items=lines,
        cart_id=draw(optional_ids),
        transaction_id=draw(optional_ids),
        currency=currency,
        coupon=draw(optional_texts),
        payment_type=draw(optional_texts),
        refund_reason=draw(optional_texts),
        payment_error_code=draw(optional_texts),
        **amounts,
    )


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(valid_events())
def test_avro_round_trip_with_compiled_reader(event: Event) -> None:
    assert COMPILED.decode(COMPILED.encode_avro(event), event.stream, NOW_MS) == event


@PROPERTY
@given(valid_events())
def test_avro_round_trip_with_fastavro_reader(event: Event) -> None:
    assert FASTAVRO.decode(FASTAVRO.encode_avro(event), event.stream, NOW_MS) == event


@PROPERTY
@given(valid_events())
def test_json_round_trip(event: Event) -> None:
    assert COMPILED.decode(COMPILED.encode_json(event), event.stream, NOW_MS) == event


@PROPERTY
@given(valid_events())
def test_every_registered_version_round_trips(event: Event) -> None:
    for schema in REGISTRY.versions(event.stream):
        raw = COMPILED.encode_avro(event, version=schema.version)
        assert COMPILED.decode(raw, event.stream, NOW_MS) == event


def _read_with_fastavro(parsed: Any, body: bytes) -> tuple[Any, int]:
    stream = io.BytesIO(body)
    return fastavro.schemaless_reader(stream, parsed, None), stream.tell()


@PROPERTY
@given(valid_events(), st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1))
def test_compiled_reader_reads_every_long_even_those_validation_rejects(
    event: Event, amount: int, sent_time: int
) -> None:
    # Validation bounds money and times (a round trip stays inside them); the reader
    # itself must still read the full 64-bit range as fastavro does.
    compiled, parsed = READERS[event.stream]
    extreme = replace(
        event,
        value_minor=amount,
        sent_time_ms=sent_time,
        items=(Item(item_id="x", price_minor=amount, discount_minor=~amount),),
    )
    body = COMPILED.encode_avro(extreme)[5:]
    assert compiled(body, 0) == _read_with_fastavro(parsed, body)


@settings(max_examples=300, deadline=None)
@given(valid_events(), st.data())
def test_compiled_reader_agrees_with_fastavro_on_corrupted_bytes(
    event: Event, data: st.DataObject
) -> None:
    # Flip or drop bytes of a valid record: whenever both readers accept the whole body,
    # they must return the same record.
    compiled, parsed = READERS[event.stream]
    body = bytearray(COMPILED.encode_avro(event)[5:])
    position = data.draw(st.integers(0, len(body) - 1))
    if data.draw(st.booleans()):
        body[position] = data.draw(st.integers(0, 255))
    else:
        del body[position:]
    raw = bytes(body)
    try:
        ours, our_end = compiled(raw, 0)
    except Exception:
        ours, our_end = None, -1
    try:
        theirs, their_end = _read_with_fastavro(parsed, raw)
    except Exception:
        theirs, their_end = None, -1
    if our_end == len(raw) and their_end == len(raw):
        assert ours == theirs


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "record", "name": "P", "fields": [
            {"name": "b", "type": "boolean"},
            {"name": "f", "type": "float"},
            {"name": "d", "type": "double"},
            {"name": "y", "type": "bytes"},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
            {"name": "x", "type": {"type": "fixed", "name": "F", "size": 3}},
            {"name": "u", "type": ["null", "int", "string"]},
            {"name": "m", "type": {"type": "map", "values": {"type": "array", "items": "long"}}},
            {"name": "r", "type": {"type": "record", "name": "R", "fields": [
                {"name": "s", "type": "string"}]}},
            {"name": "r2", "type": "R"},
        ]},
    ],
)  # fmt: skip
def test_compiled_reader_covers_every_avro_type(schema: dict[str, Any]) -> None:
    record = {
        "b": True,
        "f": 1.5,
        "d": -2.25,
        "y": b"\x00\xff" * 40,
        "e": "C",
        "x": b"abc",
        "u": "long string " * 10,
        "m": {"k": [1, -(2**40), 2**62]},
        "r": {"s": "é"},
        "r2": {"s": ""},
    }
    parsed = fastavro.parse_schema(schema, {})
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, record)
    body = out.getvalue()
    assert compile_reader(schema)(body, 0) == (record, len(body))


def test_compiled_reader_reads_multi_block_arrays() -> None:
    # Writers may split arrays into blocks with a negative count and a byte size.
    schema = {"type": "record", "name": "A", "fields": [
        {"name": "a", "type": {"type": "array", "items": "int"}}]}  # fmt: skip
    body = bytes([0x03, 0x04, 0x02, 0x04, 0x02, 0x06, 0x00])  # block(-2, 4 bytes)[1, 2], [3]
    assert compile_reader(schema)(body, 0) == ({"a": [1, 2, 3]}, len(body))


def test_compiled_reader_refuses_hostile_counts_and_varints() -> None:
    schema = {"type": "record", "name": "A", "fields": [
        {"name": "a", "type": {"type": "array", "items": "string"}}]}  # fmt: skip
    reader = compile_reader(schema)
    with pytest.raises(ValueError, match="block count"):
        reader(bytes([0xFE, 0xFF, 0xFF, 0xFF, 0x0F]), 0)
    with pytest.raises(ValueError, match="varint"):
        read_long(bytes([0xFF] * 11), 0)
