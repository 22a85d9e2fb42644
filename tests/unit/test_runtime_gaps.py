"""The agent refuses a batch that follows a hole: records it never received."""

from __future__ import annotations

from unittest.mock import create_autospec

from sinks.clickhouse import ClickHouseWriter
from sinks.metrics import PipelineMetrics
from streams.conversion import ConversionTracker
from streams.processor import PartitionProcessor
from streams.records import Record
from streams.runtime import Runtime, TableStore
from streams.transport import RecordBatch
from streams.visitor import Rules

TOPICS = {"clickstream": "shop.clickstream", "cart": "shop.cart", "orders": "shop.orders"}


def runtime() -> Runtime:
    return Runtime(
        rules=create_autospec(Rules, instance=True),
        decoder=None,
        channels=None,
        topics_by_stream=TOPICS,
        store=create_autospec(TableStore, instance=True),
        writer=create_autospec(ClickHouseWriter, instance=True),
        metrics=create_autospec(PipelineMetrics, instance=True),
        conversion=create_autospec(ConversionTracker, instance=True),
        dead_letters=None,
    )


def batch(first: int, last: int, covers_from: int, run_start: int) -> RecordBatch:
    records = tuple(Record(o, b"k", b"v", 0) for o in range(first, last + 1))
    return RecordBatch("shop.cart", 0, records, covers_from, run_start)


def with_processor(rt: Runtime, cart_next_offset: int | None) -> None:
    processor = create_autospec(PartitionProcessor, instance=True)
    processor.next_offset.side_effect = lambda stream: cart_next_offset
    rt.processors[0] = processor


def test_the_first_batch_must_start_the_run() -> None:
    rt = runtime()
    assert rt.gap_before(batch(0, 9, 0, 0)) is None
    # The run began at 0 but this batch covers from 18: 0..17 never arrived.
    assert rt.gap_before(batch(18, 30, 18, 0)) == 0


def test_later_batches_must_follow_what_was_processed() -> None:
    rt = runtime()
    with_processor(rt, cart_next_offset=18)
    assert rt.gap_before(batch(18, 30, 18, 0)) is None
    assert rt.gap_before(batch(31, 40, 31, 0)) == 18
    # Offsets already processed come again after a seek to the committed offset: a
    # rewind, which the processor handles; not a hole.
    assert rt.gap_before(batch(10, 20, 10, 10)) is None


def test_a_partition_new_to_its_processor_starts_at_the_run_start() -> None:
    rt = runtime()
    with_processor(rt, cart_next_offset=None)
    assert rt.gap_before(batch(5, 9, 5, 5)) is None
    assert rt.gap_before(batch(7, 9, 7, 5)) == 5
