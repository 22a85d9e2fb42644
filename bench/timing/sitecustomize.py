"""Diagnostic only: where a worker's batch time goes, without editing the worker.

Python imports ``sitecustomize`` at start-up from the path. With this directory first on
``PYTHONPATH`` and ``BENCH_TIMING=<file>`` set, the worker's runtime methods are wrapped
with wall-clock timers and the totals are written to ``<file>`` when it exits:

    python -m bench.run --skip simple --skip latency --skip scaling --no-profile \\
        --worker-env PYTHONPATH=bench/timing:. --worker-env BENCH_TIMING=/tmp/timing.txt

Awaiting methods include the time they wait (changelog drains, ClickHouse flushes), so
the totals overlap; ``process (CPU)`` is the pure processing core. Without
``BENCH_TIMING`` this module does nothing.
"""

from __future__ import annotations

import atexit
import functools
import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

_TOTALS: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])


def _record(label: str, started: float) -> None:
    entry = _TOTALS[label]
    entry[0] += 1
    entry[1] += time.perf_counter() - started


def _wrap_async(owner: Any, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            _record(label, started)

    setattr(owner, name, timed)


def _wrap_sync(owner: Any, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _record(label, started)

    setattr(owner, name, timed)


def _dump(path: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for label, (calls, total) in sorted(_TOTALS.items(), key=lambda kv: -kv[1][1]):
            mean_ms = total / calls * 1000 if calls else 0.0
            out.write(
                f"{label:22s} calls={int(calls):7d} total={total:8.2f}s mean={mean_ms:8.2f}ms\n"
            )


def _install(path: str) -> None:
    from sinks.clickhouse import ClickHouseWriter
    from streams.changelog import ChangelogWriter
    from streams.processor import PartitionProcessor
    from streams.runtime import Runtime
    from streams.table_store import FaustTableStore

    _wrap_async(Runtime, "handle_batch", "handle_batch")
    _wrap_async(Runtime, "_apply", "_apply")
    _wrap_async(Runtime, "tick", "tick")
    _wrap_sync(PartitionProcessor, "process", "process (CPU)")
    _wrap_async(FaustTableStore, "write_many", "store.write_many")
    _wrap_async(ChangelogWriter, "write", "changelog.write")
    _wrap_async(ClickHouseWriter, "flush", "writer.flush")
    atexit.register(_dump, path)


if os.environ.get("BENCH_TIMING"):
    _install(os.environ["BENCH_TIMING"])
