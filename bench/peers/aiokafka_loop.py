"""Baseline: a plain aiokafka ``getmany`` loop, orjson, a dict of windows, clickhouse-connect.

The practical limit for a Python consumer doing this job: no framework, one task,
partial counts inserted at least once a second, offsets committed after each insert
(at-least-once, like every other system here).

    python -m bench.peers.aiokafka_loop spec.json
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import defaultdict
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

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


async def run(spec: SimpleSpec) -> PeerResult:
    client = open_clickhouse(spec)
    consumer = AIOKafkaConsumer(
        spec.topic,
        bootstrap_servers=spec.bootstrap,
        group_id=spec.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    started_at = now()
    await consumer.start()
    deltas: defaultdict[tuple[int, str, str], int] = defaultdict(int)
    seen = 0
    first_record_at = 0.0
    last_flush = time.monotonic()
    loads = orjson.loads
    try:
        while seen < spec.total_events:
            batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
            for records in batches.values():
                if not first_record_at:
                    first_record_at = now()
                for record in records:
                    event = loads(record.value)
                    t = event["event_time"]
                    deltas[(t - t % WINDOW_MS, event["event_type"], event["channel"])] += 1
                seen += len(records)
            if seen >= spec.total_events or time.monotonic() - last_flush >= FLUSH_SECONDS:
                insert_deltas(client, deltas)
                deltas.clear()
                await consumer.commit()
                last_flush = time.monotonic()
        done_at = now()
    finally:
        await consumer.stop()
    return PeerResult(spec.name, seen, started_at, first_record_at, done_at, final_counts(client))


def main() -> None:
    spec = SimpleSpec.load(Path(sys.argv[1]))
    result = asyncio.run(run(spec))
    result.save(Path(spec.result_path))


if __name__ == "__main__":
    main()
