"""Prometheus rules: generated file up to date, valid for promtool, and their unit tests pass.

promtool comes from the Debian package ``prometheus``; without it these tests fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.errors import GeneratorError
from deploy.prometheus.alert_rules import (
    RuleParams,
    alert_names,
    build_rule_groups,
    format_duration,
    funnel_steps_by_name,
    render_rules,
)
from streams.funnels import load_funnels

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "deploy" / "prometheus"
RULES_FILE = PROM_DIR / "rules" / "shopfunnel.rules.yml"
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.yml"))
DURATION = re.compile(r"\[(\w+)\]|offset (\w+)")


def _promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: apt-get update && apt-get install -y prometheus"
    return path


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def test_committed_rules_equal_the_generator_output() -> None:
    assert RULES_FILE.read_text(encoding="utf-8") == render_rules(1.0), (
        "deploy/prometheus/rules/shopfunnel.rules.yml is stale: run "
        "python deploy/prometheus/rules.py"
    )


def test_promtool_check_rules_accepts_production_and_scaled_rules(tmp_path: Path) -> None:
    scaled = tmp_path / "scaled.rules.yml"
    scaled.write_text(render_rules(60.0), encoding="utf-8")
    result = _run(_promtool(), "check", "rules", str(RULES_FILE), str(scaled))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2


def test_promtool_rule_unit_tests_pass() -> None:
    assert RULE_TESTS, "no rule tests in deploy/prometheus/tests"
    promtool = _promtool()
    # One process per file, in parallel: the week-long baseline test takes a few seconds.
    processes = {
        path.name: subprocess.Popen(
            [promtool, "test", "rules", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for path in RULE_TESTS
    }
    failures = {}
    for name, process in processes.items():
        output, _ = process.communicate(timeout=120)
        if process.returncode != 0:
            failures[name] = output
    assert not failures, "\n\n".join(f"{name}:\n{out}" for name, out in failures.items())


def _alert_cases() -> dict[str, dict[str, int]]:
    cases: dict[str, dict[str, int]] = {}
    for path in RULE_TESTS:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert document["rule_files"] == ["../rules/shopfunnel.rules.yml"], path.name
        for test in document["tests"]:
            for case in test.get("alert_rule_test", []):
                kind = "fires" if case.get("exp_alerts") else "silent"
                counts = cases.setdefault(case["alertname"], {"fires": 0, "silent": 0})
                counts[kind] += 1
    return cases


def test_every_alert_has_rule_tests_that_fire_and_that_stay_silent() -> None:
    cases = _alert_cases()
    for name in alert_names():
        assert cases.get(name, {}).get("fires", 0) >= 1, f"{name}: no firing test"
        assert cases.get(name, {}).get("silent", 0) >= 1, f"{name}: no not-firing test"
    assert set(cases) <= set(alert_names()), "a rule test names an alert that does not exist"


def _alerts() -> list[dict[str, Any]]:
    return [
        rule
        for group in build_rule_groups()["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_every_alert_has_routing_labels_and_operator_annotations() -> None:
    assert {a["alert"] for a in _alerts()} == {
        "FunnelStepConversionDrop",
        "CheckoutPurchaseCollapse",
        "NoOrders",
        "TrackingBroken",
        "ConsumerLagHigh",
        "WatermarkStalled",
        "InputPartitionStalled",
        "SinkFailing",
        "ClickHouseDiskLow",
        "ExperimentGuardrailBreached",
        "ExperimentSampleRatioMismatch",
        "ExperimentDecided",
        "ExperimentReadoutStale",
    }
    for alert in _alerts():
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}
        assert alert["labels"]["category"] in {"funnel", "tracking", "pipeline"}
        assert set(alert["annotations"]) == {"summary", "description", "runbook", "dashboard"}
        assert alert["annotations"]["dashboard"].startswith("http://localhost:3000/d/")


def _durations(document: dict[str, Any]) -> list[str]:
    found = []
    for group in document["groups"]:
        for rule in group["rules"]:
            found += [a or b for a, b in DURATION.findall(rule["expr"])]
            if "for" in rule:
                found.append(rule["for"])
    return found


def _seconds(duration: str) -> float:
    units = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|[wdhms])", duration))


def test_scaled_rules_are_the_same_rules_with_every_duration_divided() -> None:
    production, scaled = build_rule_groups(1.0), build_rule_groups(60.0)
    assert [r.get("alert") or r["record"] for g in production["groups"] for r in g["rules"]] == [
        r.get("alert") or r["record"] for g in scaled["groups"] for r in g["rules"]
    ]
    prod_durations, scaled_durations = _durations(production), _durations(scaled)
    assert len(prod_durations) == len(scaled_durations) > 50
    for prod, fast in zip(prod_durations, scaled_durations, strict=True):
        assert _seconds(fast) == pytest.approx(_seconds(prod) / 60), (prod, fast)
    assert "offset 2h48m" in render_rules(60.0)  # one week / 60


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(300, "5m"), (604800, "1w"), (10080, "2h48m"), (7.5, "7s500ms"), (90061, "1d1h1m1s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_impossible_parameters_are_rejected() -> None:
    with pytest.raises(GeneratorError, match="rounds to zero"):
        format_duration(0.0001)
    with pytest.raises(GeneratorError, match="time_scale"):
        build_rule_groups(0)
    with pytest.raises(GeneratorError, match="inhibition"):
        RuleParams(tracking_for=900)
    with pytest.raises(GeneratorError, match="needs a funnel 'checkout' with the steps"):
        RuleParams(checkout_step="nope")


def test_rules_render_from_the_funnel_file_the_workers_run_with(tmp_path: Path) -> None:
    """`rules.py --funnels F`: a custom FUNNEL_FUNNELS_FILE gets its own drop alerts."""
    from deploy.prometheus import rules

    out = tmp_path / "mixed.rules.yml"
    assert rules.main(["--funnels", str(REPO / "bench/funnels_mixed.yaml"), "-o", str(out)]) == 0
    document = yaml.safe_load(out.read_text())
    funnels = {funnel for funnel, _, _ in _step_pairs(document)}
    assert funnels == {f.name for f in load_funnels(REPO / "bench/funnels_mixed.yaml")}
    assert funnels != {f.name for f in load_funnels()}
    lacking = tmp_path / "lacking.yaml"
    lacking.write_text("funnels:\n  - name: x\n    steps: [view_item, purchase]\n")
    assert rules.main(["--funnels", str(lacking), "-o", str(tmp_path / "x.yml")]) == 2
    assert not (tmp_path / "x.yml").exists()


def _step_pairs(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(funnel, from_step, step) of every step conversion the rules record."""
    return {
        (rule["labels"]["funnel"], rule["labels"]["from_step"], rule["labels"]["step"])
        for group in document["groups"]
        for rule in group["rules"]
        if rule.get("record") == "shopfunnel:funnel_step_conversion:ratio_rate15m"
    }


def _pairs_of(funnels: dict[str, tuple[str, ...]]) -> set[tuple[str, str, str]]:
    return {
        (name, before, after)
        for name, steps in funnels.items()
        for before, after in pairwise(steps)
    }


def test_the_committed_rules_cover_exactly_the_funnels_of_the_yaml() -> None:
    committed = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    assert _step_pairs(committed) == _pairs_of(funnel_steps_by_name(load_funnels()))
    assert RuleParams().funnels == funnel_steps_by_name(load_funnels())


def test_a_funnel_added_to_the_yaml_reaches_the_rules(tmp_path: Path) -> None:
    # streams/funnels.yaml is the only list of funnels: a funnel added there gets its
    # conversion rules from the next render, with no code change.
    document = yaml.safe_load((REPO / "streams" / "funnels.yaml").read_text(encoding="utf-8"))
    document["funnels"].append(
        {"name": "browse", "steps": ["session_start", "view_item", "add_to_cart"], "window": "30m"}
    )
    funnels_file = tmp_path / "funnels.yaml"
    funnels_file.write_text(yaml.safe_dump(document), encoding="utf-8")

    funnels = funnel_steps_by_name(load_funnels(funnels_file))
    rendered = build_rule_groups(1.0, RuleParams(funnels=funnels))
    assert _step_pairs(rendered) == _pairs_of(funnels)
    assert {
        ("browse", "session_start", "view_item"),
        ("browse", "view_item", "add_to_cart"),
    } <= _step_pairs(rendered)
    assert not {p for p in _step_pairs(build_rule_groups()) if p[0] == "browse"}
