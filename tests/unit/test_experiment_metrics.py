"""PipelineMetrics' experiment readout metrics (issue #14): names, labels, values read back."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sinks.errors import SinkError
from sinks.metrics import PipelineMetrics
from streams.experiment_stats import Verdict

# attribute -> (class, family name in the exposition, label names)
EXPERIMENT_CONTRACT: dict[str, tuple[type[Gauge] | type[Counter], str, tuple[str, ...]]] = {
    "experiment_exposed": (
        Gauge,
        "shopfunnel_experiment_exposed_users",
        ("experiment", "variant"),
    ),
    "experiment_excluded": (
        Gauge,
        "shopfunnel_experiment_excluded_users",
        ("experiment", "reason"),
    ),
    "experiment_lift": (
        Gauge,
        "shopfunnel_experiment_relative_lift",
        ("experiment", "variant", "metric"),
    ),
    "experiment_ci_low": (
        Gauge,
        "shopfunnel_experiment_relative_lift_ci_low",
        ("experiment", "variant", "metric"),
    ),
    "experiment_ci_high": (
        Gauge,
        "shopfunnel_experiment_relative_lift_ci_high",
        ("experiment", "variant", "metric"),
    ),
    "experiment_p_value": (
        Gauge,
        "shopfunnel_experiment_p_value",
        ("experiment", "variant", "metric", "test"),
    ),
    "experiment_srm_p_value": (
        Gauge,
        "shopfunnel_experiment_srm_p_value",
        ("experiment", "test"),
    ),
    "experiment_verdict": (Gauge, "shopfunnel_experiment_verdict", ("experiment", "verdict")),
    "experiment_last_evaluation": (
        Gauge,
        "shopfunnel_experiment_last_evaluation_timestamp_seconds",
        (),
    ),
    "experiment_evaluation_seconds": (
        Gauge,
        "shopfunnel_experiment_evaluation_seconds",
        (),
    ),
    "experiment_evaluation_failures": (
        Counter,
        "shopfunnel_experiment_evaluation_failures",
        (),
    ),
}


def _metrics() -> PipelineMetrics:
    return PipelineMetrics(CollectorRegistry(), channels=("direct",))


def test_every_experiment_metric_has_its_name_type_and_labels() -> None:
    m = _metrics()
    for attribute, (cls, name, labelnames) in EXPERIMENT_CONTRACT.items():
        metric: Any = getattr(m, attribute)
        assert isinstance(metric, cls), attribute
        assert metric._name == name, attribute
        assert metric._labelnames == labelnames, attribute
        (family,) = metric.describe()
        assert family.name == name, attribute
        assert len(family.documentation) > 20, attribute  # a real help text


def test_readout_values_read_back_from_the_registry() -> None:
    m = _metrics()
    registry = m.registry
    m.experiment_exposed.labels("checkout_button", "A").set(10_120)
    m.experiment_exposed.labels("checkout_button", "B").set(9_877)
    m.experiment_excluded.labels("checkout_button", "mixed").set(14)
    m.experiment_excluded.labels("checkout_button", "unknown").set(3)
    m.experiment_lift.labels("checkout_button", "B", "primary").set(0.094)
    m.experiment_ci_low.labels("checkout_button", "B", "primary").set(0.012)
    m.experiment_ci_high.labels("checkout_button", "B", "primary").set(0.18)
    m.experiment_lift.labels("checkout_button", "B", "payment_failure_rate").set(-0.02)
    m.experiment_p_value.labels("checkout_button", "B", "primary", "always_valid").set(0.031)
    m.experiment_p_value.labels("checkout_button", "B", "primary", "fixed_horizon").set(0.004)
    m.experiment_srm_p_value.labels("checkout_button", "chi_square").set(0.41)
    m.experiment_srm_p_value.labels("checkout_button", "sequential").set(1.0)
    m.experiment_last_evaluation.set(1_700_000_000.5)
    m.experiment_evaluation_failures.inc()
    m.experiment_evaluation_failures.inc()

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    exp = {"experiment": "checkout_button"}
    primary = {**exp, "variant": "B", "metric": "primary"}
    assert value("shopfunnel_experiment_exposed_users", **exp, variant="A") == 10_120
    assert value("shopfunnel_experiment_exposed_users", **exp, variant="B") == 9_877
    assert value("shopfunnel_experiment_excluded_users", **exp, reason="mixed") == 14
    assert value("shopfunnel_experiment_excluded_users", **exp, reason="unknown") == 3
    assert value("shopfunnel_experiment_relative_lift", **primary) == pytest.approx(0.094)
    assert value("shopfunnel_experiment_relative_lift_ci_low", **primary) == pytest.approx(0.012)
    assert value("shopfunnel_experiment_relative_lift_ci_high", **primary) == pytest.approx(0.18)
    guardrail = {**primary, "metric": "payment_failure_rate"}
    assert value("shopfunnel_experiment_relative_lift", **guardrail) == pytest.approx(-0.02)
    assert value("shopfunnel_experiment_p_value", **primary, test="always_valid") == pytest.approx(
        0.031
    )
    assert value("shopfunnel_experiment_p_value", **primary, test="fixed_horizon") == pytest.approx(
        0.004
    )
    assert value("shopfunnel_experiment_srm_p_value", **exp, test="chi_square") == 0.41
    assert value("shopfunnel_experiment_srm_p_value", **exp, test="sequential") == 1.0
    assert value("shopfunnel_experiment_last_evaluation_timestamp_seconds") == 1_700_000_000.5
    assert value("shopfunnel_experiment_evaluation_failures_total") == 2
    # Nothing set for the control's lift: no series (the control has no lift).
    assert (
        value("shopfunnel_experiment_relative_lift", **exp, variant="A", metric="primary") is None
    )


VERDICTS = [v.value for v in Verdict]


def test_the_verdict_gauge_is_one_for_the_current_verdict_and_zero_for_the_others() -> None:
    m = _metrics()
    m.set_experiment_verdict("checkout_button", Verdict.NONE, VERDICTS)
    m.set_experiment_verdict("checkout_button", "guardrail_breach", VERDICTS)
    m.set_experiment_verdict("hero_banner", Verdict.WIN, VERDICTS)
    by_verdict = {
        v.value: m.registry.get_sample_value(
            "shopfunnel_experiment_verdict",
            {"experiment": "checkout_button", "verdict": v.value},
        )
        for v in Verdict
    }
    assert by_verdict == {"none": 0, "win": 0, "lose": 0, "guardrail_breach": 1, "srm": 0}
    assert (
        m.registry.get_sample_value(
            "shopfunnel_experiment_verdict", {"experiment": "hero_banner", "verdict": "win"}
        )
        == 1
    )
    with pytest.raises(SinkError, match="unknown experiment verdict 'winning'"):
        m.set_experiment_verdict("checkout_button", "winning", VERDICTS)
    # A rejected verdict leaves the gauge as it was.
    assert (
        m.registry.get_sample_value(
            "shopfunnel_experiment_verdict",
            {"experiment": "checkout_button", "verdict": "guardrail_breach"},
        )
        == 1
    )


def test_the_exposition_passes_promtool_check_metrics() -> None:
    m = _metrics()
    m.experiment_exposed.labels("checkout_button", "A").set(5)
    m.experiment_p_value.labels("checkout_button", "B", "primary", "always_valid").set(0.5)
    m.set_experiment_verdict("checkout_button", Verdict.SRM, VERDICTS)
    m.experiment_last_evaluation.set(1_700_000_000)
    m.experiment_evaluation_failures.inc()
    text = generate_latest(m.registry).decode("utf-8")
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "shopfunnel_experiment_exposed_users",
        "shopfunnel_experiment_p_value",
        "shopfunnel_experiment_verdict",
        "shopfunnel_experiment_last_evaluation_timestamp_seconds",
        "shopfunnel_experiment_evaluation_failures",
    } <= names
    assert "shopfunnel_experiment_evaluation_failures_total 1.0" in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install -y prometheus"
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
