"""Event-time clocks of one partition group (the same partition of each input topic).

*Lateness* is decided per topic-partition from that topic-partition's own history, so
a replay classifies every record as live processing did. *Closing* (windows, sessions,
timers) uses the partition watermark: the minimum over the input topic-partitions that
are not idle, so a lagging input never sees its windows closed under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HISTORY_MARGIN = 8  # batch checkpoints kept before the committed offset


@dataclass(slots=True)
class TopicPartitionClock:
    lateness_ms: int
    max_t: int | None = None
    # (last offset of a processed batch, max event time through it): lets a restarted
    # worker resume the watermark exactly at its committed offset.
    history: list[tuple[int, int | None]] = field(default_factory=list)
    has_data: bool = False

    @property
    def watermark(self) -> int | None:
        return None if self.max_t is None else self.max_t - self.lateness_ms

    def is_late(self, event_time_ms: int) -> bool:
        return self.max_t is not None and event_time_ms < self.max_t - self.lateness_ms

    def observe(self, event_time_ms: int) -> None:
        self.has_data = True
        if self.max_t is None or event_time_ms > self.max_t:
            self.max_t = event_time_ms

    def checkpoint(self, last_offset: int, keep_from_offset: int | None) -> None:
        self.history.append((last_offset, self.max_t))
        if keep_from_offset is not None:
            # Keep the entry the committed offset resumes from, a few before it (a commit
            # can fail and be retried at an earlier offset) and everything after it.
            before = sum(1 for offset, _ in self.history if offset < keep_from_offset)
            del self.history[: max(0, before - HISTORY_MARGIN)]
        del self.history[:-512]

    def resume_at(self, next_offset: int) -> None:
        """Restore ``max_t`` as it was just before ``next_offset`` (a batch boundary)."""
        restored: int | None = None
        for last_offset, max_t in self.history:
            if last_offset < next_offset:
                restored = max_t
        self.max_t = restored
        self.history = [(o, m) for o, m in self.history if o < next_offset]


@dataclass(slots=True)
class PartitionClock:
    lateness_ms: int
    streams: tuple[str, ...]
    clocks: dict[str, TopicPartitionClock] = field(init=False)
    caught_up: set[str] = field(default_factory=set)  # nothing left to read right now
    idle: set[str] = field(default_factory=set)  # caught up for a long time
    # Declared finished (the end of a replay): no event older than the last one will come.
    finished: bool = False

    def __post_init__(self) -> None:
        self.clocks = {s: TopicPartitionClock(self.lateness_ms) for s in self.streams}

    def watermark(self) -> int | None:
        """Min over the inputs' watermarks.

        An input that never had records, or that has been idle for long, does not hold
        the others back while they still have records to read. Once every input is
        caught up, all that ever had records count: the final state equals a
        recomputation from the records. Inputs declared finished and caught up move it to
        just after the last event time.
        """
        if self.caught_up.issuperset(self.clocks):
            active = [c for c in self.clocks.values() if c.has_data]
            if self.finished:
                # Finished and read to the end: every event time is behind the watermark,
                # so the last allowed-lateness interval applies too.
                ends = [c.max_t for c in active if c.max_t is not None]
                return max(ends) + 1 if ends else None
        else:
            active = [
                c
                for s, c in self.clocks.items()
                if s not in self.idle and (c.has_data or s not in self.caught_up)
            ]
        if not active:
            return None
        marks = [c.watermark for c in active]
        if any(m is None for m in marks):
            return None
        return min(m for m in marks if m is not None)
