"""Reading a worker's Prometheus endpoint: the handful of series the benchmark needs."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

INGESTED = "shopfunnel_events_ingested_total"
CHANGELOG = "shopfunnel_changelog_records_total"
STATE_BYTES = "shopfunnel_state_bytes"
STATE_KEYS = "shopfunnel_state_keys"
SINK_QUEUE = "shopfunnel_sink_queue_rows"
LAG = "shopfunnel_consumer_lag_records"
BATCH_SECONDS_SUM = "shopfunnel_batch_duration_seconds_sum"
BATCH_SECONDS_COUNT = "shopfunnel_batch_duration_seconds_count"
SINK_SECONDS_SUM = "shopfunnel_sink_batch_duration_seconds_sum"
SINK_SECONDS_COUNT = "shopfunnel_sink_batch_duration_seconds_count"
SINK_ROWS = "shopfunnel_sink_rows_total"
DEAD_LETTERS = "shopfunnel_dead_letters_total"
SINK_ROWS_REJECTED = "shopfunnel_sink_rows_rejected_total"
# Scheduled full collections (streams/garbage.py); absent on workers before issue #19.
GC_SECONDS_SUM = "shopfunnel_gc_full_collection_seconds_sum"
GC_SECONDS_COUNT = "shopfunnel_gc_full_collection_seconds_count"
GC_COLLECTED = "shopfunnel_gc_collected_objects_total"
# Where the memory is (sinks/memory.py), kept per ``part``: "<name>:<part>" in values.
MEMORY = "shopfunnel_memory_bytes"
_PREFIX = "shopfunnel_"
WANTED = frozenset(
    {
        INGESTED,
        CHANGELOG,
        STATE_BYTES,
        STATE_KEYS,
        SINK_QUEUE,
        LAG,
        BATCH_SECONDS_SUM,
        BATCH_SECONDS_COUNT,
        SINK_SECONDS_SUM,
        SINK_SECONDS_COUNT,
        SINK_ROWS,
        DEAD_LETTERS,
        SINK_ROWS_REJECTED,
        GC_SECONDS_SUM,
        GC_SECONDS_COUNT,
        GC_COLLECTED,
        MEMORY,
    }
)


@dataclass(frozen=True)
class Snapshot:
    at: float
    values: dict[str, float]  # summed over labels
    lag_series: int  # how many (topic, partition) lag gauges exist: assigned inputs seen

    def get(self, name: str) -> float:
        return self.values.get(name, 0.0)

    def has(self, name: str) -> bool:
        """Whether the worker exports ``name`` at all (0.0 from :meth:`get` is ambiguous)."""
        return name in self.values


def parse(text: str, at: float) -> Snapshot:
    """Sums of the wanted series. A line scan, not prometheus_client's parser: the
    harness shares two cores with what it measures, and the full parser over every
    series of a worker costs a noticeable share of one."""
    values: dict[str, float] = {}
    lag_series = 0
    for line in text.splitlines():
        if not line.startswith(_PREFIX):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name not in WANTED:
            continue
        try:
            value = float(line.rsplit(" ", 1)[1])
        except (IndexError, ValueError):
            continue
        if name == MEMORY:
            name = f"{MEMORY}:{_label(line, 'part')}"
        values[name] = values.get(name, 0.0) + value
        if name == LAG:
            lag_series += 1
    return Snapshot(at, values, lag_series)


def memory_parts(snapshot: Snapshot) -> dict[str, float]:
    """The worker's memory readings by part (empty before issue #16's gauge)."""
    prefix = f"{MEMORY}:"
    return {
        name.removeprefix(prefix): value
        for name, value in snapshot.values.items()
        if name.startswith(prefix)
    }


def _label(line: str, label: str) -> str:
    marker = f'{label}="'
    start = line.find(marker)
    if start < 0:
        return ""
    start += len(marker)
    return line[start : line.index('"', start)]


def by_label(text: str, name: str, label: str) -> dict[str, float]:
    """One series summed per value of one label (e.g. dead letters per ``reason``)."""
    totals: dict[str, float] = {}
    marker = f'{label}="'
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels, _, value = line.rpartition(" ")
        start = labels.find(marker)
        if start < 0:
            continue
        start += len(marker)
        key = labels[start : labels.index('"', start)]
        try:
            totals[key] = totals.get(key, 0.0) + float(value)
        except ValueError:
            continue
    return totals


def scrape_text(port: int, timeout: float = 2.0) -> str | None:
    """The endpoint's exposition text, or None while it is not up (yet, or any more)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as reply:
            text: str = reply.read().decode()
            return text
    except (urllib.error.URLError, OSError, ValueError):
        return None


def scrape(port: int, at: float, timeout: float = 2.0) -> Snapshot | None:
    """The endpoint's current values, or None while it is not up (yet, or any more)."""
    text = scrape_text(port, timeout)
    return None if text is None else parse(text, at)
