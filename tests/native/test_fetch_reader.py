"""The compiled fetch reader against aiokafka's ``PartitionRecords``, on the same bytes.

``streams/fetch_reader.py`` has the crate read a fetched partition (Kafka's v2 record
batches) into Records. Whatever aiokafka's reader gives for ``read_uncommitted`` (and the
transport made Records of), it must give: the same records in the same order, the same
``next_fetch_offset`` after every record and at the end (what the fetcher's position
moves to), and a ``CorruptRecordException`` at the same record for a bad checksum.

The fetches are built with aiokafka's own batch builder, with every codec, both timestamp
types, null keys and values, headers, control batches, a fetch offset inside a batch, a
last batch cut short, and drained in chunks as aiokafka's ``FetchResult.getall`` does.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka.consumer.fetcher import READ_COMMITTED, READ_UNCOMMITTED, PartitionRecords
from aiokafka.errors import CorruptRecordException, UnsupportedCodecError
from aiokafka.record import _crc32c
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.legacy_records import LegacyRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import fetch_reader
from streams.fetch_reader import KeptFetch, partition_records_for, read_fetched
from streams.records import Record

pytest.importorskip("shopfunnel_core", reason="the compiled core is not built: run `make setup`")

TP = TopicPartition("clickstream", 3)
CODECS = (0, 1, 2, 3, 4)  # none, gzip, snappy, lz4, zstd
LOG_APPEND_TIME = 0x08
CONTROL = 0x20 | 0x10  # a control batch is transactional


@dataclass(frozen=True)
class Spec:
    """One batch to build: its records (key, value, headers, timestamp delta) and kind."""

    records: tuple[tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...], int], ...]
    codec: int
    log_append_time: bool
    control: bool
    gap_after: int  # offsets missing after the batch (compaction, aborted transactions)


def build_batch(spec: Spec, base_offset: int) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=spec.codec,
        is_transactional=spec.control,
        producer_id=7 if spec.control else -1,
        producer_epoch=0 if spec.control else -1,
        base_sequence=0 if spec.control else -1,
        batch_size=1 << 30,
    )
    records = spec.records
    if spec.control:  # one control record: version 0, type 1 (commit)
        records = ((b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00", (), 0),)
    for i, (key, value, headers, ts_delta) in enumerate(records):
        builder.append(
            i, timestamp=1_700_000_000_000 + ts_delta, key=key, value=value, headers=list(headers)
        )
    raw = bytearray(builder.build())
    raw[0:8] = struct.pack(">q", base_offset)
    attributes = struct.unpack(">h", raw[21:23])[0]
    if spec.log_append_time:
        attributes |= LOG_APPEND_TIME
        raw[35:43] = struct.pack(">q", 1_800_000_000_000)  # the broker's append time
    if spec.control:
        attributes |= CONTROL
    raw[21:23] = struct.pack(">h", attributes)
    raw[17:21] = struct.pack(">I", _crc32c.crc(bytes(raw[21:])))
    return bytes(raw)


def build_fetch(specs: list[Spec], first_offset: int) -> tuple[bytes, list[int]]:
    """The batches back to back, and where each starts in the bytes."""
    out = bytearray()
    starts = []
    offset = first_offset
    for spec in specs:
        starts.append(len(out))
        out += build_batch(spec, offset)
        offset += max(len(spec.records), 1) if not spec.control else 1
        offset += spec.gap_after
    return bytes(out), starts


def as_records(fetched: list[Any]) -> list[Record]:
    """What the batch transport makes of aiokafka's records (streams/transport.py)."""
    return [
        Record(r.offset, r.key, r.value if r.value is not None else b"", r.timestamp or 0)
        for r in fetched
    ]


def drain(partition: Any, chunks: list[int]) -> Iterator[tuple[str, Any, int]]:
    """As FetchResult.getall: at most n records per call, the position read after each."""
    for n in [*chunks, 1 << 30]:
        got: list[Any] = []
        try:
            for record in partition:
                got.append(record)
                if len(got) >= n:
                    break
            else:
                yield "end", got, partition.next_fetch_offset
                return
        except CorruptRecordException:
            yield "corrupt", got, -1
            return
        yield "chunk", got, partition.next_fetch_offset


def both(raw: bytes, fetch_offset: int, chunks: list[int], check_crcs: bool = True) -> Any:
    theirs = PartitionRecords(
        TP, MemoryRecords(raw), None, fetch_offset, None, None, check_crcs, READ_UNCOMMITTED
    )
    ours = read_fetched(TP, raw, fetch_offset, check_crcs)
    assert ours is not None
    expected = [(kind, as_records(got), pos) for kind, got, pos in drain(theirs, chunks)]
    actual = list(drain(ours, chunks))
    for _, got, _ in actual:
        assert all(type(r) is Record for r in got)
    return expected, actual


headers = st.lists(st.tuples(st.text(max_size=5), st.binary(max_size=8)), max_size=2)
record = st.tuples(
    st.one_of(st.none(), st.binary(max_size=40)),
    st.one_of(st.none(), st.binary(max_size=300)),
    headers.map(tuple),
    st.integers(min_value=-5_000, max_value=5_000_000),
)
batch = st.builds(
    Spec,
    records=st.lists(record, min_size=1, max_size=12).map(tuple),
    codec=st.sampled_from(CODECS),
    log_append_time=st.booleans(),
    control=st.sampled_from((False, False, False, True)),
    gap_after=st.sampled_from((0, 0, 0, 1, 5)),
)


@settings(max_examples=300, deadline=None)
@given(
    specs=st.lists(batch, min_size=1, max_size=6),
    first_offset=st.integers(min_value=0, max_value=1 << 40),
    skip=st.integers(min_value=0, max_value=20),
    cut=st.integers(min_value=0, max_value=80),
    chunks=st.lists(st.integers(min_value=1, max_value=15), max_size=4),
)
def test_the_same_records_and_positions_as_aiokafka(
    specs: list[Spec], first_offset: int, skip: int, cut: int, chunks: list[int]
) -> None:
    raw, _ = build_fetch(specs, first_offset)
    if cut:  # the fetch's size limit cut the last batch short
        raw = raw[: max(0, len(raw) - cut)]
    expected, actual = both(raw, first_offset + skip, chunks)
    assert actual == expected


@settings(max_examples=150, deadline=None)
@given(
    specs=st.lists(batch, min_size=1, max_size=4),
    data=st.data(),
    chunks=st.lists(st.integers(min_value=1, max_value=15), max_size=3),
)
def test_a_changed_byte_fails_the_checksum_at_the_same_record(
    specs: list[Spec], data: st.DataObject, chunks: list[int]
) -> None:
    raw, starts = build_fetch(specs, 100)
    which = data.draw(st.integers(min_value=0, max_value=len(starts) - 1))
    end = starts[which + 1] if which + 1 < len(starts) else len(raw)
    at = data.draw(st.integers(min_value=starts[which] + 17, max_value=end - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    broken = bytearray(raw)
    broken[at] ^= flip
    expected, actual = both(bytes(broken), 100, chunks)
    assert actual == expected
    assert actual[-1][0] == "corrupt"


def test_log_append_time_and_null_fields_come_through() -> None:
    spec = Spec(((None, None, (), 5), (b"k", b"v", (("h", b"1"),), 9)), 0, True, False, 0)
    raw, _ = build_fetch([spec], 40)
    fetched = read_fetched(TP, raw, 40, True)
    assert fetched is not None
    assert list(fetched) == [
        Record(40, None, b"", 1_800_000_000_000),
        Record(41, b"k", b"v", 1_800_000_000_000),
    ]
    assert fetched.next_fetch_offset == 42


@pytest.mark.parametrize("codec", CODECS[1:])
def test_every_codec_is_inflated(codec: int) -> None:
    values = [bytes([i]) * (50 + i) for i in range(30)]
    spec = Spec(tuple((None, v, (), i) for i, v in enumerate(values)), codec, False, False, 0)
    raw, _ = build_fetch([spec], 0)
    fetched = read_fetched(TP, raw, 0, True)
    assert fetched is not None
    assert [r.value for r in fetched] == values


def test_a_control_batch_only_moves_the_position() -> None:
    data = Spec(((b"k", b"v", (), 0),), 0, False, False, 0)
    marker = Spec((), 0, False, True, 0)
    raw, _ = build_fetch([data, marker], 10)
    fetched = read_fetched(TP, raw, 10, True)
    assert fetched is not None
    assert [r.offset for r in fetched] == [10]
    assert fetched.next_fetch_offset == 12


def test_a_missing_codec_library_is_named() -> None:
    original = fetch_reader._CODECS[3]
    fetch_reader._CODECS[3] = ("lz4", lambda: False, original[2])
    try:
        spec = Spec(((None, b"x" * 100, (), 0),), 3, False, False, 0)
        raw, _ = build_fetch([spec], 0)
        fetched = read_fetched(TP, raw, 0, True)
        assert fetched is not None
        with pytest.raises(UnsupportedCodecError, match=r"aiokafka\[lz4\]"):
            list(fetched)
    finally:
        fetch_reader._CODECS[3] = original


def test_a_codec_error_comes_after_the_records_before_it() -> None:
    good = Spec(((None, b"a", (), 0),), 0, False, False, 0)
    bad = bytearray(build_batch(Spec(((None, b"b" * 80, (), 0),), 1, False, False, 0), 1))
    bad[61:] = gzip.compress(b"not records")  # a valid gzip stream of the wrong length
    bad[8:12] = struct.pack(">i", len(bad) - 12)
    bad[17:21] = struct.pack(">I", _crc32c.crc(bytes(bad[21:])))
    raw = build_batch(good, 0) + bytes(bad)
    fetched = read_fetched(TP, raw, 0, True)
    assert fetched is not None
    assert next(fetched) == Record(0, None, b"a", 1_700_000_000_000)
    with pytest.raises(CorruptRecordException, match="clickstream-3"):
        next(fetched)


def test_message_format_v1_is_left_to_aiokafka() -> None:
    builder = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    builder.append(0, timestamp=1, key=None, value=b"old")
    raw = bytes(builder.build())
    assert read_fetched(TP, raw, 0, True) is None
    make = partition_records_for(lambda: frozenset({TP.topic}))
    records = list(make(TP, KeptFetch(raw), None, 0, None, None, True, READ_UNCOMMITTED))
    assert [r.value for r in records] == [b"old"]  # aiokafka's ConsumerRecord


@pytest.mark.parametrize(
    ("topic", "isolation", "deserializer", "compiled"),
    [
        ("clickstream", READ_UNCOMMITTED, None, True),
        ("other", READ_UNCOMMITTED, None, False),  # not a batch topic (a changelog)
        ("clickstream", READ_COMMITTED, None, False),  # aborted transactions: aiokafka's
        ("clickstream", READ_UNCOMMITTED, bytes, False),
    ],
)
def test_only_batch_topics_read_uncommitted_without_deserializers_are_compiled(
    topic: str, isolation: int, deserializer: Any, compiled: bool
) -> None:
    raw, _ = build_fetch([Spec(((None, b"v", (), 0),), 0, False, False, 0)], 0)
    make = partition_records_for(lambda: frozenset({"clickstream"}))
    tp = TopicPartition(topic, 0)
    made = make(tp, KeptFetch(raw), None, 0, None, deserializer, True, isolation)
    assert isinstance(made, PartitionRecords) is not compiled


def test_the_factory_takes_partition_records_parameters() -> None:
    import inspect

    theirs = list(inspect.signature(PartitionRecords.__init__).parameters)[1:]
    ours = list(inspect.signature(partition_records_for(frozenset)).parameters)
    assert ours == theirs


def test_a_record_type_that_is_not_a_four_field_tuple_is_refused() -> None:
    from shopfunnel_core import read_fetched_records

    raw, _ = build_fetch([Spec(((None, b"v", (), 0),), 0, False, False, 0)], 0)
    with pytest.raises(TypeError, match="NamedTuple"):
        read_fetched_records(raw, 0, True, tuple, fetch_reader.inflate, Exception, "t-0")


def test_the_bench_reads_the_same_records_both_ways() -> None:
    from bench.fetch_read import by_aiokafka, by_compiled, fetch_bytes

    records = [Record(i, None if i % 3 else b"k%d" % i, b"v" * i, 1_000 + i) for i in range(25)]
    for codec in CODECS:
        raw = fetch_bytes(records, 7, codec)
        assert by_compiled(raw) == by_aiokafka(raw) == records
