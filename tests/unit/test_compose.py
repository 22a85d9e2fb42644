"""docker-compose.yml: valid against the Compose Specification schema, and consistent
with the repository (mounted files exist, images or builds set, settings accepted).

The validator is check-jsonschema with its vendored compose-spec schema (Apache-2.0,
shipped in the PyPI package); no Docker engine is needed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from funnel.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _validate_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _interpolate(value: object) -> str:
    """Compose's ${VAR:-default} with nothing set in the environment."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    result = _validate_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validation done" in result.stdout


def test_the_validator_rejects_an_invalid_compose_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  worker:\n    imagee: shopfunnel:local\n    ports: 9108\n")
    result = _validate_compose(broken)
    assert result.returncode != 0
    assert "imagee" in result.stdout + result.stderr


def test_the_stack_has_every_component_of_the_issue() -> None:
    services = _services()
    assert {
        "kafka",
        "kafka-init",
        "clickhouse",
        "clickhouse-migrate",
        "prometheus",
        "alertmanager",
        "grafana",
        "worker-1",
        "worker-2",
        "simulator",
    } <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    assert services["worker-1"]["command"] == ["funnel", "worker"]
    assert services["simulator"]["command"][:2] == ["funnel", "simulate"]
    assert (
        "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    )


def test_every_service_has_an_image_or_a_build_that_exists() -> None:
    for name, service in _services().items():
        assert service.get("image") or service.get("build"), name
        if "build" in service:
            context = REPO / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file(), name


def test_every_bind_mount_exists_in_the_repo() -> None:
    named_volumes = set(_compose().get("volumes") or {})
    mounts = 0
    for name, service in _services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source} is missing"
                mounts += 1
            else:
                assert source in named_volumes, f"{name}: undeclared volume {source}"
    assert mounts >= 5


def test_depends_on_names_defined_services() -> None:
    services = _services()
    for name, service in services.items():
        depends = service.get("depends_on", [])
        for target in depends if isinstance(depends, list) else list(depends):
            assert target in services, f"{name} depends on unknown {target}"


def test_published_ports_bind_loopback_only() -> None:
    for name, service in _services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


APP_SERVICES = ["worker-1", "worker-2", "simulator", "kafka-init", "clickhouse-migrate"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_environment_is_accepted_by_the_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = {k: _interpolate(v) for k, v in _services()[service]["environment"].items()}
    for key in list(os.environ):
        if key.startswith("FUNNEL_") or key == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(key)
    for key, value in environment.items():
        assert key.startswith("FUNNEL_"), key
        field = key.removeprefix("FUNNEL_").lower()
        assert field in Settings.model_fields, f"{service}: {key} is not a setting"
        monkeypatch.setenv(key, value)
    settings = load_settings()
    if "FUNNEL_BOOTSTRAP_SERVERS" in environment:
        assert settings.bootstrap_servers == "kafka:9092"
    if "FUNNEL_CLICKHOUSE_DSN" in environment:
        assert settings.clickhouse_dsn == "http://clickhouse:8123"
        assert settings.clickhouse_password.get_secret_value()
    if service.startswith("worker"):
        assert settings.metrics_host == "0.0.0.0"
        assert settings.metrics_port == 9108


def _funnel_commands() -> dict[str, Any]:
    """The real `funnel` commands, simulate included, without touching the global app."""
    from funnel import cli
    from simulator.cli import simulate

    probe = typer.Typer()
    probe.registered_commands.extend(cli.app.registered_commands)
    probe.command("simulate")(simulate)
    # Typer may bring its own click: use the group's attributes, not click's classes.
    commands: dict[str, Any] = typer.main.get_command(probe).commands  # type: ignore[attr-defined]
    return commands


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_commands_parse_with_the_real_cli(service: str) -> None:
    program, name, *args = _services()[service]["command"]
    assert program == "funnel"
    command = _funnel_commands().get(name)
    assert command is not None, f"{service}: funnel has no command {name!r}"
    command.make_context(name, list(args))  # raises click.UsageError on a bad option


def test_prometheus_scrapes_every_worker_on_its_metrics_port() -> None:
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "shopfunnel-worker"]
    targets = {t for sc in job["static_configs"] for t in sc["targets"]}
    workers = {name for name, s in _services().items() if s.get("command") == ["funnel", "worker"]}
    assert targets == {f"{name}:9108" for name in workers}


def test_promtool_accepts_the_compose_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install -y prometheus"
    result = subprocess.run(
        [promtool, "check", "config", str(REPO / "deploy/prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout  # the generated rules are loaded


def test_mounts_match_the_paths_the_configs_expect() -> None:
    services = _services()
    prometheus = set(services["prometheus"]["volumes"])
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in prometheus
    grafana = set(services["grafana"]["volumes"])
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./deploy/grafana/dashboards:/etc/grafana/dashboards:ro" in grafana
    assert "./deploy/alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in set(
        services["alertmanager"]["volumes"]
    )


def test_dockerfile_installs_the_project_on_python_311_slim() -> None:
    dockerfile = (REPO / "deploy/docker/Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    for source in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
    assert "pip install" in dockerfile
