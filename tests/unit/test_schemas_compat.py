"""Compatibility checks: pass on the shipped schemas, catch breaking changes by field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from schemas.cli import app
from schemas.compat import DEFAULT_SCHEMA_DIR, CompatResult, assert_compatible, check_all
from schemas.errors import CompatibilityError, SchemaError


def cart_v1() -> dict[str, Any]:
    definition: dict[str, Any] = json.loads((DEFAULT_SCHEMA_DIR / "cart.v1.avsc").read_text())
    return definition


def write_pair(tmp_path: Path, v2: dict[str, Any]) -> Path:
    shutil.copy(DEFAULT_SCHEMA_DIR / "cart.v1.avsc", tmp_path / "cart.v1.avsc")
    (tmp_path / "cart.v2.avsc").write_text(json.dumps(v2))
    return tmp_path


def field(definition: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in definition["fields"] if f["name"] == name)


def test_shipped_schemas_are_compatible() -> None:
    results = check_all()
    assert all(result.ok for result in results)
    pair = next(r for r in results if r.stream == "clickstream")
    assert (pair.previous, pair.version, pair.backward, pair.forward) == (1, 2, True, True)
    single = next(r for r in results if r.stream == "cart")
    assert (single.versions, single.backward) == ("v1", None)
    assert_compatible(results)


def test_added_optional_field_is_compatible(tmp_path: Path) -> None:
    v2 = cart_v1()
    v2["fields"].append({"name": "gift_wrap", "type": ["null", "string"], "default": None})
    [result] = check_all(write_pair(tmp_path, v2))
    assert (result.backward, result.forward, result.problems) == (True, True, ())


def test_added_required_field_breaks_backward(tmp_path: Path) -> None:
    v2 = cart_v1()
    v2["fields"].append({"name": "warehouse", "type": "string"})
    [result] = check_all(write_pair(tmp_path, v2))
    assert (result.backward, result.forward) == (False, True)
    [problem] = result.problems
    assert "cart v2 cannot read v1 data (backward): field warehouse" in problem
    assert "give the field a default" in problem


def test_removed_required_field_breaks_forward(tmp_path: Path) -> None:
    v2 = cart_v1()
    v2["fields"] = [f for f in v2["fields"] if f["name"] != "session_id"]
    [result] = check_all(write_pair(tmp_path, v2))
    assert (result.backward, result.forward) == (True, False)
    assert "cart v1 cannot read v2 data (forward): field session_id" in result.problems[0]


def test_changed_nested_type_names_the_item_field(tmp_path: Path) -> None:
    v2 = cart_v1()
    item = field(v2, "items")["type"]["items"]
    field(item, "price")["type"] = "string"
    [result] = check_all(write_pair(tmp_path, v2))
    assert (result.backward, result.forward) == (False, False)
    assert all("field items[].price" in p for p in result.problems)
    with pytest.raises(CompatibilityError, match=r"items\[\]\.price"):
        assert_compatible([result])


def test_promotion_is_backward_only(tmp_path: Path) -> None:
    # int -> long: the new reader widens old data, the old reader cannot narrow new data.
    v2 = cart_v1()
    item = field(v2, "items")["type"]["items"]
    field(item, "quantity")["type"] = "long"
    [result] = check_all(write_pair(tmp_path, v2))
    assert (result.backward, result.forward) == (True, False)


def test_narrowed_union_names_the_field(tmp_path: Path) -> None:
    v2 = cart_v1()
    field(v2, "utm_source")["type"] = ["null", "long"]
    [result] = check_all(write_pair(tmp_path, v2))
    assert not result.ok
    assert all("field utm_source" in p for p in result.problems)


def test_badly_named_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cart.avsc").write_text(json.dumps(cart_v1()))
    with pytest.raises(SchemaError, match=r"not named <name>\.v<N>\.avsc"):
        check_all(tmp_path)


def test_cli_check_prints_a_table_and_passes() -> None:
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 0, result.output
    for text in (
        "clickstream",
        "v1 -> v2",
        "v2 -> v3",
        "backward",
        "forward",
        "all 7 schemas compatible",
    ):
        assert text in result.output


def test_cli_check_fails_naming_the_breaking_field(tmp_path: Path) -> None:
    v2 = cart_v1()
    v2["fields"].append({"name": "warehouse", "type": "string"})
    result = CliRunner().invoke(app, ["check", "--schema-dir", str(write_pair(tmp_path, v2))])
    assert result.exit_code == 1
    assert "BROKEN" in result.output
    assert "field warehouse" in result.output


def test_cli_check_reports_a_missing_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check", "--schema-dir", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_compat_result_labels() -> None:
    assert CompatResult("cart", 2, 1, True, False).versions == "v1 -> v2"
    assert not CompatResult("cart", 2, 1, True, False).ok
