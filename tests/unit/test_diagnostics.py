"""kill -USR1 / -USR2 on a worker: thread stacks and asyncio task stacks in its log."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.pipeline_harness import REPO_ROOT

PROGRAM = """
import asyncio, logging, sys
from streams.diagnostics import install_stack_dumps
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
install_stack_dumps()

async def waits_on_something_that_never_comes():
    await asyncio.Event().wait()

async def outer_layer():  # the dump follows the awaits down from the task's coroutine
    await waits_on_something_that_never_comes()

async def main():
    asyncio.ensure_future(outer_layer()).set_name("stuck-task")
    print("ready", flush=True)
    await asyncio.sleep(30)

asyncio.run(main())
"""


def signalled(program: str, *signals: signal.Signals) -> tuple[str, str]:
    """Run ``program`` until it prints "ready", send ``signals``; its stdout and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-c", program],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for sig in signals:
            proc.send_signal(sig)
            time.sleep(0.5)
        assert proc.poll() is None, "a dump must not stop the process"
    finally:
        proc.kill()
        out, err = proc.communicate(timeout=10)
    return out, err


def test_both_signals_dump_stacks_and_the_process_keeps_running() -> None:
    _out, err = signalled(PROGRAM, signal.SIGUSR1, signal.SIGUSR2)
    assert "Current thread" in err or "Thread 0x" in err, err  # faulthandler's thread dump
    assert "asyncio tasks on request" in err, err
    assert "stuck-task" in err and "in outer_layer" in err, err
    assert "in waits_on_something_that_never_comes" in err and "in wait" in err, err


REINSTALL = """
import signal, sys, time
from streams.diagnostics import install_stack_dumps, install_thread_dumps
install_stack_dumps()
signal.signal(signal.SIGUSR1, lambda *_: print("the other handler", flush=True))  # as mode's
install_thread_dumps()
print("ready", flush=True)
time.sleep(30)
"""


def test_thread_dumps_take_the_signal_back_from_a_handler_set_since() -> None:
    out, err = signalled(REINSTALL, signal.SIGUSR1)
    assert "(most recent call first)" in err, err
    assert "the other handler" not in out, out
