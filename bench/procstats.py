"""Peak RSS and CPU time of a child process, sampled while it runs.

Peak RSS is the kernel's own high-water mark (``VmHWM`` in /proc/<pid>/status), so a
spike between two samples is not missed; only the time between the last sample and the
exit is, and a benchmark process does nothing memory-hungry then. Read straight from
/proc (Linux), so the harness needs no extra package.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field

SAMPLE_SECONDS = 0.5
_TICKS = os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, field_name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field_name):
                    return int(line.split()[1])
    except OSError:  # the process has gone
        return None
    return None


def vm_hwm_bytes(pid: int) -> int | None:
    kb = _status_kb(pid, "VmHWM:")
    return None if kb is None else kb * 1024


def vm_rss_bytes(pid: int) -> int | None:
    kb = _status_kb(pid, "VmRSS:")
    return None if kb is None else kb * 1024


def cpu_times(stat_path: str) -> tuple[float, float] | None:
    """(utime, stime) in seconds of a process or thread from its ``stat`` file."""
    try:
        with open(stat_path, encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may contain spaces.
    fields = text[text.rfind(")") + 2 :].split()
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS


def cpu_seconds(stat_path: str) -> float | None:
    """utime + stime of a process or thread from its ``stat`` file."""
    times = cpu_times(stat_path)
    return None if times is None else times[0] + times[1]


@dataclass
class Sample:
    at: float  # time.time()
    rss_bytes: int
    cpu_seconds: float  # user + system, all threads (children not included)
    # The kernel's part of cpu_seconds: mostly page faults (zeroing fresh memory) here.
    system_seconds: float = 0.0


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
        while not self._stop.is_set():
            if not self.sample_once():
                return
            self._stop.wait(self.interval)

    def sample_once(self) -> bool:
        hwm = vm_hwm_bytes(self.pid)
        rss = vm_rss_bytes(self.pid)
        times = cpu_times(f"/proc/{self.pid}/stat")
        if hwm is None or rss is None or times is None:
            return False
        self.peak_rss_bytes = max(self.peak_rss_bytes, hwm, rss)
        self.samples.append(Sample(time.time(), rss, times[0] + times[1], times[1]))
        return True

    def cpu_between(self, start: float, end: float) -> float | None:
        """CPU seconds used between two wall times (nearest samples inside the span)."""
        inside = [s for s in self.samples if start <= s.at <= end]
        if len(inside) < 2:
            return None
        return inside[-1].cpu_seconds - inside[0].cpu_seconds

    def system_between(self, start: float, end: float) -> float | None:
        """The kernel's part of :meth:`cpu_between`."""
        inside = [s for s in self.samples if start <= s.at <= end]
        if len(inside) < 2:
            return None
        return inside[-1].system_seconds - inside[0].system_seconds

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
