"""`funnel backfill`: bad input is refused with the fix, before Kafka is touched, and a
good one runs a replay worker with a copy of the settings (no Kafka here: the worker and
the Kafka check are replaced; ClickHouse is the in-memory chDB)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from typer.testing import CliRunner, Result

import streams.worker
from funnel.cli import app
from funnel.settings import Settings

runner = CliRunner()
LIVE = {
    "FUNNEL_CLICKHOUSE_DSN": "chdb://memory",
    "FUNNEL_CLICKHOUSE_DATABASE": "shop",
    "FUNNEL_APP_ID": "shop-funnel",
}
GOOD_FUNNELS = """
funnels:
  - name: shop
    steps: [session_start, view_item, add_to_cart, begin_checkout, purchase]
  - name: browse_to_cart
    steps: [view_item, add_to_cart]
    window: 30m
"""


@pytest.fixture(autouse=True)
def _only_these_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("FUNNEL_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)


@pytest.fixture
def funnels_file(tmp_path: Path) -> Path:
    path = tmp_path / "funnels.yaml"
    path.write_text(GOOD_FUNNELS)
    return path


@pytest.fixture
def no_kafka(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replaces the Kafka check and the worker; returns what the worker was given."""
    seen: dict[str, Any] = {}

    def leftovers(settings: Settings) -> list[str]:
        return list(seen.get("leftovers", []))

    def run_worker(settings: Settings, **kwargs: Any) -> None:
        seen.update(settings=settings, **kwargs)
        if seen.get("reach_the_end", True):
            kwargs["on_idle_stop"]()
        raise SystemExit(0)  # as the Faust worker ends

    monkeypatch.setattr(streams.worker, "kafka_leftovers", leftovers)
    monkeypatch.setattr(streams.worker, "run_worker", run_worker)
    return seen


def backfill(*args: str) -> Result:
    return runner.invoke(app, ["backfill", *args], env=LIVE)


def text(result: Result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def fresh_name() -> str:
    return f"bf_{uuid.uuid4().hex[:10]}"


def test_the_live_database_is_refused(funnels_file: Path, no_kafka: dict[str, Any]) -> None:
    result = backfill("--funnels", str(funnels_file), "--database", "shop")
    assert result.exit_code == 2, result.output
    out = text(result)
    assert "--database shop is the live database (FUNNEL_CLICKHOUSE_DATABASE)" in out
    assert "choose a new name (e.g. --database shop_backfill)" in out
    assert "settings" not in no_kafka


@pytest.mark.parametrize("name", ["shop-backfill", "1shop", "shop; DROP TABLE x", "a" * 64, ""])
def test_a_name_that_is_no_identifier_is_refused(
    name: str, funnels_file: Path, no_kafka: dict[str, Any]
) -> None:
    result = backfill("--funnels", str(funnels_file), "--database", name)
    assert result.exit_code == 2, result.output
    assert "is not a valid database name: use letters, digits and underscores" in text(result)
    assert "settings" not in no_kafka


@pytest.mark.parametrize("name", ["system", "default", "INFORMATION_SCHEMA"])
def test_a_builtin_database_is_refused(
    name: str, funnels_file: Path, no_kafka: dict[str, Any]
) -> None:
    result = backfill("--funnels", str(funnels_file), "--database", name)
    assert result.exit_code == 2, result.output
    assert "is a ClickHouse built-in database: choose a new name" in text(result)


def test_the_live_app_id_is_refused(funnels_file: Path, no_kafka: dict[str, Any]) -> None:
    args = ["--funnels", str(funnels_file), "--database", fresh_name(), "--app-id", "shop-funnel"]
    result = backfill(*args)
    assert result.exit_code == 2, result.output
    assert "is the live worker's app id (FUNNEL_APP_ID)" in text(result)
    assert "settings" not in no_kafka


def test_an_invalid_funnels_file_is_refused_with_the_fix(
    tmp_path: Path, no_kafka: dict[str, Any]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("funnels:\n  - name: x\n    steps: [view_item, not_an_event]\n")
    result = backfill("--funnels", str(bad), "--database", fresh_name())
    assert result.exit_code == 2, result.output
    out = text(result)
    assert "funnel x, field 'steps[2]': no schema can produce event 'not_an_event'" in out
    assert "or a custom event as custom:not_an_event" in out
    assert "settings" not in no_kafka


def test_a_missing_funnels_file_is_refused(tmp_path: Path, no_kafka: dict[str, Any]) -> None:
    result = backfill("--funnels", str(tmp_path / "nope.yaml"), "--database", fresh_name())
    assert result.exit_code == 2, result.output
    assert "cannot read funnel file" in text(result)


def test_a_database_with_rows_is_refused(funnels_file: Path, no_kafka: dict[str, Any]) -> None:
    name = fresh_name()
    admin = clickhouse_connect.get_client(dsn="chdb://memory")
    admin.command(f"CREATE DATABASE {name}")
    admin.command(
        f"CREATE TABLE {name}.funnel_steps_minute (x UInt8) ENGINE = MergeTree ORDER BY x"
    )
    admin.command(f"INSERT INTO {name}.funnel_steps_minute VALUES (1), (2)")
    result = backfill("--funnels", str(funnels_file), "--database", name)
    assert result.exit_code == 2, result.output
    out = text(result)
    assert f"database {name} already holds rows (funnel_steps_minute: 2 rows)" in out
    assert f"choose a new --database, or drop it (DROP DATABASE {name})" in out
    assert "settings" not in no_kafka


def test_state_left_in_kafka_by_an_earlier_run_is_refused(
    funnels_file: Path, no_kafka: dict[str, Any]
) -> None:
    name = fresh_name()
    no_kafka["leftovers"] = [f"state topic shop-funnel-backfill-{name}-visitors-changelog exists"]
    result = backfill("--funnels", str(funnels_file), "--database", name)
    assert result.exit_code == 2, result.output
    out = text(result)
    assert f"an earlier run with app id shop-funnel-backfill-{name} left state in Kafka" in out
    assert "pass a new --app-id" in out
    assert "settings" not in no_kafka


def test_a_backfill_runs_a_replay_worker_into_the_new_database(
    funnels_file: Path, no_kafka: dict[str, Any]
) -> None:
    name = fresh_name()
    result = backfill("--funnels", str(funnels_file), "--database", name, "--until-idle", "4")
    assert result.exit_code == 0, result.output
    settings: Settings = no_kafka["settings"]
    assert settings.replay is True
    assert settings.clickhouse_database == name
    assert settings.app_id == f"shop-funnel-backfill-{name}"
    assert settings.metrics_port == 0
    assert settings.topics.clickstream == "shop.clickstream"  # the same inputs
    assert settings.topics.triggers == f"shop.triggers.backfill-{name}"
    assert settings.topics.dlq == f"shop.dlq.backfill-{name}"
    assert no_kafka["stop_when_idle_seconds"] == 4.0
    assert no_kafka["finish_inputs"] is True
    assert no_kafka["funnels_file"] == funnels_file
    out = text(result)
    assert f"backfill done: database {name} holds the history for shop, browse_to_cart" in out
    assert f"FUNNEL_CLICKHOUSE_DATABASE={name} funnel report funnel" in out


def test_the_default_wait_and_an_explicit_app_id(
    funnels_file: Path, no_kafka: dict[str, Any]
) -> None:
    args = ["--funnels", str(funnels_file), "--database", fresh_name(), "--app-id", "bf-2"]
    result = backfill(*args)
    assert result.exit_code == 0, result.output
    assert no_kafka["settings"].app_id == "bf-2"
    assert no_kafka["stop_when_idle_seconds"] == 15.0


def test_an_interrupted_backfill_says_so(funnels_file: Path, no_kafka: dict[str, Any]) -> None:
    no_kafka["reach_the_end"] = False  # SIGINT: the worker stops before the idle stop
    name = fresh_name()
    result = backfill("--funnels", str(funnels_file), "--database", name)
    assert result.exit_code == 1, result.output
    out = text(result)
    assert "the backfill stopped before reading its inputs to the end" in out
    assert f"DROP DATABASE {name}, and run again with a new --app-id" in out


def test_worker_refuses_to_start_on_an_invalid_funnel_file(tmp_path: Path) -> None:
    """The real `funnel worker`: the file is validated first, so it exits with the funnel,
    the field and the fix before it reaches Kafka (none runs here) or ClickHouse."""
    bad = tmp_path / "funnels.yaml"
    bad.write_text(GOOD_FUNNELS.replace("add_to_cart]\n    window: 30m", "add_to_kart]"))
    env = {**LIVE, "FUNNEL_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # nothing listens there
    result = runner.invoke(app, ["worker", "--funnels", str(bad)], env=env)
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "funnel browse_to_cart" in output
    assert "steps[2]" in output and "add_to_kart" in output
    assert "custom:add_to_kart" in output  # the fix for a custom event


def test_worker_reads_the_funnel_file_setting(tmp_path: Path) -> None:
    """FUNNEL_FUNNELS_FILE names the definitions when --funnels is not given."""
    bad = tmp_path / "funnels.yaml"
    bad.write_text("funnels:\n  - name: Bad Name\n    steps: [view_item, purchase]\n")
    env = {**LIVE, "FUNNEL_BOOTSTRAP_SERVERS": "127.0.0.1:1", "FUNNEL_FUNNELS_FILE": str(bad)}
    result = runner.invoke(app, ["worker"], env=env)
    assert result.exit_code == 2, result.output
    assert "field 'name'" in result.output and "lower_snake_case" in result.output


def test_duration_bounds_the_start_up_while_kafka_is_unreachable(tmp_path: Path) -> None:
    """`funnel worker --duration 2` with no broker stops on its duration, saying so, instead
    of waiting out the Kafka client's own bootstrap timeout (30 s, another message)."""
    env = {**LIVE, "FUNNEL_BOOTSTRAP_SERVERS": "127.0.0.1:1", "FUNNEL_METRICS_PORT": "0"}
    result = runner.invoke(app, ["worker", "--duration", "2"], env=env)
    output = " ".join(result.output.split())
    assert result.exit_code == 2, output
    assert "could not reach Kafka at 127.0.0.1:1 within --duration 2s" in output
