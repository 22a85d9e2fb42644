"""Garbage collection for a long-running worker: rare automatic passes, full ones on a clock.

A worker allocates millions of short-lived tuples while holding many long-lived objects
(state, totals); CPython's default thresholds then spend more time scanning the
long-lived ones than processing (measured: the pure core ran 2.5-3x faster on 2 cores),
so automatic collections are made rare. Rare automatic collections alone, though, let
reference cycles pile up for good (issue #19: 1.7 GB after 10 minutes, from one cycle per
ClickHouse insert), so a full collection also runs every ``interval`` seconds of wall
time, whatever the allocation rate; its cost is exported so the schedule can be checked.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Protocol

log = logging.getLogger(__name__)


class CollectionMetrics(Protocol):
    def observe_full_collection(self, seconds: float, collected: int) -> None: ...


def tune_garbage_collector() -> None:
    """Fewer, cheaper automatic collections; objects alive at start-up are frozen out."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def collect_full(metrics: CollectionMetrics | None = None) -> int:
    """One full collection; returns the number of unreachable objects found."""
    started = time.perf_counter()
    collected = gc.collect()
    seconds = time.perf_counter() - started
    if metrics is not None:
        metrics.observe_full_collection(seconds, collected)
    log.debug("full garbage collection: %d objects in %.3fs", collected, seconds)
    return collected
