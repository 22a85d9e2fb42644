"""Golden bytes: a fixed record per schema version must always encode to the same bytes.

The expected bytes are checked in under ``tests/unit/golden/`` as hex. A failure means
the wire format changed, which breaks every consumer of already-produced data: add a new
schema version instead. (Only when a *new* version is added does a new golden file get
written, with the hex this test prints.)
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import fastavro
import pytest

from schemas.codec import EventCodec
from schemas.deadletter import DeadLetter
from schemas.model import Event, Item
from schemas.registry import SchemaRegistry
from schemas.triggers import Trigger, TriggerItem

GOLDEN = Path(__file__).parent / "golden"
T0 = 1_714_567_890_123  # 2024-05-01T12:51:30.123Z

CLICK = Event(
    stream="clickstream",
    event_type="view_item",
    event_id="0b9f0c1e-6c2d-4f7a-9a51-3b7d2f0e8c11",
    event_time_ms=T0,
    sent_time_ms=T0 + 250,
    anonymous_id="anon-1",
    session_id="sess-1",
    user_id="user-1",
    platform="mini_program",
    device="mobile",
    country="CN",
    page_url="https://shop.example.com/p/sku-1?from=小红书",
    referrer="https://www.xiaohongshu.com/explore/1",
    utm_source="xiaohongshu",
    utm_medium="kol",
    utm_campaign="spring",
    utm_content="kol_lili",
    utm_term="乌龙茶",
    experiments={"search_v2": "b", "checkout_v2": "treatment"},
    referral_code="REF42",
    search_term=None,
    items=(Item(item_id="sku-1", price_minor=12900, item_name="乌龙茶 250g"),),
    currency="CNY",
    value_minor=12900,
)
# A custom event with properties: event_type "custom" + event_name on the wire (v3).
CUSTOM = replace(
    CLICK,
    event_type="custom:size_guide_opened",
    event_id="5e1f0a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b",
    items=(),
    currency=None,
    value_minor=None,
    properties={"size_system": "eu", "membership_tier": "gold", "size_label": "尺码 42"},
)
CART = Event(
    stream="cart",
    event_type="add_to_cart",
    event_id="7d1c3f0a-2b4e-4e59-8f60-1a2b3c4d5e6f",
    event_time_ms=T0,
    sent_time_ms=T0,
    anonymous_id="anon-2",
    session_id="sess-2",
    platform="web",
    device="desktop",
    country="US",
    utm_source="google",
    utm_medium="cpc",
    items=(
        Item(
            item_id="sku-2",
            price_minor=1999,
            quantity=3,
            item_brand="Acme",
            item_variant="red",
            coupon="TEN",
            discount_minor=200,
        ),
    ),
    cart_id="cart-2",
    currency="USD",
    value_minor=5397,
    coupon="TEN",
    discount_minor=600,
)
ORDER = Event(
    stream="orders",
    event_type="purchase",
    event_id="c0ffee00-0000-4000-8000-000000000001",
    event_time_ms=T0 + 60_000,
    sent_time_ms=T0 + 60_100,
    anonymous_id="anon-2",
    session_id="sess-2",
    user_id="user-2",
    platform="app",
    device="tablet",
    country="JP",
    items=(
        Item(item_id="sku-3", price_minor=1500, quantity=2, item_category="toys"),
        Item(item_id="sku-4", price_minor=800),
    ),
    cart_id="cart-2",
    transaction_id="order-1",
    currency="JPY",
    value_minor=3980,
    tax_minor=380,
    shipping_minor=0,
    coupon=None,
    discount_minor=0,
    payment_type="alipay",
)
DEAD = DeadLetter(
    raw=b"\x00\x00\x00\x03\xe7garbage",
    reason="unknown_schema_id",
    detail="schema id 999 is not registered for cart",
    source_topic="shop.cart",
    source_partition=3,
    source_offset=123456789,
    key=b"anon-2",
    received_at_ms=T0 + 5,
)
TRIGGER = Trigger(
    trigger_id="6f1d2c3b-4a59-5e6f-8a7b-9c0d1e2f3a4b",
    trigger_type="cart_abandoned",
    anonymous_id="anon-2",
    occurred_at_ms=T0,
    emitted_at_ms=T0 + 1_800_000,
    user_id=None,
    cart_value_minor=5397,
    currency="USD",
    items=(TriggerItem(item_id="sku-2", quantity=3, price_minor=1999),),
    channel="paid_search",
    segment="new",
    detail={"cart_id": "cart-2"},
)


@pytest.fixture(scope="module")
def codec() -> EventCodec:
    return EventCodec()


def _golden(name: str) -> str:
    path = GOLDEN / f"{name}.hex"
    assert path.exists(), f"missing golden file {path}"
    return path.read_text().strip()


GOLDEN_EVENTS = [
    ("clickstream.v1", CLICK, 1),
    ("clickstream.v2", CLICK, 2),
    ("clickstream.v3", CLICK, 3),
    ("clickstream.v3.custom", CUSTOM, 3),
    ("cart.v1", CART, 1),
    ("orders.v1", ORDER, 1),
]


@pytest.mark.parametrize(("name", "event", "version"), GOLDEN_EVENTS)
def test_event_encoding_matches_golden_bytes(
    codec: EventCodec, name: str, event: Event, version: int
) -> None:
    encoded = codec.encode_avro(event, version=version).hex()
    assert encoded == _golden(name), f"{name} encoding changed; new hex: {encoded}"


@pytest.mark.parametrize(("name", "event", "version"), GOLDEN_EVENTS)
def test_golden_bytes_decode_to_the_event(
    codec: EventCodec, name: str, event: Event, version: int
) -> None:
    assert codec.decode(bytes.fromhex(_golden(name)), event.stream, T0) == event


def test_latest_clickstream_version_is_written_by_default(codec: EventCodec) -> None:
    assert codec.encode_avro(CLICK) == bytes.fromhex(_golden("clickstream.v3"))


def test_v3_adds_only_the_two_defaulted_fields_after_v2(codec: EventCodec) -> None:
    # Same body as v2 plus event_name null (one byte) and an empty properties map (one).
    v2, v3 = bytes.fromhex(_golden("clickstream.v2")), bytes.fromhex(_golden("clickstream.v3"))
    assert v3[5:] == v2[5:] + b"\x00\x00"


def test_experiment_order_does_not_change_the_bytes(codec: EventCodec) -> None:
    reordered = replace(CLICK, experiments={"checkout_v2": "treatment", "search_v2": "b"})
    assert codec.encode_avro(reordered, version=2) == codec.encode_avro(CLICK, version=2)


def test_property_order_does_not_change_the_bytes(codec: EventCodec) -> None:
    reordered = replace(CUSTOM, properties=dict(reversed(CUSTOM.properties.items())))
    assert codec.encode_avro(reordered) == codec.encode_avro(CUSTOM)


def test_dead_letter_matches_golden_bytes(codec: EventCodec) -> None:
    encoded = codec.encode_dead_letter(DEAD).hex()
    assert encoded == _golden("deadletter.v1"), f"new hex: {encoded}"
    assert codec.decode_dead_letter(bytes.fromhex(encoded)) == DEAD


def test_trigger_matches_golden_bytes(codec: EventCodec) -> None:
    encoded = codec.encode_trigger(TRIGGER).hex()
    assert encoded == _golden("trigger.v1"), f"new hex: {encoded}"
    assert codec.decode_trigger(bytes.fromhex(encoded)) == TRIGGER


def test_json_encoding_matches_golden(codec: EventCodec) -> None:
    encoded = codec.encode_json(CART).decode()
    assert encoded == (GOLDEN / "cart.json").read_text().strip(), f"new JSON: {encoded}"


@pytest.mark.parametrize(("name", "event", "version"), GOLDEN_EVENTS)
def test_golden_bytes_read_by_the_reference_avro_library(
    codec: EventCodec, name: str, event: Event, version: int
) -> None:
    # The hot path reads timestamps with logicalType stripped; the apache avro library
    # reads the real schema (datetimes). Both must agree: same bytes, same instants.
    schema = SchemaRegistry.load().get(event.stream, version)
    body = bytes.fromhex(_golden(name))[5:]
    reader = avro.io.DatumReader(avro.schema.parse(json.dumps(schema.definition)))
    record: Any = reader.read(avro.io.BinaryDecoder(io.BytesIO(body)))
    assert record["event_time"] == datetime.fromtimestamp(event.event_time_ms / 1000, UTC)
    assert record["sent_time"] == datetime.fromtimestamp(event.sent_time_ms / 1000, UTC)
    assert record["event_id"] == event.event_id
    assert [i["price"] for i in record["items"]] == [i.price_minor for i in event.items]


@pytest.mark.parametrize(("name", "event", "version"), GOLDEN_EVENTS)
def test_fastavro_with_logical_types_sees_the_same_times(
    name: str, event: Event, version: int
) -> None:
    schema = SchemaRegistry.load().get(event.stream, version)
    parsed = fastavro.parse_schema(dict(schema.definition), {})
    record = fastavro.schemaless_reader(io.BytesIO(bytes.fromhex(_golden(name))[5:]), parsed, None)
    assert isinstance(record, dict)
    millis = int(record["event_time"].timestamp() * 1000 + 0.5)
    assert millis == event.event_time_ms


def test_header_carries_the_registered_schema_id(codec: EventCodec) -> None:
    raw = codec.encode_avro(CART)
    assert raw[0] == 0
    assert int.from_bytes(raw[1:5], "big") == SchemaRegistry.load().latest("cart").schema_id
