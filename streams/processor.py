"""One partition group's processing: decode, classify, update visitors, derive rows.

No Faust and no I/O here: the caller hands in raw records and a read-only view of the
state store, and gets back the state writes, the rows for ClickHouse, the dead letters
and the counts for metrics. ``streams/app.py`` wires it to Faust and the sinks.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, cast

import orjson

from schemas.deadletter import DeadLetter
from schemas.model import Event
from schemas.reasons import Rejection
from schemas.triggers import Trigger
from sinks.tables import (
    DEAD_LETTERS,
    EVENTS_RAW,
    LATE_EVENTS,
    SEGMENT_TRANSITIONS,
    TRIGGERS,
    USER_RFM,
    TableSpec,
)
from streams.aggregates import PartitionAggregates
from streams.lifecycle import (
    PROSPECT,
    abandoned_carts,
    lifecycle_triggers,
    prune_cart,
    stage_at,
    transitions_between,
)
from streams.lives import Life, split_lives
from streams.records import Record
from streams.rows import (
    Row,
    VersionClock,
    aggregate_rows,
    dead_letter_row,
    late_event_row,
    merge_rows,
    raw_event_row,
    to_trigger,
    trigger_row,
    user_rfm_row,
)
from streams.state import Dims, VisitorState, decode_state, encode_state
from streams.timers import TimerWheel
from streams.visitor import (
    Applied,
    Contributions,
    Key,
    RetentionInputs,
    Rules,
    Thresholds,
    apply_event,
    close_expired,
    contributions,
    diff,
    drop_forgotten_lives,
    expired,
    live_only,
    next_due,
    prune_final,
    retention_contributions,
    retention_signature,
)
from streams.watermarks import PartitionClock

log = logging.getLogger(__name__)

LATE_BEYOND_LATENESS = "beyond_lateness"
LATE_WINDOW_CLOSED = "window_closed"
META_PREFIX = b"__meta__/"
# Tables whose rows are emitted once, when the state passes a point (a stage change, a
# trigger, a new RFM snapshot), and are not rebuilt from state at recovery: the runtime
# makes them durable before the state that records the transition.
ONCE_ONLY_TABLES = (SEGMENT_TRANSITIONS, TRIGGERS, USER_RFM)


def meta_key(partition: int) -> bytes:
    return META_PREFIX + str(partition).encode()


class Decoder(Protocol):
    def decode(self, raw: bytes, stream: str, now_ms: int) -> Event | Rejection: ...


class Classifier(Protocol):
    def classify(
        self, utm_source: str | None, utm_medium: str | None, referrer: str | None
    ) -> str: ...


class StateView(Protocol):
    """Read access to the table store (writes come back in :class:`BatchResult`)."""

    def get(self, key: bytes) -> bytes | None: ...

    def keys_in_partition(self, partition: int) -> Iterable[bytes]: ...


InputRecord = Record  # kept as the processor-facing name


@dataclass
class BatchStats:
    ingested: Counter[str] = field(default_factory=Counter)  # stream -> records
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stream, reason)
    late: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stream, reason)
    duplicates: Counter[str] = field(default_factory=Counter)
    replayed: int = 0
    # (funnel, step index, window, channel, campaign) -> net change of entities
    step_entries: Counter[tuple[str, int, int, str, str]] = field(default_factory=Counter)
    # (channel, currency) -> (orders, gmv_minor) net change
    orders: Counter[tuple[str, str]] = field(default_factory=Counter)
    gmv_minor: Counter[tuple[str, str]] = field(default_factory=Counter)
    visitors_touched: int = 0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    expired: int = 0


@dataclass
class BatchResult:
    rows: dict[TableSpec, list[Row]] = field(default_factory=dict)
    # Marketing triggers to publish before the state writes (streams/runtime.py).
    triggers: list[Trigger] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    state_writes: dict[bytes, bytes | None] = field(default_factory=dict)
    meta: bool = False  # write processor.meta_record() after the state
    finalized: bool = False
    stats: BatchStats = field(default_factory=BatchStats)
    watermark: int | None = None

    @property
    def once_only_rows(self) -> bool:
        """Rows emitted once, at a state transition, that recovery cannot rebuild."""
        return any(self.rows.get(spec) for spec in ONCE_ONLY_TABLES)


@dataclass(slots=True)
class _Cached:
    state: VisitorState
    size: int
    contributions: Contributions
    retention: Contributions
    retention_signature: tuple[object, ...]


@dataclass
class _Pending:
    event: Event
    dims: Dims
    stream: str
    offset: int


class PartitionProcessor:
    """State machine of one partition number across the three input topics."""

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
        self._decoder = decoder
        self._channels = channels
        self._topics = dict(topics)
        self._store = store
        self._versions = versions or VersionClock()
        self._wall_ms = wall_ms or (lambda: 0)
        self.clock = PartitionClock(rules.lateness_ms, tuple(self._topics))
        self._resumed_at: dict[str, int] = {}
        self._next_offset: dict[str, int] = {}  # after the last batch processed
        self.aggregates = PartitionAggregates(rules)
        self._durable_thresholds: Thresholds = {}
        self._timers = TimerWheel()
        # Decoded states of recently touched visitors and what they contribute now (the
        # table store holds the bytes; this saves decoding and recomputing per batch).
        self._cache: OrderedDict[bytes, _Cached] = OrderedDict()
        self.cache_visitors = cache_visitors
        # Offset in the triggers partition after the last trigger published (runtime sets it).
        self.triggers_next_offset: int | None = None
        self.state_keys = 0
        self.state_bytes = 0

    # -- recovery ---------------------------------------------------------------------

    def recover(self, written_keys: Iterable[Key] = ()) -> BatchResult:
        """Rebuild totals and timers from the stored state; re-emit every live row.

        ``written_keys`` are the row keys whose newest row in ClickHouse is non-final and
        non-zero for this partition. A worker that died may have written rows from state
        that did not survive; a key the rebuilt state does not have is re-written as
        zero, otherwise its stale value would stay.
        """
        raw_meta = self._store.get(meta_key(self.partition))
        if raw_meta is not None:
            meta = orjson.loads(raw_meta)
            thresholds = {str(k): int(v) for k, v in meta["thresholds"].items()}
            self.aggregates.thresholds = dict(thresholds)
            self._durable_thresholds = dict(thresholds)
            for stream, history in meta["history"].items():
                clock = self.clock.clocks.get(stream)
                if clock is not None:
                    clock.history = [(int(o), m) for o, m in history]
            self.triggers_next_offset = meta.get("triggers_next_offset")
        for key in self._store.keys_in_partition(self.partition):
            if key.startswith(META_PREFIX):
                continue
            raw = self._store.get(key)
            if raw is None:
                continue
            cached = self._cached(decode_state(raw), len(raw))
            state = cached.state
            self.state_keys += 1
            self.state_bytes += len(raw)
            self.aggregates.apply(cached.contributions)
            self.aggregates.apply(cached.retention)
            self._remember(key, cached)
            self._schedule(key, state, None)
        self.aggregates.dirty.clear()
        live = self.aggregates.live_rows()
        stale = set(written_keys).difference(live)
        result = BatchResult()
        merge_rows(
            result.rows,
            aggregate_rows(
                self.aggregates,
                [*live, *stale],
                self.partition,
                self.rules,
                False,
                self._versions.next(),
            ),
        )
        return result

    # -- batches ------------------------------------------------------------------------

    def process(
        self, stream: str, records: list[InputRecord], keep_history_from: int | None = None
    ) -> BatchResult:
        """Process one fetched batch of one input topic-partition, in offset order."""
        result = BatchResult()
        if not records:
            return result
        self._durable_thresholds = dict(self.aggregates.thresholds)
        tp_clock = self.clock.clocks[stream]
        self._resume(stream, records[0].offset)
        topic = self._topics[stream]
        pending = self._classify(stream, topic, records, result)
        tp_clock.checkpoint(records[-1].offset, keep_history_from)
        self._next_offset[stream] = records[-1].offset + 1
        self._finish(pending, result)
        return result

    def next_offset(self, stream: str) -> int | None:
        """The offset after the last record of ``stream`` processed here, if any."""
        return self._next_offset.get(stream)

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

    def tick(self, caught_up: Mapping[str, int], idle: Iterable[str] = ()) -> BatchResult:
        """Re-evaluate the watermark and fire due timers.

        ``caught_up`` maps each input with nothing left to read to its end offset;
        ``idle`` are those that have had nothing to read for long enough to stop holding
        the watermark back.
        """
        for stream, end_offset in caught_up.items():
            self._resume_caught_up(stream, end_offset)
        self.clock.caught_up = set(caught_up)
        self.clock.idle = set(idle)
        result = BatchResult()
        self._durable_thresholds = dict(self.aggregates.thresholds)
        self._finish([], result)
        return result

    def watermark(self) -> int | None:
        if any(s not in self._resumed_at for s in self._topics):
            return None  # an input we have not read yet may still hold older events
        return self.clock.watermark()

    def _classify(
        self, stream: str, topic: str, records: list[InputRecord], result: BatchResult
    ) -> list[_Pending]:
        tp_clock = self.clock.clocks[stream]
        stats = result.stats
        raw_rows = result.rows.setdefault(EVENTS_RAW, [])
        pending: list[_Pending] = []
        partition_watermark = self.watermark()
        for record in records:
            stats.ingested[stream] += 1
            decoded = self._decoder.decode(record.value, stream, record.timestamp_ms)
            if isinstance(decoded, Rejection):
                letter = DeadLetter.from_rejection(
                    decoded,
                    raw=record.value,
                    source_topic=topic,
                    source_partition=self.partition,
                    source_offset=record.offset,
                    key=record.key,
                    received_at_ms=record.timestamp_ms,
                )
                result.dead_letters.append(letter)
                result.rows.setdefault(DEAD_LETTERS, []).append(dead_letter_row(letter))
                stats.dead_letters[(stream, letter.reason)] += 1
                continue
            event = decoded
            channel = self._channels.classify(event.utm_source, event.utm_medium, event.referrer)
            late_reason: str | None = None
            watermark = tp_clock.watermark
            if tp_clock.is_late(event.event_time_ms):
                late_reason = LATE_BEYOND_LATENESS
            elif partition_watermark is not None and event.event_time_ms < partition_watermark:
                late_reason, watermark = LATE_WINDOW_CLOSED, partition_watermark
            raw_rows.append(
                raw_event_row(
                    event,
                    channel,
                    late_reason is not None,
                    topic,
                    self.partition,
                    record.offset,
                    record.timestamp_ms,
                )
            )
            if late_reason is not None:
                result.rows.setdefault(LATE_EVENTS, []).append(
                    late_event_row(
                        event,
                        channel,
                        watermark or 0,
                        late_reason,
                        topic,
                        self.partition,
                        record.offset,
                        record.timestamp_ms,
                    )
                )
                stats.late[(stream, late_reason)] += 1
                continue
            tp_clock.observe(event.event_time_ms)
            dims: Dims = (
                channel,
                event.utm_campaign or "",
                event.device,
                event.platform,
                event.country,
            )
            pending.append(_Pending(event, dims, stream, record.offset))
        return pending

    def _finish(self, pending: list[_Pending], result: BatchResult) -> None:
        watermark = self.watermark()
        result.watermark = watermark
        by_visitor: dict[bytes, list[_Pending]] = {}
        for item in pending:
            by_visitor.setdefault(item.event.anonymous_id.encode(), []).append(item)
        for key, items in by_visitor.items():
            self._update_visitor(key, items, watermark, result)
        if watermark is not None:
            for key in self._due_visitors(watermark, exclude=by_visitor):
                self._update_visitor(key, [], watermark, result)
        final_rows = self.aggregates.finalize(watermark)
        final_set = set(final_rows)
        dirty = [row for row in self.aggregates.take_dirty() if row not in final_set]
        version = self._versions.next()
        merge_rows(
            result.rows,
            aggregate_rows(self.aggregates, dirty, self.partition, self.rules, False, version),
        )
        if final_rows:
            merge_rows(
                result.rows,
                aggregate_rows(
                    self.aggregates, final_rows, self.partition, self.rules, True, version
                ),
            )
            self.aggregates.forget(final_rows)
            result.finalized = True
        result.meta = True

    def meta_record(self) -> bytes:
        """The partition's checkpoint; written after the batch's visitor records."""
        return orjson.dumps(
            {
                "thresholds": self.aggregates.thresholds,
                "history": {s: c.history for s, c in self.clock.clocks.items()},
                "triggers_next_offset": self.triggers_next_offset,
            }
        )

    def _load(self, key: bytes) -> _Cached:
        """The visitor's state and current contributions: from the cache, else decoded."""
        cached = self._cache.pop(key, None)
        if cached is not None:
            self._cache[key] = cached  # most recently used
            return cached
        raw = self._store.get(key)
        if raw is None:
            self.state_keys += 1
            state, size = VisitorState(self.partition), 0
        else:
            state, size = decode_state(raw), len(raw)
        return self._cached(state, size)

    def _cached(self, state: VisitorState, size: int) -> _Cached:
        thresholds = self.aggregates.thresholds
        return _Cached(
            state,
            size,
            contributions(state, self.rules, thresholds),
            retention_contributions(RetentionInputs.of(state), thresholds, self.rules.lifecycle),
            retention_signature(state),
        )

    def _remember(self, key: bytes, cached: _Cached) -> None:
        self._cache[key] = cached
        while len(self._cache) > self.cache_visitors:
            self._cache.popitem(last=False)

    def _update_visitor(
        self, key: bytes, items: list[_Pending], watermark: int | None, result: BatchResult
    ) -> None:
        cached = self._load(key)
        state, old_size = cached.state, cached.size
        thresholds = self.aggregates.thresholds
        lifecycle = self.rules.lifecycle
        before = live_only(cached.contributions, thresholds)
        retention_before = live_only(cached.retention, thresholds)
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
            self._advance_lifecycle(key, state, watermark, result)
        prune_final(state, self._durable_thresholds)
        if watermark is not None:
            drop_forgotten_lives(state, watermark, self._durable_thresholds, self.rules)
        after = contributions(state, self.rules, thresholds)
        delta = diff(before, after)
        signature = retention_signature(state)
        if signature != cached.retention_signature:
            retention_after = retention_contributions(
                RetentionInputs.of(state), thresholds, lifecycle
            )
            delta.update(diff(retention_before, retention_after))
        else:
            retention_after = retention_before
        if delta:
            self.aggregates.apply(delta)
            self._count_transitions(delta, stats)
        stats.visitors_touched += 1
        if (
            watermark is not None
            and not after
            and not retention_after
            and expired(state, watermark, self.rules)
        ):
            # Every life forgotten and nothing left to count: drop the visitor.
            result.state_writes[key] = None
            self.state_bytes -= old_size
            self.state_keys -= 1
            stats.expired += 1
            self._timers.set(key, None)
            self._cache.pop(key, None)
            return
        size = self._keep(key, state, old_size, watermark, result)
        self._remember(key, _Cached(state, size, after, retention_after, signature))

    def _keep(
        self,
        key: bytes,
        state: VisitorState,
        old_size: int,
        watermark: int | None,
        result: BatchResult,
    ) -> int:
        encoded = encode_state(state)
        result.state_writes[key] = encoded
        self.state_bytes += len(encoded) - old_size
        self._schedule(key, state, watermark)
        return len(encoded)

    def _advance_lifecycle(
        self, key: bytes, state: VisitorState, watermark: int, result: BatchResult
    ) -> None:
        """Transitions and triggers of every life for event times in [as of, watermark)."""
        rules = self.rules.lifecycle
        after = state.lifecycle_as_of
        if after is not None and watermark <= after:
            return
        anonymous_id = key.decode()
        now = self._wall_ms()
        low = after if after is not None else -1
        latest_buyer: tuple[Life, str] | None = None
        for life in split_lives(state.days, state.purchases, rules):
            until = min(watermark, life.forgotten_at + 1)
            purchases = list(life.purchases)
            transitions = transitions_between(purchases, after, until, rules)
            specs = lifecycle_triggers(transitions, purchases)
            specs += abandoned_carts(life.cart(state.cart), after, until, rules)
            for tr in transitions:
                result.rows.setdefault(SEGMENT_TRANSITIONS, []).append(
                    (anonymous_id, tr.at, tr.from_stage, tr.to_stage, self.partition, 1)
                )
                result.stats.transitions[(tr.from_stage, tr.to_stage)] += 1
            for spec in sorted(specs, key=lambda s: (s.at, s.trigger_type)):
                trigger = to_trigger(spec, anonymous_id, state.user_id, now)
                result.triggers.append(trigger)
                result.rows.setdefault(TRIGGERS, []).append(trigger_row(trigger, self.partition))
            stage = stage_at(purchases, watermark - 1, rules)
            if stage != PROSPECT:
                changed = transitions or any(low <= p.t < watermark for p in purchases)
                latest_buyer = (life, stage) if changed else None
            state.stage = stage
        if latest_buyer is not None:
            life, stage = latest_buyer
            result.rows.setdefault(USER_RFM, []).append(
                user_rfm_row(
                    anonymous_id,
                    state.user_id,
                    life,
                    stage,
                    watermark,
                    self.partition,
                    self._versions.next(),
                )
            )
        state.lifecycle_as_of = watermark
        state.cart = prune_cart(state.cart, watermark, rules)

    def _count_transitions(self, delta: Contributions, stats: BatchStats) -> None:
        for key, change in delta.items():
            kind = key[0]
            if kind == "fs":
                _, funnel, window, dims, step = key
                channel, campaign = cast(Dims, dims)[:2]
                entry = (str(funnel), cast(int, step), cast(int, window), channel, campaign)
                stats.step_entries[entry] += change
            elif kind == "kpi" and key[-1] in (0, 1):
                _, _window, dims, currency, metric = key
                target = stats.orders if metric == 0 else stats.gmv_minor
                target[(dims[0], str(currency))] += change  # type: ignore[index]

    def _schedule(self, key: bytes, state: VisitorState, watermark: int | None) -> None:
        self._timers.set(
            key, next_due(state, self.rules, watermark if watermark is not None else 0)
        )

    def _due_visitors(self, watermark: int, exclude: Mapping[bytes, object]) -> list[bytes]:
        return [key for key in self._timers.pop_due(watermark) if key not in exclude]
