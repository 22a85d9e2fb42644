"""Schema registry loading: ids, versions, files, and the errors that say how to fix them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from schemas.codec import EventCodec
from schemas.errors import SchemaError
from schemas.model import Event
from schemas.registry import DEFAULT_REGISTRY_PATH, SchemaRegistry

SHIPPED_AVRO = DEFAULT_REGISTRY_PATH.parent / "avro"


def copy_shipped(tmp_path: Path) -> Path:
    shutil.copytree(SHIPPED_AVRO, tmp_path / "avro")
    registry = tmp_path / "registry.json"
    shutil.copy(DEFAULT_REGISTRY_PATH, registry)
    return registry


def test_shipped_registry_lists_every_schema() -> None:
    registry = SchemaRegistry.load()
    assert registry.names() == (
        "cart",
        "clickstream",
        "deadletter",
        "marketing_costs",
        "orders",
        "trigger",
    )
    assert [s.version for s in registry.versions("clickstream")] == [1, 2, 3]
    assert registry.latest("clickstream").schema_id == 103
    by_id = registry.by_id(201)
    assert by_id is not None
    assert (by_id.name, by_id.version) == ("cart", 1)
    assert registry.by_id(12345) is None
    assert registry.get("cart", 1).header == b"\x00\x00\x00\x00\xc9"


def test_every_input_schema_carries_every_event_field() -> None:
    # The three topics share one field set; Event attribute names map 1:1 except the
    # *_ms / *_minor suffixes.
    renames = {"event_time_ms": "event_time", "sent_time_ms": "sent_time",
               "value_minor": "value", "tax_minor": "tax", "shipping_minor": "shipping",
               "discount_minor": "discount"}  # fmt: skip
    expected = {renames.get(name, name) for name in Event.__dataclass_fields__} - {"stream"}
    # Custom events (event_name on the wire) and properties: clickstream v3 on only.
    custom = {"event_name", "properties"}
    registry = SchemaRegistry.load()
    for stream in ("clickstream", "cart", "orders"):
        for schema in registry.versions(stream):
            assert expected - custom <= set(schema.field_names), (stream, schema.version)
            has_custom = stream == "clickstream" and schema.version >= 3
            assert (custom <= set(schema.field_names)) is has_custom, (stream, schema.version)


def test_missing_avsc_file_is_named(tmp_path: Path) -> None:
    registry = copy_shipped(tmp_path)
    (tmp_path / "avro" / "cart.v1.avsc").unlink()
    with pytest.raises(SchemaError, match=r"cart\.v1\.avsc.*restore the file"):
        SchemaRegistry.load(registry)


def test_unregistered_avsc_file_is_refused(tmp_path: Path) -> None:
    registry = copy_shipped(tmp_path)
    shutil.copy(tmp_path / "avro" / "cart.v1.avsc", tmp_path / "avro" / "cart.v2.avsc")
    with pytest.raises(SchemaError, match=r'cart\.v2\.avsc has no id.*"2": <new id> under "cart"'):
        SchemaRegistry.load(registry)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    registry = copy_shipped(tmp_path)
    data = json.loads(registry.read_text())
    data["orders"]["1"] = 201
    registry.write_text(json.dumps(data))
    with pytest.raises(SchemaError, match="schema id 201 is used by both"):
        SchemaRegistry.load(registry)


def test_version_gaps_are_refused(tmp_path: Path) -> None:
    registry = copy_shipped(tmp_path)
    (tmp_path / "avro" / "clickstream.v2.avsc").rename(tmp_path / "avro" / "clickstream.v3.avsc")
    data = json.loads(registry.read_text())
    data["clickstream"] = {"1": 101, "3": 103}
    registry.write_text(json.dumps(data))
    with pytest.raises(SchemaError, match=r"versions \[1, 3\]; versions must run 1..n"):
        SchemaRegistry.load(registry)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["cart"]', "expected"),
        ('{"cart": {"one": 201}}', "positive integer"),
        ('{"cart": {"1": "201"}}', "must be an integer"),
        ('{"cart": {"1": 0}}', "must be an integer in 1.."),
    ],
)
def test_malformed_registry_file(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "avro").mkdir()
    registry = tmp_path / "registry.json"
    registry.write_text(content)
    with pytest.raises(SchemaError, match=message):
        SchemaRegistry.load(registry)


def test_invalid_avsc_is_named(tmp_path: Path) -> None:
    registry = copy_shipped(tmp_path)
    (tmp_path / "avro" / "orders.v1.avsc").write_text(
        '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}'
    )
    with pytest.raises(SchemaError, match=r"orders\.v1\.avsc is not a valid Avro schema"):
        SchemaRegistry.load(registry)


def test_codec_refuses_a_version_that_drops_event_fields(tmp_path: Path) -> None:
    registry_path = copy_shipped(tmp_path)
    definition = json.loads((tmp_path / "avro" / "cart.v1.avsc").read_text())
    definition["fields"] = [f for f in definition["fields"] if f["name"] != "coupon"]
    (tmp_path / "avro" / "cart.v1.avsc").write_text(json.dumps(definition))
    with pytest.raises(SchemaError, match="lacks fields the Event needs: coupon"):
        EventCodec(SchemaRegistry.load(registry_path))


def test_unknown_name_and_version() -> None:
    registry = SchemaRegistry.load()
    with pytest.raises(SchemaError, match="no schema named 'payments'"):
        registry.latest("payments")
    with pytest.raises(SchemaError, match="has no version 7"):
        registry.get("cart", 7)
