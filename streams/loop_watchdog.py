"""Finds what blocks the worker's event loop.

Everything the worker does for an event (fetch, core, changelog, submitting rows) runs
on one asyncio loop, so anything that holds that loop for long, a slow callback, a
garbage collection, a lock, delays every event behind it: the event-to-ClickHouse
latency's tail. A loop callback beats every ``interval`` seconds; a thread watches the
beats, and when one is ``threshold`` seconds late it takes the loop thread's stack once,
while the stall is going on. When the loop beats again, the stall's length is observed
(``shopfunnel_event_loop_blocked_seconds``) and logged with that stack (one line a
minute at most), so an operator reads where the time went without a profiler.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


def stack_of(thread_id: int, limit: int = 12) -> str:
    """The innermost ``limit`` frames of a thread, one line each (``""`` if it is gone)."""
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return ""
    summary = traceback.extract_stack(frame)[-limit:]
    return "\n".join(f"  {f.filename}:{f.lineno} in {f.name}" for f in summary)


@dataclass
class LoopWatchdog:
    """Beats on the loop every ``interval`` s; reports stalls of ``threshold`` s or more
    to ``on_stall(seconds, stack)``."""

    on_stall: Callable[[float, str], None]
    threshold: float = 0.5
    interval: float = 0.05
    clock: Callable[[], float] = time.monotonic
    _last_beat: float = 0.0
    _stack: str = ""  # the loop thread's stack, taken during the current stall
    _loop_thread: int = 0
    _stopped: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not 0 < self.interval < self.threshold:
            raise ValueError(f"need 0 < interval ({self.interval}) < threshold ({self.threshold})")

    def start(self, loop: asyncio.AbstractEventLoop) -> threading.Thread:
        """Start beating on ``loop`` (call from its thread) and watching from a thread."""
        self._loop_thread = threading.get_ident()
        self._last_beat = self.clock()
        loop.call_soon(self._beat, loop)
        watcher = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        watcher.start()
        return watcher

    def stop(self) -> None:
        self._stopped.set()

    def _beat(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._stopped.is_set():
            return
        self.beat()
        loop.call_later(self.interval, self._beat, loop)

    def beat(self) -> None:
        """One beat: ends (and reports) a stall if the previous beat was too long ago."""
        now = self.clock()
        with self._lock:
            late = now - self._last_beat - self.interval
            stack, self._stack = self._stack, ""
            self._last_beat = now
        if late >= self.threshold:
            self.on_stall(late, stack)

    def check(self) -> None:
        """One look from the watching thread: during a stall, take the stack once."""
        with self._lock:
            stalled = self.clock() - self._last_beat - self.interval >= self.threshold
            if stalled and not self._stack:
                self._stack = stack_of(self._loop_thread) or "  (no stack)"

    def _watch(self) -> None:
        while not self._stopped.wait(self.interval):
            self.check()


@dataclass
class StallLog:
    """An ``on_stall`` that observes every stall and logs at most one per ``every``
    seconds, with its stack; the next line counts the stalls left out meanwhile (a
    backlog's big batches would otherwise log a stack every second)."""

    observe: Callable[[float], None]
    every: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _next_at: float = float("-inf")
    _left_out: int = 0
    _longest_left_out: float = 0.0

    def __call__(self, seconds: float, stack: str) -> None:
        self.observe(seconds)
        now = self.clock()
        if now < self._next_at:
            self._left_out += 1
            self._longest_left_out = max(self._longest_left_out, seconds)
            return
        since = (
            f" ({self._left_out} more since the last such line, the longest"
            f" {self._longest_left_out:.2f} s)"
            if self._left_out
            else ""
        )
        log.warning(
            "the event loop was blocked for %.2f s%s; meanwhile it was running:\n%s",
            seconds,
            since,
            stack or "  (not caught: the stall ended between two looks)",
        )
        self._next_at = now + self.every
        self._left_out, self._longest_left_out = 0, 0.0


def log_stall(observe: Callable[[float], None]) -> Callable[[float, str], None]:
    """The worker's ``on_stall``: every stall observed, one logged a minute at most."""
    return StallLog(observe)
