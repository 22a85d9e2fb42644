"""What a partition's hand-over costs the worker that gives it up, by visitors held.

    .venv/bin/python -m bench.handover [--records 100000] [--visitors 100000 1000000]
        [--keys uuid|sequential]

While the compiled core holds a partition, the Faust store keeps no copy of its visitor
states (``streams/table_store.py``, owned partitions). When the partition is revoked, the
runtime copies the core's states out (``held_states``) and writes them back into the
store (``disown``), on the event loop, before the rebalance goes on. Then, for every
partition the worker is assigned again, a new processor recovers from the store: that
recovery happens with or without the copy, so it is the yardstick here.

The states are real: one partition's share of simulated traffic goes through a compiled
processor first, and its visitors' states are repeated under new keys up to each
``--visitors`` count: random UUIDs, or with ``--keys sequential`` ids that differ only in
their last digits (they showed that the core's hash maps put such keys in few buckets;
``native/src/fxhash.rs``). For each count this reports the CPU seconds of

- ``held_states``: the core's states copied out as Python ``(key, state)`` pairs;
- ``write_back``: those pairs written into a real Faust memory store (``disown``);
- ``recover``: a new compiled processor recovering the partition from that store;

each the median of ``--repeat`` runs, and the ratio of the first two to the third.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import faust

from bench import state_memory
from bench.state_memory import MemoryTable, cached_records, feed
from schemas.channels import ChannelRules
from schemas.codec import EventCodec
from schemas.validation import ValidationBounds
from streams.checkpoint import META_PREFIX, meta_key
from streams.compiled.processor import CompiledProcessor
from streams.funnels import load_funnels
from streams.table_store import FaustTableStore
from streams.visitor import Rules

PARTITION = 0


class _NoChangelog:
    async def write(self, partition: int, writes: Any, barrier: Any = None) -> int:
        return len(writes)


def _processor(store: Any) -> CompiledProcessor:
    decoder: Any = EventCodec(bounds=ValidationBounds(replay=True))
    return CompiledProcessor(
        PARTITION,
        Rules(load_funnels(state_memory._funnels_file())),
        decoder,
        ChannelRules.load(),
        state_memory.TOPICS,
        store,
    )


def simulated_states(records: int, days: float) -> tuple[list[bytes], bytes]:
    """The visitor states and the checkpoint after one partition's simulated traffic."""
    table = MemoryTable()
    processor = _processor(table)
    processor.recover()
    feed(processor, table, cached_records(records, days))
    states = [v for k, v in table.data.items() if not k.startswith(META_PREFIX)]
    return states, processor.meta_record()


def _faust_store() -> FaustTableStore:
    app = faust.App(
        "bench-handover", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False
    )
    table = app.Table("bench-handover-states", key_type=bytes, value_type=bytes)
    return FaustTableStore(table, _NoChangelog())  # type: ignore[arg-type]


def _cpu(step: Callable[[], Any]) -> tuple[float, Any]:
    started = time.process_time()
    value = step()
    return time.process_time() - started, value


def visitor_keys(count: int, pattern: str) -> list[bytes]:
    """``uuid``: random UUIDs, as the simulator's (and most sites') anonymous ids;
    ``sequential``: ``visitor-000000001`` and so on, keys that differ in a few bytes."""
    if pattern == "sequential":
        return [b"visitor-%09d" % i for i in range(count)]
    rng = random.Random(16)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode() for _ in range(count)]


def one_handover(
    states: list[bytes], meta: bytes, visitors: int, pattern: str = "uuid"
) -> dict[str, float]:
    """A partition of ``visitors`` states: held by a core, handed back, recovered again."""
    held_by = MemoryTable()
    for i, key in enumerate(visitor_keys(visitors, pattern)):
        held_by.data[key] = states[i % len(states)]
    held_by.data[meta_key(PARTITION)] = meta
    core = _processor(held_by)
    core.recover()
    del held_by

    store = _faust_store()
    store.own(PARTITION)
    copy_seconds, held = _cpu(core.held_states)
    assert len(held) == visitors, (len(held), visitors)
    write_seconds, _ = _cpu(functools.partial(store.disown, PARTITION, held))
    del core, held
    gc.collect()

    asyncio.run(store.write_many(PARTITION, [(meta_key(PARTITION), meta)]))
    again = _processor(store)
    recover_seconds, _ = _cpu(again.recover)
    assert again.state_keys == visitors, (again.state_keys, visitors)
    return {"held_states": copy_seconds, "write_back": write_seconds, "recover": recover_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--visitors", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keys", choices=("uuid", "sequential"), default="uuid")
    args = parser.parse_args()
    states, meta = simulated_states(args.records, args.days)
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)  # as the worker (streams/worker.py)
    rows = []
    for visitors in args.visitors:
        runs = [one_handover(states, meta, visitors, args.keys) for _ in range(args.repeat)]
        median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        rows.append(
            {
                "visitors": visitors,
                "cpu_seconds": {k: round(v, 3) for k, v in median.items()},
                "copy_over_recover": round(
                    (median["held_states"] + median["write_back"]) / median["recover"], 3
                ),
                "us_per_visitor": {k: round(v * 1e6 / visitors, 2) for k, v in median.items()},
            }
        )
    print(
        json.dumps(
            {
                "simulated_states": len(states),
                "mean_state_bytes": round(sum(map(len, states)) / len(states)),
                "repeat": args.repeat,
                "keys": args.keys,
                "handovers": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
