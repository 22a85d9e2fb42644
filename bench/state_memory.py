"""Memory and CPU of the processing core per visitor kept, without Kafka or ClickHouse.

    .venv/bin/python -m bench.state_memory [--records 300000] [--days 30]

``FUNNEL_FUNNELS_FILE=bench/funnels_mixed.yaml`` measures another set of funnels.

Feeds one partition's share of simulated traffic (``--days`` of event time) through
``streams.processor.PartitionProcessor`` into an in-memory table, as the worker does per
batch, and reports per run: events per CPU-second, resident memory added and the stored
states' bytes.
Runs the core twice, each in a fresh process, with the decoded-state cache off and at
10,000 visitors, so the ratio between them is the cache's cost and gain. It also measures what
one stored state would cost in memory if kept as orjson returns it (the bug fixed in
f80758b: every stored value held a 4 KiB buffer).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import pickle
import subprocess
import sys
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.procstats import vm_rss_bytes
from schemas.channels import ChannelRules
from schemas.codec import EventCodec
from schemas.validation import ValidationBounds
from simulator.config import SimConfig
from simulator.generate import generate
from streams.checkpoint import meta_key
from streams.funnels import load_funnels
from streams.processor import PartitionProcessor
from streams.records import Record as InputRecord
from streams.state import decode_state, encode_state
from streams.visitor import Rules

CACHE_DIR = Path(__file__).resolve().parent.parent / ".data" / "bench-cache"

TOPICS = {"clickstream": "c", "cart": "k", "orders": "o"}
BATCH = 2000
CACHE_ON = 10_000


class MemoryTable:
    """The table store the processor reads: bytes -> bytes."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def keys_in_partition(self, partition: int) -> Iterable[bytes]:
        return list(self.data)

    def put(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value


@dataclass
class CoreRun:
    cache_visitors: int
    events: int
    events_per_cpu_s: float
    rss_added_mb: float
    visitors: int
    state_mb: float

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "rss_bytes_per_visitor": round(self.rss_added_mb * 1e6 / max(1, self.visitors)),
            "state_bytes_per_visitor": round(self.state_mb * 1e6 / max(1, self.visitors)),
        }


def _funnels_file() -> Path | None:
    """FUNNEL_FUNNELS_FILE, as the worker's setting (e.g. bench/funnels_mixed.yaml)."""
    chosen = os.environ.get("FUNNEL_FUNNELS_FILE")
    return Path(chosen) if chosen else None


def new_processor(table: MemoryTable, cache_visitors: int) -> PartitionProcessor:
    decoder: Any = EventCodec(bounds=ValidationBounds(replay=True))  # typed per stream name
    return PartitionProcessor(
        0,
        Rules(load_funnels(_funnels_file())),
        decoder,
        ChannelRules.load(),
        TOPICS,
        table,
        cache_visitors=cache_visitors,
    )


def partition_zero(records: int, days: float) -> list[tuple[str, bytes, bytes, int]]:
    users = int(records / 10 * 1.2 * 4)  # ~10 records per user, a quarter in partition 0
    sim = SimConfig(seed=1, users=users, days=days, partitions=4)
    zero = (r for r in generate(sim) if r.partition == 0)
    return [(r.stream, r.key, r.value, r.send_time_ms) for r in itertools.islice(zero, records)]


def feed(processor: Any, table: MemoryTable, records: list[tuple[str, bytes, bytes, int]]) -> int:
    """The records to the processor in per-stream batches of ``BATCH``, as the worker
    would, its state writes into ``table``; returns how many were processed."""
    offsets: dict[str, int] = defaultdict(int)
    pending: dict[str, list[InputRecord]] = defaultdict(list)
    done = 0
    for stream, key, value, ts in records:
        batch = pending[stream]
        batch.append(InputRecord(offsets[stream], key, value, ts))
        offsets[stream] += 1
        if len(batch) >= BATCH:
            result = processor.process(stream, batch, None)
            pending[stream] = []
            for k, v in result.state_writes.items():
                table.put(k, v)
            if result.meta:
                table.put(meta_key(0), processor.meta_record())
            done += len(batch)
    for stream, batch in pending.items():
        if batch:
            for k, v in processor.process(stream, batch, None).state_writes.items():
                table.put(k, v)
            done += len(batch)
    return done


def run_core(records: list[tuple[str, bytes, bytes, int]], cache_visitors: int) -> CoreRun:
    gc.collect()
    rss_before = vm_rss_bytes_self()
    table = MemoryTable()
    processor = new_processor(table, cache_visitors)
    started = time.process_time()
    done = feed(processor, table, records)
    cpu = time.process_time() - started
    gc.collect()
    visitors = len(table.data) - 1
    run = CoreRun(
        cache_visitors,
        done,
        round(done / cpu),
        round((vm_rss_bytes_self() - rss_before) / 1e6, 1),
        visitors,
        round(sum(len(v) for v in table.data.values()) / 1e6, 1),
    )
    del processor, table
    return run


def vm_rss_bytes_self() -> int:
    return vm_rss_bytes(os.getpid()) or 0


def stored_state_heap_bytes(raw_states: list[bytes]) -> dict[str, float]:
    """Heap per state: as orjson returns it vs the exact-size copy the worker stores."""
    states = [decode_state(raw) for raw in raw_states]

    def traced(build: Any) -> float:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        kept = [build(s) for s in states]
        used = tracemalloc.get_traced_memory()[0] - before
        del kept
        return used / len(states)

    def as_returned(state: Any) -> bytes:
        return orjson.dumps(orjson.loads(encode_state(state)))

    return {
        "mean_state_length": sum(len(r) for r in raw_states) / len(raw_states),
        "heap_per_state_as_orjson_returns_it": round(traced(as_returned)),
        "heap_per_state_stored": round(traced(encode_state)),
    }


def cached_records(count: int, days: float) -> list[tuple[str, bytes, bytes, int]]:
    path = CACHE_DIR / f"state-memory-{count}-{days:g}d.pickle"
    if path.exists():
        loaded: list[tuple[str, bytes, bytes, int]] = pickle.loads(path.read_bytes())
        return loaded
    records = partition_zero(count, days)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(records))
    return records


def one_run(args: argparse.Namespace) -> dict[str, Any]:
    records = cached_records(args.records, args.days)
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)  # as the worker (streams/worker.py)
    return run_core(records, args.cache_visitors).as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--cache-visitors", type=int, help="one run in this process only")
    args = parser.parse_args()
    if args.cache_visitors is not None:
        print(json.dumps(one_run(args)))
        return
    records = cached_records(args.records, args.days)
    # Each configuration in a fresh process: memory freed by one run would be reused by
    # the next and hide its growth.
    runs = [_in_subprocess(args, cache) for cache in (0, CACHE_ON)]
    table_states = _some_states(records[: min(len(records), 60_000)])
    tracemalloc.start(1)  # slows everything: only for the per-state measure
    stored = stored_state_heap_bytes(table_states)
    tracemalloc.stop()
    off, on = runs
    result = {
        "records": len(records),
        "simulated_days": args.days,
        "runs": runs,
        "cache_speedup": round(on["events_per_cpu_s"] / off["events_per_cpu_s"], 2),
        "cache_rss_added_mb": round(on["rss_added_mb"] - off["rss_added_mb"], 1),
        "stored_state": stored,
    }
    print(json.dumps(result, indent=2))


def _in_subprocess(args: argparse.Namespace, cache_visitors: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.state_memory", "--records", str(args.records)]
    command += ["--days", str(args.days), "--cache-visitors", str(cache_visitors)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    run: dict[str, Any] = json.loads(done.stdout)
    return run


def _some_states(records: list[tuple[str, bytes, bytes, int]]) -> list[bytes]:
    table = MemoryTable()
    processor = new_processor(table, 0)
    offsets: dict[str, int] = defaultdict(int)
    for start in range(0, len(records), BATCH):
        by_stream: dict[str, list[InputRecord]] = defaultdict(list)
        for stream, key, value, ts in records[start : start + BATCH]:
            by_stream[stream].append(InputRecord(offsets[stream], key, value, ts))
            offsets[stream] += 1
        for stream, batch in by_stream.items():
            for k, v in processor.process(stream, batch, None).state_writes.items():
                table.put(k, v)
    return [v for k, v in table.data.items() if k != meta_key(0)][:5000]


if __name__ == "__main__":
    main()
