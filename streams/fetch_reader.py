"""Fetched input partitions read into Records by the compiled core, not record by record.

aiokafka reads a fetched partition into one ``ConsumerRecord`` (an 11-field Python
object) per record, in Faust's consumer thread, and the batch transport then copied each
into a :class:`~streams.records.Record`: about 4 us per record, most of that thread's
work, which contends with the agent for the GIL. For the batch topics this module has
the compiled core read the fetch's bytes straight into ``Record`` tuples
(``native/src/kafka_batch.rs``): the same records, checks and offsets as aiokafka's
``PartitionRecords`` for ``read_uncommitted`` (CRC-32C, control batches skipped, a batch
cut short left for the next fetch), compressed batches inflated by aiokafka's own
codecs. Anything else (other topics, ``read_committed``, deserializers, message format
v0/v1) keeps aiokafka's reader.

It is installed per consumer by :func:`streams.faust_private.install_fetch_reader`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from aiokafka import codec
from aiokafka.consumer.fetcher import READ_UNCOMMITTED, PartitionRecords
from aiokafka.errors import CorruptRecordException, UnsupportedCodecError
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from streams.records import Record

_CODECS: dict[int, tuple[str, Callable[[], bool], Callable[[bytes], bytes]]] = {
    1: ("gzip", codec.has_gzip, codec.gzip_decode),
    2: ("snappy", codec.has_snappy, codec.snappy_decode),
    3: ("lz4", codec.has_lz4, codec.lz4_decode),
    4: ("zstd", codec.has_zstd, codec.zstd_decode),
}


class FetchedPartition(Protocol):
    """What aiokafka's ``FetchResult`` uses of a partition's fetched records."""

    next_fetch_offset: int

    def __iter__(self) -> Iterator[Any]: ...

    def __next__(self) -> Any: ...


def inflate(codec_id: int, section: bytes) -> bytes:
    """A compressed batch's records section, as aiokafka's batch reader inflates it."""
    name, available, decode = _CODECS[codec_id]
    if not available():
        raise UnsupportedCodecError(
            f"Libraries for {name} compression codec not found: install aiokafka[{name}]"
        )
    return decode(section)


class KeptFetch:
    """aiokafka's ``MemoryRecords`` of a fetched partition, with its bytes kept."""

    __slots__ = ("memory", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.memory = MemoryRecords(raw)

    def has_next(self) -> bool:
        return bool(self.memory.has_next())

    def size_in_bytes(self) -> int:
        return int(self.memory.size_in_bytes())


def read_fetched(
    tp: TopicPartition, raw: bytes, fetch_offset: int, check_crcs: bool
) -> FetchedPartition | None:
    """The records of one fetched partition from ``fetch_offset``; None for v0/v1."""
    from shopfunnel_core import read_fetched_records  # the compiled core, built at setup

    fetched: FetchedPartition | None = read_fetched_records(
        raw,
        fetch_offset,
        check_crcs,
        Record,
        inflate,
        CorruptRecordException,
        f"{tp.topic}-{tp.partition}",
    )
    return fetched


def partition_records_for(
    batch_topics: Callable[[], frozenset[str]],
) -> Callable[..., FetchedPartition]:
    """What the fetcher builds per fetched partition in place of ``PartitionRecords``.

    Its parameters are ``PartitionRecords``' (checked in
    tests/unit/test_fetch_reader.py against the installed aiokafka).
    """

    def partition_records(
        tp: TopicPartition,
        records: KeptFetch,
        aborted_transactions: Any,
        fetch_offset: int,
        key_deserializer: Any,
        value_deserializer: Any,
        check_crcs: bool,
        isolation_level: int,
    ) -> FetchedPartition:
        if (
            tp.topic in batch_topics()
            and isolation_level == READ_UNCOMMITTED
            and key_deserializer is None
            and value_deserializer is None
        ):
            fetched = read_fetched(tp, records.raw, fetch_offset, check_crcs)
            if fetched is not None:
                return fetched
        aiokafka_records: FetchedPartition = PartitionRecords(
            tp,
            records.memory,
            aborted_transactions,
            fetch_offset,
            key_deserializer,
            value_deserializer,
            check_crcs,
            isolation_level,
        )
        return aiokafka_records

    return partition_records
