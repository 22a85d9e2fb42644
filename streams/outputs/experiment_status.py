"""Experiment status rows: one per evaluation and experiment (exclusions, sample-ratio
checks, decision); migration 0008."""

from __future__ import annotations

from reports.experiment_readout import ExperimentReadout
from sinks.tables import TableSpec
from streams.experiment_stats import DEFAULT_MIXING
from streams.outputs.family import Row

TABLE = TableSpec(
    "experiment_status",
    (
        "evaluated_at",
        "experiment",
        "exposed",
        "mixed",
        "unknown",
        "srm_chi_square_p",
        "srm_sequential_p",
        "verdict",
        "verdict_variant",
        "verdict_metric",
        "reason",
        "alpha",
        "mixing_tau2",
    ),
    order_by=("experiment", "evaluated_at"),
)


def build_row(r: ExperimentReadout, evaluated_at_ms: int) -> Row:
    d = r.decision
    return (
        evaluated_at_ms,
        r.exp.name,
        sum(r.sums.counts().values()),
        r.sums.mixed,
        r.sums.unknown,
        r.srm_chi_square.p_value,
        r.srm_sequential.p_value,
        d.verdict.value,
        d.variant or "",
        d.metric or "",
        d.reason,
        float(r.exp.alpha),
        DEFAULT_MIXING.tau2,
    )
