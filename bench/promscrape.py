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
    }
)


@dataclass(frozen=True)
class Snapshot:
    at: float
    values: dict[str, float]  # summed over labels
    lag_series: int  # how many (topic, partition) lag gauges exist: assigned inputs seen

    def get(self, name: str) -> float:
        return self.values.get(name, 0.0)


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
        values[name] = values.get(name, 0.0) + value
        if name == LAG:
            lag_series += 1
    return Snapshot(at, values, lag_series)


def scrape(port: int, at: float, timeout: float = 2.0) -> Snapshot | None:
    """The endpoint's current values, or None while it is not up (yet, or any more)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as reply:
            return parse(reply.read().decode(), at)
    except (urllib.error.URLError, OSError, ValueError):
        return None
