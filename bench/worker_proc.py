"""The real worker (``funnel worker``) as a measured subprocess.

Each worker gets its own data dir (chDB locks its directory per process), metrics port
and log file; workers of one run share ``FUNNEL_APP_ID`` (one consumer group). While it
runs, a thread scrapes its /metrics and samples its RSS and CPU.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import PeerFailedError
from bench.procstats import ProcessSampler, cpu_seconds
from bench.promscrape import Snapshot, scrape
from funnel.settings import TopicNames

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRAPE_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 60.0
# A worker never outlives a harness that died without stopping it.
SAFETY_DURATION_SECONDS = 1800


@dataclass(frozen=True)
class WorkerConfig:
    bootstrap: str
    topics: TopicNames
    partitions: int
    app_id: str
    data_dir: Path
    metrics_port: int
    extra_env: tuple[tuple[str, str], ...] = ()  # --worker-env KEY=VALUE, applied last
    # The worker stops itself after this long (``--duration``); a soak needs longer.
    max_seconds: float = SAFETY_DURATION_SECONDS
    # CPUs the worker and every thread it starts may run on (``taskset``); () = any.
    cpus: tuple[int, ...] = ()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
        env.update(
            PYTHONPATH=str(REPO_ROOT),
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            FUNNEL_BOOTSTRAP_SERVERS=self.bootstrap,
            FUNNEL_APP_ID=self.app_id,
            FUNNEL_DATA_DIR=str(self.data_dir),
            FUNNEL_PARTITIONS=str(self.partitions),
            FUNNEL_METRICS_PORT=str(self.metrics_port),
            FUNNEL_TOPICS__CLICKSTREAM=self.topics.clickstream,
            FUNNEL_TOPICS__CART=self.topics.cart,
            FUNNEL_TOPICS__ORDERS=self.topics.orders,
            FUNNEL_TOPICS__DLQ=self.topics.dlq,
            FUNNEL_TOPICS__TRIGGERS=self.topics.triggers,
            FUNNEL_TOPICS__FORGET=self.topics.forget,
            # Simulated traffic is in the past: validate against record time, not now.
            FUNNEL_REPLAY="true",
        )
        env.update(dict(self.extra_env))
        return env

    def pin_prefix(self) -> list[str]:
        """The command's prefix that holds it to ``cpus``: taskset sets the affinity and
        execs the command (same pid), and every thread it starts (chDB's pools
        included) inherits it."""
        return ["taskset", "-c", ",".join(map(str, self.cpus))] if self.cpus else []

    @property
    def clickhouse_dir(self) -> Path:
        return self.data_dir / "clickhouse"


@dataclass
class WorkerProcess:
    config: WorkerConfig
    process: subprocess.Popen[bytes] | None = None
    sampler: ProcessSampler | None = None
    snapshots: list[Snapshot] = field(default_factory=list)
    thread_cpu: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _scraper: threading.Thread | None = None

    def start(self) -> WorkerProcess:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.config.data_dir / "worker.log").open("wb")
        self.process = subprocess.Popen(
            [
                *self.config.pin_prefix(),
                sys.executable,
                "-m",
                "funnel.cli",
                "worker",
                "--loglevel",
                os.environ.get("BENCH_WORKER_LOGLEVEL", "warning"),
                "--duration",
                str(int(self.config.max_seconds)),
            ],
            cwd=REPO_ROOT,
            env=self.config.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.sampler = ProcessSampler(self.process.pid).start()
        self._scraper = threading.Thread(target=self._scrape_loop, daemon=True)
        self._scraper.start()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _scrape_loop(self) -> None:
        while not self._stop.is_set():
            snapshot = scrape(self.config.metrics_port, time.time())
            if snapshot is not None:
                self.snapshots.append(snapshot)
            self._stop.wait(SCRAPE_SECONDS)

    @property
    def last(self) -> Snapshot | None:
        return self.snapshots[-1] if self.snapshots else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self, what: str) -> None:
        if not self.alive():
            raise PeerFailedError(
                f"{what}: worker {self.config.app_id} exited with "
                f"{self.process.returncode if self.process else None}; its log is "
                f"{self.config.data_dir / 'worker.log'}:\n{self.log_tail()}"
            )

    def log_tail(self, chars: int = 3000) -> str:
        path = self.config.data_dir / "worker.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def record_thread_cpu(self) -> None:
        """CPU seconds per thread name so far (main loop, chDB pools, writer, ...)."""
        cpu: dict[str, float] = {}
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{self.pid}/task")]
        except OSError:  # the process has gone
            return
        for tid in tids:
            seconds = cpu_seconds(f"/proc/{self.pid}/task/{tid}/stat")
            if seconds is not None:
                name = _thread_name(self.pid, tid)
                cpu[name] = cpu.get(name, 0.0) + seconds
        self.thread_cpu = dict(sorted(cpu.items(), key=lambda kv: -kv[1]))

    def stop(self) -> None:
        """SIGTERM (the worker flushes ClickHouse and commits), then wait; kill if stuck.

        Scraping stops first, so that no snapshot is taken while the worker shuts down:
        a pass is summarised from its last snapshots. (One pass once reported 982,632
        events/s on no CPU from a last snapshot without the runtime's series; when it was
        taken is not known. ``summarise_pass`` now refuses such a pass.)
        """
        self._stop.set()
        if self._scraper is not None:
            self._scraper.join()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.sampler is not None:
            self.sampler.stop()


def _thread_name(pid: int, tid: int) -> str:
    try:
        name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
    except OSError:
        return "?"
    if tid == pid:
        return "main (Python event loop)"
    # chDB names its pool threads with a numeric suffix; group them.
    return name.rstrip("0123456789") or name


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    workers: list[WorkerProcess],
    interval: float = SCRAPE_SECONDS,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for worker in workers:
            worker.check_alive(what)
        if time.monotonic() > deadline:
            raise PeerFailedError(
                f"{what}: not reached within {timeout:.0f} s; worker logs: "
                + ", ".join(str(w.config.data_dir / "worker.log") for w in workers)
            )
        time.sleep(interval)
