"""One partition's processing: records in, rows, triggers and state writes out.

No Faust and no I/O here: the caller hands in raw records and a read-only view of the
state store, and gets back a :class:`~streams.batch.BatchResult`. The per-batch flow, in
:meth:`PartitionProcessor.process` and :meth:`PartitionProcessor._finish`:

1. ``streams/intake.py`` decodes the records, dead-letters the bad ones and sets the
   late ones aside (raw and late rows);
2. each touched visitor is loaded (``streams/visitor_cache.py``), its events applied,
   expired sessions closed, lifecycle outputs emitted (``streams/lifecycle_rows.py``),
   and the change of its contributions applied to the partition's totals;
3. visitors with due timers are updated the same way;
4. windows the watermark passed are finalised, and the changed and final aggregate rows
   built (``streams/outputs/``); the checkpoint (``streams/checkpoint.py``) follows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from schemas.forget import ForgetRequest
from schemas.model import Event
from streams import forget
from streams.aggregates import PartitionAggregates
from streams.batch import BatchResult
from streams.checkpoint import META_PREFIX, Checkpoint, meta_key
from streams.intake import Classifier, Decoder, Intake, Pending
from streams.lifecycle_rows import advance_lifecycle
from streams.outputs import Key, RowContext, RowKey, aggregate_rows, merge_rows
from streams.outputs.family import VersionClock
from streams.outputs.kpi import KpiKey
from streams.records import Record
from streams.state import ForgetMark, VisitorState, decode_state, encode_state
from streams.timers import TimerWheel
from streams.visitor import (
    Applied,
    Contributions,
    RetentionInputs,
    Rules,
    Thresholds,
    apply_event,
    close_expired,
    contributions,
    diff,
    drop_forgotten_lives,
    expired,
    inputs_signature,
    live_only,
    next_due,
    prune_final,
    retention_contributions,
)
from streams.visitor_cache import CachedVisitor, StateView, VisitorCache
from streams.watermarks import PartitionClock

log = logging.getLogger(__name__)


class Processor(Protocol):
    """What the runtime needs of a partition's processor: :class:`PartitionProcessor`, or
    ``streams.compiled.processor.CompiledProcessor`` (the setting ``FUNNEL_CORE``)."""

    partition: int
    rules: Rules
    recovered_version: int | None
    triggers_next_offset: int | None
    # True: it reads the store only in ``recover`` and holds the states itself from then
    # on, so the store need keep no copy of them (``TableStore.own``).
    owns_state: bool

    @property
    def state_keys(self) -> int: ...
    @property
    def state_bytes(self) -> int: ...
    @property
    def thresholds(self) -> dict[str, int]: ...
    def recover(self, written_keys: Iterable[RowKey] = ()) -> BatchResult: ...
    def process(
        self, stream: str, records: list[Record], keep_history_from: int | None = None
    ) -> BatchResult: ...
    def tick(
        self, caught_up: Mapping[str, int], idle: Iterable[str] = (), finished: bool = False
    ) -> BatchResult: ...
    def meta_record(self) -> bytes: ...
    def held_states(self) -> list[tuple[bytes, bytes]]: ...
    def next_offset(self, stream: str) -> int | None: ...
    def watermark(self) -> int | None: ...
    def plan_forget(
        self,
        request: ForgetRequest,
        requested_at: int,
        events: list[forget.StoredEventLike],
        thresholds_then: dict[str, int],
    ) -> forget.ForgetPlan: ...
    def apply_forget(
        self, plan: forget.ForgetPlan, stored: dict[RowKey, dict[str, int]], version: int
    ) -> tuple[BatchResult, int]: ...


class ProcessorFactory(Protocol):
    def __call__(
        self,
        partition: int,
        rules: Rules,
        decoder: Any,
        channels: Any,
        topics: Mapping[str, str],
        store: StateView,
        versions: VersionClock | None = None,
        wall_ms: Callable[[], int] | None = None,
        cache_visitors: int = 0,
    ) -> Processor: ...


def _cells(row: RowKey) -> list[Key]:
    return list(row.cells()) if isinstance(row, KpiKey) else [row]


class PartitionProcessor:
    """State machine of one partition number across the three input topics."""

    owns_state = False  # it reads each touched visitor's state from the store

    def __init__(
        self,
        partition: int,
        rules: Rules,
        decoder: Decoder,
        channels: Classifier,
        topics: Mapping[str, str],
        store: StateView,
        versions: VersionClock | None = None,
        wall_ms: Callable[[], int] | None = None,
        cache_visitors: int = 0,
    ) -> None:
        self.partition = partition
        self.rules = rules
        self._topics = dict(topics)
        self._store = store
        self._intake = Intake(partition, decoder, channels, self._topics)
        self._versions = versions or VersionClock()
        self._wall_ms = wall_ms or (lambda: 0)
        self.clock = PartitionClock(rules.lateness_ms, tuple(self._topics))
        self._resumed_at: dict[str, int] = {}
        self._next_offset: dict[str, int] = {}  # after the last batch processed
        self.aggregates = PartitionAggregates(rules)
        self._durable_thresholds: Thresholds = {}
        self._timers = TimerWheel()
        self.visitors = VisitorCache(partition, rules, store, cache_visitors)
        # Offset in the triggers partition after the last trigger published (runtime sets it).
        self.triggers_next_offset: int | None = None
        # Version of the rows recover() wrote (logged: it orders recoveries across workers).
        self.recovered_version: int | None = None
        # Forget marks of visitors (anonymous_id -> marks), and per input the latest broker
        # append time processed: a mark is dropped once every input has passed it.
        self._marks: dict[str, list[ForgetMark]] = {}
        self._appended: dict[str, int] = {}

    @property
    def state_keys(self) -> int:
        return self.visitors.state_keys

    @property
    def state_bytes(self) -> int:
        return self.visitors.state_bytes

    @property
    def thresholds(self) -> dict[str, int]:
        """Finality group -> first window not final yet."""
        return self.aggregates.thresholds

    # -- recovery ---------------------------------------------------------------------

    def recover(self, written_keys: Iterable[RowKey] = ()) -> BatchResult:
        """Rebuild totals and timers from the stored state; re-emit every live row.

        ``written_keys`` are the row keys whose newest row in ClickHouse is non-final and
        non-zero for this partition. A worker that died may have written rows from state
        that did not survive; a key the rebuilt state does not have is re-written as
        zero, otherwise its stale value would stay.
        """
        raw_meta = self._store.get(meta_key(self.partition))
        if raw_meta is not None:
            checkpoint = Checkpoint.decode(raw_meta)
            self.aggregates.thresholds = dict(checkpoint.thresholds)
            self._durable_thresholds = dict(checkpoint.thresholds)
            for stream, history in checkpoint.history.items():
                clock = self.clock.clocks.get(stream)
                if clock is not None:
                    clock.history = history
            self.triggers_next_offset = checkpoint.triggers_next_offset
        visitors = self.visitors
        for key, raw in visitors.stored():
            if key.startswith(META_PREFIX):
                continue
            state = decode_state(raw, key.decode())
            cached = visitors.evaluate(state, len(raw), self.aggregates.thresholds)
            visitors.state_keys += 1
            visitors.state_bytes += len(raw)
            self.aggregates.apply(cached.contributions)
            self.aggregates.apply(
                cached.retention(self.aggregates.thresholds, self.rules.lifecycle)
            )
            visitors.remember(key, cached)
            self._schedule(key, cached.state, None)
            if state.forgets:
                self._marks[key.decode()] = list(state.forgets)
        self.aggregates.dirty.clear()
        live = self.aggregates.live_rows()
        stale = set(written_keys).difference(live)
        result = BatchResult()
        ctx = self._row_context(False, self._versions.next())
        self.recovered_version = ctx.version
        merge_rows(result.rows, aggregate_rows([*live, *stale], self.aggregates.value, ctx))
        return result

    def held_states(self) -> list[tuple[bytes, bytes]]:
        """The visitor states it holds that the store does not: none, it reads the store."""
        return []

    def meta_record(self) -> bytes:
        """The partition's checkpoint; written after the batch's visitor records."""
        return Checkpoint(
            thresholds=self.aggregates.thresholds,
            history={s: c.history for s, c in self.clock.clocks.items()},
            triggers_next_offset=self.triggers_next_offset,
        ).encode()

    # -- batches ------------------------------------------------------------------------

    def process(
        self, stream: str, records: list[Record], keep_history_from: int | None = None
    ) -> BatchResult:
        """Process one fetched batch of one input topic-partition, in offset order."""
        result = BatchResult()
        if not records:
            return result
        self._durable_thresholds = dict(self.aggregates.thresholds)
        tp_clock = self.clock.clocks[stream]
        self._resume(stream, records[0].offset)
        marked = bool(self._marks)
        pending = self._intake.classify(
            stream,
            records,
            tp_clock,
            self.watermark(),
            result,
            self._in_flight if marked else None,
            self._rejected_in_flight if marked else None,
        )
        tp_clock.checkpoint(records[-1].offset, keep_history_from)
        self._next_offset[stream] = records[-1].offset + 1
        last_appended = records[-1].timestamp_ms
        if last_appended > self._appended.get(stream, -1):
            self._appended[stream] = last_appended
        self._finish(pending, result)
        return result

    def tick(
        self, caught_up: Mapping[str, int], idle: Iterable[str] = (), finished: bool = False
    ) -> BatchResult:
        """Re-evaluate the watermark and fire due timers.

        ``caught_up`` maps each input with nothing left to read to its end offset;
        ``idle`` are those that have had nothing to read for long enough to stop holding
        the watermark back. ``finished`` declares the inputs finished (the end of a
        replay): once all are caught up, the watermark moves past the last event time.
        """
        for stream, end_offset in caught_up.items():
            self._resume_caught_up(stream, end_offset)
        self.clock.caught_up = set(caught_up)
        self.clock.idle = set(idle)
        self.clock.finished = self.clock.finished or finished
        result = BatchResult()
        self._durable_thresholds = dict(self.aggregates.thresholds)
        self._finish([], result)
        if self._marks:
            self._expire_marks(result)
        return result

    def _finish(self, pending: list[Pending], result: BatchResult) -> None:
        """Steps 2-4 of the batch flow (module docstring)."""
        watermark = self.watermark()
        result.watermark = watermark
        by_visitor: dict[bytes, list[Pending]] = {}
        for item in pending:
            by_visitor.setdefault(item.event.anonymous_id.encode(), []).append(item)
        for key, items in by_visitor.items():
            self._update_visitor(key, items, watermark, result)
        if watermark is not None:
            for key in self._due_visitors(watermark, exclude=by_visitor):
                self._update_visitor(key, [], watermark, result)
        final_rows = self.aggregates.finalize(watermark)
        final_set = set(final_rows)
        dirty = self.aggregates.take_dirty()
        if final_set:
            dirty = [row for row in dirty if row not in final_set]
        version = self._versions.next()
        total = self.aggregates.value
        merge_rows(result.rows, aggregate_rows(dirty, total, self._row_context(False, version)))
        if final_rows:
            ctx = self._row_context(True, version)
            merge_rows(result.rows, aggregate_rows(final_rows, total, ctx))
            self.aggregates.forget(final_rows)
            result.finalized = True
        result.meta = True

    def _update_visitor(
        self, key: bytes, items: list[Pending], watermark: int | None, result: BatchResult
    ) -> None:
        thresholds = self.aggregates.thresholds
        cached = self.visitors.load(key, thresholds)
        state, old_size = cached.state, cached.size
        if cached.computed_under == thresholds:
            # contributions() keeps exactly what live_only keeps under the same thresholds
            before = cached.contributions
        else:
            before = live_only(cached.contributions, thresholds)
        stats = result.stats
        for item in items:
            applied = apply_event(
                state, item.event, item.dims, item.stream, item.offset, self.rules
            )
            if applied is Applied.DUPLICATE:
                stats.duplicates[item.stream] += 1
            elif applied is Applied.REPLAYED:
                stats.replayed += 1
        if watermark is not None:
            close_expired(state, watermark, self.rules)
            advance_lifecycle(
                key.decode(),
                state,
                watermark,
                self.rules.lifecycle,
                self.partition,
                self._wall_ms(),
                self._versions,
                result,
            )
        prune_final(state, self._durable_thresholds, self.rules.attribution)
        if watermark is not None:
            drop_forgotten_lives(state, watermark, self._durable_thresholds, self.rules)
        after = contributions(state, self.rules, thresholds)
        delta = diff(before, after)
        lifecycle = self.rules.lifecycle
        inputs = RetentionInputs.of(state)
        signature = inputs_signature(inputs)
        retention_after: Contributions | None = None
        if signature != cached.retention_signature:
            # Only now are the retention contributions before the batch needed.
            retention_before = cached.retention(thresholds, lifecycle)
            retention_after = retention_contributions(inputs, thresholds, lifecycle)
            delta.update(diff(retention_before, retention_after))
        else:
            # Equal signatures, equal contributions: ``cached`` computes them if needed.
            inputs = cached.retention_inputs
        if delta:
            self.aggregates.apply(delta)
            stats.count_changes(delta)
        stats.visitors_touched += 1
        if (
            watermark is not None
            and not state.forgets
            and not after
            and expired(state, watermark, self.rules)
            and not (
                retention_after
                if retention_after is not None
                else cached.retention(thresholds, lifecycle)
            )
        ):
            # Every life forgotten and nothing left to count: drop the visitor.
            result.state_writes[key] = None
            self.visitors.dropped(key, old_size)
            stats.expired += 1
            self._timers.set(key, None)
            return
        encoded = encode_state(state)
        result.state_writes[key] = encoded
        self.visitors.resized(key, old_size, len(encoded))
        self._schedule(key, state, watermark)
        self.visitors.remember(
            key,
            CachedVisitor(
                state,
                len(encoded),
                after,
                inputs,
                signature,
                retention_after if retention_after is not None else cached.computed_retention,
            ),
        )

    # -- forgetting a person (streams/forget.py, docs/forget.md) -------------------------

    def _in_flight(self, event: Event, appended_at: int) -> bool:
        """A record of a forgotten visitor appended before the request: drop it."""
        marks = self._marks.get(event.anonymous_id)
        return marks is not None and any(m.covers(event.event_time_ms, appended_at) for m in marks)

    def _rejected_in_flight(self, record: Record) -> bool:
        """A bad record keyed by a visitor forgotten whole, appended before the request:
        dropped, not dead-lettered (it has no trusted event time to place in a range)."""
        if record.key is None:
            return False
        marks = self._marks.get(record.key.decode("utf-8", "replace"))
        return marks is not None and any(
            m.from_ms is None and m.to_ms is None and record.timestamp_ms <= m.requested_at
            for m in marks
        )

    def _expire_marks(self, result: BatchResult) -> None:
        """Drop the marks every input has moved past (or all, once the inputs finished)."""
        passed = (
            None if self.clock.finished else min(self._appended.get(s, -1) for s in self._topics)
        )
        for anonymous_id, marks in list(self._marks.items()):
            kept = [m for m in marks if passed is not None and m.requested_at >= passed]
            if len(kept) == len(marks):
                continue
            key = anonymous_id.encode()
            if key in result.state_writes:  # updated by this tick: start from that
                raw = result.state_writes[key]
                if raw is None:
                    del self._marks[anonymous_id]
                    continue
                cached = self.visitors.evaluate(
                    decode_state(raw, anonymous_id), len(raw), self.aggregates.thresholds
                )
            else:
                cached = self.visitors.load(key, self.aggregates.thresholds)
            state = cached.state
            state.forgets = kept
            if kept:
                self._marks[anonymous_id] = kept
            else:
                del self._marks[anonymous_id]
            if not kept and forget.holds_nothing(state):
                result.state_writes[key] = None  # the changelog's tombstone
                self.visitors.dropped(key, cached.size)
                self._timers.set(key, None)
                continue
            encoded = encode_state(state)
            result.state_writes[key] = encoded
            self.visitors.resized(key, cached.size, len(encoded))
            cached.size = len(encoded)
            self.visitors.remember(key, cached)

    def plan_forget(
        self,
        request: ForgetRequest,
        requested_at: int,
        events: list[forget.StoredEventLike],
        thresholds_then: dict[str, int],
    ) -> forget.ForgetPlan:
        """Step 1 of a forget: the forgotten contribution and the final rows it touches.

        ``events`` are the person's rows of ``events_raw`` (every event this partition
        applied is there: the caller flushed the writer). ``thresholds_then`` are the
        thresholds when the request was first handled (its audit row keeps them).
        """
        key = request.anonymous_id.encode()
        state = self.visitors.load(key, self.aggregates.thresholds).state
        return forget.plan(
            request,
            requested_at,
            events,
            thresholds_then,
            self.aggregates.thresholds,
            state,
            self.partition,
            self.rules,
        )

    def apply_forget(
        self,
        plan: forget.ForgetPlan,
        stored: dict[RowKey, dict[str, int]],
        version: int,
    ) -> tuple[BatchResult, int]:
        """Step 2: corrected final rows, and the visitor's state without the events.

        ``stored`` holds the counters of each final row of the plan (as of the first
        attempt for ``final_then``, the newest for ``final_since``). Returns the result to
        make durable and the number of final rows corrected.
        """
        result = BatchResult()
        corrected = forget.correct_final_rows(
            plan, stored, self._row_context(True, version), result
        )
        if not plan.state_done:
            self._forget_state(plan, version, result)
        result.meta = True
        return result, corrected

    def _forget_state(self, plan: forget.ForgetPlan, version: int, result: BatchResult) -> None:
        thresholds = self.aggregates.thresholds
        key = plan.key
        cached = self.visitors.load(key, thresholds)
        request = plan.request
        mark = ForgetMark(request.request_id, plan.requested_at, request.from_ms, request.to_ms)
        state = forget.rebuilt_state(
            cached.state, plan.kept, mark, self.watermark(), thresholds, self.rules
        )
        after = contributions(state, self.rules, thresholds)
        retention_after = retention_contributions(
            RetentionInputs.of(state), thresholds, self.rules.lifecycle
        )
        delta = diff(live_only(cached.contributions, thresholds), after)
        delta.update(diff(cached.retention(thresholds, self.rules.lifecycle), retention_after))
        self.aggregates.apply(delta)
        result.stats.count_changes(delta)
        dirty = self.aggregates.take_dirty()
        merge_rows(
            result.rows,
            aggregate_rows(dirty, self.aggregates.value, self._row_context(False, version)),
        )
        # Rows of the visitor's own (per-visitor keys) now counting nothing are deleted
        # afterwards; keep them out of the totals so that no final row brings them back.
        vanished = [
            row
            for row in dirty
            if getattr(row, "anonymous_id", None) == request.anonymous_id
            and not any(self.aggregates.value(cell) for cell in _cells(row))
        ]
        self.aggregates.forget(vanished)
        encoded = encode_state(state)
        result.state_writes[key] = encoded
        self.visitors.resized(key, cached.size, len(encoded))
        inputs = RetentionInputs.of(state)
        self.visitors.remember(
            key,
            CachedVisitor(
                state, len(encoded), after, inputs, inputs_signature(inputs), retention_after
            ),
        )
        self._schedule(key, state, self.watermark())
        self._marks[request.anonymous_id] = list(state.forgets)

    def _row_context(self, is_final: bool, version: int) -> RowContext:
        return RowContext(self.partition, int(is_final), version, self.rules.steps_by_funnel)

    def _schedule(self, key: bytes, state: VisitorState, watermark: int | None) -> None:
        self._timers.set(
            key, next_due(state, self.rules, watermark if watermark is not None else 0)
        )

    def _due_visitors(self, watermark: int, exclude: Mapping[bytes, object]) -> list[bytes]:
        return [key for key in self._timers.pop_due(watermark) if key not in exclude]

    # -- input positions and the watermark ----------------------------------------------

    def next_offset(self, stream: str) -> int | None:
        """The offset after the last record of ``stream`` processed here, if any."""
        return self._next_offset.get(stream)

    def watermark(self) -> int | None:
        if any(s not in self._resumed_at for s in self._topics):
            return None  # an input we have not read yet may still hold older events
        return self.clock.watermark()

    def _resume(self, stream: str, next_offset: int) -> None:
        """Set an input's clock as of ``next_offset``: at first contact since (re)start,
        and whenever records before the next expected offset are delivered again (Faust
        seeks back to the committed offset during a rebalance)."""
        resumed_at = self._resumed_at.get(stream)
        expected = self._next_offset.get(stream, resumed_at)
        if expected is not None and next_offset >= expected:
            return
        tp_clock = self.clock.clocks[stream]
        tp_clock.resume_at(next_offset)
        tp_clock.has_data = tp_clock.max_t is not None
        self._resumed_at[stream] = next_offset
        self._next_offset[stream] = next_offset
        log.info(
            "partition %d %s: resuming at offset %d with max event time %s (expected %s)",
            self.partition,
            stream,
            next_offset,
            tp_clock.max_t,
            expected,
        )

    def _resume_caught_up(self, stream: str, end_offset: int) -> None:
        """An input with nothing to read: resume it at its end if our own history reaches
        there (every record was processed before); otherwise wait for its records."""
        if stream in self._resumed_at:
            return
        history = self.clock.clocks[stream].history
        if end_offset == 0 or (history and history[-1][0] + 1 >= end_offset):
            self._resume(stream, end_offset)
