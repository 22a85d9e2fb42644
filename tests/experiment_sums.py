"""Experiment sufficient statistics, ClickHouse's and the truth's, in one comparable
shape (the numbers both sides have)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from reports.experiment_readout import ExperimentSums, VariantSums
from simulator.truth_experiments import ExperimentTruth


def normalised(sums: ExperimentSums | ExperimentTruth) -> dict[str, Any]:
    """The numbers both sides have, in one shape."""
    variants = {}
    for name, v in sums.variants.items():
        if isinstance(v, VariantSums):
            converted = v.converted
        else:
            converted = None if v.primary is None else v.primary.conversions
        variants[name] = {
            "exposed": v.exposed,
            "converted": converted,
            "orders": v.orders,
            "revenue": {c: (r.n, r.total, r.total_sq) for c, r in v.revenue.items()},
            "orders_by_currency": (
                {c: r.orders for c, r in v.revenue.items()}
                if isinstance(v, VariantSums)
                else dict(v.orders_by_currency)
            ),
            "reached": v.reached,
            "guardrails": {g: tuple(asdict(r).values()) for g, r in v.guardrails.items()},
            "cuped": {c: tuple(asdict(x).values()) for c, x in v.cuped.items()},
        }
    return {
        "variants": variants,
        "mixed": sums.mixed,
        "unknown": sums.unknown,
        "unknown_values": dict(sums.unknown_values),
    }
