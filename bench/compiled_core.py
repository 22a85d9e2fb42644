"""The partition core alone, Python against compiled, on the same records in one process.

    .venv/bin/python -m bench.compiled_core [--records 100000] [--days 3] [--repeat 3]

Feeds one partition's share of simulated traffic through ``PartitionProcessor`` and
through ``CompiledProcessor`` (``FUNNEL_CORE=compiled``) in batches of
``bench.state_memory.BATCH`` into an in-memory table, alternating the two, and reports
events per CPU-second of each and their ratio (the median of ``--repeat`` runs each).
No Kafka and no ClickHouse: this is the processing core's own cost, including building
the rows as Python values for the writer.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
from typing import Any
from unittest import mock

from bench import state_memory
from bench.state_memory import MemoryTable, cached_records, run_core
from schemas.channels import ChannelRules
from schemas.codec import EventCodec
from schemas.validation import ValidationBounds
from streams.compiled.processor import CompiledProcessor
from streams.funnels import load_funnels
from streams.processor import PartitionProcessor
from streams.visitor import Rules

CORES = {"python": PartitionProcessor, "compiled": CompiledProcessor}


def run(core: str, records: list[tuple[str, bytes, bytes, int]], cache: int) -> dict[str, Any]:
    def new_processor(table: MemoryTable, cache_visitors: int) -> Any:
        decoder: Any = EventCodec(bounds=ValidationBounds(replay=True))
        return CORES[core](
            0,
            Rules(load_funnels(state_memory._funnels_file())),
            decoder,
            ChannelRules.load(),
            state_memory.TOPICS,
            table,
            cache_visitors=cache_visitors,
        )

    gc.collect()
    with mock.patch.object(state_memory, "new_processor", new_processor):
        return run_core(records, cache).as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache-visitors", type=int, default=0)
    args = parser.parse_args()
    records = cached_records(args.records, args.days)
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)  # as the worker (streams/worker.py)
    rates: dict[str, list[float]] = {core: [] for core in CORES}
    for _ in range(args.repeat):
        for core in CORES:
            rates[core].append(run(core, records, args.cache_visitors)["events_per_cpu_s"])
    medians = {core: statistics.median(r) for core, r in rates.items()}
    print(
        json.dumps(
            {
                "records": len(records),
                "batch": state_memory.BATCH,
                "cache_visitors": args.cache_visitors,
                "events_per_cpu_s": rates,
                "median": medians,
                "compiled_over_python": round(medians["compiled"] / medians["python"], 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
