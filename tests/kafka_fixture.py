"""A real Kafka broker for the test session, plus topic helpers.

``kafka_bootstrap`` is the fixture tests use. It returns ``KAFKA_BOOTSTRAP_SERVERS`` when
that is set (an existing cluster); otherwise it starts a broker with
``deploy/local/kafka.sh`` in a fresh temporary data dir on free ports, so a test run never
touches a developer's broker on 19092, and stops it when the session ends, pass or fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from funnel.errors import FunnelError

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = REPO_ROOT / "deploy" / "local" / "kafka.sh"
# The script waits KAFKA_START_TIMEOUT (60 s) for the broker, after a possible cold fetch.
SCRIPT_TIMEOUT_SECONDS = 300.0
TOPIC_READY_TIMEOUT_SECONDS = 30.0
# Smaller than the script's default: a test session may run two brokers side by side.
TEST_BROKER_HEAP = "512m"


# kafka.sh exits with this when a port it was given is taken (documented in the script).
PORT_BUSY_EXIT_CODE = 3
# Free ports are picked before the JVM binds them, seconds later; another process may
# take one in between. Each retry picks new ports.
START_ATTEMPTS = 3


class LocalBrokerError(FunnelError):
    """The test broker could not be started, stopped or used; the message says why."""


class BrokerPortBusyError(LocalBrokerError):
    """kafka.sh found a chosen port taken; starting again on other ports can succeed."""


@dataclass(frozen=True)
class ScriptBroker:
    """A broker managed by deploy/local/kafka.sh in its own data dir and ports."""

    data_dir: Path
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    def env(self) -> dict[str, str]:
        """Environment for kafka.sh: this broker's dir and ports, never an outside cluster."""
        env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        env.update(
            KAFKA_DATA_DIR=str(self.data_dir),
            KAFKA_PORT=str(self.port),
            KAFKA_CONTROLLER_PORT=str(self.controller_port),
            # The venv need not be on PATH; the readiness probe only needs the stdlib.
            PYTHON=sys.executable,
            # A test run killed before its teardown must not leave a broker behind.
            KAFKA_OWNER_PID=str(os.getpid()),
        )
        env.setdefault("KAFKA_HEAP", TEST_BROKER_HEAP)
        return env

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run ``kafka.sh <command>`` for this broker; never raises on a non-zero exit."""
        try:
            return subprocess.run(
                ["bash", str(KAFKA_SCRIPT), command],
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=SCRIPT_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise LocalBrokerError(
                f"kafka.sh {command} did not finish within {SCRIPT_TIMEOUT_SECONDS:.0f} s; "
                f"see the logs in {self.data_dir}"
            ) from exc

    def start(self) -> None:
        result = self.run("start")
        if result.returncode == PORT_BUSY_EXIT_CODE:
            raise BrokerPortBusyError(
                f"kafka.sh start: port {self.port} or {self.controller_port} is taken:\n"
                f"{result.stdout}{result.stderr}"
            )
        if result.returncode != 0:
            raise LocalBrokerError(
                f"kafka.sh start failed (exit {result.returncode}) for {self.data_dir}; "
                f"its output names the fix:\n{result.stdout}{result.stderr}"
            )

    def stop(self) -> None:
        result = self.run("stop")
        if result.returncode != 0:
            raise LocalBrokerError(
                f"kafka.sh stop failed (exit {result.returncode}) for {self.data_dir}:\n"
                f"{result.stdout}{result.stderr}"
            )

    def process_ids(self) -> list[int]:
        """PIDs of live broker JVMs serving this data dir (expected: zero or one)."""
        return broker_process_ids(self.data_dir)


def broker_process_ids(data_dir: Path) -> list[int]:
    """PIDs whose command line runs kafka.Kafka with the server.properties in data_dir."""
    needle = f"kafka.Kafka\0{data_dir.resolve()}/server.properties".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # the process ended while we looked
            continue
        if needle in cmdline:
            pids.append(int(entry.name))
    return pids


def free_port_pair() -> tuple[int, int]:
    """Two distinct free TCP ports on 127.0.0.1 (client, controller)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(2):
            sock = stack.enter_context(closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)))
            # Both stay bound until both are chosen, so the two cannot be the same port.
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
    return ports[0], ports[1]


def new_script_broker(data_dir: Path) -> ScriptBroker:
    port, controller_port = free_port_pair()
    return ScriptBroker(data_dir=data_dir, port=port, controller_port=controller_port)


@contextmanager
def running_script_broker(data_dir: Path) -> Iterator[ScriptBroker]:
    """Start a broker with kafka.sh under data_dir on free ports; stop it on exit, pass or fail."""
    for attempt in range(1, START_ATTEMPTS + 1):
        broker = new_script_broker(data_dir / f"attempt-{attempt}")
        try:
            broker.start()
        except BrokerPortBusyError:
            broker.stop()
            if attempt == START_ATTEMPTS:
                raise
            continue
        except BaseException:
            # The script may have left a JVM that never answered.
            broker.stop()
            raise
        try:
            yield broker
        finally:
            broker.stop()
        return


# Where kafka_bootstrap leaves the broker it started, for tests of kafka.sh itself.
SESSION_SCRIPT_BROKER = pytest.StashKey[ScriptBroker]()


def session_script_broker(config: pytest.Config) -> ScriptBroker | None:
    """The broker kafka_bootstrap started, or None when it uses KAFKA_BOOTSTRAP_SERVERS."""
    return config.stash.get(SESSION_SCRIPT_BROKER, None)


@pytest.fixture(scope="session")
def kafka_bootstrap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``host:port`` of a live Kafka broker for this test session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        yield external
        return
    with running_script_broker(tmp_path_factory.mktemp("kafka")) as broker:
        request.config.stash[SESSION_SCRIPT_BROKER] = broker
        try:
            yield broker.bootstrap
        finally:
            del request.config.stash[SESSION_SCRIPT_BROKER]


def unique_topic(prefix: str) -> str:
    """A topic name no other test (or earlier run against the same cluster) uses."""
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int,
    configs: Mapping[str, str] | None = None,
) -> None:
    """Create a topic (replication factor 1) and wait until every partition has a leader.

    Waiting here is what keeps tests deterministic: right after creation, clients see
    NotLeaderForPartition until the leaders are known.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tests-create-topic")
    try:
        new_topic = NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=1,
            topic_configs=dict(configs or {}),
        )
        try:
            admin.create_topics([new_topic])
        except TopicAlreadyExistsError as exc:
            raise LocalBrokerError(
                f"topic {name!r} already exists on {bootstrap}; use unique_topic() for names"
            ) from exc
        except KafkaError as exc:
            raise LocalBrokerError(
                f"could not create topic {name!r} on {bootstrap}: {exc}; is the broker up "
                "(deploy/local/kafka.sh status)?"
            ) from exc
        wait_for_partition_leaders(admin, name, partitions)
    finally:
        admin.close()


def wait_for_partition_leaders(admin: KafkaAdminClient, name: str, partitions: int) -> None:
    deadline = time.monotonic() + TOPIC_READY_TIMEOUT_SECONDS
    while True:
        led = partitions_with_leader(admin, name)
        if led == set(range(partitions)):
            return
        if time.monotonic() > deadline:
            raise LocalBrokerError(
                f"topic {name!r}: only partitions {sorted(led)} of {partitions} got a leader "
                f"within {TOPIC_READY_TIMEOUT_SECONDS:.0f} s; check the broker log "
                "(deploy/local/kafka.sh logs)"
            )
        time.sleep(0.1)


def partitions_with_leader(admin: KafkaAdminClient, name: str) -> set[int]:
    try:
        described: list[dict[str, Any]] = admin.describe_topics([name])
    except KafkaError:  # metadata not propagated yet: treated as "no leaders yet"
        return set()
    return {
        int(partition["partition_index"])
        for topic in described
        if topic["name"] == name and topic["error_code"] == 0
        for partition in topic["partitions"]
        if partition["error_code"] == 0 and partition["leader_id"] >= 0
    }
