"""Sampling profile of a running worker with py-spy, summarised as text.

py-spy attaches to the worker by pid (no code change, negligible overhead with
``--nonblocking``); ``--gil`` samples only the thread holding the GIL, i.e. where the
Python work of a single-threaded worker goes. Output is py-spy's "raw" (collapsed
stacks) format; :func:`summarise` turns it into self/inclusive tables per function and
per package.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError

SAMPLE_RATE = 100
PROJECT_PARTS = ("streams/", "sinks/", "schemas/")  # this repository's pipeline code
PACKAGES = (
    ("streams/", "streams (our core)"),
    ("sinks/", "sinks (our ClickHouse writer, metrics)"),
    ("schemas/", "schemas (our decoding, validation)"),
    ("faust/", "faust"),
    ("mode/", "mode (faust's service framework)"),
    ("aiokafka/", "aiokafka"),
    ("kafka/", "kafka-python"),
    ("clickhouse_connect/", "clickhouse-connect"),
    ("chdb/", "chdb"),
    ("prometheus_client/", "prometheus-client"),
    ("orjson", "orjson"),
    ("asyncio/", "asyncio"),
    ("selectors.py", "asyncio"),
)


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise BenchError(
            "py-spy is not installed: `.venv/bin/pip install py-spy`, or pass --no-profile"
        )
    return found


@dataclass
class Profiler:
    pid: int
    output: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Profiler:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                py_spy(),
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                str(SAMPLE_RATE),
                "--nonblocking",
                "--gil",
                "--format",
                "raw",
                "--output",
                str(self.output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def stop(self) -> None:
        """py-spy writes its output when interrupted."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _package(frame: str) -> str:
    for needle, name in PACKAGES:
        if needle in frame:
            return name
    return "other (stdlib, threading, ...)"


@dataclass
class Summary:
    samples: int = 0
    self_time: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    by_package: Counter[str] = field(default_factory=Counter)
    inclusive_project: Counter[str] = field(default_factory=Counter)

    def as_json(self, top: int = 25) -> dict[str, Any]:
        def share(counter: Counter[str]) -> list[dict[str, Any]]:
            return [
                {"share": round(n / self.samples, 4), "frame": frame}
                for frame, n in counter.most_common(top)
            ]

        return {
            "samples": self.samples,
            "self": share(self.self_time),
            "inclusive": share(self.inclusive),
            "inclusive_project": share(self.inclusive_project),
            "by_package_self": share(self.by_package),
        }


def summarise(folded: Path) -> Summary:
    summary = Summary()
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        summary.samples += count
        summary.self_time[frames[-1]] += count
        summary.by_package[_package(frames[-1])] += count
        for frame in set(frames):
            summary.inclusive[frame] += count
            if any(part in frame for part in PROJECT_PARTS):
                summary.inclusive_project[frame] += count
    return summary


def render(summary: Summary, top: int = 20) -> str:
    """Plain-text tables for BENCHMARKS.md."""
    lines = [f"samples: {summary.samples} (py-spy --gil, {SAMPLE_RATE} Hz)", "", "self time:"]
    for frame, n in summary.self_time.most_common(top):
        lines.append(f"  {n / summary.samples:6.1%}  {frame}")
    lines += ["", "inclusive time, this project's functions (streams/, sinks/, schemas/):"]
    for frame, n in summary.inclusive_project.most_common(top):
        lines.append(f"  {n / summary.samples:6.1%}  {frame}")
    lines += ["", "self time by package:"]
    for name, n in summary.by_package.most_common():
        lines.append(f"  {n / summary.samples:6.1%}  {name}")
    return "\n".join(lines)
