"""Real Prometheus and Alertmanager processes for tests (Debian packages, no Docker).

    with prometheus_server(tmp_path, ["127.0.0.1:9108"], time_scale=60) as prom:
        wait_for(lambda: "CheckoutPurchaseCollapse" in firing_alerts(prom.url), timeout=60)

Prometheus binds 127.0.0.1 on a free port, keeps its TSDB in the given directory, scrapes
the targets every second, evaluates every second, and loads the project's rules rendered
with every duration divided by ``time_scale`` (deploy/prometheus/alert_rules.py). With
the default scale of 60 one test second stands for one production minute: the 5 minute
windows become 5 s, ``for: 5m`` becomes 5 s, the trailing hour 60 s. Thresholds are event
counts and are not scaled, so a test sends per second what production sees per minute.

Binaries come from the Debian packages ``prometheus`` and ``prometheus-alertmanager``;
a missing binary is an error (the tests fail, they do not skip).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from deploy.prometheus.alert_rules import render_rules

T = TypeVar("T")

DEFAULT_TIME_SCALE = 60.0
WORKER_JOB = "shopfunnel-worker"
STARTUP_TIMEOUT_S = 30.0


class HarnessError(RuntimeError):
    """A test server could not be started or queried; the message says why."""


@dataclass(frozen=True)
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise HarnessError(
            f"{name} is not installed: apt-get update && apt-get install -y {package}"
        )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.25, what: str = ""
) -> T:
    """Call ``probe`` until it returns something truthy; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or probe!r}")
        time.sleep(interval)


def http_json(url: str, data: bytes | None = None, timeout: float = 5.0) -> Any:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def _is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextmanager
def _run_server(argv: Sequence[str], url: str, workdir: Path, name: str) -> Iterator[RunningServer]:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    server = RunningServer(url=url, process=process, workdir=workdir, log_path=log_path)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _is_ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise HarnessError(f"{name} did not become ready at {url}:\n{server.log_tail()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def prometheus_config(
    targets: Sequence[str],
    *,
    rule_file: str = "rules.yml",
    alertmanager: str | None = None,
    interval: str = "1s",
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "rule_files": [rule_file],
        "scrape_configs": [
            {"job_name": WORKER_JOB, "static_configs": [{"targets": list(targets)}]}
        ],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


@contextmanager
def prometheus_server(
    workdir: Path,
    targets: Sequence[str],
    *,
    time_scale: float = DEFAULT_TIME_SCALE,
    alertmanager: str | None = None,
) -> Iterator[RunningServer]:
    """A Prometheus scraping ``targets`` (host:port) with the time-scaled project rules."""
    binary = require_binary("prometheus", "prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yml").write_text(render_rules(time_scale), encoding="utf-8")
    config_path = workdir / "prometheus.yml"
    config_path.write_text(
        yaml.safe_dump(prometheus_config(targets, alertmanager=alertmanager)), encoding="utf-8"
    )
    port = free_port()
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1d",
    ]
    with _run_server(argv, f"http://127.0.0.1:{port}", workdir, "prometheus") as server:
        yield server


@contextmanager
def alertmanager_server(workdir: Path, config_path: Path) -> Iterator[RunningServer]:
    """An Alertmanager with ``config_path``, clustering off, state in ``workdir``."""
    binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        binary,
        f"--config.file={config_path}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # An empty address turns gossip clustering off (it would bind 0.0.0.0:9094).
        "--cluster.listen-address=",
    ]
    with _run_server(argv, f"http://127.0.0.1:{port}", workdir, "alertmanager") as server:
        yield server


def query(prom_url: str, promql: str) -> list[dict[str, Any]]:
    """Instant query; the ``result`` list of the HTTP API."""
    url = f"{prom_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    payload = http_json(url)
    if payload.get("status") != "success":
        raise HarnessError(f"query {promql!r} failed: {payload}")
    result: list[dict[str, Any]] = payload["data"]["result"]
    return result


def firing_alerts(prom_url: str) -> set[str]:
    """Names of the alerts Prometheus reports as firing right now (the ALERTS series)."""
    return {
        sample["metric"]["alertname"] for sample in query(prom_url, 'ALERTS{alertstate="firing"}')
    }


def scrape_targets_up(prom_url: str) -> bool:
    """True once every configured target has been scraped successfully."""
    samples = query(prom_url, f'up{{job="{WORKER_JOB}"}}')
    return bool(samples) and all(sample["value"][1] == "1" for sample in samples)
