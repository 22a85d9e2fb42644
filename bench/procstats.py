"""Peak RSS and CPU time of a child process, sampled while it runs.

Peak RSS is the kernel's own high-water mark (``VmHWM`` in /proc/<pid>/status), so a
spike between two samples is not missed; only the time between the last sample and the
exit is, and a benchmark process does nothing memory-hungry then.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field

import psutil

SAMPLE_SECONDS = 0.5


def vm_hwm_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # the process has gone
        return None
    return None


@dataclass
class Sample:
    at: float  # time.time()
    rss_bytes: int
    cpu_seconds: float  # user + system, all threads (children not included)


@dataclass
class ProcessSampler:
    """Samples one process in a background thread until it exits or :meth:`stop`."""

    pid: int
    interval: float = SAMPLE_SECONDS
    peak_rss_bytes: int = 0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ProcessSampler:
        self._thread = threading.Thread(target=self._loop, name=f"sampler-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        try:
            process = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            if not self.sample_once(process):
                return
            self._stop.wait(self.interval)

    def sample_once(self, process: psutil.Process) -> bool:
        try:
            hwm = vm_hwm_bytes(self.pid)
            with process.oneshot():
                cpu = process.cpu_times()
                rss = process.memory_info().rss
        except psutil.Error:
            return False
        if hwm is not None:
            self.peak_rss_bytes = max(self.peak_rss_bytes, hwm)
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        self.samples.append(Sample(time.time(), rss, cpu.user + cpu.system))
        return True

    def cpu_between(self, start: float, end: float) -> float | None:
        """CPU seconds used between two wall times (nearest samples inside the span)."""
        inside = [s for s in self.samples if start <= s.at <= end]
        if len(inside) < 2:
            return None
        return inside[-1].cpu_seconds - inside[0].cpu_seconds

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_bytes / 1024 / 1024


def wait_sampled(
    process: subprocess.Popen[bytes], timeout: float, interval: float = SAMPLE_SECONDS
) -> ProcessSampler:
    """Wait for ``process`` to exit while sampling it; kills it after ``timeout``."""
    sampler = ProcessSampler(process.pid, interval).start()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    finally:
        sampler.stop()
    return sampler
