"""Reading a fetched partition into Records: aiokafka's reader against the compiled one.

    .venv/bin/python -m bench.fetch_read [--records 100000] [--batch-records 500]
        [--codec none|gzip|snappy|lz4|zstd] [--repeat 7]

Simulated input records (real Avro values, as ``bench.row_encode`` uses) are written as
Kafka v2 record batches by aiokafka's own batch builder, ``--batch-records`` per batch,
into one fetch's bytes. Each pass reads the whole fetch, with CRC checks as the worker
does, into the batch transport's ``Record`` tuples:

- ``aiokafka``: ``PartitionRecords`` (a ``ConsumerRecord`` per record) and the copy into
  ``Record`` that the transport makes of them (``FUNNEL_FETCH_READER=aiokafka``);
- ``compiled``: ``streams.fetch_reader.read_fetched`` (the default).

The two alternate, with the worker's garbage collector settings (``tune_garbage_collector``:
with Python's defaults a full collection of everything alive lands in one pass or another
and decides its time); each figure is the median of ``--repeat`` passes, CPU of this
process per record, and the two must give equal records (checked once).
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import time
from collections.abc import Callable
from typing import Any

from aiokafka.consumer.fetcher import READ_UNCOMMITTED, PartitionRecords
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from bench.state_memory import cached_records
from streams.fetch_reader import read_fetched
from streams.garbage import tune_garbage_collector
from streams.records import Record

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
TP = TopicPartition("clickstream", 0)


def fetch_bytes(records: list[Record], per_batch: int, codec: int) -> bytes:
    out = bytearray()
    for start in range(0, len(records), per_batch):
        builder = DefaultRecordBatchBuilder(
            magic=2,
            compression_type=codec,
            is_transactional=False,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=-1,
            batch_size=1 << 30,
        )
        for i, record in enumerate(records[start : start + per_batch]):
            builder.append(
                i, timestamp=record.timestamp_ms, key=record.key, value=record.value, headers=[]
            )
        batch = builder.build()
        batch[0:8] = struct.pack(">q", start)  # the batch's base offset
        out += batch
    return bytes(out)


def by_aiokafka(raw: bytes) -> list[Record]:
    reader = PartitionRecords(TP, MemoryRecords(raw), None, 0, None, None, True, READ_UNCOMMITTED)
    return [
        Record(r.offset, r.key, r.value if r.value is not None else b"", r.timestamp or 0)
        for r in reader
    ]


def by_compiled(raw: bytes) -> list[Record]:
    fetched = read_fetched(TP, raw, 0, True)
    assert fetched is not None
    return list(fetched)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--batch-records", type=int, default=500)
    parser.add_argument("--codec", choices=sorted(CODECS), default="none")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    source = cached_records(args.records, args.days)
    # (stream, key, value, timestamp): one partition's share of all three streams
    records = [Record(i, key, value, ts) for i, (_, key, value, ts) in enumerate(source)]
    raw = fetch_bytes(records, args.batch_records, CODECS[args.codec])
    if by_compiled(raw) != by_aiokafka(raw):
        raise SystemExit("the two readers gave different records")
    tune_garbage_collector()
    readers: dict[str, Callable[[bytes], Any]] = {
        "aiokafka": by_aiokafka,
        "compiled": by_compiled,
    }
    seconds: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(args.repeat):
        for name, read in readers.items():
            started = time.process_time()
            read(raw)
            seconds[name].append(time.process_time() - started)
    us = {name: statistics.median(s) / len(records) * 1e6 for name, s in seconds.items()}
    print(
        json.dumps(
            {
                "records": len(records),
                "fetch_mb": round(len(raw) / 1e6, 1),
                "codec": args.codec,
                "us_per_record": {k: round(v, 3) for k, v in us.items()},
                "compiled_over_aiokafka": round(us["compiled"] / us["aiokafka"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
