"""A Faust transport whose consumer hands the agent one message per fetched partition batch.

Faust's stock consumer turns every Kafka record into a ``Message`` and an ``Event`` and
passes each through the stream machinery: about 40-100 µs per record on this machine
type, the main limit of a Faust worker. This consumer subclass (installed through
Faust's own transport registry, the ``batchkafka://`` broker scheme) yields one message
per partition per fetch whose value is a :class:`RecordBatch`; the agent processes the
batch as a unit. The fetched records themselves are read by the crate, not by aiokafka,
where :func:`compiled_fetch_reader` is set (``streams/fetch_reader.py``).

Offsets stay exact. The message carries the batch's last offset; this consumer keeps
its own account of the batches it delivered (which offsets each covers, whether the
agent applied it) and commits only up to the end of the applied batches that follow
the committed offset without a hole. Faust's own account (acked offsets plus "gaps")
would commit past a batch that was delivered but never applied: its stream skips, and
acks, messages of an earlier generation or received while flow is stopped. Each batch
also says where its contiguous run began, so the agent can tell when one before it went missing and
read again from there (:meth:`streams.runtime.Runtime.gap_before`). Before committing,
the consumer awaits the app's commit barrier (the ClickHouse flush, see
:func:`attach_commit_barrier`).

Faust's private consumer internals this relies on are reached only through
``streams/faust_private.py`` (its commit hooks and named helpers).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, AppT, Message
from faust.types.transports import ConsumerT
from faust.types.tuples import ConsumerMessage

from streams import faust_private, fetch_reader
from streams.faust_private import CommitBarrier
from streams.records import Record

SCHEME = "batchkafka"
# How long a revocation may wait for its commit (the ClickHouse flush and the changelog
# first). The rest of the group waits in the rebalance meanwhile, up to Faust's
# broker_rebalance_timeout (60 s by default); a commit given up is read again elsewhere.
HAND_OVER_COMMIT_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """Consecutive records of one topic-partition, in offset order."""

    topic: str
    partition: int
    records: tuple[Record, ...]
    # Offsets covers_from..last_offset are accounted for by this batch (more than its
    # records only across a real gap, e.g. transaction markers); run_start is where the
    # consumer's current contiguous delivery of this partition began (a seek starts one).
    covers_from: int = -1
    run_start: int = -1

    @property
    def first_offset(self) -> int:
        return self.records[0].offset

    @property
    def last_offset(self) -> int:
        return self.records[-1].offset


def _records(fetched: list[Any]) -> tuple[Record, ...]:
    """A partition's fetched records as Records.

    The compiled fetch reader gives Records already (streams/fetch_reader.py); aiokafka's
    reader (other settings, message format v0/v1) gives ConsumerRecords, copied here. One
    fetch's records come from one reader.
    """
    if type(fetched[0]) is Record:
        return tuple(fetched)
    return tuple(
        Record(r.offset, r.key, r.value if r.value is not None else b"", r.timestamp or 0)
        for r in fetched
    )


@dataclass(slots=True)
class _Delivered:
    """One batch handed to the agent: the offsets it covers, and whether it was applied."""

    covers_from: int
    generation_id: int  # the consumer group generation it was delivered in
    batch: RecordBatch  # matched by identity: a stale copy may end at the same offset
    # Delivery order across all partitions: the agent's stream reads batches in it.
    sequence: int = 0
    received: bool = False  # the agent's stream handed it to the agent
    processed: bool = False


@dataclass(slots=True)
class _Account:
    """What this consumer delivered of one partition since its run began."""

    run_start: int | None = None  # None: the next fetched batch starts the run
    next_expected: int | None = None
    batches: dict[int, _Delivered] = field(default_factory=dict)  # by last offset
    confirmed_gap: int | None = None
    committed_at: int | None = None  # the last offset this consumer committed

    def restart(self, offset: int | None) -> None:
        """Delivery goes on from ``offset``: batches at or after it will come again."""
        self.next_expected = offset
        self.confirmed_gap = None
        if offset is None:
            self.batches.clear()
        else:
            for last in [k for k in self.batches if k >= offset]:
                del self.batches[last]
        if not self.batches:
            self.run_start = offset  # else the run still begins at the first kept batch

    def committable(self, committed: int | None) -> int | None:
        """End of the applied batches that follow ``committed`` without a hole."""
        position = committed if committed is not None else self.run_start
        new: int | None = None
        for last in sorted(self.batches):
            delivered = self.batches[last]
            if last < (position or 0):
                continue  # committed before
            if not delivered.processed or (
                position is not None and delivered.covers_from > position
            ):
                break
            new = position = last + 1
        return new

    def committed(self, offset: int) -> None:
        self.committed_at = offset if self.committed_at is None else max(self.committed_at, offset)
        for last in [k for k in self.batches if k < offset]:
            del self.batches[last]

    def to_hand_over(self, committed: int | None) -> int | None:
        """The offset to commit before the partition goes to its next owner: the end of
        the applied batches after the newer of ``committed`` (Faust's, read before the
        revocation) and this consumer's own last commit."""
        known = [o for o in (committed, self.committed_at) if o is not None]
        return self.committable(max(known) if known else None)

    def first_of_earlier_generation(self, generation_id: int) -> int | None:
        """Start of the first uncommitted batch delivered in an earlier generation.

        Faust's stream skips (and acks) those; whether one was applied before the
        rebalance is unknown here, and reading an applied one again is harmless.
        """
        earlier = [d.covers_from for d in self.batches.values() if d.generation_id != generation_id]
        return min(earlier) if earlier else None

    def processed(self, batch: RecordBatch) -> None:
        delivered = self._delivered(batch)
        if delivered is not None:
            delivered.processed = True

    def received(self, batch: RecordBatch) -> int | None:
        """Mark ``batch`` received by the agent; its delivery sequence (None: not ours)."""
        delivered = self._delivered(batch)
        if delivered is None:
            return None
        delivered.received = True
        return delivered.sequence

    def dropped_before(self, sequence: int) -> int | None:
        """Start of the first batch delivered before ``sequence`` that the agent never
        received: the stream read past it, so it dropped it."""
        dropped = [
            d.covers_from for d in self.batches.values() if d.sequence < sequence and not d.received
        ]
        return min(dropped) if dropped else None

    def _delivered(self, batch: RecordBatch) -> _Delivered | None:
        delivered = self.batches.get(batch.last_offset)
        return delivered if delivered is not None and delivered.batch is batch else None


class BatchConsumer(faust_private.OffsetHookConsumer):
    """Yields ``(tp, message)`` once per partition per fetch; ``message.value`` is a batch.

    Batches of a partition are delivered contiguously from the committed offset: the
    state's replay protection relies on in-order delivery. Records fetched before a seek
    (Faust fetches while it recovers tables, then seeks to the committed offsets) are
    dropped and fetched again from the right place.
    """

    def _accounts(self) -> dict[TP, _Account]:
        accounts: dict[TP, _Account] | None = self.__dict__.get("_funnel_accounts")
        if accounts is None:
            accounts = self.__dict__["_funnel_accounts"] = {}
        return accounts

    def _account(self, tp: TP) -> _Account:
        account = self._accounts().get(tp)
        if account is None:
            account = self._accounts()[tp] = _Account()
        return account

    def _batch_topics(self) -> frozenset[str]:
        return faust_private.app_hooks(self.app).batch_topics

    async def perform_seek(self) -> None:
        await super().perform_seek()
        batch_topics = self._batch_topics()
        for tp in self.assignment():
            if tp.topic not in batch_topics:
                continue
            account = self._account(tp)
            committed = faust_private.read_offset(self, tp)
            if committed is not None:
                self._log_read_again(tp, account, committed, "seek to the committed offset")
                account.restart(committed)
                continue
            # Nothing committed, and aiokafka's seek to committed offsets left the
            # position where it was: read again what the stream may have skipped.
            earlier = account.first_of_earlier_generation(self.app.consumer_generation_id)
            if earlier is not None:
                self.log.info("%s: reading again from %d after the rebalance", tp, earlier)
                await self.seek(tp, earlier)
            elif not account.batches:
                account.restart(None)  # nothing delivered yet: the first batch decides

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # Faust forgets the committed offsets of revoked partitions: read them first.
        committed = {tp: faust_private.committed_offset(self, tp) for tp in revoked}
        try:
            # Faust stops the flow and waits for the agent's batch in hand, then the app's
            # revocation hook runs (it ends the writer's bulk mode: streams/app.py).
            await super().on_partitions_revoked(revoked)
            if not (self.should_stop or self.app.should_stop):
                await self._commit_before_hand_over(revoked, committed)
        finally:
            # A partition that comes back may have been processed further elsewhere.
            for tp in revoked:
                self._accounts().pop(tp, None)

    async def _commit_before_hand_over(
        self, revoked: set[TP], committed: Mapping[TP, int | None]
    ) -> None:
        """Commit what was applied of the revoked partitions while they are still ours.

        Faust commits nothing at a rebalance, so each partition's next owner read again
        everything since the last timer commit: up to a commit interval of work, more
        while ClickHouse inserts are in bulk (62,399 records of 492,517 when a second
        worker joined the bench's first). This is the commit the Kafka consumer's
        rebalance listener is for; it runs before this member rejoins the group.
        """
        # A commit under way holds older offsets: it lands first, and ours after it.
        await self.maybe_wait_for_commit_to_finish()
        offsets: dict[TP, int] = {}
        for tp in revoked:
            account = self._accounts().get(tp)
            offset = account.to_hand_over(committed.get(tp)) if account is not None else None
            if offset is not None:
                offsets[tp] = offset
        if not offsets:
            return
        commit = asyncio.ensure_future(self.commit_offsets(offsets))
        try:
            # Shielded: cut off in its barrier, a commit could lose track of changelog
            # sends it waits for. Given up on, it goes on and lands (or fails) by itself.
            done = await asyncio.wait_for(asyncio.shield(commit), HAND_OVER_COMMIT_SECONDS)
        except TimeoutError:
            # Landing late, the partitions may be ours again (Faust revokes them all and
            # assigns most back): their committed offsets are Faust's again, left alone.
            commit.add_done_callback(
                lambda task: self._hand_over_landed(task, offsets, forget_committed=False)
            )
            self.log.warning(
                "revoked partitions not committed within %.0f s at hand-over: the group goes "
                "on without the commit, and their next owner may read again what this "
                "worker applied since its last commit",
                HAND_OVER_COMMIT_SECONDS,
            )
            return
        except Exception as exc:  # the next owner reads them again: harmless, so logged
            self._hand_over_failed(exc)
            return
        if done:
            self._hand_over_landed(commit, offsets)

    def _hand_over_landed(
        self,
        commit: asyncio.Future[bool],
        offsets: Mapping[TP, int],
        *,
        forget_committed: bool = True,
    ) -> None:
        if commit.cancelled():
            return
        exc = commit.exception()
        if exc is not None:
            self._hand_over_failed(exc)
        elif commit.result():
            if forget_committed:
                faust_private.forget_committed(self, offsets)
            self.log.info(
                "committed at hand-over: %s",
                ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in sorted(offsets.items())),
            )

    def _hand_over_failed(self, exc: BaseException) -> None:
        self.log.warning(
            "revoked partitions not committed at hand-over (%r): their next owner reads "
            "again what this worker applied since its last commit",
            exc,
        )

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        if partition.topic in self._batch_topics():
            account = self._account(partition)
            self._log_read_again(partition, account, offset, "seek")
            account.restart(offset)

    def _log_read_again(self, tp: TP, account: _Account, offset: int, why: str) -> None:
        if account.next_expected is not None and offset < account.next_expected:
            self.log.info(
                "%s: %s: delivering again from %d (delivered up to %d)",
                tp,
                why,
                offset,
                account.next_expected - 1,
            )

    async def read_again(self, tp: TP, offset: int) -> None:
        """``tp`` has records to read but delivered nothing for a long time: fetch it again
        from ``offset`` (the processed position), asked for and unpaused.

        A safety net for a stall whose cause is not yet known (docs/architecture.md,
        "Partitions that stop being read"): the warning records what Faust and this
        consumer held about the partition, the evidence for finding the cause.
        """
        account = self._accounts().get(tp)
        self.log.warning(
            "%s: records to read but none delivered for a while: reading again from %d "
            "(%s; this consumer: next expected %s, uncommitted batches %d)",
            tp,
            offset,
            faust_private.flow_state(self, tp),
            account.next_expected if account is not None else None,
            len(account.batches) if account is not None else 0,
        )
        if tp not in self.assignment():
            return
        faust_private.reactivate(self, tp)
        try:
            await self.seek(tp, offset)
        except IllegalStateError:  # revoked meanwhile: its next owner starts from commits
            self._accounts().pop(tp, None)

    async def batch_received(self, batch: RecordBatch) -> None:
        """The agent's stream handed it ``batch``: read again what the stream dropped.

        The stream reads batches in the order this consumer delivered them, and drops
        (without a trace) those that reach it while flow control is stopped or that carry
        an earlier generation. So a batch of another partition delivered before this one
        that the agent never received was dropped. Nothing else would bring it back when
        it was its partition's last (table recovery delivers a small partition whole, then
        the stream drops it): the partition would wait for the stall safety net. A hole
        in this batch's own partition is the agent's check (``Runtime.gap_before``).
        """
        tp = TP(batch.topic, batch.partition)
        accounts = self._accounts()
        account = accounts.get(tp)
        sequence = account.received(batch) if account is not None else None
        if sequence is None:
            return
        for other, other_account in list(accounts.items()):
            start = other_account.dropped_before(sequence) if other != tp else None
            if start is None:
                continue
            self.log.info(
                "%s: a batch from %d was delivered but never reached the agent (the "
                "stream dropped it): reading again from %d",
                other,
                start,
                start,
            )
            if other not in self.assignment():
                accounts.pop(other, None)  # its next owner starts from the commits
                continue
            try:
                await self.seek(other, start)
            except IllegalStateError:  # revoked meanwhile: its next owner starts from commits
                accounts.pop(other, None)

    def _next_sequence(self) -> int:
        sequence: int = self.__dict__.get("_funnel_delivery_sequence", 0) + 1
        self.__dict__["_funnel_delivery_sequence"] = sequence
        return sequence

    def batch_processed(self, batch: RecordBatch) -> None:
        """The agent applied ``batch``: its offsets may be committed (after the barrier).

        Not Faust's acks: its stream also acks messages it skips, and its compiled
        stream iterator acks without calling :meth:`ack`.
        """
        account = self._accounts().get(TP(batch.topic, batch.partition))
        if account is not None:
            account.processed(batch)

    def offset_to_commit(self, tp: TP) -> int | None:
        if tp.topic not in self._batch_topics():
            return self.faust_offset_to_commit(tp)
        # Faust's own account of this partition is not used: keep it from growing.
        faust_private.forget_acked(self, tp)
        account = self._accounts().get(tp)
        if account is None:
            return None
        return account.committable(faust_private.committed_offset(self, tp))

    async def _in_order(self, tp: TP, records: list[Any]) -> list[Any]:
        """The records to deliver now: from the next expected offset, without a gap."""
        account = self._account(tp)
        expected = account.next_expected
        if expected is None:
            return records
        records = [r for r in records if r.offset >= expected]
        if not records:
            return records
        first = records[0].offset
        if first > expected and account.confirmed_gap != first:
            # Fetched from a stale position: read again from where we are. A real gap
            # (transaction markers) comes back at the same offset and is accepted.
            self.log.info("%s: batch starts at %d, expected %d: seeking back", tp, first, expected)
            await self.seek(tp, expected)
            account.confirmed_gap = first
            return []
        return records

    def _batch_message(self, tp: TP, records: list[Any]) -> Message:
        account = self._account(tp)
        first, last = records[0].offset, records[-1].offset
        covers_from = account.next_expected if account.next_expected is not None else first
        if account.run_start is None:
            account.run_start = covers_from
        account.next_expected = last + 1
        batch = RecordBatch(
            tp.topic, tp.partition, _records(records), covers_from, account.run_start
        )
        final = batch.records[-1]
        message = ConsumerMessage(
            tp.topic,
            tp.partition,
            last,
            final.timestamp_ms / 1000.0,
            getattr(records[-1], "timestamp_type", 0),  # a Record's: not kept (0: create)
            [],
            None,
            cast(Any, batch),  # the agent's schema passes it through (streams/app.py)
            None,
            0,
            sum(len(r.value) for r in batch.records),
            tp,
            generation_id=self.app.consumer_generation_id,
        )
        account.batches[last] = _Delivered(
            covers_from, self.app.consumer_generation_id, batch, self._next_sequence()
        )
        return message

    async def _put_back(self, tp: TP, records: list[Any]) -> None:
        """Fetched records that are not delivered now are fetched again later.

        The fetcher's position is already past them. Faust re-seeks after a pause or a
        rebalance, but only to committed offsets, and aiokafka skips partitions whose
        committed offset is none or 0: without this, such a partition would never see
        these records again (the worker waited on it forever, with lag).
        """
        expected = self._account(tp).next_expected
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
            self._accounts().pop(tp, None)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        records, active_partitions = await faust_private.wait_next_records(self, timeout)
        batch_topics = self._batch_topics()
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
            if batched and not self.app.flow_control.is_active():
                # Faust's stream would drop it (recovery resumes the partitions before
                # it resumes flow control): not delivered now, read again later.
                await self._put_back(tp, tp_records)
                continue
            if not (
                active_partitions is None
                or tp in active_partitions
                or tp in faust_private.buffered_partitions(self)
            ):
                if batched:
                    await self._put_back(tp, tp_records)  # paused meanwhile
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            if not batched:
                # Changelogs and any other topic keep Faust's per-record messages:
                # table recovery and standbys read them record by record.
                for record in tp_records:
                    yield tp, faust_private.to_message(self, tp, record)
                continue
            tp_records = await self._in_order(tp, tp_records)
            if tp_records:
                # Faust's fetch loop drops a message below the last offset it passed on
                # (a batch read again after a seek back); this account decides instead.
                faust_private.forget_read_offset(self, tp)
                yield tp, self._batch_message(tp, tp_records)

    async def commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        barrier = faust_private.app_hooks(self.app).before_commit
        if barrier is not None:
            await barrier(offsets)
        self.log.debug(
            "committing %s", sorted((tp.topic, tp.partition, o) for tp, o in offsets.items())
        )
        committed = await self.faust_commit_offsets(offsets, start_new_transaction)
        if committed:
            for tp, offset in offsets.items():
                account = self._accounts().get(tp)
                if account is not None:
                    account.committed(offset)
        return committed


class Transport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[ConsumerT]] = BatchConsumer


def register() -> None:
    """Make ``batchkafka://`` resolve to this transport (also done by the entry point)."""
    from faust.transport.drivers import TRANSPORTS

    TRANSPORTS.aliases[SCHEME] = "streams.transport:Transport"


def attach_commit_barrier(app: AppT, barrier: CommitBarrier) -> None:
    """Await ``barrier(offsets)`` before every commit of ``app``'s consumer."""
    faust_private.set_commit_barrier(app, barrier)


def fetch_max_wait(app: AppT, milliseconds: int) -> None:
    """How long the broker may hold a fetch of ``app``'s consumer with no new records."""
    faust_private.set_fetch_max_wait(app, milliseconds)


def batch_topics(app: AppT, topics: frozenset[str]) -> None:
    """Deliver these topics as record batches; all others record by record."""
    faust_private.set_batch_topics(app, topics)


def compiled_fetch_reader(app: AppT) -> None:
    """Have the compiled core read the batch topics' fetched records (streams/fetch_reader.py)."""
    faust_private.set_fetch_reader(
        app,
        fetch_reader.KeptFetch,
        fetch_reader.partition_records_for(lambda: faust_private.app_hooks(app).batch_topics),
    )
