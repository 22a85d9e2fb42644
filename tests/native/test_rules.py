"""The compiled core's rules (native/src/rules.rs) against ``streams.visitor.Rules``."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import shopfunnel_core

from streams.attribution import AttributionRules
from streams.compiled.config import rules_json
from streams.funnels import load_funnels
from streams.lifecycle import LifecycleRules
from streams.visitor import Rules

MIXED = Path(__file__).resolve().parents[2] / "bench" / "funnels_mixed.yaml"


def _derived(rules: Rules) -> dict[str, object]:
    return orjson.loads(shopfunnel_core.probe("rules.derived", orjson.dumps(rules_json(rules))))


@pytest.mark.parametrize("funnels_file", [None, MIXED], ids=["default", "ten_funnels"])
def test_derived_fields_equal_the_python_ones(funnels_file: Path | None) -> None:
    rules = Rules(
        load_funnels(funnels_file),
        window_ms=7_000,
        lifecycle=LifecycleRules(new_ms=5),
        attribution=AttributionRules(max_touches=3),
    )
    derived = _derived(rules)
    types = rules.user_funnel_types
    assert derived == {
        "families": list(rules.families),
        "session_funnels": [f.name for f in rules.session_funnels],
        "user_funnels": [f.name for f in rules.user_funnels],
        "user_funnel_types": None if types is None else sorted(types),
        "property_names": list(rules.property_names),
        "window_ms": 7_000,
    }
    if funnels_file is not None:
        assert derived["user_funnels"] and derived["property_names"]


def test_rules_the_python_refuses_are_refused() -> None:
    rules = rules_json(Rules(load_funnels(None)))
    with pytest.raises(ValueError, match="session timeout must be longer"):
        Rules(load_funnels(None), session_timeout_ms=1_000, lateness_ms=1_000)
    with pytest.raises(ValueError, match="session timeout must be longer"):
        shopfunnel_core.probe(
            "rules.derived",
            orjson.dumps({**rules, "session_timeout_ms": 1_000, "lateness_ms": 1_000}),
        )
    with pytest.raises(ValueError, match="unknown field"):
        shopfunnel_core.probe("rules.derived", orjson.dumps({**rules, "windows_ms": 1}))
