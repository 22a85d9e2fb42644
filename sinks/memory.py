"""Where a worker's memory is: glibc's heap, Python's objects, and the embedded ClickHouse.

A worker's RSS is one number for three allocators in one process: glibc ``malloc``
(Python's objects larger than 512 bytes, orjson, fastavro, aiokafka's buffers), Python's
own small-object arenas (``sys.getallocatedblocks``) and chDB's ClickHouse engine, which
accounts its own allocations (``system.metrics``: ``MemoryTracking``, the caches). Issue
#16 asked why RSS grows while the visitor state stays small; these readings split it, and
the worker exports them (``shopfunnel_memory_bytes{part}``) so an operator can see which
part grows.

Everything here is read-only and cheap (one ``mallinfo2`` call, one small query), so the
worker reads it on a timer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import re
import sys
import time
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from sinks.kept_client import KeptClient

log = logging.getLogger(__name__)

# How often a worker reads them (seconds): cheap, and finer than a soak's 30-s curve.
READ_SECONDS: Final = 15.0

# ClickHouse's own accounting (system.metrics) -> the ``part`` label it is exported as.
CLICKHOUSE_METRICS: Final[Mapping[str, str]] = {
    "MemoryTracking": "clickhouse_tracked",
    "MergesMutationsMemoryTracking": "clickhouse_merges",
    "MarkCacheBytes": "clickhouse_mark_cache",
    "UncompressedCacheBytes": "clickhouse_uncompressed_cache",
    "PrimaryIndexCacheBytes": "clickhouse_primary_index_cache",
    "QueryCacheBytes": "clickhouse_query_cache",
    "PageCacheBytes": "clickhouse_page_cache",
}

# The engine allocates through its own jemalloc (not glibc's malloc); its summary line
# (system.jemalloc_stats) says what that heap holds, which MemoryTracking does not.
_JEMALLOC_SUMMARY: Final = re.compile(
    r"^Allocated: (\d+), active: (\d+), metadata: (\d+).*?resident: (\d+), "
    r"mapped: (\d+), retained: (\d+)",
    re.MULTILINE,
)
JEMALLOC_PARTS: Final = (
    "jemalloc_allocated",
    "jemalloc_active",
    "jemalloc_metadata",
    "jemalloc_resident",
    "jemalloc_mapped",
    "jemalloc_retained",
)

# The ``part`` labels of glibc's heap (mallinfo2).
MALLOC_PARTS: Final = ("malloc_in_use", "malloc_free_held", "malloc_mmapped")
PARTS: Final = (
    "rss_anon",
    *MALLOC_PARTS,
    "python_blocks",
    "python_traced",
    *CLICKHOUSE_METRICS.values(),
    *JEMALLOC_PARTS,
)


class _MallInfo2(ctypes.Structure):
    # struct mallinfo2 (glibc >= 2.33): ten size_t fields, in this order.
    _fields_ = [
        ("arena", ctypes.c_size_t),  # non-mmapped space allocated from the system
        ("ordblks", ctypes.c_size_t),  # free chunks
        ("smblks", ctypes.c_size_t),
        ("hblks", ctypes.c_size_t),  # mmapped regions
        ("hblkhd", ctypes.c_size_t),  # space in mmapped regions
        ("usmblks", ctypes.c_size_t),
        ("fsmblks", ctypes.c_size_t),
        ("uordblks", ctypes.c_size_t),  # allocated (in use) space
        ("fordblks", ctypes.c_size_t),  # free space held by the heap, not given back
        ("keepcost", ctypes.c_size_t),
    ]


@dataclass(frozen=True, slots=True)
class MallocStats:
    """glibc's heap over all its arenas, in bytes."""

    in_use: int
    free_held: int  # freed by the program but still held by malloc (fragmentation)
    mmapped: int


@cache
def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):  # not glibc, or glibc older than 2.33
        return None
    return libc


def malloc_stats() -> MallocStats | None:
    """glibc's heap now, or None where there is no glibc ``mallinfo2``."""
    libc = _libc()
    if libc is None:
        return None
    info = libc.mallinfo2()
    return MallocStats(in_use=info.uordblks, free_held=info.fordblks, mmapped=info.hblkhd)


def trim_malloc() -> bool:
    """Give glibc's free heap pages back to the system (``malloc_trim(0)``).

    Returns whether anything was released; False where there is no glibc."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


# Hands the engine's freed pages back to the OS now, instead of after jemalloc's decay.
PURGE_ENGINE_HEAP: Final = "SYSTEM JEMALLOC PURGE"


class ReleasingReader:
    """A read client of the embedded engine that gives the memory each query freed back
    to the OS as soon as the query ends.

    Why: a monitor's whole-store read (the experiment readout, the attribution views)
    frees 220-660 MB of the engine's jemalloc heap when it ends, and jemalloc keeps those
    pages resident for about ten seconds before it returns them (BENCHMARKS.md, issue #16
    item 5). A sample of the worker's RSS in those seconds counts a heap nobody uses. The
    purge takes 20-60 ms on a 4.4 M-event store, against seconds for the read.

    Only for the embedded engine: a server's heap is the server's business. If the engine
    refuses the purge (built without jemalloc), it is logged once and not tried again;
    the reads go on.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._purging = True

    def query(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._client.query(*args, **kwargs)
        finally:
            self.release()

    def release(self) -> bool:
        """Purge the engine's freed pages; False if purging is off or failed."""
        if not self._purging:
            return False
        try:
            self._client.command(PURGE_ENGINE_HEAP)
            return True
        except Exception as exc:  # a purge must never fail a read
            self._purging = False
            log.warning(
                "the embedded ClickHouse refused %r (%s); its freed memory is returned by "
                "jemalloc's own decay instead",
                PURGE_ENGINE_HEAP,
                str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
            )
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def clickhouse_memory(client: Any) -> dict[str, int]:
    """The embedded engine's own memory accounting, by ``part`` label (bytes)."""
    names = ", ".join(f"'{name}'" for name in CLICKHOUSE_METRICS)
    rows = client.query(
        f"SELECT metric, value FROM system.metrics WHERE metric IN ({names})"
    ).result_rows
    parts = {CLICKHOUSE_METRICS[str(metric)]: int(value) for metric, value in rows}
    parts.update(jemalloc_parts(client))
    return parts


def jemalloc_parts(client: Any) -> dict[str, int]:
    """The engine's jemalloc heap in bytes (empty if the engine has no such table)."""
    [[text]] = client.query("SELECT * FROM system.jemalloc_stats").result_rows
    found = _JEMALLOC_SUMMARY.search(str(text))
    if found is None:
        return {}
    return {part: int(value) for part, value in zip(JEMALLOC_PARTS, found.groups(), strict=True)}


def anonymous_rss() -> int | None:
    """The process's resident anonymous memory (heap, not the mapped code), from /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024  # "RssAnon:  12345 kB"
    except OSError:
        return None
    return None


def memory_parts(client: Any | None) -> dict[str, int]:
    """Every reading available: the anonymous RSS, glibc's heap, Python's block count, and
    (with a client on the embedded engine) ClickHouse's accounting."""
    parts: dict[str, int] = {"python_blocks": sys.getallocatedblocks()}
    if tracemalloc.is_tracing():
        parts["python_traced"] = tracemalloc.get_traced_memory()[0]
    anon = anonymous_rss()
    if anon is not None:
        parts["rss_anon"] = anon
    heap = malloc_stats()
    if heap is not None:
        parts["malloc_in_use"] = heap.in_use
        parts["malloc_free_held"] = heap.free_held
        parts["malloc_mmapped"] = heap.mmapped
    if client is not None:
        parts.update(clickhouse_memory(client))
    return parts


class HeapGrowthLog:
    """Where Python's heap grew, logged when the operator asked for it.

    Only when tracemalloc traces (``PYTHONTRACEMALLOC=<frames>`` in the worker's
    environment, which slows it down): every ``every_seconds`` the ``top`` source lines
    whose allocations grew most since the previous snapshot are logged."""

    def __init__(self, every_seconds: float = 180.0, top: int = 12) -> None:
        self._every = every_seconds
        self._top = top
        self._last: tracemalloc.Snapshot | None = None
        self._taken_at = 0.0

    def maybe_log(self, now: float) -> bool:
        if not tracemalloc.is_tracing() or now - self._taken_at < self._every:
            return False
        snapshot = tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__),)
        )
        previous, self._last, self._taken_at = self._last, snapshot, now
        if previous is None:
            return False
        grown = [s for s in snapshot.compare_to(previous, "lineno") if s.size_diff > 0]
        lines = [
            f"{s.size_diff / 2**20:+.1f} MB ({s.count_diff:+d} blocks, now "
            f"{s.size / 2**20:.1f} MB) {s.traceback[0].filename}:{s.traceback[0].lineno}"
            for s in grown[: self._top]
        ]
        log.warning(
            "Python heap growth by line over the last %.0f s (PYTHONTRACEMALLOC is set):\n  %s",
            self._every,
            "\n  ".join(lines) or "none",
        )
        return True


class MemoryReadings:
    """:func:`memory_parts` on a timer: the engine's client is kept (``sinks/kept_client.py``);
    if it cannot be opened or queried, the process's own readings still come."""

    def __init__(self, open_engine_client: Callable[[], Any] | None) -> None:
        self._engine = (
            KeptClient(open_engine_client, "the embedded ClickHouse's memory")
            if open_engine_client is not None
            else None
        )
        self.growth = HeapGrowthLog()

    def read(self) -> dict[str, int]:
        self.growth.maybe_log(time.monotonic())
        parts = self._engine.read(memory_parts) if self._engine is not None else None
        return parts if parts is not None else memory_parts(None)
