"""Keep a broker outage from flooding the log with the Kafka clients' repeated lines.

While a broker is down, aiokafka logs every failed attempt (`Unable connect to
"host:port": ...`): a fault drill wrote 87,392 such lines (17.7 MB) in 32 s. A
:class:`RepeatFilter` lets the first occurrence of a message through, drops its repeats
for ``window_seconds``, and then reports them in one line: ``N similar messages
suppressed in the last Ts: <message>`` (just before the next occurrence after the
window, or before any later log line, or at exit). Each plain line is one occurrence,
each summary counts only the occurrences that were not shown. A message is the same
when its logger, level, format string and arguments are: two hosts, or two different
errors, are never merged.

Only records of WARNING and above from the client libraries' loggers are throttled; the
pipeline's own lines and debug output pass untouched. :func:`install_log_throttle` puts
one filter on those loggers and on the root handlers (a filter on a logger does not see
its children's records; one on a handler sees them all), once per process.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

# aiokafka (the Kafka client), faust and mode (the stream framework), kafka (kafka-python,
# used for admin calls).
CLIENT_LOGGERS: Final = ("aiokafka", "faust", "mode", "kafka")
WINDOW_SECONDS: Final = 10.0
MAX_MESSAGES: Final = 10_000  # distinct messages tracked at once; the oldest go first
SUMMARY: Final = "{count} similar messages suppressed in the last {seconds:.0f}s: {message}"

# Set on a record once decided, so a record that meets the filter on its logger and again
# on a handler (or a summary the filter emits itself) is not counted twice.
_DECIDED: Final = "_funnel_log_throttle"

_STAMP: Final = frozenset({"created", "msecs", "relativeCreated"})

Key = tuple[str, int, str, tuple[str, ...]]


@dataclass
class _Window:
    started: float
    suppressed: int = 0
    last: logging.LogRecord | None = None  # the latest suppressed record, for the summary


class RepeatFilter(logging.Filter):
    """Passes the first of identical messages per window, then one summary line."""

    def __init__(
        self,
        loggers: Iterable[str] = CLIENT_LOGGERS,
        *,
        window_seconds: float = WINDOW_SECONDS,
        min_level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
        max_messages: int = MAX_MESSAGES,
    ) -> None:
        super().__init__()
        self.loggers = tuple(loggers)
        self.window_seconds = window_seconds
        self.min_level = min_level
        self.clock = clock
        self.max_messages = max_messages
        self._windows: dict[Key, _Window] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def applies_to(self, record: logging.LogRecord) -> bool:
        name = record.name
        return record.levelno >= self.min_level and any(
            name == prefix or name.startswith(prefix + ".") for prefix in self.loggers
        )

    def filter(self, record: logging.LogRecord) -> bool:
        decided = getattr(record, _DECIDED, None)
        if decided is not None:
            return bool(decided)
        now = self.clock()
        due: list[logging.LogRecord] = []
        with self._lock:
            keep = self._decide(record, now, due) if self.applies_to(record) else True
            if now >= self._next_sweep:
                due.extend(self._sweep(now))
        setattr(record, _DECIDED, keep)
        self._emit(due)  # before ``record``, which its handlers write once this returns
        return keep

    def flush(self) -> None:
        """Report every suppression still pending (at exit: repeats that just stopped)."""
        with self._lock:
            due = self._sweep(None)
        self._emit(due)

    def _decide(self, record: logging.LogRecord, now: float, due: list[logging.LogRecord]) -> bool:
        key = (record.name, record.levelno, str(record.msg), _args_key(record.args))
        window = self._windows.get(key)
        if window is not None and now - window.started < self.window_seconds:
            window.suppressed += 1
            window.last = record
            return False
        if window is not None:
            due.extend(self._summary(window, now))
        self._windows.pop(key, None)  # re-inserted last: the dict stays oldest first
        self._windows[key] = _Window(now)
        if len(self._windows) > self.max_messages:
            del self._windows[next(iter(self._windows))]  # its repeats go unreported
        return True

    def _sweep(self, now: float | None) -> list[logging.LogRecord]:
        """Forget ended windows (all when ``now`` is None); summaries of their repeats."""
        if now is not None:
            self._next_sweep = now + self.window_seconds / 2
        due: list[logging.LogRecord] = []
        for key, window in list(self._windows.items()):
            ended = now is None or now - window.started >= self.window_seconds
            if not ended:
                continue
            del self._windows[key]
            due.extend(self._summary(window, now if now is not None else self.clock()))
        return due

    @staticmethod
    def _summary(window: _Window, now: float) -> list[logging.LogRecord]:
        """The line reporting a window's suppressed repeats (none if there were none)."""
        if not window.suppressed or window.last is None:
            return []
        # The last repeat's logger, level and source; stamped now, when it is written, so
        # that "in the last Ts" counts back from the line's own time.
        fields = {k: v for k, v in window.last.__dict__.items() if k not in _STAMP}
        summary = logging.makeLogRecord(fields)
        summary.exc_info = summary.exc_text = summary.stack_info = None
        try:
            message = window.last.getMessage()
        except Exception:  # a bad format string: show it as it is
            message = str(window.last.msg)
        summary.msg = SUMMARY.format(
            count=window.suppressed, seconds=now - window.started, message=message
        )
        summary.args = None
        setattr(summary, _DECIDED, True)
        return [summary]

    @staticmethod
    def _emit(records: list[logging.LogRecord]) -> None:
        for record in records:
            logging.getLogger(record.name).handle(record)


def _args_key(args: object) -> tuple[str, ...]:
    if not args:
        return ()
    try:
        if isinstance(args, Mapping):
            return tuple(f"{k}={v}" for k, v in sorted(args.items(), key=lambda kv: str(kv[0])))
        if isinstance(args, tuple):
            return tuple(str(a) for a in args)
        return (str(args),)
    except Exception:  # an argument whose str() fails: logging reports it when formatting
        return (repr(type(args)),)


def attach(throttle: RepeatFilter, handlers: Iterable[logging.Handler] = ()) -> None:
    """Put ``throttle`` on its loggers (and their existing children) and on ``handlers``."""
    names = set(throttle.loggers)
    names.update(
        name
        for name, logger in list(logging.Logger.manager.loggerDict.items())
        if isinstance(logger, logging.Logger)
        and any(name.startswith(prefix + ".") for prefix in throttle.loggers)
    )
    for target in [*(logging.getLogger(n) for n in sorted(names)), *handlers]:
        if throttle not in target.filters:
            target.addFilter(throttle)


_installed: list[RepeatFilter] = []


def install_log_throttle(window_seconds: float = WINDOW_SECONDS) -> RepeatFilter:
    """Throttle the client libraries' repeated lines in this process (idempotent).

    Call it after the log handlers are set up (``logging.basicConfig``); calling it again
    later also covers handlers and loggers added since.
    """
    if not _installed:
        throttle = RepeatFilter(window_seconds=window_seconds)
        _installed.append(throttle)
        atexit.register(throttle.flush)
    throttle = _installed[0]
    attach(throttle, logging.getLogger().handlers)
    return throttle
