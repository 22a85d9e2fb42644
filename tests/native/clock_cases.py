"""Support for tests/native/test_clock.py: the Python side of the clock probes.

- ``run_clock_ops`` / ``run_wheel_ops`` run an operation sequence on the Python
  ``PartitionClock`` / ``TimerWheel`` and return every operation's result in the form the
  probes ``watermarks.partition_clock`` / ``timers.wheel`` return it.
- ``recording()`` swaps recording subclasses of PartitionClock, TopicPartitionClock,
  TimerWheel and Checkpoint into ``streams.processor``: every call the processor makes
  on them is logged with the result it got, as operations the probes take.
- ``drive_with_restarts`` runs the core over simulator records the way the runtime
  does (small batches per input, lagging commits, ticks with caught-up and idle inputs, a
  seek back, a restart that recovers from the checkpoint and re-reads from the commit,
  finished inputs at the end), so the recorded sequences cover every clock path.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import streams.processor
from streams.batch import BatchResult
from streams.checkpoint import Checkpoint, meta_key
from streams.processor import PartitionProcessor
from streams.records import Record
from streams.timers import TimerWheel
from streams.watermarks import PartitionClock, TopicPartitionClock

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def clamp(value: Any) -> Any:
    """A watermark beyond i64 as the Rust side saturates it (other results only hold
    the inputs, which are i64)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return min(max(value, I64_MIN), I64_MAX)
    return value


def history_json(history: list[tuple[int, int | None]]) -> list[list[int | None]]:
    return [[o, m] for o, m in history]


def clock_state(c: TopicPartitionClock) -> list[Any]:
    return [c.max_t, history_json(c.history), c.has_data]


# -- the Python reference for an operation sequence ---------------------------------------


def apply_clock_op(clock: PartitionClock, op: list[Any]) -> Any:
    name = op[0]
    if name == "watermark":
        return clock.watermark()
    if name == "set_caught_up":
        clock.caught_up = set(op[1])
        return None
    if name == "set_idle":
        clock.idle = set(op[1])
        return None
    if name == "set_finished":
        clock.finished = op[1]
        return None
    c = clock.clocks[op[1]]
    if name == "tp_watermark":
        return c.watermark
    if name == "is_late":
        return c.is_late(op[2])
    if name == "observe":
        c.observe(op[2])
        return None
    if name == "checkpoint":
        c.checkpoint(op[2], op[3])
        return history_json(c.history)
    if name == "resume_at":
        c.resume_at(op[2])
        return clock_state(c)
    if name == "set_has_data":
        c.has_data = op[2]
        return None
    if name == "set_history":
        c.history = [(o, m) for o, m in op[2]]
        return None
    if name == "state":
        return clock_state(c)
    raise ValueError(name)


def run_clock_ops(lateness_ms: int, streams: list[str], ops: list[list[Any]]) -> list[Any]:
    clock = PartitionClock(lateness_ms, tuple(streams))
    results = [apply_clock_op(clock, op) for op in ops]
    return [clamp(r) for r in results]


def bucket_of(wheel: TimerWheel, due_ms: int) -> int:
    return due_ms - due_ms % wheel.granularity_ms


def pop_in_bucket_order(wheel: TimerWheel, watermark_ms: int) -> list[str]:
    """``wheel.pop_due`` with the keys of one bucket in byte order, as the Rust wheel
    yields them (Python yields them in set order, which depends on PYTHONHASHSEED).
    Checks that Python yields the buckets in ascending order, so only the order within a
    bucket is normalised."""
    buckets = {k: bucket_of(wheel, d) for k, d in wheel._due_of.items()}
    keys = wheel.pop_due(watermark_ms)
    order = [buckets[k] for k in keys]
    assert order == sorted(order), "Python popped the buckets out of order"
    return [k.decode("latin-1") for k in sorted(keys, key=lambda k: (buckets[k], k))]


def apply_wheel_op(wheel: TimerWheel, op: list[Any]) -> Any:
    if op[0] == "set":
        wheel.set(op[1].encode("latin-1"), op[2])
        return None
    if op[0] == "pop_due":
        return pop_in_bucket_order(wheel, op[1])
    if op[0] == "len":
        return len(wheel)
    raise ValueError(op[0])


def run_wheel_ops(granularity_ms: int, ops: list[list[Any]]) -> list[Any]:
    wheel = TimerWheel(granularity_ms)
    return [apply_wheel_op(wheel, op) for op in ops]


def checkpoint_json(c: Checkpoint) -> dict[str, Any]:
    return {
        "thresholds": dict(c.thresholds),
        "history": {s: history_json(h) for s, h in c.history.items()},
        "triggers_next_offset": c.triggers_next_offset,
    }


# -- recording what the processor does -----------------------------------------------------


@dataclass
class Recorded:
    """What the processors made while recording: one operation log per object."""

    clocks: list[RecordingPartitionClock] = field(default_factory=list)
    wheels: list[RecordingTimerWheel] = field(default_factory=list)
    encoded: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)
    decoded: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)


_RECORDED: Recorded | None = None


class RecordingTopicPartitionClock(TopicPartitionClock):
    """Logs every call and every assignment from outside (the processor sets has_data
    after a resume, and the history on recovery)."""

    _stream: str
    _log: list[Any] | None
    _busy: bool  # inside one of its own methods: their assignments are not logged

    def __init__(self, lateness_ms: int, stream: str, log: list[Any]) -> None:
        object.__setattr__(self, "_log", None)
        object.__setattr__(self, "_busy", False)
        super().__init__(lateness_ms)
        object.__setattr__(self, "_stream", stream)
        object.__setattr__(self, "_log", log)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if self._log is None or self._busy:
            return
        if name == "has_data":
            self._log.append((["set_has_data", self._stream, value], None))
        elif name == "history":
            self._log.append((["set_history", self._stream, history_json(value)], None))
        else:
            raise AssertionError(f"{name} assigned from outside: not recorded")

    def _record(self, op: list[Any], result: Any) -> None:
        if self._log is not None:
            self._log.append(([op[0], self._stream, *op[1:]], result))

    def _busy_as(self, busy: bool) -> None:
        object.__setattr__(self, "_busy", busy)

    @property
    def watermark(self) -> int | None:
        mark: int | None = TopicPartitionClock.watermark.fget(self)  # type: ignore[attr-defined]
        self._record(["tp_watermark"], mark)
        return mark

    def is_late(self, event_time_ms: int) -> bool:
        late = super().is_late(event_time_ms)
        self._record(["is_late", event_time_ms], late)
        return late

    def observe(self, event_time_ms: int) -> None:
        self._busy_as(True)
        try:
            super().observe(event_time_ms)
        finally:
            self._busy_as(False)
        self._record(["observe", event_time_ms], None)

    def checkpoint(self, last_offset: int, keep_from_offset: int | None) -> None:
        self._busy_as(True)
        try:
            super().checkpoint(last_offset, keep_from_offset)
        finally:
            self._busy_as(False)
        self._record(["checkpoint", last_offset, keep_from_offset], history_json(self.history))

    def resume_at(self, next_offset: int) -> None:
        self._busy_as(True)
        try:
            super().resume_at(next_offset)
        finally:
            self._busy_as(False)
        self._record(["resume_at", next_offset], clock_state(self))


class RecordingPartitionClock(PartitionClock):
    log: list[Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "log", [])
        self.clocks = {
            s: RecordingTopicPartitionClock(self.lateness_ms, s, self.log) for s in self.streams
        }
        if _RECORDED is not None:
            _RECORDED.clocks.append(self)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        log = self.__dict__.get("log")
        if log is None:
            return
        if name == "caught_up":
            log.append((["set_caught_up", sorted(value)], None))
        elif name == "idle":
            log.append((["set_idle", sorted(value)], None))
        elif name == "finished":
            log.append((["set_finished", value], None))
        elif name != "clocks":
            raise AssertionError(f"unexpected assignment of {name}")

    def watermark(self) -> int | None:
        result = super().watermark()
        self.log.append((["watermark"], result))
        return result


class RecordingTimerWheel(TimerWheel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log: list[Any] = []
        if _RECORDED is not None:
            _RECORDED.wheels.append(self)

    def set(self, key: bytes, due_ms: int | None) -> None:
        super().set(key, due_ms)
        self.log.append((["set", key.decode("latin-1"), due_ms], None))

    def pop_due(self, watermark_ms: int) -> list[bytes]:
        buckets = {k: bucket_of(self, d) for k, d in self._due_of.items()}
        keys = super().pop_due(watermark_ms)
        shown = [k.decode("latin-1") for k in sorted(keys, key=lambda k: (buckets[k], k))]
        self.log.append((["pop_due", watermark_ms], shown))
        return keys


class RecordingCheckpoint(Checkpoint):
    def encode(self) -> bytes:
        raw = super().encode()
        if _RECORDED is not None:
            _RECORDED.encoded.append((checkpoint_json(self), raw))
        return raw

    @classmethod
    def decode(cls, raw: bytes) -> Checkpoint:
        decoded = super().decode(raw)
        if _RECORDED is not None:
            _RECORDED.decoded.append((raw, checkpoint_json(decoded)))
        return decoded


@contextlib.contextmanager
def recording() -> Iterator[Recorded]:
    global _RECORDED
    recorded = Recorded()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(streams.processor, "PartitionClock", RecordingPartitionClock)
        mp.setattr(streams.processor, "TimerWheel", RecordingTimerWheel)
        mp.setattr(streams.processor, "Checkpoint", RecordingCheckpoint)
        _RECORDED = recorded
        try:
            yield recorded
        finally:
            _RECORDED = None


# -- a run with ticks, commits, a seek back and a restart -----------------------------------


class _Run:
    """The runtime's side of a processor: batches per input, commits, ticks, restarts."""

    def __init__(self, records: list[tuple[str, bytes, bytes, int]], batch: int) -> None:
        from bench.state_memory import MemoryTable

        self.by_stream: dict[str, list[Record]] = defaultdict(list)
        self.arrival: list[tuple[str, int]] = []  # (stream, offset) in arrival order
        for stream, key, value, ts in records:
            offset = len(self.by_stream[stream])
            self.by_stream[stream].append(Record(offset, key, value, ts))
            self.arrival.append((stream, offset))
        self.streams = sorted(self.by_stream)
        self.batch = batch
        self.table = MemoryTable()
        self.processor = self.new_processor()
        self.done: dict[str, int] = defaultdict(int)  # next offset to hand over
        self.arrived: dict[str, int] = defaultdict(int)  # next offset the broker has
        self.commits: dict[str, list[int]] = defaultdict(list)  # next offset per batch
        self.rounds_idle: dict[str, int] = defaultdict(int)
        self.batches = 0

    def new_processor(self) -> PartitionProcessor:
        from bench.state_memory import new_processor

        self.processor = new_processor(self.table, 0)
        self.apply(self.processor.recover())
        return self.processor

    def apply(self, result: BatchResult) -> None:
        for k, v in result.state_writes.items():
            self.table.put(k, v)
        if result.meta:
            self.table.put(meta_key(0), self.processor.meta_record())

    def process(self, stream: str) -> None:
        start, upto = self.done[stream], self.arrived[stream]
        if upto <= start:
            return
        commits = self.commits[stream]
        committed = commits[-3] if len(commits) >= 3 else None  # the commit lags
        records = self.by_stream[stream][start:upto]
        self.apply(self.processor.process(stream, records, committed))
        self.done[stream] = upto
        commits.append(upto)
        self.batches += 1

    def tick(self, finished: bool = False) -> None:
        caught_up = {s: self.arrived[s] for s in self.streams if self.done[s] >= self.arrived[s]}
        idle = {s for s in caught_up if finished or self.rounds_idle[s] >= 2}
        self.apply(self.processor.tick(caught_up, idle, finished))

    def poll_round(self, number: int) -> None:
        """Hand over what arrived, except (in turn) one input's: it is not caught up."""
        for i, s in enumerate(self.streams):
            self.rounds_idle[s] = self.rounds_idle[s] + 1 if self.arrived[s] == self.done[s] else 0
            if i != number % (len(self.streams) + 1):
                self.process(s)
        self.tick()

    def seek_back(self, stream: str) -> None:
        """A rebalance seek: the consumer re-delivers from an earlier batch boundary."""
        if len(self.commits[stream]) >= 2:
            self.done[stream] = self.commits[stream][-2]
            self.process(stream)

    def restart(self) -> None:
        """The worker dies: a new one recovers from the table and resumes each input from
        its last commit; one input is first seen caught up (nothing new to read)."""
        resumed = {s: self.commits[s][-3] if len(self.commits[s]) >= 3 else 0 for s in self.streams}
        self.new_processor()
        quiet = self.streams[-1]
        self.apply(self.processor.tick({quiet: self.arrived[quiet]}, ()))
        for s in self.streams:
            self.done[s] = resumed[s]
            self.commits[s] = self.commits[s][:-2]


def drive_with_restarts(records: list[tuple[str, bytes, bytes, int]], batch: int = 300) -> int:
    """Process ``records`` as the runtime would, through a restart; the batches processed."""
    run = _Run(records, batch)
    for i, (stream, offset) in enumerate(run.arrival):
        run.arrived[stream] = offset + 1
        if run.arrived[stream] - run.done[stream] >= batch:
            run.process(stream)
        if i % (batch * 2) == batch * 2 - 1:
            run.poll_round(i // (batch * 2))
        if i == len(run.arrival) // 4:
            run.seek_back(max(run.streams, key=lambda s: len(run.commits[s])))
        if i == len(run.arrival) // 2:
            run.restart()
    run.poll_round(len(run.streams))
    run.tick(finished=True)
    run.tick(finished=True)
    return run.batches
