"""Sessions and funnels of docs/semantics.md §2-§3, as plain functions over counted events.

Written from the page, not from ``streams/``: the two implementations are compared by
the tests, so sharing code would hide the bugs the comparison is there to find.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from schemas.model import Event
from simulator.truth_model import FunnelSpec


def event_order(event: Event) -> tuple[int, str]:
    """The order of §2 and §3: event time, then event id."""
    return (event.event_time_ms, event.event_id)


def split_segments(events: Sequence[Event], timeout_ms: int) -> Iterator[tuple[str, list[Event]]]:
    """Session segments of one (anonymous_id, session_id), ``events`` sorted by
    :func:`event_order`: a gap of more than the timeout starts a new segment, named
    ``session_id``, ``session_id#2``, ..."""
    if not events:
        return
    session_id = events[0].session_id
    current = [events[0]]
    number = 1
    for event in events[1:]:
        if event.event_time_ms - current[-1].event_time_ms > timeout_ms:
            yield _segment_id(session_id, number), current
            number += 1
            current = []
        current.append(event)
    yield _segment_id(session_id, number), current


def _segment_id(session_id: str, number: int) -> str:
    return session_id if number == 1 else f"{session_id}#{number}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """The credited attempt of an entity."""

    level: int
    step1: Event
    last_time_ms: int  # time of the last filled step

    def time_to_convert_ms(self) -> int:
        return self.last_time_ms - self.step1.event_time_ms


class StepIndex:
    """Events of one entity's scope by type, for the greedy chain search."""

    def __init__(self, events: Sequence[Event], steps: Sequence[str]) -> None:
        self.events = events  # sorted by event_order
        wanted = set(steps)
        self.positions: dict[str, list[int]] = {step: [] for step in wanted}
        for position, event in enumerate(events):
            if event.event_type in wanted:
                self.positions[event.event_type].append(position)
        self.times = {
            step: [events[p].event_time_ms for p in positions]
            for step, positions in self.positions.items()
        }

    def chain(self, start: int, steps: Sequence[str], window_ms: int) -> Attempt:
        """Greedy chain from the step-1 event at ``start``: each next step takes the unused
        event of its type, at or after the previous step and within the window of step 1,
        that is smallest by (event_time, event_id)."""
        events = self.events
        step1 = events[start]
        t1 = step1.event_time_ms
        used = {start}
        previous = t1
        level = 1
        for step in steps[1:]:
            positions = self.positions[step]
            found = -1
            for i in range(bisect_left(self.times[step], previous), len(positions)):
                position = positions[i]
                time_ms = events[position].event_time_ms
                if time_ms - t1 > window_ms:
                    break
                if position not in used:
                    found = position
                    break
            if found < 0:
                break
            used.add(found)
            previous = events[found].event_time_ms
            level += 1
        return Attempt(level, step1, previous)


def credited_attempt(index: StepIndex, starts: Sequence[int], funnel: FunnelSpec) -> Attempt | None:
    """The attempt with the highest level; ties go to the earliest step-1 event.

    ``starts`` are positions of step-1 events in ``index.events``, in event order.
    """
    best: Attempt | None = None
    for start in starts:
        attempt = index.chain(start, funnel.steps, funnel.window_ms)
        if best is None or attempt.level > best.level:
            best = attempt
            if best.level == len(funnel.steps):
                break  # nothing later can beat a full chain
    return best


def user_attempt_groups(
    step1_positions: Sequence[int], events: Sequence[Event], window_ms: int
) -> list[list[int]]:
    """User scope: a group starts at a step-1 event at t0 and takes every step-1 event
    with time <= t0 + W; the next step-1 event after that starts a new group."""
    groups: list[list[int]] = []
    group_start = 0
    for position in step1_positions:
        time_ms = events[position].event_time_ms
        if groups and time_ms <= group_start + window_ms:
            groups[-1].append(position)
        else:
            groups.append([position])
            group_start = time_ms
    return groups
