"""Which step an entity (session segment or user attempt group) reached in a funnel.

Pure functions over sorted event tuples; docs/semantics.md section 3 is the spec
(modes ordered, strict and unordered; step filters; per-step windows; exclusions).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from streams.funnels import EventMatcher, FunnelDef


class FunnelEvent(NamedTuple):
    """The part of an event a funnel needs. Lists of these are sorted by (t, event_id)."""

    t: int
    event_id: str
    event_type: str
    dims: int  # index into the visitor's interned dimension tuples
    # (name, value) of the properties some configured funnel names (filters, breakdowns);
    # a property with several values (one per item) appears once per value.
    props: tuple[tuple[str, str], ...] = ()

    def values(self, name: str) -> tuple[str, ...]:
        return tuple(value for key, value in self.props if key == name)


def matches(matcher: EventMatcher, event: FunnelEvent) -> bool:
    if event.event_type != matcher.event:
        return False
    return all(f.matches(event.values(f.prop)) for f in matcher.filters)


@dataclass(frozen=True, slots=True)
class Credit:
    """The credited attempt of one entity."""

    level: int
    start_t: int
    start_event_id: str
    dims: int
    time_to_convert_ms: int | None  # set when level == number of steps
    steps: tuple[FunnelEvent, ...] = ()  # the events of steps 1..level


def _candidates(funnel: FunnelDef, events: Sequence[FunnelEvent]) -> list[list[int]]:
    """Per step, the positions of the events matching it (in event order)."""
    if funnel.plain:
        # No filters: a step's candidates are the events of its type (the common case,
        # and the hot path; steps of the same type share one list).
        by_type: dict[str, list[int]] = {t: [] for t in funnel.steps_of_type}
        for position, event in enumerate(events):
            positions = by_type.get(event.event_type)
            if positions is not None:
                positions.append(position)
        return [by_type[step.event] for step in funnel.step_defs]
    out: list[list[int]] = [[] for _ in funnel.step_defs]
    steps_of_type = funnel.steps_of_type
    definitions = funnel.step_defs
    for position, event in enumerate(events):
        for step in steps_of_type.get(event.event_type, ()):
            filters = definitions[step].filters
            if not filters or all(f.matches(event.values(f.prop)) for f in filters):
                out[step].append(position)
    return out


def _ordered_chain(
    funnel: FunnelDef,
    events: Sequence[FunnelEvent],
    times: list[int],
    candidates: list[list[int]],
    first: int,
) -> list[int]:
    """Greedy chain from ``events[first]``: positions of the steps filled."""
    deadline = events[first].t + funnel.window_ms
    chain = [first]
    used = {first}
    for step in range(1, len(funnel.step_defs)):
        previous_t = events[chain[-1]].t
        within = funnel.step_defs[step].within_ms
        limit = deadline if within is None else min(deadline, previous_t + within)
        start = bisect_left(times, previous_t)
        found = None
        for position in candidates[step]:
            if position < start or position in used:
                continue
            if events[position].t > limit:
                break
            found = position
            break
        if found is None:
            break
        chain.append(found)
        used.add(found)
    return chain


def _strict_chain(funnel: FunnelDef, events: Sequence[FunnelEvent], first: int) -> list[int]:
    """Each next step must be the entity's very next event."""
    deadline = events[first].t + funnel.window_ms
    chain = [first]
    for step in range(1, len(funnel.step_defs)):
        nxt = chain[-1] + 1
        if nxt >= len(events) or not matches(funnel.step_defs[step].matcher, events[nxt]):
            break
        within = funnel.step_defs[step].within_ms
        t = events[nxt].t
        if t > deadline or (within is not None and t - events[chain[-1]].t > within):
            break
        chain.append(nxt)
    return chain


def _excluded(funnel: FunnelDef, events: Sequence[FunnelEvent], chain: list[int]) -> bool:
    """An exclusion event strictly between the chain's events of its two steps."""
    in_chain = set(chain)
    for exclusion in funnel.exclusions:
        if len(chain) < exclusion.to_step:
            continue
        low, high = chain[exclusion.from_step - 1], chain[exclusion.to_step - 1]
        for position in range(low + 1, high):
            if position not in in_chain and matches(exclusion.matcher, events[position]):
                return True
    return False


def _unordered_steps(
    funnel: FunnelDef, events: Sequence[FunnelEvent], step_sets: list[set[int]], first: int
) -> list[int]:
    """Positions of the k-th step events (k = 1..level) of the attempt at ``first``.

    Events are added in order to a bipartite matching steps <-> events (augmenting
    paths); the event whose addition grows the matching to k is the k-th step event.
    """
    deadline = events[first].t + funnel.window_ms
    n_steps = len(funnel.step_defs)
    step_of_event: dict[int, int] = {}
    event_of_step: dict[int, int] = {}

    def augment(position: int, seen: set[int]) -> bool:
        for step in range(n_steps):
            if position not in step_sets[step] or step in seen:
                continue
            seen.add(step)
            holder = event_of_step.get(step)
            if holder is None or augment(holder, seen):
                event_of_step[step] = position
                step_of_event[position] = step
                return True
        return False

    done: list[int] = []
    for position in range(first, len(events)):
        if events[position].t > deadline:
            break
        if augment(position, set()):
            done.append(position)
            if len(done) == n_steps:
                break
    return done


def evaluate(
    funnel: FunnelDef,
    events: Sequence[FunnelEvent],
    starts_between: tuple[int, int] | None = None,
) -> Credit | None:
    """Credit for one entity whose events are sorted by (t, event_id); None if it has no
    qualifying attempt.

    ``starts_between`` (inclusive bounds) limits which start events may start an
    attempt; user-scope attempt groups use it.
    """
    candidates = _candidates(funnel, events)
    if funnel.mode == "unordered":
        starts = sorted({p for positions in candidates for p in positions})
    else:
        starts = candidates[0]
    if starts_between is not None:
        low, high = starts_between
        starts = [p for p in starts if low <= events[p].t <= high]
    if not starts:
        return None
    n_steps = len(funnel.step_defs)
    times = [event.t for event in events] if funnel.mode == "ordered" else []
    step_sets = [set(c) for c in candidates] if funnel.mode == "unordered" else []
    best: list[int] | None = None
    for first in starts:
        if funnel.mode == "ordered":
            chain = _ordered_chain(funnel, events, times, candidates, first)
        elif funnel.mode == "strict":
            chain = _strict_chain(funnel, events, first)
        else:
            chain = _unordered_steps(funnel, events, step_sets, first)
        if funnel.exclusions and _excluded(funnel, events, chain):
            continue
        if best is None or len(chain) > len(best):
            best = chain
            if len(chain) == n_steps:
                break  # attempts are in order: the first full conversion is credited
    if best is None:
        return None
    start = events[best[0]]
    level = len(best)
    ttc = events[best[-1]].t - start.t if level == n_steps else None
    return Credit(level, start.t, start.event_id, start.dims, ttc, tuple([events[p] for p in best]))


def is_start(funnel: FunnelDef, event: FunnelEvent) -> bool:
    """Can ``event`` start an attempt (step 1; in unordered mode, any step)?"""
    if funnel.mode == "unordered":
        return any(matches(s.matcher, event) for s in funnel.step_defs)
    return matches(funnel.step_defs[0].matcher, event)


def user_group_ranges(funnel: FunnelDef, events: Sequence[FunnelEvent]) -> list[tuple[int, int]]:
    """User scope: attempt groups as inclusive (first start, last allowed start) ranges.

    A group opens at a start event at ``t0`` and takes the attempts that start by
    ``t0 + window``; the next start event after that opens the next group.
    """
    ranges: list[tuple[int, int]] = []
    for event in events:
        if (not ranges or event.t > ranges[-1][1]) and is_start(funnel, event):
            ranges.append((event.t, event.t + funnel.window_ms))
    return ranges
