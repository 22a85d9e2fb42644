"""Custom events and properties on the clickstream (schema v3): wire format, validation,
schema evolution, storage, the simulator and its malformed records.

The contract: ``event_type: "custom"`` plus ``event_name`` on the wire becomes the
Event's ``event_type`` ``custom:<event_name>``; ``properties`` (a map of strings) may be
on any clickstream event. Bounds are in ``schemas/custom.py``.
"""

from __future__ import annotations

import dataclasses
import io
import random
from collections import Counter, defaultdict
from dataclasses import replace
from functools import cache
from typing import Any

import clickhouse_connect
import fastavro
import orjson
import pytest
from prometheus_client import CollectorRegistry

from schemas.codec import EventCodec, event_to_record, split_event_type
from schemas.compat import check_pair
from schemas.custom import MAX_PROPERTIES, MAX_PROPERTY_VALUE_CHARS
from schemas.errors import EncodeError
from schemas.model import Event, Item
from schemas.reasons import Reason, Rejection
from schemas.registry import SchemaRegistry, strip_logical_types
from simulator.behaviour import SIZE_GUIDE_EVENT
from simulator.config import SimConfig
from simulator.generate import generate, make_codec
from simulator.malformed import CLICKSTREAM_ONLY, MalformedFactory
from sinks.clickhouse import apply_migrations
from sinks.metrics import PipelineMetrics
from streams.outputs.raw_events import TABLE as EVENTS_RAW
from streams.outputs.raw_events import build_row

NOW = 1_714_567_890_123
CODEC = EventCodec()
REGISTRY = SchemaRegistry.load()
GUIDE = Event(
    stream="clickstream",
    event_type="custom:size_guide_opened",
    event_id="e-1",
    event_time_ms=NOW,
    sent_time_ms=NOW,
    anonymous_id="a-1",
    session_id="s-1",
    platform="app",
    device="mobile",
    country="DE",
    page_url="app://shop/product/SKU-10002/size-guide",
    properties={"membership_tier": "gold", "size_system": "eu"},
)
VIEW = replace(GUIDE, event_type="page_view", event_id="e-2", properties={"page_type": "home"})
BASE_JSON: dict[str, Any] = {
    "event_id": "e-1",
    "event_type": "custom",
    "event_name": "size_guide_opened",
    "event_time": NOW,
    "anonymous_id": "a-1",
    "session_id": "s-1",
    "properties": {"membership_tier": "gold"},
}


def decoded(raw: bytes, stream: str = "clickstream") -> Event:
    result = CODEC.decode(raw, stream, NOW)  # type: ignore[arg-type]
    assert isinstance(result, Event), result
    return result


def rejected(raw: bytes, stream: str = "clickstream") -> Rejection:
    result = CODEC.decode(raw, stream, NOW)  # type: ignore[arg-type]
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result


def json_record(**changes: Any) -> bytes:
    record = {**BASE_JSON, **changes}
    return orjson.dumps({k: v for k, v in record.items() if v is not ...})


def avro_record(version: int = 3, **changes: Any) -> bytes:
    """Avro of a record as any producer could write it (the codec would refuse some)."""
    schema = REGISTRY.get("clickstream", version)
    record = {**event_to_record(GUIDE), **changes}
    out = io.BytesIO()
    out.write(schema.header)
    fastavro.schemaless_writer(
        out, fastavro.parse_schema(strip_logical_types(schema.definition)), record
    )
    return out.getvalue()


def wire(raw: bytes, version: int = 3) -> dict[str, Any]:
    """The Avro record as written, read back with the schema of ``version``."""
    definition = strip_logical_types(REGISTRY.get("clickstream", version).definition)
    record = fastavro.schemaless_reader(
        io.BytesIO(raw[5:]), fastavro.parse_schema(definition), None
    )
    assert isinstance(record, dict)
    return record


# -- wire format: round trips ------------------------------------------------------------------


def test_avro_round_trip_of_a_custom_event_with_properties() -> None:
    raw = CODEC.encode_avro(GUIDE)
    assert int.from_bytes(raw[1:5], "big") == 103
    record = wire(raw)
    assert (record["event_type"], record["event_name"]) == ("custom", "size_guide_opened")
    assert record["properties"] == {"membership_tier": "gold", "size_system": "eu"}
    event = decoded(raw)
    assert event == GUIDE
    assert event.event_type == "custom:size_guide_opened"


def test_json_round_trip_of_a_custom_event_with_properties() -> None:
    raw = CODEC.encode_json(GUIDE)
    sent = orjson.loads(raw)
    assert (sent["event_type"], sent["event_name"]) == ("custom", "size_guide_opened")
    assert sent["properties"] == GUIDE.properties
    assert decoded(raw) == GUIDE


def test_hand_written_json_custom_event_decodes() -> None:
    event = decoded(json_record())
    assert event.event_type == "custom:size_guide_opened"
    assert event.properties == {"membership_tier": "gold"}


@pytest.mark.parametrize("encode", [CODEC.encode_avro, CODEC.encode_json], ids=["avro", "json"])
def test_properties_on_a_built_in_clickstream_event(encode: Any) -> None:
    event = decoded(encode(VIEW))
    assert (event.event_type, event.properties) == ("page_view", {"page_type": "home"})


def test_absent_or_null_properties_are_empty_and_event_name_null_is_fine() -> None:
    plain = decoded(json_record(event_type="page_view", event_name=None, properties=...))
    assert (plain.event_type, plain.properties) == ("page_view", {})
    assert decoded(json_record(properties=None)).properties == {}


def test_bounds_are_inclusive() -> None:
    # 25 keys, one of 40 characters, values of 100 characters, a 40-character name.
    properties = {f"k{n}": "v" * MAX_PROPERTY_VALUE_CHARS for n in range(MAX_PROPERTIES - 1)}
    properties["k" + "_" * 39] = ""
    event = replace(GUIDE, event_type="custom:" + "a" * 40, properties=properties)
    assert len(event.properties) == MAX_PROPERTIES
    for raw in (CODEC.encode_avro(event), CODEC.encode_json(event)):
        assert decoded(raw) == event
    # Unicode letters in values are fine; only control characters are not.
    assert decoded(json_record(properties={"label": "尺码 42 🙂"})).properties["label"]


def test_split_event_type() -> None:
    assert split_event_type("custom:x") == ("custom", "x")
    assert split_event_type("page_view") == ("page_view", None)


def test_custom_events_and_properties_need_schema_v3() -> None:
    for version in (1, 2):
        with pytest.raises(EncodeError, match="need clickstream v3"):
            CODEC.encode_avro(GUIDE, version=version)
        with pytest.raises(EncodeError, match="properties"):
            CODEC.encode_avro(VIEW, version=version)
    cart = Event(
        stream="cart",
        event_type="add_to_cart",
        event_id="c-1",
        event_time_ms=NOW,
        sent_time_ms=NOW,
        anonymous_id="a-1",
        session_id="s-1",
        items=(Item("SKU-1", 100),),
        currency="CNY",
        properties={"a": "b"},
    )
    with pytest.raises(EncodeError, match="cart v1"):
        CODEC.encode_json(cart)
    # A cart record without properties is written as before: no v3 field leaks into it.
    assert "properties" not in orjson.loads(CODEC.encode_json(replace(cart, properties={})))


# -- validation: every rejection ------------------------------------------------------------------

NAME_41 = "a" * 41
REJECTIONS: list[tuple[str, bytes, Reason, str]] = [
    # event_name is required iff event_type == "custom".
    ("custom without event_name (json)", json_record(event_name=...),
     Reason.INVALID_CUSTOM_EVENT, "event_type 'custom' needs event_name"),
    ("custom without event_name (avro)", avro_record(event_name=None),
     Reason.INVALID_CUSTOM_EVENT, "needs event_name"),
    ("event_name on page_view (json)", json_record(event_type="page_view"),
     Reason.INVALID_CUSTOM_EVENT, "event_name 'size_guide_opened' is set on a 'page_view' event"),
    ("event_name on page_view (avro)", avro_record(event_type="page_view"),
     Reason.INVALID_CUSTOM_EVENT, "only for event_type 'custom'"),
    # The name's shape: CUSTOM_EVENT_NAME.
    ("name with spaces", json_record(event_name="Size Guide"), Reason.INVALID_CUSTOM_EVENT,
     "event_name 'Size Guide' is not a valid custom event name"),
    ("name starting with a digit", avro_record(event_name="3d_view"),
     Reason.INVALID_CUSTOM_EVENT, "a letter, then at most 39"),
    ("empty name", json_record(event_name=""), Reason.INVALID_CUSTOM_EVENT,
     "event_name '' is not a valid"),
    ("41-character name", avro_record(event_name=NAME_41), Reason.INVALID_CUSTOM_EVENT,
     "CUSTOM_EVENT_NAME"),
    ("non-ASCII name", json_record(event_name="größe"), Reason.INVALID_CUSTOM_EVENT,
     "'gr\\xf6\\xdfe'"),
    ("name as a JSON number", json_record(event_name=7), Reason.INVALID_CUSTOM_EVENT,
     "event_name must be a string (the custom event's name) or null, not int"),
    # Not a built-in event type, of any topic.
    ("built-in clickstream name", json_record(event_name="page_view"),
     Reason.INVALID_CUSTOM_EVENT, "'page_view' is a built-in event type"),
    ("built-in orders name", avro_record(event_name="purchase"), Reason.INVALID_CUSTOM_EVENT,
     "send event_type 'purchase' for it"),
    # Properties: MAX_PROPERTIES keys, PROPERTY_KEY, MAX_PROPERTY_VALUE_CHARS, no controls.
    ("26 properties", json_record(properties={f"k{n}": "v" for n in range(26)}),
     Reason.INVALID_PROPERTIES, "properties has 26 keys; at most 25"),
    ("key with a dash", avro_record(properties={"membership-tier": "gold"}),
     Reason.INVALID_PROPERTIES, "properties key 'membership-tier' is not a valid property key"),
    ("key starting with a digit", json_record(properties={"1st": "x"}),
     Reason.INVALID_PROPERTIES, "PROPERTY_KEY"),
    ("empty key", avro_record(properties={"": "x"}), Reason.INVALID_PROPERTIES,
     "properties key ''"),
    ("41-character key", json_record(properties={NAME_41: "x"}), Reason.INVALID_PROPERTIES,
     "at most 39 letters"),
    ("101-character value", avro_record(properties={"note": "x" * 101}),
     Reason.INVALID_PROPERTIES, "properties.note is 101 characters long; values are at most 100"),
    ("newline in a value", json_record(properties={"tier": "gold\n"}),
     Reason.INVALID_PROPERTIES, "properties.tier contains the control character U+000A"),
    ("NUL in a value", avro_record(properties={"tier": "go\x00ld"}),
     Reason.INVALID_PROPERTIES, "U+0000 at position 2"),
    ("C1 control in a value", json_record(properties={"tier": "gold\x85"}),
     Reason.INVALID_PROPERTIES, "U+0085"),
    ("DEL in a value", avro_record(properties={"tier": "\x7f"}), Reason.INVALID_PROPERTIES,
     "U+007F"),
    ("number as a value", json_record(properties={"items": 3}), Reason.INVALID_PROPERTIES,
     "properties['items'] must be a string, got int"),
    ("properties as a list", json_record(properties=[["a", "b"]]), Reason.INVALID_PROPERTIES,
     "properties must be a JSON object of string values"),
    ("bad properties on page_view", avro_record(event_type="page_view", event_name=None,
     properties={"a b": "c"}), Reason.INVALID_PROPERTIES, "properties key 'a b'"),
    # Unknown event types stay unknown_event_type.
    ("made-up event type", json_record(event_type="teleport", event_name=...),
     Reason.UNKNOWN_EVENT_TYPE, "allowed: add_to_wishlist"),
    ("custom:<name> sent as the type", json_record(event_type="custom:size_guide_opened",
     event_name=...), Reason.UNKNOWN_EVENT_TYPE,
     "send event_type 'custom' with event_name 'size_guide_opened' instead"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "reason", "detail"), [c[1:] for c in REJECTIONS], ids=[c[0] for c in REJECTIONS]
)
def test_rejections_name_the_field_and_the_bound(raw: bytes, reason: Reason, detail: str) -> None:
    rejection = rejected(raw)
    assert rejection.reason is reason
    assert detail in rejection.detail


def test_custom_on_the_cart_topic_is_an_unknown_event_type() -> None:
    record = {**BASE_JSON, "items": [{"item_id": "x", "price": 1}], "currency": "CNY"}
    rejection = rejected(orjson.dumps(record), stream="cart")
    assert rejection.reason is Reason.UNKNOWN_EVENT_TYPE
    assert "custom events belong on the clickstream stream" in rejection.detail


def test_the_first_bad_key_is_named_in_insertion_order() -> None:
    rejection = rejected(json_record(properties={"ok": "x", "bad-1": "y", "bad-2": "z"}))
    assert "'bad-1'" in rejection.detail


# -- schema evolution --------------------------------------------------------------------------


def test_shipped_v2_and_v3_are_compatible_both_ways() -> None:
    v2, v3 = REGISTRY.get("clickstream", 2), REGISTRY.get("clickstream", 3)
    result = check_pair("clickstream", 2, dict(v2.definition), 3, dict(v3.definition))
    assert (result.backward, result.forward, result.problems) == (True, True, ())
    added = [f for f in v3.definition["fields"] if f["name"] not in v2.field_names]
    assert [(f["name"], f["default"]) for f in added] == [("event_name", None), ("properties", {})]
    assert all(f["doc"] for f in added)


def _resolve(raw: bytes, writer: int, reader: int) -> dict[str, Any]:
    parse = fastavro.parse_schema
    definitions = [
        strip_logical_types(REGISTRY.get("clickstream", v).definition) for v in (writer, reader)
    ]
    record = fastavro.schemaless_reader(
        io.BytesIO(raw[5:]), parse(definitions[0]), parse(definitions[1])
    )
    assert isinstance(record, dict)
    return record


def test_v2_data_reads_under_v3_with_the_defaults() -> None:
    v2_bytes = CODEC.encode_avro(replace(VIEW, properties={}), version=2)
    record = _resolve(v2_bytes, writer=2, reader=3)
    assert (record["event_name"], record["properties"]) == (None, {})
    # The worker decodes both versions alike.
    assert decoded(v2_bytes) == decoded(CODEC.encode_avro(replace(VIEW, properties={})))


def test_v3_data_reads_under_v2_without_the_new_fields() -> None:
    record = _resolve(CODEC.encode_avro(GUIDE), writer=3, reader=2)
    assert "event_name" not in record and "properties" not in record
    assert record["event_type"] == "custom"  # an old reader sees an unknown event type


# -- storage -----------------------------------------------------------------------------------


def test_raw_row_carries_the_properties() -> None:
    row = build_row(GUIDE, "direct", False, "shop.clickstream", 3, 42, NOW)
    columns = dict(zip(EVENTS_RAW.columns, row, strict=True))
    assert columns["event_type"] == "custom:size_guide_opened"
    assert columns["properties"] == {"membership_tier": "gold", "size_system": "eu"}
    assert columns["properties"] is not GUIDE.properties
    assert "event_name" not in EVENTS_RAW.columns


def test_raw_row_round_trips_through_clickhouse() -> None:
    admin = clickhouse_connect.get_client(dsn="chdb://memory")
    admin.command("DROP DATABASE IF EXISTS custom_events_test")
    admin.command("CREATE DATABASE custom_events_test")
    try:
        client = clickhouse_connect.get_client(dsn="chdb://memory", database="custom_events_test")
        apply_migrations(client)
        rows = [
            build_row(event, "direct", False, "shop.clickstream", 0, n, NOW)
            for n, event in enumerate((GUIDE, replace(VIEW, properties={})))
        ]
        client.insert("events_raw", rows, column_names=list(EVENTS_RAW.columns))
        back = client.query(
            "SELECT event_type, properties['size_system'], length(properties) "
            "FROM events_raw FINAL ORDER BY event_id"
        ).result_rows
        assert [tuple(r) for r in back] == [
            ("custom:size_guide_opened", "eu", 2),
            ("page_view", "", 0),
        ]
    finally:
        admin.command("DROP DATABASE IF EXISTS custom_events_test")


# -- metrics -----------------------------------------------------------------------------------


def test_no_metric_has_an_event_type_or_property_label() -> None:
    # Custom event names and property values come from untrusted input: no metric may
    # take them as a label (step labels come from the funnel definitions).
    metrics = PipelineMetrics(CollectorRegistry())
    labels = {
        name for metric in vars(metrics).values() for name in getattr(metric, "_labelnames", ())
    }
    assert {"topic", "reason", "step"} <= labels
    assert not labels & {"event_type", "event_name", "properties", "property"}


# -- the simulator -----------------------------------------------------------------------------

SIM = SimConfig(users=400, days=0.25, json_pct=30)


@cache
def records(config: SimConfig) -> tuple[Any, ...]:
    return tuple(generate(config))


def test_simulated_traffic_has_size_guide_events_between_view_and_cart() -> None:
    events = [r.event for r in records(SIM) if r.event is not None]
    guides = [e for e in events if e.event_type == SIZE_GUIDE_EVENT]
    assert len(guides) >= 10
    for guide in guides:
        assert guide.stream == "clickstream"
        assert guide.properties["membership_tier"] in ("gold", "silver", "none")
        assert guide.properties["size_system"] in ("eu", "us", "uk", "jp", "kr", "cn")
    by_session: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_session[event.session_id].append(event)
    between = 0
    for session in by_session.values():
        session.sort(key=lambda e: e.event_time_ms)
        types = [e.event_type for e in session]
        for i, kind in enumerate(types):
            if (
                kind == SIZE_GUIDE_EVENT
                and "view_item" in types[:i]
                and ("add_to_cart" in types[i + 1 :])
            ):
                between += 1
    assert between >= 5
    # Some viewers open the guide and leave without adding to the cart.
    assert between < len(guides)


def test_simulated_page_views_from_apps_carry_properties() -> None:
    views = [
        r.event for r in records(SIM) if r.event is not None and r.event.event_type == "page_view"
    ]
    with_props = [v for v in views if v.properties]
    assert with_props and len(with_props) < len(views)
    assert {v.platform for v in with_props} <= {"app", "mini_program"}
    assert all(set(v.properties) == {"page_type", "membership_tier"} for v in with_props)
    tiers = Counter(v.properties["membership_tier"] for v in with_props)
    assert set(tiers) == {"gold", "silver", "none"}


def test_simulated_custom_events_decode_from_avro_and_json_and_are_deterministic() -> None:
    codec = make_codec(SIM)
    encodings = set()
    for record in records(SIM):
        if record.event is not None and record.event.event_type == SIZE_GUIDE_EVENT:
            assert codec.decode(record.value, "clickstream", record.send_time_ms) == record.event
            encodings.add(record.value[:1])
    assert encodings == {b"\x00", b"{"}
    again = tuple(generate(SIM))
    assert [(r.value, r.send_time_ms) for r in again] == [
        (r.value, r.send_time_ms) for r in records(SIM)
    ]


def test_custom_events_do_not_change_the_other_draws_of_a_visit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The size guide and the properties draw from their own random streams: without them
    # the run has exactly the same built-in events (ids and types).
    def built_in(config: SimConfig) -> Counter[tuple[str, str]]:
        return Counter(
            (r.event.event_id, r.event.event_type)
            for r in generate(config)
            if r.event is not None and not r.event.event_type.startswith("custom:")
        )

    config = SimConfig(users=150, days=0.1)
    with_custom = built_in(config)
    monkeypatch.setattr("simulator.behaviour.P_SIZE_GUIDE_BEFORE_CART", 0.0)
    monkeypatch.setattr("simulator.behaviour.P_SIZE_GUIDE_NO_CART", 0.0)
    monkeypatch.setattr("simulator.behaviour.PROPERTY_PLATFORMS", frozenset())
    assert built_in(config) == with_custom


# -- malformed records -------------------------------------------------------------------------


def test_malformed_factory_builds_every_kind_of_the_new_reasons() -> None:
    factory = MalformedFactory(CODEC, SimConfig())
    for base in (GUIDE, VIEW):
        for reason in sorted(CLICKSTREAM_ONLY):
            details = set()
            for seed in range(60):
                raw = factory.build(reason, base, random.Random(seed))
                rejection = rejected(raw)
                assert rejection.reason is reason, (base.event_type, seed, rejection)
                details.add(rejection.detail.split(" ")[0])
            assert len(details) >= 2, details


def test_new_reasons_only_on_the_clickstream() -> None:
    factory = MalformedFactory(CODEC, SimConfig())
    assert set(factory.reasons_for("clickstream")) >= CLICKSTREAM_ONLY
    for stream in ("cart", "orders"):
        assert not CLICKSTREAM_ONLY & set(factory.reasons_for(stream))  # type: ignore[arg-type]
    cart = dataclasses.replace(GUIDE, stream="cart", event_type="add_to_cart", properties={})
    with pytest.raises(ValueError, match="needs a clickstream event"):
        factory.build(Reason.INVALID_PROPERTIES, cart, random.Random(1))


def test_simulated_dead_letters_include_the_new_reasons() -> None:
    config = dataclasses.replace(SIM, malformed_pct=30)
    codec = make_codec(config)
    seen: Counter[Reason] = Counter()
    for record in records(config):
        if record.malformed_reason in CLICKSTREAM_ONLY:
            assert record.stream == "clickstream"
            rejection = codec.decode(record.value, record.stream, record.send_time_ms)
            assert isinstance(rejection, Rejection)
            assert rejection.reason is record.malformed_reason
            seen[record.malformed_reason] += 1
    assert set(seen) == CLICKSTREAM_ONLY
