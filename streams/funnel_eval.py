"""Which step an entity (session segment or user attempt group) reached in a funnel.

Pure functions over sorted event tuples; docs/semantics.md section 3 is the spec.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import NamedTuple

from streams.funnels import FunnelDef


class FunnelEvent(NamedTuple):
    """The part of an event a funnel needs. Lists of these are sorted by (t, event_id)."""

    t: int
    event_id: str
    event_type: str
    dims: int  # index into the visitor's interned dimension tuples


@dataclass(frozen=True, slots=True)
class Credit:
    """The credited attempt of one entity."""

    level: int
    start_t: int
    start_event_id: str
    dims: int
    time_to_convert_ms: int | None  # set when level == number of steps


def _next_step_index(
    events: list[FunnelEvent],
    times: list[int],
    candidates: list[int],
    used: set[int],
    not_before_t: int,
    not_after_t: int,
) -> int | None:
    """Smallest (t, event_id) candidate at or after ``not_before_t`` that is unused."""
    start = bisect_left(times, not_before_t)
    for index in candidates:
        if index < start:
            continue
        if events[index].t > not_after_t:
            return None
        if index not in used:
            return index
    return None


def _attempt_level(
    funnel: FunnelDef,
    events: list[FunnelEvent],
    times: list[int],
    by_type: dict[str, list[int]],
    first: int,
) -> tuple[int, int]:
    """Level reached by the attempt that starts at ``events[first]``; and its last index."""
    start_t = events[first].t
    deadline = start_t + funnel.window_ms
    used = {first}
    last = first
    level = 1
    for step_type in funnel.steps[1:]:
        found = _next_step_index(
            events, times, by_type.get(step_type, []), used, events[last].t, deadline
        )
        if found is None:
            break
        used.add(found)
        last = found
        level += 1
    return level, last


def evaluate(
    funnel: FunnelDef,
    events: list[FunnelEvent],
    starts_between: tuple[int, int] | None = None,
) -> Credit | None:
    """Credit for one entity whose events are sorted by (t, event_id); None if no step 1.

    ``starts_between`` (inclusive bounds) limits which step-1 events may start an
    attempt; user-scope attempt groups use it.
    """
    relevant = funnel.event_types
    by_type: dict[str, list[int]] = {}
    for index, event in enumerate(events):
        if event.event_type in relevant:
            by_type.setdefault(event.event_type, []).append(index)
    starts = by_type.get(funnel.steps[0], [])
    if starts_between is not None:
        low, high = starts_between
        starts = [i for i in starts if low <= events[i].t <= high]
    if not starts:
        return None
    times = [event.t for event in events]
    n_steps = len(funnel.steps)
    best: Credit | None = None
    for first in starts:
        level, last = _attempt_level(funnel, events, times, by_type, first)
        if best is None or level > best.level:
            start = events[first]
            ttc = events[last].t - start.t if level == n_steps else None
            best = Credit(level, start.t, start.event_id, start.dims, ttc)
            if level == n_steps:
                break  # attempts are in time order: the first full conversion is credited
    return best


def user_group_ranges(funnel: FunnelDef, events: list[FunnelEvent]) -> list[tuple[int, int]]:
    """User scope: attempt groups as inclusive (first start, last allowed start) ranges.

    A group opens at a step-1 event at ``t0`` and takes the attempts that start by
    ``t0 + window``; the next step-1 event after that opens the next group.
    """
    step1 = funnel.steps[0]
    ranges: list[tuple[int, int]] = []
    for event in events:
        if event.event_type == step1 and (not ranges or event.t > ranges[-1][1]):
            ranges.append((event.t, event.t + funnel.window_ms))
    return ranges
