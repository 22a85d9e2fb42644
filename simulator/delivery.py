"""From events to records in send order: encoding, partitions and the delivery knobs.

Each event gets a send time (event time plus a tracker delay; much more for
out-of-order and late records), becomes Avro or JSON bytes (or a malformed record), and
waits in a heap until the generator's clock passes its send time. Duplicates are queued
when their original is actually sent, so a copy never overtakes its original.

"Late" follows docs/semantics.md §1.2 exactly: a record is late when its event time is
below (max event time of the valid records before it in its topic-partition) minus the
lateness. A record meant to be late is held back until that is true of its
topic-partition, so ``intended_late`` agrees with the truth except for records still
waiting when the run ends (their partition saw no newer event); the truth counts those
as ``intended_late_mismatches``.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from schemas.codec import EventCodec
from schemas.model import Event, StreamKind
from schemas.reasons import Reason
from simulator.behaviour import new_uuid
from simulator.config import SimConfig
from simulator.malformed import MalformedFactory
from simulator.partitioner import partition_for
from simulator.records import SimRecord
from simulator.scenarios import BROKEN_TRACKING_REASONS, ScenarioEffects

# A tracker batches events for up to two seconds before sending them.
TRACKER_DELAY_MS: Final = 2000
# Late records arrive this long after the lateness bound (2 min) plus up to 10 min more.
LATE_MARGIN_MS: Final = 120_000
LATE_SPREAD_MS: Final = 600_000
DUPLICATE_MAX_DELAY_MS: Final = 60_000
# Purchases are retried by order backends more often than browsing events.
PURCHASE_DUPLICATE_FACTOR: Final = 2.0

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class _Pending:
    stream: StreamKind
    partition: int
    key: bytes
    value: bytes
    event: Event | None
    malformed_reason: Reason | None
    is_duplicate: bool = False
    intended_late: bool = False
    out_of_order: bool = False
    duplicate: _Pending | None = None
    duplicate_delay_ms: int = 0


class Sequencer:
    """Turns sessions' events into records and releases them in send order."""

    def __init__(self, config: SimConfig, codec: EventCodec, effects: ScenarioEffects) -> None:
        self.config = config
        self.codec = codec
        self.effects = effects
        self.malformed = MalformedFactory(codec, config)
        self._heap: list[tuple[int, int, _Pending]] = []
        self._seq = 0
        self._max_event_time: dict[TopicPartition, int] = {}
        self._waiting: dict[TopicPartition, list[_Pending]] = {}
        self._partitions: dict[str, tuple[bytes, int]] = {}
        self._clock = -(2**62)
        self.normal_delay_ms = min(TRACKER_DELAY_MS, config.lateness_ms // 10)

    # -- intake ------------------------------------------------------------------------------

    def submit(self, events: list[Event], rng: random.Random) -> None:
        """Queue one session's events; ``rng`` is the session's private delivery stream."""
        for event in events:
            self._submit_one(event, rng)

    def _key(self, anonymous_id: str) -> tuple[bytes, int]:
        cached = self._partitions.get(anonymous_id)
        if cached is None:
            key = anonymous_id.encode()
            cached = (key, partition_for(key, self.config.partitions))
            self._partitions[anonymous_id] = cached
        return cached

    def _submit_one(self, event: Event, rng: random.Random) -> None:
        config = self.config
        key, partition = self._key(event.anonymous_id)
        send = event.event_time_ms + rng.randint(0, self.normal_delay_ms)
        p_malformed = config.malformed_pct / 100.0
        p_broken = self.effects.broken_tracking_probability(event)
        if rng.random() < 1.0 - (1.0 - p_malformed) * (1.0 - p_broken):
            self._push(send, self._malformed(event, key, partition, send, p_broken, rng))
            return
        roll = rng.random() * 100.0
        late = roll < config.late_pct
        out_of_order = not late and roll < config.late_pct + config.out_of_order_pct
        if late:
            send = event.event_time_ms + config.lateness_ms + LATE_MARGIN_MS
            send += rng.randint(0, LATE_SPREAD_MS)
        elif out_of_order:
            send = event.event_time_ms + rng.randint(self.normal_delay_ms, config.lateness_ms // 2)
        as_json = rng.random() * 100.0 < config.json_pct
        sent = dataclasses.replace(event, sent_time_ms=send)
        pending = _Pending(
            stream=event.stream,
            partition=partition,
            key=key,
            value=self._encode(sent, as_json),
            event=sent,
            malformed_reason=None,
            intended_late=late,
            out_of_order=out_of_order,
        )
        self._plan_duplicate(pending, as_json, rng)
        self._push(send, pending)

    def _encode(self, event: Event, as_json: bool) -> bytes:
        return self.codec.encode_json(event) if as_json else self.codec.encode_avro(event)

    def _malformed(
        self,
        event: Event,
        key: bytes,
        partition: int,
        send: int,
        p_broken: float,
        rng: random.Random,
    ) -> _Pending:
        # During tracking-broken, most bad records come from the broken release.
        if p_broken > 0 and rng.random() < 0.9:
            reason = rng.choice(BROKEN_TRACKING_REASONS)
        else:
            reason = rng.choice(self.malformed.reasons_for(event.stream))
        sent = dataclasses.replace(event, sent_time_ms=send)
        return _Pending(
            stream=event.stream,
            partition=partition,
            key=key,
            value=self.malformed.build(reason, sent, rng),
            event=None,
            malformed_reason=reason,
        )

    def _plan_duplicate(self, pending: _Pending, as_json: bool, rng: random.Random) -> None:
        event = pending.event
        assert event is not None
        p_duplicate = self.config.duplicate_pct / 100.0
        if event.event_type == "purchase":
            p_duplicate = min(1.0, p_duplicate * PURCHASE_DUPLICATE_FACTOR)
        if rng.random() >= p_duplicate:
            return
        max_delay = max(501, min(DUPLICATE_MAX_DELAY_MS, self.config.lateness_ms // 4))
        pending.duplicate_delay_ms = rng.randint(500, max_delay)
        if event.event_type == "purchase" and rng.random() < 0.5:
            # The order backend retried: a new event_id, the same transaction_id; half the
            # time in the same millisecond, so the (event_time, event_id) tie-break matters.
            shift = 0 if rng.random() < 0.5 else rng.randint(1, 3000)
            resent = dataclasses.replace(
                event,
                event_id=new_uuid(rng),
                event_time_ms=event.event_time_ms + shift,
                sent_time_ms=event.sent_time_ms + pending.duplicate_delay_ms,
            )
            value = self._encode(resent, as_json)
        else:
            resent, value = event, pending.value
        pending.duplicate = dataclasses.replace(
            pending,
            value=value,
            event=resent,
            is_duplicate=True,
            out_of_order=False,
            duplicate=None,
        )

    def _push(self, send_ms: int, pending: _Pending) -> None:
        heapq.heappush(self._heap, (send_ms, self._seq, pending))
        self._seq += 1

    # -- release in send order ------------------------------------------------------------

    def release_until(self, time_ms: int) -> Iterator[SimRecord]:
        """Every record whose send time is at or before ``time_ms``, in send order."""
        heap = self._heap
        while heap and heap[0][0] <= time_ms:
            send, _, pending = heapq.heappop(heap)
            self._clock = max(self._clock, send)
            if pending.intended_late and not self._is_late(pending):
                tp = (pending.stream, pending.partition)
                self._waiting.setdefault(tp, []).append(pending)
                continue
            yield from self._emit(self._clock, pending)

    def finish(self) -> Iterator[SimRecord]:
        """The rest of the queue; late records whose partition never moved on go out last
        (on time, so they count as unfulfilled)."""
        yield from self.release_until(2**62)
        for tp in sorted(self._waiting):
            for pending in self._waiting[tp]:
                yield from self._emit(self._clock, pending)
        self._waiting.clear()

    def _is_late(self, pending: _Pending) -> bool:
        assert pending.event is not None
        high = self._max_event_time.get((pending.stream, pending.partition))
        return high is not None and pending.event.event_time_ms < high - self.config.lateness_ms

    def _emit(self, send: int, pending: _Pending) -> Iterator[SimRecord]:
        yield SimRecord(
            stream=pending.stream,
            partition=pending.partition,
            key=pending.key,
            value=pending.value,
            send_time_ms=send,
            event=pending.event,
            malformed_reason=pending.malformed_reason,
            is_duplicate=pending.is_duplicate,
            intended_late=pending.intended_late,
            out_of_order=pending.out_of_order,
        )
        if pending.duplicate is not None:
            self._push(send + pending.duplicate_delay_ms, pending.duplicate)
        if pending.event is None:
            return
        tp = (pending.stream, pending.partition)
        event_time = pending.event.event_time_ms
        if event_time > self._max_event_time.get(tp, -(2**62)):
            self._max_event_time[tp] = event_time
            waiting = self._waiting.get(tp)
            if waiting:
                ready = [w for w in waiting if self._is_late(w)]
                if ready:
                    self._waiting[tp] = [w for w in waiting if not self._is_late(w)]
                    for late in ready:
                        yield from self._emit(send, late)
