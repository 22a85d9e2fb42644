"""decode() returns the right Rejection for each reason code, and never raises."""

from __future__ import annotations

import io
import json
from dataclasses import fields, replace
from typing import Any

import fastavro
import orjson
import pytest

from funnel.settings import load_settings
from schemas.codec import EventCodec, event_to_record
from schemas.errors import EncodeError, SchemaError
from schemas.model import Event, Item
from schemas.reasons import Reason, Rejection
from schemas.registry import SchemaRegistry, strip_logical_types
from schemas.validation import EVENT_FIELD_ORDER, ITEM_FIELD_ORDER, ValidationBounds

NOW = 1_714_567_890_123
DAY = 86_400_000
CODEC = EventCodec()
BASE = Event(
    stream="cart",
    event_type="add_to_cart",
    event_id="e-1",
    event_time_ms=NOW,
    sent_time_ms=NOW,
    anonymous_id="a-1",
    session_id="s-1",
    items=(Item(item_id="sku-1", price_minor=1000, quantity=1),),
    currency="CNY",
    value_minor=1000,
)
BASE_JSON: dict[str, Any] = orjson.loads(CODEC.encode_json(BASE))


def avro(**changes: Any) -> bytes:
    return CODEC.encode_avro(replace(BASE, **changes))


def as_json(**changes: Any) -> bytes:
    return orjson.dumps({**BASE_JSON, **changes})


def rejected(raw: bytes, stream: str = "cart", codec: EventCodec = CODEC) -> Rejection:
    result = codec.decode(raw, stream, NOW)  # type: ignore[arg-type]
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result


CASES: list[tuple[str, bytes, Reason, str]] = [
    ("not avro nor json", b"hello", Reason.UNDECODABLE, "neither"),
    ("empty record", b"", Reason.UNDECODABLE, "neither"),
    ("json array", b"[1, 2]", Reason.UNDECODABLE, "neither"),
    ("frame without id", b"\x00\x00\x00", Reason.UNDECODABLE, "no schema id"),
    ("truncated avro body", avro()[:-3], Reason.UNDECODABLE, "schema id 201"),
    ("trailing bytes", avro() + b"\x00\x00", Reason.UNDECODABLE, "2 trailing bytes"),
    ("bad utf-8 in avro", avro(event_id="\u00e9").replace(b"\xc3\xa9", b"\xc3\x28"),
     Reason.UNDECODABLE, "UnicodeDecodeError"),
    ("broken json", b'{"event_id": ', Reason.UNDECODABLE, "invalid JSON"),
    ("unregistered id", b"\x00\x00\x00\x03\xe7" + avro()[5:], Reason.UNKNOWN_SCHEMA_ID,
     "999 is not registered for cart"),
    ("json missing anonymous_id", orjson.dumps({k: v for k, v in BASE_JSON.items()
     if k != "anonymous_id"}), Reason.MISSING_FIELD, "anonymous_id is required"),
    ("json item without price", as_json(items=[{"item_id": "x"}]), Reason.MISSING_FIELD,
     "items[0].price is required"),
    ("empty event_id", avro(event_id=""), Reason.MISSING_FIELD, "event_id must not be empty"),
    ("empty item_id", avro(items=(Item(item_id="", price_minor=1),)), Reason.MISSING_FIELD,
     "items[0].item_id"),
    ("float money", as_json(value=12.99), Reason.WRONG_TYPE, "minor units"),
    ("string price", as_json(items=[{"item_id": "x", "price": "10"}]), Reason.WRONG_TYPE,
     "items[0].price"),
    ("unparseable time", as_json(event_time="yesterday"), Reason.WRONG_TYPE, "ISO-8601"),
    ("time without zone", as_json(event_time="2024-05-01T12:00:00"), Reason.WRONG_TYPE,
     "with a zone"),
    ("bool as int", as_json(value=True), Reason.WRONG_TYPE, "value"),
    ("experiments not strings", as_json(experiments={"a": 1}), Reason.WRONG_TYPE,
     "experiments.a"),
    ("items not a list", as_json(items={"item_id": "x"}), Reason.WRONG_TYPE, "items"),
    ("quantity beyond int32", as_json(items=[{"item_id": "x", "price": 1,
     "quantity": 2**31}]), Reason.WRONG_TYPE, "items[0].quantity"),
    ("purchase on cart topic", avro(event_type="purchase"), Reason.UNKNOWN_EVENT_TYPE,
     "belongs on the orders stream"),
    ("made-up event type", as_json(event_type="teleport"), Reason.UNKNOWN_EVENT_TYPE,
     "allowed: add_payment_info"),
    ("negative item price", avro(items=(Item(item_id="x", price_minor=-1),)),
     Reason.NEGATIVE_PRICE, "items[0].price=-1"),
    ("negative item discount", avro(items=(Item(item_id="x", price_minor=1,
     discount_minor=-5),)), Reason.NEGATIVE_PRICE, "items[0].discount=-5"),
    ("negative value", avro(value_minor=-100), Reason.NEGATIVE_PRICE, "value=-100"),
    ("negative shipping", as_json(shipping=-1), Reason.NEGATIVE_PRICE, "shipping=-1"),
    ("negative quantity", avro(items=(Item(item_id="x", price_minor=1, quantity=-2),)),
     Reason.NEGATIVE_QUANTITY, "items[0].quantity=-2"),
    ("lower-case currency", avro(currency="cny"), Reason.INVALID_CURRENCY, "'cny'"),
    ("withdrawn currency", avro(currency="HRK"), Reason.INVALID_CURRENCY, "'HRK'"),
    ("money without currency", avro(currency=None), Reason.INVALID_CURRENCY, "required"),
    ("tax without currency", avro(currency=None, items=(), value_minor=None, tax_minor=5),
     Reason.INVALID_CURRENCY, "required"),
    ("unknown platform", avro(platform="ios"), Reason.INVALID_PLATFORM, "'ios'"),
    ("201 items", avro(items=(Item(item_id="x", price_minor=1),) * 201),
     Reason.TOO_MANY_ITEMS, "201 items"),
    ("6 minutes ahead", avro(event_time_ms=NOW + 360_000), Reason.EVENT_TIME_IN_FUTURE,
     "360000 ms ahead"),
    ("8 days old", avro(event_time_ms=NOW - 8 * DAY), Reason.EVENT_TIME_TOO_OLD,
     "replay"),
    ("seconds not millis", as_json(event_time=NOW // 1000), Reason.EVENT_TIME_TOO_OLD,
     "not seconds"),
    ("zero-width space session_id", avro(session_id="\u200b"), Reason.INVALID_ID,
     "session_id '\\u200b' is blank"),
    ("NUL in anonymous_id", as_json(anonymous_id="a\u0000"), Reason.INVALID_ID,
     "control character U+0000"),
    ("sent_time of -2**63", avro(sent_time_ms=-(2**63)), Reason.TIMESTAMP_OUT_OF_RANGE,
     "sent_time -9223372036854775808 is before 2000-01-01"),
    ("value of 10**15", avro(value_minor=10**15), Reason.AMOUNT_OUT_OF_RANGE,
     "value=1000000000000000 is above the limit"),
    ("discount of 2**62", as_json(items=[{"item_id": "x", "price": 1, "quantity": 8,
     "discount": 2**62}]), Reason.AMOUNT_OUT_OF_RANGE, "items[0].discount=4611686018427387904"),
    ("two million units", avro(items=(Item(item_id="x", price_minor=1, quantity=2_000_000),)),
     Reason.QUANTITY_OUT_OF_RANGE, "items[0].quantity=2000000"),
    ("discount above price", avro(items=(Item(item_id="x", price_minor=100,
     discount_minor=101),)), Reason.DISCOUNT_EXCEEDS_PRICE,
     "items[0].discount=101 is larger than items[0].price=100"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "reason", "detail"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decode_rejects_with_reason(raw: bytes, reason: Reason, detail: str) -> None:
    rejection = rejected(raw)
    assert rejection.reason is reason
    assert detail in rejection.detail


CLICK = replace(BASE, stream="clickstream", event_type="view_item")
CLICK_JSON: dict[str, Any] = orjson.loads(CODEC.encode_json(CLICK))

# Custom events and properties exist on the clickstream only (schema v3); every case of
# each rule is in tests/unit/test_custom_events.py.
CLICK_CASES: list[tuple[str, bytes, Reason, str]] = [
    ("custom without event_name", orjson.dumps({**CLICK_JSON, "event_type": "custom"}),
     Reason.INVALID_CUSTOM_EVENT, "event_type 'custom' needs event_name"),
    ("custom named like a built-in", CODEC.encode_avro(replace(CLICK,
     event_type="custom:purchase")), Reason.INVALID_CUSTOM_EVENT, "is a built-in event type"),
    ("property key with a dash", CODEC.encode_avro(replace(CLICK,
     properties={"membership-tier": "gold"})), Reason.INVALID_PROPERTIES,
     "properties key 'membership-tier'"),
    ("property value not a string", orjson.dumps({**CLICK_JSON, "properties": {"n": 3}}),
     Reason.INVALID_PROPERTIES, "must be a string"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "reason", "detail"), [c[1:] for c in CLICK_CASES], ids=[c[0] for c in CLICK_CASES]
)
def test_decode_rejects_clickstream_records_with_reason(
    raw: bytes, reason: Reason, detail: str
) -> None:
    rejection = rejected(raw, stream="clickstream")
    assert rejection.reason is reason
    assert detail in rejection.detail


def test_every_reason_code_is_exercised() -> None:
    exercised = {case[2] for case in CASES + CLICK_CASES} | {Reason.PAYLOAD_TOO_LARGE}
    assert exercised == set(Reason)


def test_payload_too_large_is_checked_before_decoding() -> None:
    codec = EventCodec(bounds=ValidationBounds(max_payload_bytes=64))
    rejection = rejected(b"not even a record " * 10, codec=codec)
    assert rejection.reason is Reason.PAYLOAD_TOO_LARGE
    assert "180 bytes; the limit is 64" in rejection.detail


def test_default_payload_limit_is_64_kib() -> None:
    big = avro(page_url="x" * 70_000)
    assert rejected(big).reason is Reason.PAYLOAD_TOO_LARGE


def test_cart_schema_id_on_clickstream_topic_names_the_right_topic() -> None:
    rejection = rejected(avro(), stream="clickstream")
    assert rejection.reason is Reason.UNKNOWN_SCHEMA_ID
    assert "cart v1, not a clickstream schema" in rejection.detail


def test_replay_lifts_the_past_bound_but_not_the_2000_floor() -> None:
    replay = EventCodec(bounds=ValidationBounds(replay=True))
    old = avro(event_time_ms=NOW - 400 * DAY)
    assert isinstance(replay.decode(old, "cart", NOW), Event)
    assert rejected(avro(event_time_ms=NOW // 1000), codec=replay).reason is (
        Reason.EVENT_TIME_TOO_OLD
    )


def test_bounds_edges_are_inclusive() -> None:
    for event_time in (NOW + 300_000, NOW - 7 * DAY):
        assert isinstance(CODEC.decode(avro(event_time_ms=event_time), "cart", NOW), Event)


def test_bounds_come_from_settings() -> None:
    settings = load_settings(max_future_seconds=10, max_past_seconds=20, replay=True)
    bounds = ValidationBounds.from_settings(settings)
    assert bounds == ValidationBounds(
        max_payload_bytes=65536, max_future_ms=10_000, max_past_ms=20_000, replay=True
    )


def test_json_accepts_what_a_kcat_user_types() -> None:
    raw = (
        b'  {"event_id": "e1", "event_type": "page_view", "event_time": '
        b'"2024-05-01T12:51:30.123Z", "anonymous_id": "a1", "session_id": "s1", '
        b'"utm_source": "baidu", "something_else": [1, 2]}\n'
    )
    event = CODEC.decode(raw, "clickstream", NOW)
    assert isinstance(event, Event)
    assert (event.event_time_ms, event.sent_time_ms) == (NOW, NOW)
    assert (event.platform, event.device, event.items, event.experiments) == (
        "web",
        "desktop",
        (),
        {},
    )
    assert event.stream == "clickstream"


def test_json_iso_time_with_offset_is_converted_to_utc_millis() -> None:
    event = CODEC.decode(as_json(event_time="2024-05-01T20:51:30.123+08:00"), "cart", NOW)
    assert isinstance(event, Event)
    assert event.event_time_ms == NOW


def test_json_null_for_a_defaulted_field_takes_the_default() -> None:
    event = CODEC.decode(as_json(platform=None, items=None, currency="CNY"), "cart", NOW)
    assert isinstance(event, Event)
    assert event.platform == "web"
    assert event.items == ()


def test_clickstream_v1_v2_and_v3_records_all_decode() -> None:
    click = replace(BASE, stream="clickstream", event_type="view_item")
    for version in (1, 2, 3):
        raw = CODEC.encode_avro(click, version=version)
        assert int.from_bytes(raw[1:5], "big") == 100 + version
        assert CODEC.decode(raw, "clickstream", NOW) == click


def test_v2_app_version_field_is_read_and_ignored() -> None:
    schema = SchemaRegistry.load().get("clickstream", 2)
    record = {**event_to_record(replace(BASE, stream="clickstream", event_type="login")),
              "app_version": "5.2.1"}  # fmt: skip
    out = io.BytesIO()
    out.write(schema.header)
    fastavro.schemaless_writer(
        out, fastavro.parse_schema(strip_logical_types(schema.definition)), record
    )
    event = CODEC.decode(out.getvalue(), "clickstream", NOW)
    assert isinstance(event, Event)
    assert event.event_type == "login"


def test_quantity_beyond_int32_in_avro_is_wrong_type() -> None:
    # A hostile producer can put a 64-bit varint where the schema says int.
    definition = json.loads(json.dumps(SchemaRegistry.load().latest("cart").definition))
    item_fields = definition["fields"][20]["type"]["items"]["fields"]
    next(f for f in item_fields if f["name"] == "quantity")["type"] = "long"
    record = event_to_record(replace(BASE, items=(Item(item_id="x", price_minor=1, quantity=1),)))
    record["items"][0]["quantity"] = 2**40
    out = io.BytesIO()
    out.write(b"\x00" + (201).to_bytes(4, "big"))
    fastavro.schemaless_writer(out, fastavro.parse_schema(strip_logical_types(definition)), record)
    rejection = rejected(out.getvalue())
    assert rejection.reason is Reason.WRONG_TYPE
    assert "does not fit 32 bits" in rejection.detail


@pytest.mark.parametrize(
    "raw", [bytes(range(256)), b"\x00" * 40, b"{" * 100, b"\x00\x00\x00\x00\xc9\xff"]
)
def test_decode_never_raises_on_garbage(raw: bytes) -> None:
    for stream in ("clickstream", "cart", "orders"):
        assert isinstance(CODEC.decode(raw, stream, NOW), Rejection)


def test_unknown_stream_is_a_programming_error() -> None:
    with pytest.raises(SchemaError, match=r"unknown stream 'shop\.cart'"):
        CODEC.decode(avro(), "shop.cart", NOW)  # type: ignore[arg-type]


def test_encode_refuses_values_the_schema_cannot_carry() -> None:
    with pytest.raises(EncodeError, match="fix the field types"):
        CODEC.encode_avro(replace(BASE, value_minor=12.99))  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="fix the field types"):
        CODEC.encode_json(replace(BASE, items=(Item(item_id="x", price_minor=True),)))
    with pytest.raises(EncodeError, match="stream 'web'"):
        CODEC.encode_avro(replace(BASE, stream="web"))  # type: ignore[arg-type]


def fields_of(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def test_positional_construction_matches_the_model() -> None:
    # build_event passes arguments by position for speed; a reordered model must fail here.
    assert tuple(fields_of(Event)) == EVENT_FIELD_ORDER
    assert tuple(fields_of(Item)) == ITEM_FIELD_ORDER
