"""`simulate` CLI: a dry run writes the truth and costs; bad input fails with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app, parse_duration_ms, parse_start_ms
from simulator.config import DEFAULT_START_MS
from simulator.truth import read_truth

runner = CliRunner()


def test_dry_run_writes_truth_and_costs_and_prints_a_summary(tmp_path: Path) -> None:
    truth_path = tmp_path / "run" / "truth.json"
    result = runner.invoke(
        app,
        ["--users", "150", "--days", "0.05", "--dry-run", "--truth-out", str(truth_path),
         "--malformed-pct", "5", "--duplicate-pct", "5", "--scenario", "checkout-outage"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Simulation summary" in result.output
    assert "checkout-outage" in result.output
    truth = read_truth(truth_path)
    assert truth.stats["records"] > 500
    assert truth.true_effects == {"checkout_button": 0.15}
    costs = (tmp_path / "run" / "costs.csv").read_text().splitlines()
    assert costs[0] == "day,channel,utm_source,utm_medium,campaign,cost_minor,currency"
    assert any(",kol," in line for line in costs[1:])


def test_the_truth_uses_the_workers_lifecycle_settings(tmp_path: Path) -> None:
    path = tmp_path / "truth.json"
    env = {"FUNNEL_RFM_NEW_DAYS": "0.5", "FUNNEL_CART_ABANDON_MINUTES": "10"}
    args = ["--users", "40", "--days", "0.02", "--dry-run", "--truth-out", str(path)]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    lifecycle = read_truth(path).lifecycle
    assert (lifecycle.rfm_new_ms, lifecycle.cart_abandon_ms) == (43_200_000, 600_000)
    assert lifecycle.rfm_churn_ms == 180 * 86_400_000


def test_same_options_same_truth_file(tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        path = tmp_path / name / "truth.json"
        args = ["--users", "80", "--days", "0.02", "--dry-run", "--truth-out", str(path)]
        assert runner.invoke(app, args).exit_code == 0
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]


def test_unreachable_broker_is_reported_with_the_fix_and_no_traceback(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["--users", "5", "--days", "0.01", "--bootstrap", "127.0.0.1:1",
         "--truth-out", str(tmp_path / "t.json")],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "cannot connect to Kafka at 127.0.0.1:1" in result.output
    assert "--bootstrap" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [["--days", "-1"], ["--start", "yesterday"], ["--scenario", "meteor"], ["--late-pct", "200"]],
)
def test_bad_options_exit_2_with_usage(args: list[str], tmp_path: Path) -> None:
    result = runner.invoke(app, [*args, "--dry-run", "--truth-out", str(tmp_path / "t.json")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_start_and_duration_parsing() -> None:
    now = 1_800_000_000_000
    assert parse_start_ms("2026-11-01T00:00:00Z") == DEFAULT_START_MS
    assert parse_start_ms("1793491200000") == DEFAULT_START_MS
    assert parse_start_ms("now", now) == now
    assert parse_start_ms("now-1d", now) == now - 86_400_000
    assert parse_duration_ms("90") == 90_000
    assert parse_duration_ms("30m") == 1_800_000
    assert parse_duration_ms("1.5h") == 5_400_000
    assert parse_duration_ms("250ms") == 250
