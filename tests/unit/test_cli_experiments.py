"""Experiment files are validated at start-up: `funnel worker` and `funnel experiments
check` name the experiment, the field and the fix (streams/experiments.py)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from funnel.cli import app
from streams.funnels import load_funnels
from streams.worker import worker_experiments
from tests.unit.test_cli_backfill import LIVE

runner = CliRunner()
BAD = """experiments:
  - name: checkout_button
    variants: [A, B]
    control: C
    primary: {funnel: checkout, step: purchase}
"""


def test_the_worker_refuses_to_start_on_an_invalid_experiment_file(tmp_path: Path) -> None:
    bad = tmp_path / "experiments.yaml"
    bad.write_text(BAD)
    env = {**LIVE, "FUNNEL_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # nothing listens there
    result = runner.invoke(app, ["worker", "--experiments", str(bad)], env=env)
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "experiment checkout_button" in output and "field 'control'" in output, output
    assert "use one of ['A', 'B']" in output, output
    # The setting names the file as well.
    result = runner.invoke(app, ["worker"], env={**env, "FUNNEL_EXPERIMENTS_FILE": str(bad)})
    assert result.exit_code == 2 and "field 'control'" in result.output, result.output


def test_experiments_check_lists_valid_files_and_names_the_problem_of_others(
    tmp_path: Path,
) -> None:
    good = runner.invoke(app, ["experiments", "check"], env=LIVE)
    assert good.exit_code == 0, good.output
    assert "checkout_button" in good.output and "2 experiment(s) valid" in good.output
    bad = tmp_path / "experiments.yaml"
    bad.write_text(BAD.replace("step: purchase", "step: pay").replace("control: C", "control: A"))
    result = runner.invoke(app, ["experiments", "check", str(bad)], env=LIVE)
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "field 'primary.step'" in output and "no step 'pay'" in output, output
    dumped = runner.invoke(app, ["experiments", "check", "--dump"], env=LIVE)
    assert dumped.exit_code == 0 and "alpha:" in dumped.output


def test_default_experiments_apply_to_the_default_funnels_only(tmp_path: Path) -> None:
    assert [e.name for e in worker_experiments(None, None, load_funnels())] == [
        "checkout_button",
        "free_shipping_banner",
    ]
    other = tmp_path / "funnels.yaml"
    other.write_text("funnels:\n  - name: only_one\n    steps: [view_item, purchase]\n")
    assert worker_experiments(None, other, load_funnels(other)) == ()


def test_experiments_check_applies_the_workers_rule_to_another_funnel_file(
    tmp_path: Path,
) -> None:
    other = tmp_path / "funnels.yaml"
    other.write_text("funnels:\n  - name: only_one\n    steps: [view_item, purchase]\n")
    result = runner.invoke(app, ["experiments", "check", "--funnels", str(other)], env=LIVE)
    assert result.exit_code == 0 and "0 experiment(s) valid" in result.output, result.output
    bad = tmp_path / "experiments.yaml"
    bad.write_text(BAD.replace("control: C", "control: A"))
    result = runner.invoke(
        app, ["experiments", "check", str(bad), "--funnels", str(other)], env=LIVE
    )
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "no funnel 'checkout'" in output, output
