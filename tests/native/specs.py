"""The Python core's configuration as the compiled core reads it (JSON).

``rules_json(rules)`` is what the compiled core's ``Rules::from_json`` takes
(native/src/rules.rs); the differential tests build every case's rules with it. When the
core is wired into the worker, this moves to the production side with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from streams.funnels import FunnelDef, PropertyFilter
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
