"""An interpreter whose chDB can run the ClickHouse Kafka engine.

The project pins chDB 4.4 (engine 26.9), whose embedded server forces
``background_message_broker_schedule_pool_size`` to 0: ``CREATE TABLE ... ENGINE = Kafka``
fails with "Shutdown was called" and a config file cannot change it (checked: other
server settings from the file apply, this one stays 0). chDB 3.7.2 (engine 25.8) runs
the engine. The benchmark keeps it in its own virtualenv under ``.data/`` so the
project's pins stay as they are; ``BENCH_CHDB_PYTHON`` points at another interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.errors import BenchError

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV = REPO_ROOT / ".data" / "bench-chdb-venv"
CHDB_REQUIREMENT = "chdb==3.7.2"
ENV_OVERRIDE = "BENCH_CHDB_PYTHON"


def _works(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", "import chdb"], capture_output=True, check=False, timeout=120
    )
    return probe.returncode == 0


def chdb_python(create: bool, log: Callable[[str], None]) -> str | None:
    """The interpreter to run ``bench.peers.chdb_kafka`` with; None if there is none and
    ``create`` is false."""
    override = os.environ.get(ENV_OVERRIDE)
    if override:
        return override
    python = VENV / "bin" / "python"
    if _works(python):
        return str(python)
    if not create:
        return None
    log(f"creating {VENV} with {CHDB_REQUIREMENT} for the ClickHouse Kafka engine peer")
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(VENV)],
        [str(python), "-m", "pip", "install", "--quiet", CHDB_REQUIREMENT],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BenchError(
                f"could not prepare the chDB interpreter ({' '.join(step)}):\n"
                f"{result.stdout}{result.stderr}\nset {ENV_OVERRIDE} to a Python with "
                f"{CHDB_REQUIREMENT}, or pass --skip ch_kafka_engine"
            )
    return str(python)
