"""The harness's own Kafka broker (deploy/local/kafka.sh on free ports) and topic helpers.

A benchmark never uses another session's broker: unless ``--bootstrap`` is given, it
starts one in its run directory and stops it at the end, pass or fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from bench.errors import BenchError, BrokerStartError

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_SCRIPT = REPO_ROOT / "deploy" / "local" / "kafka.sh"
SCRIPT_TIMEOUT_SECONDS = 300.0
LEADER_TIMEOUT_SECONDS = 30.0
PORT_BUSY_EXIT_CODE = 3  # documented in kafka.sh
START_ATTEMPTS = 3
# Same as streams/topics.py: the broker stamps records on append, which is also the
# "produced at" time the latency measurement starts from.
INPUT_TOPIC_CONFIGS = {"message.timestamp.type": "LogAppendTime"}


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (all held until all are chosen)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
    return ports


# The scaling pass starts its workers together. With no initial delay (kafka.sh's
# default, for one worker) the first to join took every partition and gave half up a
# few seconds later, at the next heartbeat: the pass measured that race (1.07-1.23x)
# more than two workers sharing the input. Kafka's own default waits 3 s for members.
GROUP_INITIAL_DELAY_MS = 3000


def _script_env(data_dir: Path, port: int, controller_port: int, heap: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update(
        KAFKA_DATA_DIR=str(data_dir),
        KAFKA_PORT=str(port),
        KAFKA_CONTROLLER_PORT=str(controller_port),
        KAFKA_HEAP=heap,
        KAFKA_GROUP_INITIAL_DELAY_MS=str(GROUP_INITIAL_DELAY_MS),
        PYTHON=sys.executable,
        # A harness killed before its cleanup must not leave a broker behind.
        KAFKA_OWNER_PID=str(os.getpid()),
    )
    return env


def _run_script(command: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["bash", str(KAFKA_SCRIPT), command],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerStartError(
            f"deploy/local/kafka.sh {command} did not finish in {SCRIPT_TIMEOUT_SECONDS:.0f} s; "
            f"see the logs in {env.get('KAFKA_DATA_DIR')}"
        ) from exc


@contextmanager
def local_broker(work_dir: Path, heap: str = "1g") -> Iterator[str]:
    """Start a broker under ``work_dir`` on free ports; yield its bootstrap address."""
    for attempt in range(1, START_ATTEMPTS + 1):
        port, controller_port = free_ports(2)
        env = _script_env(work_dir / f"kafka-{attempt}", port, controller_port, heap)
        started = _run_script("start", env)
        if started.returncode == 0:
            try:
                yield f"127.0.0.1:{port}"
            finally:
                _run_script("stop", env)
            return
        _run_script("stop", env)  # the script may have left a JVM that never answered
        if started.returncode != PORT_BUSY_EXIT_CODE or attempt == START_ATTEMPTS:
            raise BrokerStartError(
                f"deploy/local/kafka.sh start failed (exit {started.returncode}); "
                f"its output names the fix:\n{started.stdout}{started.stderr}"
            )


def _admin(bootstrap: str) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="bench-admin")
    except KafkaError as exc:
        raise BenchError(
            f"cannot reach Kafka at {bootstrap} ({exc}); omit --bootstrap to let the "
            "benchmark start its own broker"
        ) from exc


def create_topics(
    bootstrap: str,
    names: Sequence[str],
    partitions: int,
    configs: Mapping[str, str] | None = None,
) -> None:
    """Create topics and wait until every partition has a leader (producing before that
    fails with NotLeaderForPartition)."""
    admin = _admin(bootstrap)
    try:
        try:
            admin.create_topics(
                [NewTopic(n, partitions, 1, topic_configs=dict(configs or {})) for n in names]
            )
        except TopicAlreadyExistsError as exc:
            raise BenchError(f"topics {list(names)} already exist: use fresh names") from exc
        except KafkaError as exc:
            raise BenchError(
                f"could not create topics {list(names)} on {bootstrap}: {exc}"
            ) from exc
        deadline = time.monotonic() + LEADER_TIMEOUT_SECONDS
        while not _all_led(admin, names, partitions):
            if time.monotonic() > deadline:
                raise BenchError(
                    f"topics {list(names)} got no leaders within {LEADER_TIMEOUT_SECONDS:.0f} s; "
                    "check the broker log (deploy/local/kafka.sh logs)"
                )
            time.sleep(0.1)
    finally:
        admin.close()


def _all_led(admin: KafkaAdminClient, names: Sequence[str], partitions: int) -> bool:
    try:
        described: list[dict[str, Any]] = admin.describe_topics(list(names))
    except KafkaError:  # metadata not propagated yet
        return False
    led = {
        (topic["name"], int(p["partition_index"]))
        for topic in described
        if topic["error_code"] == 0
        for p in topic["partitions"]
        if p["error_code"] == 0 and p["leader_id"] >= 0
    }
    return all((name, p) in led for name in names for p in range(partitions))
