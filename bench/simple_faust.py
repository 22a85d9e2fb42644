"""This project's worker on the simple workload: a minimal Faust app on OUR transport.

    python -m bench.simple_faust spec.json

The same pieces as the real worker (``streams/app.py``): the ``batchkafka://`` broker
scheme (``streams.transport``: one message per fetched partition batch, offsets exact),
``PassThroughSchema`` so the agent receives a :class:`~streams.transport.RecordBatch`,
the commit barrier that flushes ClickHouse before offsets are committed, and
``sinks.clickhouse.ClickHouseWriter``, and the compiled fetch reader
(``streams/fetch_reader.py``) unless ``FUNNEL_FETCH_READER=aiokafka``. The logic is the
simple workload's: orjson per record, a dict of (window, type, channel) deltas per batch,
deltas into ``simple_counts``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import orjson

from bench.simple_spec import (
    COUNTS_COLUMNS,
    COUNTS_TABLE,
    FLUSH_SECONDS,
    PeerResult,
    SimpleSpec,
    final_counts,
    now,
    open_clickhouse,
)
from sinks.clickhouse import ClickHouseWriter
from sinks.tables import TableSpec
from streams import transport
from streams.app import PassThroughSchema, resolve_fetch_reader
from streams.garbage import tune_garbage_collector
from streams.transport import RecordBatch

WINDOW_MS = 60_000
COUNTS_SPEC = TableSpec(COUNTS_TABLE, COUNTS_COLUMNS)


@dataclass
class Progress:
    seen: int = 0
    started_at: float = 0.0
    first_record_at: float = 0.0


def count_batch(batch: RecordBatch) -> list[tuple[int, str, str, int]]:
    """Delta rows of one record batch (identical logic to every other system)."""
    deltas: defaultdict[tuple[int, str, str], int] = defaultdict(int)
    loads = orjson.loads
    for record in batch.records:
        event = loads(record.value)
        t = event["event_time"]
        deltas[(t - t % WINDOW_MS, event["event_type"], event["channel"])] += 1
    return [(w, et, ch, n) for (w, et, ch), n in deltas.items()]


def build_app(spec: SimpleSpec) -> faust.App:
    transport.register()
    # The real worker's consumer settings (streams/app.py build_app).
    return faust.App(
        spec.group_id,
        broker=f"{transport.SCHEME}://{spec.bootstrap}",
        store="memory://",
        # Faust makes "<app id>-data" in the working directory (the repository) unless
        # told otherwise: in the peer's own directory, as the real worker's.
        datadir=str(Path(spec.result_path).parent / "faust").replace("{", "{{").replace("}", "}}"),
        autodiscover=False,
        topic_partitions=spec.partitions,
        topic_replication_factor=1,
        web_enabled=False,
        processing_guarantee="at_least_once",
        broker_commit_interval=2.0,
        broker_max_poll_records=10_000,
        consumer_max_fetch_size=8 * 1024 * 1024,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=8,
        stream_wait_empty=True,
    )


def wire(
    app: faust.App, spec: SimpleSpec, client: Any, progress: Progress, fetch_reader: str
) -> ClickHouseWriter:
    writer = ClickHouseWriter(lambda: client, batch_rows=10_000, flush_seconds=FLUSH_SECONDS)
    writer.start()
    topic = app.topic(spec.topic, schema=PassThroughSchema())
    transport.batch_topics(app, frozenset({spec.topic}))
    if fetch_reader == "compiled":
        transport.compiled_fetch_reader(app)

    async def flush_before_commit(offsets: Any) -> None:
        await writer.flush()

    transport.attach_commit_barrier(app, flush_before_commit)

    @app.agent(topic, name="simple-count", concurrency=1)
    async def count(stream: Any) -> None:
        async for event in stream.events():
            batch: RecordBatch = event.value
            if not progress.first_record_at:
                progress.first_record_at = now()
            await writer.submit(COUNTS_SPEC, count_batch(batch))
            progress.seen += len(batch.records)
            if progress.seen >= spec.total_events:
                await writer.flush()
                finish(spec, client, progress)

    return writer


def finish(spec: SimpleSpec, client: Any, progress: Progress) -> None:
    done_at = now()
    PeerResult(
        spec.name,
        progress.seen,
        progress.started_at,
        progress.first_record_at,
        done_at,
        final_counts(client),
    ).save(Path(spec.result_path))
    os.kill(os.getpid(), signal.SIGTERM)  # Faust's worker shuts down cleanly on SIGTERM


def main() -> None:
    spec = SimpleSpec.load(Path(sys.argv[1]))
    client = open_clickhouse(spec)
    app = build_app(spec)
    progress = Progress()
    # As the real worker (streams/app.py): FUNNEL_FETCH_READER, compiled where built.
    fetch_reader = resolve_fetch_reader(os.environ.get("FUNNEL_FETCH_READER", "auto"))
    writer = wire(app, spec, client, progress, fetch_reader)
    worker = faust.Worker(
        app, loglevel="warning", quiet=True, redirect_stdouts=False, override_logging=False
    )
    logging.basicConfig(level=logging.WARNING)
    tune_garbage_collector()  # as the real worker does (streams/worker.py)
    progress.started_at = now()
    try:
        worker.execute_from_commandline()
    finally:
        writer.stop()


if __name__ == "__main__":
    main()
