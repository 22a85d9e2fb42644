"""Peer: quix-streams 3.28, group_by (event_type, channel) + 1-minute tumbling window count.

    python -m bench.peers.quix_peer spec.json

Event time comes from the record (``timestamp_extractor``), the window emits on every
update (``.current()``) and a batching sink writes the change of each window's count
since the last write into ``simple_counts`` (so the table sums to the window counts, as
for every other system). Windows close after ``grace_ms`` of event time past their end
(per key, quix's default); a record for a closed window is dropped as late and counted
here through ``on_late``. Defaults otherwise: RocksDB state with a changelog topic,
at-least-once, commit every ``FLUSH_SECONDS``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quixstreams import Application
from quixstreams.sinks.base import BatchingSink, SinkBatch

from bench.simple_spec import (
    FLUSH_SECONDS,
    PeerResult,
    SimpleSpec,
    final_counts,
    insert_deltas,
    now,
    open_clickhouse,
)

WINDOW_MS = 60_000


@dataclass
class Progress:
    seen: int = 0
    late: int = 0
    first_record_at: float = 0.0


class CountsSink(BatchingSink):
    """Writes each window count's change since its last write (deltas for SummingMergeTree)."""

    def __init__(self, client: Any) -> None:
        super().__init__()
        self._client = client
        self._written: dict[tuple[int, str, str], int] = {}

    def write(self, batch: SinkBatch) -> None:
        latest: dict[tuple[int, str, str], int] = {}
        for item in batch:
            key = item.key.decode() if isinstance(item.key, bytes) else str(item.key)
            event_type, _, channel = key.partition("|")
            latest[(int(item.value["start"]), event_type, channel)] = int(item.value["value"])
        deltas = {k: v - self._written.get(k, 0) for k, v in latest.items()}
        insert_deltas(self._client, {k: d for k, d in deltas.items() if d})
        self._written.update(latest)


def build(spec: SimpleSpec, client: Any, progress: Progress) -> Application:
    app = Application(
        broker_address=spec.bootstrap,
        consumer_group=spec.group_id,
        auto_offset_reset="earliest",
        state_dir=str(Path(spec.clickhouse_dir).parent / "quix-state"),
        commit_interval=FLUSH_SECONDS,
        loglevel="WARNING",
    )
    topic = app.topic(
        spec.topic,
        value_deserializer="json",
        timestamp_extractor=lambda value, headers, timestamp, kind: int(value["event_time"]),
    )

    def seen(_: Any) -> None:
        if not progress.first_record_at:
            progress.first_record_at = now()
        progress.seen += 1
        if progress.seen >= spec.total_events:
            app.stop()  # the current record still finishes; then a final checkpoint

    def late(*_: Any, **__: Any) -> bool:
        progress.late += 1
        return False  # counted here; no log line per record

    sdf = app.dataframe(topic)
    sdf = sdf.group_by(lambda v: f"{v['event_type']}|{v['channel']}", name="type_channel")
    sdf = sdf.update(seen)
    window = sdf.tumbling_window(WINDOW_MS, grace_ms=int(spec.options["grace_ms"]), on_late=late)
    window.count().current().sink(CountsSink(client))
    return app


def main() -> None:
    spec = SimpleSpec.load(Path(sys.argv[1]))
    client = open_clickhouse(spec)
    progress = Progress()
    app = build(spec, client, progress)
    started_at = now()
    app.run()
    done_at = now()
    PeerResult(
        spec.name,
        progress.seen,
        started_at,
        progress.first_record_at or started_at,
        done_at,
        final_counts(client),
        dropped_late=progress.late,
        extra={"grace_ms": spec.options["grace_ms"]},
    ).save(Path(spec.result_path))


if __name__ == "__main__":
    main()
