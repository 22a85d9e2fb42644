"""State size from the worker's own changelog: bytes per active session and per user.

Every changelog record is one visitor's whole state after a batch (``streams/state.py``).
For each record, the bytes its open sessions take are its size minus the size of the same
state encoded without them; summed over all records and divided by the open sessions
they held, that is the mean cost of one active session in the state as written. The last
record per visitor is that visitor's state at the end of the run: bytes per user.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.app import STATE_TABLE
from streams.checkpoint import META_PREFIX
from streams.state import decode_state, encode_state


def changelog_topic(app_id: str) -> str:
    return f"{app_id}-{STATE_TABLE}-changelog"  # Faust's naming for a table's changelog


async def _read_all(
    bootstrap: str, topic: str, partitions: int
) -> list[tuple[bytes, bytes | None]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        # The table has the inputs' partition count (streams/app.py).
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[tuple[bytes, bytes | None]] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for batch in batches.values():
                records.extend((r.key or b"", r.value) for r in batch)
        return records
    finally:
        await consumer.stop()


def summarise(records: list[tuple[bytes, bytes | None]]) -> dict[str, Any]:
    session_bytes = open_sessions = open_events = state_records = total_bytes = 0
    last: dict[bytes, int] = {}
    for key, value in records:
        if key.startswith(META_PREFIX):
            continue
        if value is None:
            last.pop(key, None)
            continue
        state = decode_state(value)
        state_records += 1
        total_bytes += len(value)
        last[key] = len(value)
        if state.sessions:
            without = encode_state(dataclasses.replace(state, sessions={}))
            session_bytes += len(value) - len(without)
            open_sessions += len(state.sessions)
            open_events += sum(len(s.events) for s in state.sessions.values())
    return {
        "changelog_records": len(records),
        "state_records": state_records,
        "mean_record_bytes": round(total_bytes / state_records, 1) if state_records else None,
        "bytes_per_active_session": round(session_bytes / open_sessions, 1)
        if open_sessions
        else None,
        "events_per_active_session_in_state": round(open_events / open_sessions, 2)
        if open_sessions
        else None,
        "users_at_end": len(last),
        "bytes_per_user_at_end": round(sum(last.values()) / len(last), 1) if last else None,
    }


def changelog_state_stats(bootstrap: str, app_id: str, partitions: int) -> dict[str, Any]:
    records = asyncio.run(_read_all(bootstrap, changelog_topic(app_id), partitions))
    return summarise(records)
