"""Glue between Faust and the pure processing core: state store, sinks, DLQ, ordering.

The agent in ``streams/app.py`` is a thin loop that hands each record batch to
:meth:`Runtime.handle_batch`; a timer calls :meth:`Runtime.tick`. One asyncio lock per
partition keeps the two from interleaving on the same partition's state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas.deadletter import DeadLetter
from schemas.forget import decode_forget
from schemas.reasons import Rejection
from sinks.clickhouse import ClickHouseWriter
from sinks.metrics import PipelineMetrics
from streams.backlog import Backlog
from streams.batch import BatchResult
from streams.checkpoint import meta_key
from streams.conversion import ConversionTracker
from streams.forget_runner import ForgetRunner, ForgetStore
from streams.outputs import dead_letters as dead_letter_rows
from streams.outputs.family import VersionClock
from streams.processor import PartitionProcessor, Processor, ProcessorFactory
from streams.records import Record as InputRecord
from streams.runtime_metrics import RuntimeMetrics
from streams.transport import RecordBatch
from streams.triggers_out import TriggerPublisher
from streams.visitor import Rules

log = logging.getLogger(__name__)

# The forget topic's name among the streams: an input of the agent, but not of the
# watermark (its records carry no event time) nor of the visitor state.
FORGET_STREAM = "forget"


class TableStore(Protocol):
    """What the runtime needs of a Faust table: its store and its changelog."""

    def get(self, key: bytes) -> bytes | None: ...

    def keys_in_partition(self, partition: int) -> Iterable[bytes]: ...

    async def write_many(
        self, partition: int, writes: list[tuple[bytes, bytes | None]], barrier: Any = None
    ) -> None: ...

    def own(self, partition: int) -> int: ...

    def disown(self, partition: int, held: Iterable[tuple[bytes, bytes]]) -> None: ...

    def release_owned(self) -> int: ...


class DeadLetterSender(Protocol):
    async def send(self, letter: DeadLetter) -> None: ...


@dataclass
class TopicPosition:
    next_offset: int = 0
    seen_batch: bool = False
    # Since when this input has had nothing to read and processed nothing new (None: it
    # has records to read). Records processed between two ticks restart it.
    caught_up_since: float | None = None
    # The processed position the previous tick saw: a change means records were processed.
    ticked_offset: int | None = None
    # Seconds, summed over ticks that found the agent free, that this input had records
    # to read and processed none; and how often it was read again for that.
    stalled_seconds: float = 0.0
    stall_attempts: int = 0


@dataclass
class Runtime:
    rules: Rules
    decoder: Any
    channels: Any
    topics_by_stream: Mapping[str, str]
    store: TableStore
    writer: ClickHouseWriter
    metrics: PipelineMetrics
    conversion: ConversionTracker
    dead_letters: DeadLetterSender
    idle_input_seconds: float = 60.0
    cache_visitors: int = 0  # decoded visitor states kept per partition
    # The core that processes a partition (FUNNEL_CORE): the Python one, or the compiled
    # one (streams/compiled/processor.py).
    new_processor: ProcessorFactory = PartitionProcessor
    # Row keys this partition has in ClickHouse (non-final, non-zero); see recover().
    written_keys: Any = None
    triggers: TriggerPublisher | None = None
    stop_when_idle_seconds: float | None = None
    on_idle_stop: Any = None
    # Before an idle stop, declare the inputs finished (the watermark moves past the last
    # event time; the default for replays, see streams/worker.py).
    finish_inputs_when_idle: bool = False
    # An input with records to read that processed none for this long (counted while the
    # agent was free) is read again: ``on_input_stall(stream, partition, offset)``, from
    # the processed position; the wait doubles after each attempt, up to 32 times.
    input_stall_seconds: float = 30.0
    on_input_stall: Any = None
    # False while a rebalance or table recovery holds the inputs (no stall then).
    inputs_flowing: Any = None
    # Forget requests (issue #17): their topic and who runs them (set by attach_forgets;
    # None: not subscribed).
    forget_topic: str | None = None
    forgets: ForgetRunner | None = None
    processors: dict[int, Processor] = field(default_factory=dict)
    positions: dict[tuple[str, int], TopicPosition] = field(default_factory=dict)
    _locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    _versions: VersionClock = field(default_factory=VersionClock)
    _batches_running: int = 0
    _last_tick_at: float | None = None
    _backlog: Backlog | None = None  # is the input behind (the writer inserts in bulk)

    def __post_init__(self) -> None:
        self.stream_by_topic = {topic: stream for stream, topic in self.topics_by_stream.items()}
        self.observed = RuntimeMetrics(
            self.metrics, self.conversion, self.topics_by_stream, self.rules.steps_by_funnel
        )

    def attach_forgets(self, topic: str, store: ForgetStore) -> None:
        """Take forget requests from ``topic`` (co-partitioned with the inputs)."""
        self.forget_topic = topic
        self.stream_by_topic[topic] = FORGET_STREAM
        self.observed.topics_by_stream = {**self.observed.topics_by_stream, FORGET_STREAM: topic}
        delivered = getattr(self.store, "wait_delivered", None)

        async def state_delivered() -> None:
            if delivered is not None:
                await delivered()

        self.forgets = ForgetRunner(
            store, self.writer, self._versions, self._apply, state_delivered
        )

    def _lock(self, partition: int) -> asyncio.Lock:
        lock = self._locks.get(partition)
        if lock is None:
            lock = self._locks[partition] = asyncio.Lock()
        return lock

    async def _processor(self, partition: int) -> Processor:
        processor = self.processors.get(partition)
        if processor is None:
            started = time.perf_counter()
            processor = self.new_processor(
                partition,
                self.rules,
                self.decoder,
                self.channels,
                self.topics_by_stream,
                self.store,
                self._versions,
                cache_visitors=self.cache_visitors,
            )
            await self.writer.flush()
            written = self.written_keys(partition) if self.written_keys is not None else []
            recovered = processor.recover(written)
            if self.triggers is not None:
                await self.triggers.recover(partition, processor.triggers_next_offset)
            await self._emit_rows(recovered)
            self.processors[partition] = processor
            if processor.owns_state:  # the store's copies of its states are not needed
                self.store.own(partition)
            log.info(
                "partition %d: rebuilt %d visitors (%d bytes) and %d live rows in %.2fs "
                "(row version %d)",
                partition,
                processor.state_keys,
                processor.state_bytes,
                recovered.row_count,
                time.perf_counter() - started,
                processor.recovered_version,
            )
        return processor

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: their state may change elsewhere; rebuild if they return."""
        for partition in partitions:
            processor = self.processors.pop(partition, None)
            if processor is not None and processor.owns_state:
                # Back into the store: if the partition stays here, Faust's recovery
                # reads only the changelog's tail, and the new processor reads the store.
                self.store.disown(partition, processor.held_states())
            self.observed.partition_revoked(partition)
            if self.triggers is not None:
                self.triggers.forget([partition])
            for key in [k for k in self.positions if k[1] == partition]:
                del self.positions[key]

    def rebalance_completed(self) -> None:
        """Faust's recovery is done: drop the state copies it put back for the partitions
        whose processors hold their states (``TableStore.release_owned``)."""
        dropped = self.store.release_owned()
        if dropped:
            log.info(
                "after the rebalance: %d re-read state copies of owned partitions dropped", dropped
            )

    def gap_before(self, batch: RecordBatch) -> int | None:
        """Where to read again if a batch before this one never reached us, else None.

        Faust's stream drops messages of an earlier generation or while flow is stopped;
        applying a later batch over such a hole would mark the hole's records as already
        applied in the visitors' state (replay protection), so they would be lost.
        """
        stream = self.stream_by_topic[batch.topic]
        processor = self.processors.get(batch.partition)
        if stream == FORGET_STREAM:
            position = self.positions.get((stream, batch.partition))
            expected = position.next_offset if position and position.seen_batch else None
        else:
            expected = processor.next_offset(stream) if processor is not None else None
        if expected is None:
            expected = batch.run_start  # first batch of this partition here
        return expected if batch.covers_from > expected else None

    async def handle_batch(self, batch: RecordBatch, committed: int | None = None) -> None:
        stream = self.stream_by_topic[batch.topic]
        if stream == FORGET_STREAM:
            await self._handle_forgets(batch)
            return
        records: list[InputRecord] = list(batch.records)  # same shape: (offset, key, value, ts)
        started = time.perf_counter()
        self._batches_running += 1
        try:
            async with self._lock(batch.partition):
                processor = await self._processor(batch.partition)
                result = processor.process(stream, records, committed)
                arrived = max(r.timestamp_ms for r in records) if records else None
                await self._apply(processor, result, arrived)
        finally:
            self._batches_running -= 1
        log.debug(
            "%s p%d %d-%d: %d visitors written",
            stream,
            batch.partition,
            batch.first_offset,
            batch.last_offset,
            len(result.state_writes),
        )
        position = self.positions.setdefault((stream, batch.partition), TopicPosition())
        position.next_offset = batch.last_offset + 1
        position.seen_batch = True
        self.observed.batch_processed(len(records), time.perf_counter() - started)

    async def tick(self, offsets: Mapping[tuple[str, int], tuple[int | None, int | None]]) -> None:
        """Advance the watermark over caught-up inputs, fire timers, export gauges.

        Called about once a second. ``offsets`` maps each assigned input (stream,
        partition) to (its committed offset, the partition's end offset).
        """
        now = time.monotonic()
        since_last_tick = now - self._last_tick_at if self._last_tick_at is not None else 0.0
        self._last_tick_at = now
        agent_free = self._batches_running == 0 and (
            self.inputs_flowing is None or self.inputs_flowing()
        )
        stalled: list[tuple[str, int, int]] = []
        caught_up: dict[int, dict[str, int]] = {}
        idle: dict[int, set[str]] = {}
        # Idle means EVERY input idle: the stop clock runs from the last moment any input
        # had records to read or processed some (the latest caught_up_since, not the first:
        # empty inputs are caught up from launch while others are still being fed).
        all_idle_since: float | None = None
        all_caught_up = bool(offsets)
        lag_total = processed_total = 0
        for (stream, partition), (committed, end) in offsets.items():
            position = self.positions.setdefault((stream, partition), TopicPosition())
            # Before our first batch, only what an earlier worker committed is known to
            # be processed (fetched records may still wait in the stream buffer).
            next_offset = position.next_offset if position.seen_batch else (committed or 0)
            if end is not None:
                self.observed.lag(stream, partition, end - next_offset)
            # Records that arrived and were processed between two ticks leave the input
            # caught up at both: only the moved position tells that it was not quiet.
            processed = position.ticked_offset not in (None, next_offset)
            if stream != FORGET_STREAM:
                if end is not None:
                    lag_total += max(0, end - next_offset)
                if position.ticked_offset is not None:
                    processed_total += max(0, next_offset - position.ticked_offset)
            position.ticked_offset = next_offset
            lagging = end is not None and next_offset < end
            if self._stalled(position, lagging, processed, since_last_tick if agent_free else 0.0):
                stalled.append((stream, partition, next_offset))
            if end is None or next_offset < end:
                position.caught_up_since = None
                all_caught_up = False
                continue
            if processed or position.caught_up_since is None:
                position.caught_up_since = now
            if stream != FORGET_STREAM:  # not a visitor input: the processor ignores it
                caught_up.setdefault(partition, {})[stream] = end
            if now - position.caught_up_since >= self.idle_input_seconds:
                idle.setdefault(partition, set()).add(stream)
            if all_idle_since is None or position.caught_up_since > all_idle_since:
                all_idle_since = position.caught_up_since
        self._tell_writer_behind(lag_total, processed_total, since_last_tick)
        for partition in list(self.processors):
            async with self._lock(partition):
                processor = self.processors.get(partition)
                if processor is None:
                    continue
                result = processor.tick(caught_up.get(partition, {}), idle.get(partition, set()))
                await self._apply(processor, result)
        self.observed.export_gauges(self.processors)
        for stream, partition, offset in stalled:
            self.observed.input_stalled(stream)
            if self.on_input_stall is not None:
                await self.on_input_stall(stream, partition, offset)
        await self._maybe_stop_when_idle(all_idle_since if all_caught_up else None, now, caught_up)

    def _tell_writer_behind(self, lag: int, processed: int, elapsed: float) -> None:
        if self._backlog is None:
            self._backlog = Backlog(horizon_seconds=self.writer.flush_seconds)
        was_behind = self._backlog.behind
        behind = self._backlog.observe(lag, processed, elapsed)
        if behind == was_behind:
            return
        self.writer.set_behind(behind)
        self.metrics.input_behind.set(1 if behind else 0)
        log.info(
            "input %s: %d records to read, %d processed in %.1f s; ClickHouse inserts %s",
            "behind" if behind else "caught up",
            lag,
            processed,
            elapsed,
            "in bulk" if behind else "at the live pace",
        )

    def leave_bulk_mode(self, why: str) -> None:
        """Insert at the live pace from now on, and measure the input afresh: a commit
        that the consumer group waits for (a rebalance) should not wait for a bulk
        insert. The ticks put the writer back in bulk once the input is behind again."""
        backlog, self._backlog = self._backlog, None
        if backlog is None or not backlog.behind:
            return
        self.writer.set_behind(False)
        self.metrics.input_behind.set(0)
        log.info("%s: ClickHouse inserts at the live pace until the input is measured again", why)

    def _stalled(
        self, position: TopicPosition, lagging: bool, processed: bool, free_seconds: float
    ) -> bool:
        """Has this input had records to read, and processed none, for long enough while
        the agent was free (``free_seconds``: this tick's share of that time)?"""
        if processed:
            position.stall_attempts = 0
        if not lagging or processed:
            position.stalled_seconds = 0.0
            return False
        position.stalled_seconds += free_seconds
        wait = self.input_stall_seconds * 2 ** min(position.stall_attempts, 5)
        if position.stalled_seconds < wait:
            return False
        position.stalled_seconds = 0.0
        position.stall_attempts += 1
        return True

    async def _maybe_stop_when_idle(
        self, idle_since: float | None, now: float, caught_up: Mapping[int, Mapping[str, int]]
    ) -> None:
        """Stop once every assigned input has been idle for ``stop_when_idle_seconds``.

        ``idle_since`` is the last moment any input had records to read or processed
        some (None: one has records to read now, or nothing is assigned). With
        ``finish_inputs_when_idle`` each partition first gets a tick with its inputs
        declared finished, whose rows and state are written like any other.
        """
        if self.stop_when_idle_seconds is None or self.on_idle_stop is None:
            return
        if idle_since is None or now - idle_since < self.stop_when_idle_seconds:
            return
        if self.inputs_flowing is not None and not self.inputs_flowing():
            return  # a rebalance or the table's recovery: the state is not all here yet
        if self.finish_inputs_when_idle:
            log.warning("all inputs idle for %.0fs: declaring them finished", now - idle_since)
            # A partition with nothing new to read since the last worker still has open
            # sessions in its state: rebuild it, so that its inputs end finished too.
            for partition in sorted(caught_up):
                if partition not in self.processors:
                    async with self._lock(partition):
                        await self._processor(partition)
            for partition in list(self.processors):
                async with self._lock(partition):
                    processor = self.processors.get(partition)
                    if processor is None:
                        continue
                    inputs = caught_up.get(partition, {})
                    result = processor.tick(inputs, set(inputs), finished=True)
                    await self._apply(processor, result)
        log.warning("all inputs idle for %.0fs: stopping", now - idle_since)
        self.on_idle_stop()
        self.on_idle_stop = None

    async def _handle_forgets(self, batch: RecordBatch) -> None:
        """Forget requests, one at a time, under the partition's lock (streams/forget_runner.py)."""
        assert self.forgets is not None and self.forget_topic is not None
        started = time.perf_counter()
        async with self._lock(batch.partition):
            processor = await self._processor(batch.partition)
            for record in batch.records:
                decoded = decode_forget(record.value)
                if isinstance(decoded, Rejection):
                    await self._reject_forget(processor, decoded, record)
                    continue
                audit = await self.forgets.run(processor, decoded, record.timestamp_ms)
                self.observed.forget_done(audit.events_forgotten, audit.rows_corrected)
        position = self.positions.setdefault((FORGET_STREAM, batch.partition), TopicPosition())
        position.next_offset = batch.last_offset + 1
        position.seen_batch = True
        self.observed.batch_processed(len(batch.records), time.perf_counter() - started)

    async def _reject_forget(self, processor: Processor, rejection: Rejection, record: Any) -> None:
        assert self.forget_topic is not None
        letter = DeadLetter.from_rejection(
            rejection,
            raw=record.value,
            source_topic=self.forget_topic,
            source_partition=processor.partition,
            source_offset=record.offset,
            key=record.key,
            received_at_ms=record.timestamp_ms,
        )
        log.warning(
            "%s[%d]@%d: forget request rejected (%s): %s",
            self.forget_topic,
            processor.partition,
            record.offset,
            rejection.reason,
            rejection.detail,
        )
        result = BatchResult()
        result.dead_letters.append(letter)
        result.add_row(dead_letter_rows.TABLE, dead_letter_rows.build_row(letter))
        result.stats.dead_letters[(FORGET_STREAM, letter.reason)] += 1
        await self._apply(processor, result)

    async def _apply(
        self, processor: Processor, result: BatchResult, arrived_ms: int | None = None
    ) -> None:
        """Make one batch's outcome durable, in an order that survives a kill at any point.

        1. Triggers are published and acknowledged before the state that records them
           (exactly once on the topic).
        2. Rows go to the writer before the state that implies them is queued for the
           changelog. Rows that no recovery can rebuild (transitions, trigger rows, RFM
           snapshots: ``result.once_only_rows``) must be in ClickHouse before that state
           is in the changelog, so its write waits for them; otherwise a kill between the
           two would lose them, since the recovered state already counts the event.
        3. The checkpoint (thresholds, clocks) follows the state; if the batch finalised
           windows, their final rows must be in ClickHouse first.
        """
        partition = processor.partition
        if result.triggers and self.triggers is not None:
            next_offset = await self.triggers.publish(partition, result.triggers)
            if next_offset is not None:
                processor.triggers_next_offset = next_offset
            self.observed.triggers_published(result.triggers, arrived_ms)
        for letter in result.dead_letters:
            await self.dead_letters.send(letter)
        await self._emit_rows(result)
        rows_first = self.writer.wait_written if result.once_only_rows else None
        await self.store.write_many(partition, list(result.state_writes.items()), rows_first)
        if result.meta:
            # Final rows must be in ClickHouse before the thresholds that exclude them from
            # future rebuilds are persisted: the checkpoint waits for the ClickHouse flush in
            # the changelog queue (processing goes on; later records queue behind it).
            barrier = self.writer.settled if result.finalized else None
            meta: list[tuple[bytes, bytes | None]] = [
                (meta_key(partition), processor.meta_record())
            ]
            await self.store.write_many(partition, meta, barrier)
        self.observed.batch_applied(partition, result)

    async def _emit_rows(self, result: BatchResult) -> None:
        for spec, rows in result.rows.items():
            await self.writer.submit(spec, rows)
        for spec, encoded in result.encoded_rows.items():
            await self.writer.submit(spec, encoded)
