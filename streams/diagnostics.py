"""Stack dumps of a running worker, on request (``kill -USR1 <pid>``, ``kill -USR2 <pid>``).

A worker that stops making progress without an error leaves nothing in its log. These
two signals let an operator (and the integration harness, before it kills a worker that
did not stop in time) see where it waits:

- ``SIGUSR1``: every thread's Python stack, written by :mod:`faulthandler` from C, so it
  works even while the event loop is stuck in a busy loop;
- ``SIGUSR2``: every asyncio task's stack, logged by the event loop's thread (shows which
  ``await`` each task waits on; needs the loop to be responsive).
"""

from __future__ import annotations

import asyncio
import faulthandler
import io
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)


def install_stack_dumps() -> None:
    """Register both signals (idempotent; does nothing where they do not exist)."""
    if install_thread_dumps():
        signal.signal(signal.SIGUSR2, _log_tasks)


def install_thread_dumps() -> bool:
    """``SIGUSR1`` writes every thread's stack (C-level, so it replaces any handler set
    before); False where that cannot be set (no such signal, or not the main thread)."""
    if not hasattr(signal, "SIGUSR1"):  # pragma: no cover - not on Windows
        return False
    if threading.current_thread() is not threading.main_thread():
        return False  # signal handlers can only be set from the main thread (an embedding caller)
    try:
        sys.stderr.fileno()
        stream = sys.stderr
    except (AttributeError, ValueError, io.UnsupportedOperation):  # captured (tests, CliRunner)
        stream = sys.__stderr__
    if stream is not None:
        # A second register() keeps the handler it set the first time even when another
        # was set since (mode's worker sets one): unregister first, so this one is set.
        faulthandler.unregister(signal.SIGUSR1)
        faulthandler.register(signal.SIGUSR1, file=stream, all_threads=True)
    return True


def describe_tasks() -> str:
    """Every task of the running event loop with its stack ("" outside a loop)."""
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no running loop in this thread
        return ""
    out = io.StringIO()
    for task in sorted(tasks, key=lambda t: t.get_name()):
        out.write(f"--- {task.get_name()}: {task.get_coro()!r}\n")
        out.writelines(f"{line}\n" for line in await_chain(task.get_coro()))
    return out.getvalue()


def await_chain(coro: object, limit: int = 40) -> list[str]:
    """Where a suspended coroutine waits, outermost first: each coroutine it awaits in turn
    (``Task.print_stack`` shows only the outermost, e.g. mode's ``await task``)."""
    lines: list[str] = []
    while coro is not None and len(lines) < limit:
        frame = _first_attribute(coro, ("cr_frame", "gi_frame", "ag_frame"))
        if frame is None:  # a future (or a task, listed on its own), or a finished coroutine
            lines.append(f"  awaiting {coro!r}"[:300])
            break
        code = frame.f_code
        lines.append(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}')
        coro = _first_attribute(coro, ("cr_await", "gi_yieldfrom", "ag_await"))
    return lines


def _first_attribute(obj: object, names: tuple[str, ...]) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def log_tasks(signum: int) -> None:
    """Log every task's stack (what ``SIGUSR2`` does; call it from the loop's thread)."""
    text = describe_tasks()
    log.warning("asyncio tasks on request (signal %d):\n%s", signum, text or "(no running loop)")


def _log_tasks(signum: int, frame: FrameType | None) -> None:
    log_tasks(signum)
