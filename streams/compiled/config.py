"""The Python core's configuration as the compiled core reads it (JSON).

Each function mirrors one ``from_json`` of the crate: ``rules_json`` is what
``Rules::from_json`` (native/src/rules.rs) takes, ``registry_json`` what
``Registry::from_json`` (records.rs) takes, and so on. The differential tests in
tests/native/ build every case's configuration with these same functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from schemas.channels import ChannelRules
from schemas.registry import SchemaRegistry
from schemas.validation import ValidationBounds
from streams.funnels import FunnelDef, PropertyFilter
from streams.outputs import Key, RowKey
from streams.outputs.funnel_ttc import TTC_BUCKETS_S, FunnelTtcKey
from streams.outputs.order_gaps import OrderGapKey
from streams.retention import GAP_BUCKETS_DAYS
from streams.visitor import Rules


def funnel_spec(funnel: FunnelDef) -> dict[str, Any]:
    """The funnel as the compiled core reads it (``FunnelDef::from_json``)."""

    def filters(items: Sequence[PropertyFilter]) -> list[dict[str, Any]]:
        return [{"prop": f.prop, "op": f.op, "values": list(f.values)} for f in items]

    breakdown = funnel.breakdown
    return {
        "name": funnel.name,
        "steps": list(funnel.steps),
        "scope": funnel.scope,
        "window_ms": funnel.window_ms,
        "mode": funnel.mode,
        "step_defs": [
            {
                "event": s.event,
                "filters": filters(s.filters),
                "within_ms": s.within_ms,
                "label": s.label,
            }
            for s in funnel.step_defs
        ],
        "exclusions": [
            {
                "event": x.event,
                "from_step": x.from_step,
                "to_step": x.to_step,
                "filters": filters(x.filters),
            }
            for x in funnel.exclusions
        ],
        "breakdown": None
        if breakdown is None
        else {
            "dimensions": list(breakdown.dimensions),
            "attribution": breakdown.attribution,
            "attributed_step": breakdown.attributed_step,
        },
    }


def rules_json(rules: Rules) -> dict[str, Any]:
    """``streams.visitor.Rules`` as ``Rules::from_json`` reads it."""
    return {
        "funnels": [funnel_spec(f) for f in rules.funnels],
        "window_ms": rules.window_ms,
        "session_timeout_ms": rules.session_timeout_ms,
        "lateness_ms": rules.lateness_ms,
        "max_transactions": rules.max_transactions,
        "lifecycle": dataclasses.asdict(rules.lifecycle),
        "attribution": dataclasses.asdict(rules.attribution),
    }


def registry_json(registry: SchemaRegistry) -> dict[str, Any]:
    """Every schema the Python registry loaded (``Registry::from_json``)."""
    return {
        "schemas": [
            {
                "name": s.name,
                "version": s.version,
                "id": s.schema_id,
                "definition": s.definition,
            }
            for s in registry
        ]
    }


def bounds_json(bounds: ValidationBounds) -> dict[str, Any]:
    """``ValidationBounds::from_json``."""
    return dataclasses.asdict(bounds)


def channels_json(channels: ChannelRules) -> dict[str, Any]:
    """``ChannelRules::from_json``."""
    return channels.spec()


def _bucket_repr(value: float, buckets: tuple[float, ...]) -> str:
    # A bucket read back from ClickHouse is a float (10.0) where a fresh key holds the
    # constant (10): both are the same bucket, named by the constant's repr.
    return repr(buckets[buckets.index(value)])


def key_json(key: Key | RowKey) -> list[Any]:
    """A contribution or row key as [type name, *fields] (``key_from``, ``row_key_from``);
    the family (the last field) is left out, float buckets are their constant's repr."""
    if isinstance(key, FunnelTtcKey):
        return [
            "FunnelTtcKey",
            *key[:3],
            _bucket_repr(key.le_seconds, TTC_BUCKETS_S),
            *key[4:-1],
        ]
    if isinstance(key, OrderGapKey):
        return ["OrderGapKey", *key[:2], _bucket_repr(key.le_days, GAP_BUCKETS_DAYS)]
    return [type(key).__name__, *key[:-1]]
