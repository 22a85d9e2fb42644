"""The batch consumer's delivery rules, without a broker: what is fetched is delivered
once, in order, or fetched again; never dropped."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from mode.utils.logging import CompositeLogger

from streams.transport import BatchConsumer, RecordBatch, batch_topics

CLICKS = TP("shop.clickstream", 1)
CART = TP("shop.cart", 1)
CHANGELOG = TP("app-visitors-changelog", 1)


@dataclass
class FetchedRecord:
    offset: int
    key: bytes = b"k"
    value: bytes = b"v"
    timestamp: int = 1_000
    timestamp_type: int = 1
    serialized_value_size: int = 1


def fetched(first: int, last: int) -> list[FetchedRecord]:
    return [FetchedRecord(o) for o in range(first, last + 1)]


class ProbeApp:
    """A stand-in app. Not a SimpleNamespace, which is unhashable: the app hooks
    registry (streams/faust_private.py) holds apps as weak dictionary keys."""

    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


class ProbeConsumer(BatchConsumer):
    """The real getmany/seek logic over a scripted fetch; records seeks, gaps."""

    should_stop = False  # type: ignore[assignment]

    def __init__(self, fetch: dict[TP, list[FetchedRecord]], active: set[TP] | None) -> None:
        self.log = CompositeLogger(logging.getLogger(__name__), formatter=None)
        self.app = ProbeApp(
            consumer_generation_id=1,
            monitor=SimpleNamespace(track_tp_end_offset=lambda tp, offset: None),
            flow_control=SimpleNamespace(is_active=lambda: self.flow_control_active),
        )
        batch_topics(self.app, frozenset({CLICKS.topic, CART.topic}))
        self.flow_control_active = True
        # Faust's own bookkeeping, as its constructor sets it up.
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._acked: defaultdict[TP, list[int]] = defaultdict(list)
        self._acked_index: defaultdict[TP, set[int]] = defaultdict(set)

        self._fetch = fetch
        self._active = active
        self._buffered_partitions: set[TP] = set()
        self._read_offset: dict[TP, int | None] = {}
        self.assigned = {CLICKS, CART, CHANGELOG}
        self.seeks: list[tuple[TP, int]] = []
        self.performed_seek = 0

    async def _wait_next_records(self, timeout: float) -> Any:
        return self._fetch, self._active

    def assignment(self) -> set[TP]:
        return self.assigned

    def highwater(self, tp: TP) -> int:
        return 0

    async def _seek(self, partition: TP, offset: int) -> None:
        self.seeks.append((partition, offset))

    async def perform_seek(self) -> None:
        self.performed_seek += 1

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return {tp: self._committed_offset[tp] for tp in self.assigned}

    def _to_message(self, tp: TP, record: Any) -> Any:
        return ("per-record", record.offset)

    def delivered(self, flip_generation_after: int | None = None) -> list[tuple[TP, Any]]:
        async def collect() -> list[tuple[TP, Any]]:
            out = []
            async for tp, message in self.getmany(1.0):
                out.append((tp, message))
                if flip_generation_after is not None and len(out) == flip_generation_after:
                    self.app.consumer_generation_id += 1  # a rebalance while we yield
            return out

        return asyncio.run(collect())


def batch_offsets(message: Any) -> list[int]:
    assert isinstance(message.value, RecordBatch)
    return [r.offset for r in message.value.records]


def test_a_fetch_becomes_one_batch_message_per_partition() -> None:
    consumer = ProbeConsumer({CLICKS: fetched(5, 9), CHANGELOG: fetched(0, 1)}, None)
    out = consumer.delivered()
    assert [(tp, batch_offsets(m)) for tp, m in out if tp == CLICKS] == [(CLICKS, [5, 6, 7, 8, 9])]
    message = out[0][1]
    assert message.offset == 9  # acked as a whole
    assert (message.value.covers_from, message.value.run_start) == (5, 5)
    assert [m for tp, m in out if tp == CHANGELOG] == [("per-record", 0), ("per-record", 1)]
    assert consumer.seeks == []


def test_records_of_a_partition_paused_meanwhile_are_fetched_again() -> None:
    # Faust pauses partitions while it recovers tables; the fetch may already hold
    # their records. With no committed offset, nothing else would ever re-read them.
    consumer = ProbeConsumer({CLICKS: fetched(0, 3), CART: fetched(7, 8)}, {CART})
    out = consumer.delivered()
    assert [(tp, batch_offsets(m)) for tp, m in out] == [(CART, [7, 8])]
    assert consumer.seeks == [(CLICKS, 0)]
    assert consumer._account(CLICKS).next_expected == 0


def test_records_after_a_rebalance_mid_fetch_are_fetched_again() -> None:
    consumer = ProbeConsumer({CLICKS: fetched(0, 3), CART: fetched(7, 8)}, None)
    out = consumer.delivered(flip_generation_after=1)
    assert [tp for tp, _ in out] == [CLICKS]
    assert consumer.seeks == [(CART, 7)]


def test_a_fetch_while_flow_is_stopped_is_put_back_before_seeking_to_commits() -> None:
    consumer = ProbeConsumer({CLICKS: fetched(4, 6), CHANGELOG: fetched(0, 0)}, None)
    consumer.flow_active = False
    assert consumer.delivered() == []
    assert consumer.seeks == [(CLICKS, 4)]  # changelogs: Faust's recovery re-reads them
    assert consumer.performed_seek == 1


def test_put_back_skips_what_was_delivered_and_partitions_no_longer_assigned() -> None:
    consumer = ProbeConsumer({CLICKS: fetched(0, 5), CART: fetched(0, 2)}, set())
    consumer._account(CLICKS).next_expected = 4  # 0..3 already delivered before a seek
    consumer.assigned = {CLICKS}  # cart revoked meanwhile
    assert consumer.delivered() == []
    assert consumer.seeks == [(CLICKS, 4)]


def test_a_batch_from_a_stale_position_is_refetched_from_the_expected_offset() -> None:
    consumer = ProbeConsumer({CLICKS: fetched(10, 12)}, None)
    consumer._account(CLICKS).next_expected = 8
    assert consumer.delivered() == []
    assert consumer.seeks == [(CLICKS, 8)]
    # Fetched again at the same place: a real gap (transaction markers), accepted.
    out = consumer.delivered()
    assert [batch_offsets(m) for _, m in out] == [[10, 11, 12]]


def test_commits_stop_before_a_batch_that_was_delivered_but_never_applied() -> None:
    # Faust's stream skips (and acks) a message of an earlier generation; a later
    # batch must not commit over it (Faust's own gap account would).
    consumer = ProbeConsumer({CLICKS: fetched(0, 17)}, None)
    [(_, dropped)] = consumer.delivered()
    consumer._fetch = {CLICKS: fetched(18, 40)}
    [(_, processed)] = consumer.delivered()
    assert processed.value.covers_from == 18 and processed.value.run_start == 0
    consumer.batch_processed(processed.value)
    assert consumer._new_offset(CLICKS) is None  # nothing committed, run starts at 0
    consumer.batch_processed(dropped.value)
    assert consumer._new_offset(CLICKS) == 41


def test_commits_follow_the_committed_offset_without_holes() -> None:
    consumer = ProbeConsumer({CLICKS: fetched(10, 19)}, None)
    consumer._read_offset[CLICKS] = 10
    consumer._committed_offset[CLICKS] = 10
    consumer._account(CLICKS).restart(10)
    [(_, first)] = consumer.delivered()
    consumer._fetch = {CLICKS: fetched(20, 29)}
    [(_, second)] = consumer.delivered()
    consumer.batch_processed(first.value)
    assert consumer._new_offset(CLICKS) == 20
    consumer.batch_processed(second.value)
    assert consumer._new_offset(CLICKS) == 30
    consumer._account(CLICKS).committed(30)
    assert consumer._account(CLICKS).batches == {}


def test_a_stale_copy_applied_does_not_count_for_the_batch_delivered_again() -> None:
    consumer = ProbeConsumer({CLICKS: fetched(0, 9)}, None)
    [(_, stale)] = consumer.delivered()
    asyncio.run(consumer.seek(CLICKS, 0))  # read again (e.g. the agent saw a hole)
    [(_, again)] = consumer.delivered()
    assert stale.offset == again.offset == 9
    consumer.batch_processed(stale.value)
    assert consumer._new_offset(CLICKS) is None
    consumer.batch_processed(again.value)
    assert consumer._new_offset(CLICKS) == 10


def test_without_commits_a_rebalance_rereads_what_came_in_the_earlier_generation() -> None:
    consumer = ProbeConsumer({CLICKS: fetched(0, 4)}, None)
    [(_, applied)] = consumer.delivered()
    consumer._fetch = {CLICKS: fetched(5, 9)}
    consumer.delivered()  # delivered in generation 1, not applied yet
    consumer.batch_processed(applied.value)
    asyncio.run(BatchConsumer.perform_seek(consumer))
    assert consumer.seeks == []  # same generation: the stream will still apply it
    consumer.app.consumer_generation_id = 2  # a rebalance: the stream skips (and acks) it
    asyncio.run(BatchConsumer.perform_seek(consumer))
    # Both batches came in generation 1 and nothing is committed: read again from the
    # start of the run (applying 0-4 twice is harmless: the state skips replays).
    assert consumer.seeks == [(CLICKS, 0)]
    assert consumer._new_offset(CLICKS) is None


def test_nothing_is_delivered_while_faust_flow_control_is_suspended() -> None:
    # Table recovery resumes the partitions before flow control; the stream drops
    # what it dequeues in between.
    consumer = ProbeConsumer({CLICKS: fetched(0, 4), CHANGELOG: fetched(0, 0)}, None)
    consumer.flow_control_active = False
    out = consumer.delivered()
    assert [tp for tp, _ in out] == [CHANGELOG]  # recovery reads changelogs meanwhile
    assert consumer.seeks == [(CLICKS, 0)]


def test_a_stalled_partition_is_asked_for_again_and_read_from_the_processed_position(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = ProbeConsumer({CLICKS: fetched(0, 9)}, None)
    [(_, applied)] = consumer.delivered()
    consumer.batch_processed(applied.value)
    # Faust took it out of the fetch (buffer pressure) and the drop callback never came.
    consumer._active_partitions = {CART}
    consumer._paused_partitions = set()
    consumer._buffered_partitions.add(CLICKS)
    with caplog.at_level(logging.WARNING):
        asyncio.run(consumer.read_again(CLICKS, 10))
    assert CLICKS in consumer._active_partitions and CLICKS not in consumer._buffered_partitions
    assert consumer.seeks == [(CLICKS, 10)]
    assert consumer._account(CLICKS).next_expected == 10
    message = caplog.records[-1].getMessage()
    assert "reading again from 10" in message and "active=False" in message, message
    assert "buffered=True" in message and "next expected 10" in message, message


def test_a_stalled_partition_no_longer_assigned_is_left_alone() -> None:
    consumer = ProbeConsumer({}, None)
    consumer.assigned = {CART}
    consumer._active_partitions = {CART}
    consumer._paused_partitions = set()
    asyncio.run(consumer.read_again(CLICKS, 3))
    assert consumer.seeks == [] and CLICKS not in consumer._active_partitions


def test_a_batch_the_stream_dropped_is_read_again_once_a_later_one_reaches_the_agent() -> None:
    # Table recovery delivered CLICKS whole (its last batch); the stream dropped it.
    # Nothing later comes on CLICKS, but the stream reads in delivery order: once a
    # later CART batch reaches the agent, the CLICKS one cannot still be on its way.
    consumer = ProbeConsumer({CLICKS: fetched(0, 9), CART: fetched(0, 4)}, None)
    [(_, dropped), (_, cart)] = consumer.delivered()
    assert consumer.seeks == []
    asyncio.run(consumer.batch_received(cart.value))
    assert consumer.seeks == [(CLICKS, 0)]
    assert consumer._account(CLICKS).next_expected == 0
    assert consumer._account(CLICKS).batches == {}  # the dropped copy is forgotten
    consumer.batch_processed(cart.value)
    assert consumer._new_offset(CART) == 5
    consumer.batch_processed(dropped.value)  # a stale copy: it counts for nothing
    assert consumer._new_offset(CLICKS) is None


def test_batches_still_on_their_way_to_the_agent_are_not_read_again() -> None:
    consumer = ProbeConsumer({CLICKS: fetched(0, 9), CART: fetched(0, 4)}, None)
    [(_, clicks), (_, cart)] = consumer.delivered()
    asyncio.run(consumer.batch_received(clicks.value))  # CART was delivered after it
    consumer._fetch = {CLICKS: fetched(10, 19)}
    [(_, later)] = consumer.delivered()
    asyncio.run(consumer.batch_received(cart.value))
    asyncio.run(consumer.batch_received(later.value))
    assert consumer.seeks == []
    # A hole in the received batch's own partition is the agent's check (gap_before).
    consumer._fetch = {CLICKS: fetched(20, 29)}
    assert len(consumer.delivered()) == 1  # the stream drops this one
    consumer._fetch = {CLICKS: fetched(30, 39)}
    [(_, after_hole)] = consumer.delivered()
    asyncio.run(consumer.batch_received(after_hole.value))
    assert consumer.seeks == []


def test_a_dropped_batch_of_a_partition_revoked_since_is_left_to_its_next_owner() -> None:
    consumer = ProbeConsumer({CLICKS: fetched(0, 9), CART: fetched(0, 4)}, None)
    [_, (_, cart)] = consumer.delivered()
    consumer.assigned = {CART}
    asyncio.run(consumer.batch_received(cart.value))
    assert consumer.seeks == [] and CLICKS not in consumer._accounts()
