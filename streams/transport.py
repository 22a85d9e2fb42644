"""A Faust transport whose consumer hands the agent one message per fetched partition batch.

Faust's stock consumer turns every Kafka record into a ``Message`` and an ``Event`` and
passes each through the stream machinery: about 40-100 µs per record on this machine
type, the main limit of a Faust worker. This consumer subclass (installed through
Faust's own transport registry, the ``batchkafka://`` broker scheme) yields one message
per partition per fetch whose value is a :class:`RecordBatch`; the agent processes the
batch as a unit.

Offsets stay exact: the message carries the batch's last offset, and the offsets before
it are registered as a gap that counts as acknowledged only once the batch message is
acknowledged (Faust's own gap mechanism for compacted topics). Before committing, the
consumer awaits the app's commit barrier (the ClickHouse flush, see
:func:`attach_commit_barrier`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, AppT, Message
from faust.types.transports import ConsumerT
from faust.types.tuples import ConsumerMessage

from streams.records import Record

SCHEME = "batchkafka"


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """Consecutive records of one topic-partition, in offset order."""

    topic: str
    partition: int
    records: tuple[Record, ...]

    @property
    def first_offset(self) -> int:
        return self.records[0].offset

    @property
    def last_offset(self) -> int:
        return self.records[-1].offset


CommitBarrier = Callable[[Mapping[TP, int]], Awaitable[None]]


def _record(raw: Any) -> Record:
    return Record(
        raw.offset, raw.key, raw.value if raw.value is not None else b"", raw.timestamp or 0
    )


class BatchConsumer(faust_aiokafka.Consumer):
    """Yields ``(tp, message)`` once per partition per fetch; ``message.value`` is a batch.

    Batches of a partition are delivered contiguously from the committed offset: the
    state's replay protection relies on in-order delivery. Records fetched before a seek
    (Faust fetches while it recovers tables, then seeks to the committed offsets) are
    dropped and fetched again from the right place.
    """

    def _next_expected(self) -> dict[TP, int]:
        expected: dict[TP, int] | None = self.__dict__.get("_funnel_next_expected")
        if expected is None:
            expected = self.__dict__["_funnel_next_expected"] = {}
        return expected

    def _confirmed_gaps(self) -> dict[TP, int]:
        gaps: dict[TP, int] | None = self.__dict__.get("_funnel_confirmed_gaps")
        if gaps is None:
            gaps = self.__dict__["_funnel_confirmed_gaps"] = {}
        return gaps

    async def perform_seek(self) -> None:
        await super().perform_seek()
        expected = self._next_expected()
        for tp in self.assignment():
            offset = self._read_offset.get(tp)
            if offset is None:
                expected.pop(tp, None)  # nothing committed: the first batch decides
            else:
                expected[tp] = offset

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # A partition that comes back may have been processed further elsewhere.
        for tp in revoked:
            self._next_expected().pop(tp, None)
            self._confirmed_gaps().pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        self._next_expected()[partition] = offset

    async def _in_order(self, tp: TP, records: list[Any]) -> list[Any]:
        """The records to deliver now: from the next expected offset, without a gap."""
        expected = self._next_expected().get(tp)
        if expected is None:
            return records
        records = [r for r in records if r.offset >= expected]
        if not records:
            return records
        first = records[0].offset
        if first > expected and self._confirmed_gaps().get(tp) != first:
            # Fetched from a stale position: read again from where we are. A real gap
            # (transaction markers) comes back at the same offset and is accepted.
            self._confirmed_gaps()[tp] = first
            self.log.info("%s: batch starts at %d, expected %d: seeking back", tp, first, expected)
            await self.seek(tp, expected)
            return []
        return records

    def _batch_message(self, tp: TP, records: list[Any]) -> Message:
        batch = RecordBatch(tp.topic, tp.partition, tuple(_record(r) for r in records))
        last = records[-1]
        return ConsumerMessage(
            tp.topic,
            tp.partition,
            last.offset,
            (last.timestamp or 0) / 1000.0,
            last.timestamp_type,
            [],
            None,
            cast(Any, batch),  # the agent's schema passes it through (streams/app.py)
            None,
            0,
            sum(r.serialized_value_size for r in records),
            tp,
            generation_id=self.app.consumer_generation_id,
        )

    async def _put_back(self, tp: TP, records: list[Any]) -> None:
        """Fetched records that are not delivered now are fetched again later.

        The fetcher's position is already past them. Faust re-seeks after a pause or a
        rebalance, but only to committed offsets, and aiokafka skips partitions whose
        committed offset is none or 0: without this, such a partition would never see
        these records again (the worker waited on it forever, with lag).
        """
        expected = self._next_expected().get(tp)
        pending = [r for r in records if expected is None or r.offset >= expected]
        if not pending or tp not in self.assignment():
            return
        self.log.info(
            "%s: %d fetched records not delivered now: fetching them again from %d",
            tp,
            len(pending),
            pending[0].offset,
        )
        try:
            await self.seek(tp, pending[0].offset)
        except IllegalStateError:  # revoked meanwhile: its next owner starts from commits
            self._next_expected().pop(tp, None)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        records, active_partitions = await self._wait_next_records(timeout)
        batch_topics: frozenset[str] = getattr(self.app, "funnel_batch_topics", frozenset())
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            for tp, tp_records in records.items():
                if tp.topic in batch_topics:
                    await self._put_back(tp, tp_records)
            await self.perform_seek()
            return
        undelivered = list(records.items())
        while undelivered:
            tp, tp_records = undelivered.pop(0)
            if not tp_records:
                continue
            batched = tp.topic in batch_topics
            if not self.flow_active or self.app.consumer_generation_id != generation_id:
                for later_tp, later_records in [(tp, tp_records), *undelivered]:
                    if later_tp.topic in batch_topics:
                        await self._put_back(later_tp, later_records)
                break
            if not (
                active_partitions is None
                or tp in active_partitions
                or tp in self._buffered_partitions
            ):
                if batched:
                    await self._put_back(tp, tp_records)  # paused meanwhile
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if not batched:
                # Changelogs and any other topic keep Faust's per-record messages:
                # table recovery and standbys read them record by record.
                for record in tp_records:
                    yield tp, self._to_message(tp, record)
                continue
            tp_records = await self._in_order(tp, tp_records)
            if not tp_records:
                continue
            self._next_expected()[tp] = tp_records[-1].offset + 1
            first, last = tp_records[0].offset, tp_records[-1].offset
            if last > first:
                # Offsets first..last-1 are acknowledged together with the batch
                # message (offset ``last``), never before it.
                await self._add_gap(tp, first, last - 1)
            yield tp, self._batch_message(tp, tp_records)

    async def _commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        barrier: CommitBarrier | None = getattr(self.app, "funnel_before_commit", None)
        if barrier is not None:
            await barrier(offsets)
        self.log.debug(
            "committing %s", sorted((tp.topic, tp.partition, o) for tp, o in offsets.items())
        )
        return bool(await super()._commit_offsets(offsets, start_new_transaction))


class Transport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[ConsumerT]] = BatchConsumer


def register() -> None:
    """Make ``batchkafka://`` resolve to this transport (also done by the entry point)."""
    from faust.transport.drivers import TRANSPORTS

    TRANSPORTS.aliases[SCHEME] = "streams.transport:Transport"


def attach_commit_barrier(app: AppT, barrier: CommitBarrier) -> None:
    app.funnel_before_commit = barrier  # type: ignore[attr-defined]


def batch_topics(app: AppT, topics: frozenset[str]) -> None:
    """Deliver these topics as record batches; all others record by record."""
    app.funnel_batch_topics = topics  # type: ignore[attr-defined]
