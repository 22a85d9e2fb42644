"""Experiment readout rows: one per evaluation, experiment, variant and metric, with the
sufficient statistics and the statistics engine's result (migration 0008; written by
``streams/experiment_monitor.py``, read back by ``reports/experiment_readout.py``)."""

from __future__ import annotations

import math

from reports.experiment_readout import ExperimentReadout, MetricReadout
from sinks.tables import TableSpec
from streams.outputs.family import Row

TABLE = TableSpec(
    "experiment_readouts",
    (
        "evaluated_at",
        "experiment",
        "variant",
        "is_control",
        "metric",
        "currency",
        "n",
        "total",
        "total_sq",
        "denominator",
        "denominator_sq",
        "cross_products",
        "relative_lift",
        "ci_low",
        "ci_high",
        "p_always_valid",
        "p_fixed_horizon",
    ),
    order_by=("experiment", "evaluated_at", "variant", "metric", "currency"),
)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _compared(m: MetricReadout | None) -> tuple[float | None, ...]:
    if m is None:  # the control's own rows
        return (None, None, None, None, None)
    av = m.always_valid
    rel = av.relative_ci
    return (
        _finite(av.relative_lift),
        None if rel is None else _finite(rel.low),
        None if rel is None else _finite(rel.high),
        av.p_value,
        m.fixed_horizon.p_value,
    )


def _variant_rows(
    r: ExperimentReadout, name: str, evaluated_at_ms: int
) -> list[tuple[str, str, tuple[int, ...]]]:
    """(metric, currency, statistics) of one variant."""
    v = r.sums.variants[name]
    out: list[tuple[str, str, tuple[int, ...]]] = []
    if v.converted is not None:
        out.append(("primary", "", (v.converted, v.converted, 0, 0, 0)))
    for step, visitors in enumerate(v.reached, start=1):
        out.append((f"step_{step}", "", (visitors, visitors, 0, 0, 0)))
    for currency, rev in v.revenue.items():
        # denominator: the purchases in that currency (AOV = total / denominator).
        out.append(("revenue_per_user", currency, (rev.total, rev.total_sq, rev.orders, 0, 0)))
    out.append(("orders", "", (v.orders, 0, 0, 0, 0)))
    for metric, g in v.guardrails.items():
        stats = (g.numerator, g.numerator_sq, g.denominator, g.denominator_sq, g.cross)
        out.append((metric, "", stats))
    # CUPED: y (the primary's value) in total/total_sq, the covariate x in
    # denominator/denominator_sq, and sum(x * y) in cross_products.
    primary = "primary" if v.converted is not None else "revenue_per_user"
    for currency, c in v.cuped.items():
        stats = (c.total_y, c.total_y_sq, c.total_x, c.total_x_sq, c.total_xy)
        out.append((f"{primary}_cuped", currency, stats))
    return out


def build_rows(r: ExperimentReadout, evaluated_at_ms: int) -> list[Row]:
    """Every variant's statistics; treatments carry their comparison with the control.
    For ``primary`` (conversions, a 0/1 value per visitor) total_sq equals total."""
    exp = r.exp
    rows: list[Row] = []
    for name, v in r.sums.variants.items():
        compared = {(m.metric, m.currency): m for m in r.metrics.get(name, ())}
        for metric, currency, stats in _variant_rows(r, name, evaluated_at_ms):
            rows.append(
                (
                    evaluated_at_ms,
                    exp.name,
                    name,
                    int(name == exp.control),
                    metric,
                    currency,
                    v.exposed,
                    *stats,
                    *_compared(compared.get((metric, currency))),
                )
            )
    return rows
