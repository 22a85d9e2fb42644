"""Sessions and funnels of docs/semantics.md §2-§3, as plain functions over counted events.

Written from the page, not from ``streams/``: the two implementations are compared by
the tests, so sharing code would hide the bugs the comparison is there to find. That
includes the property filters: only the property *values* come from the contract
(:func:`schemas.properties.property_values`); whether a condition holds is decided here.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from schemas.model import Event
from schemas.properties import property_values
from simulator.truth_model import Condition, FunnelSpec

# A number, for gt/gte/lt/lte: an optional sign, decimal digits with an optional
# fraction, an optional exponent (ASCII only; no spaces, underscores, inf or nan).
_NUMBER: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# ``tier`` in a breakdown means the custom property membership_tier.
DIMENSION_ALIASES: Final = {"tier": "properties.membership_tier"}


def event_order(event: Event) -> tuple[int, str]:
    """The order of §2 and §3: event time, then event id."""
    return (event.event_time_ms, event.event_id)


def split_segments(events: Sequence[Event], timeout_ms: int) -> Iterator[tuple[str, list[Event]]]:
    """Session segments of one (anonymous_id, session_id), ``events`` sorted by
    :func:`event_order`: a gap of more than the timeout starts a new segment, named
    ``session_id@<time of its first event, epoch ms>`` (§2)."""
    if not events:
        return
    session_id = events[0].session_id
    current = [events[0]]
    for event in events[1:]:
        if event.event_time_ms - current[-1].event_time_ms > timeout_ms:
            yield _segment_id(session_id, current), current
            current = []
        current.append(event)
    yield _segment_id(session_id, current), current


def _segment_id(session_id: str, segment: Sequence[Event]) -> str:
    return f"{session_id}@{segment[0].event_time_ms}"


# -- conditions ------------------------------------------------------------------------------


def as_number(text: str) -> Decimal | None:
    """``text`` as a decimal, or None when it is not a number."""
    return Decimal(text) if _NUMBER.fullmatch(text) else None


def condition_holds(condition: Condition, values: Sequence[str]) -> bool:
    """§3: eq/in and the comparisons hold when *any* value satisfies them; ne/not_in
    when *no* value equals one of theirs. No values: only ne/not_in hold."""
    op = condition.op
    if op in ("eq", "in"):
        return any(value in condition.values for value in values)
    if op in ("ne", "not_in"):
        return all(value not in condition.values for value in values)
    bound = as_number(condition.values[0])
    if bound is None:
        return False
    for value in values:
        number = as_number(value)
        if number is None:
            continue
        if op == "gt" and number > bound:
            return True
        if op == "gte" and number >= bound:
            return True
        if op == "lt" and number < bound:
            return True
        if op == "lte" and number <= bound:
            return True
    return False


def conditions_hold(event: Event, conditions: Sequence[Condition]) -> bool:
    return all(condition_holds(c, property_values(event, c.prop)) for c in conditions)


def breakdown_value(event: Event, dimension: str) -> str:
    """A property's breakdown value: its first value on ``event``, '' when it has none.
    (channel, campaign, device, platform and country are the event's dimensions; the
    caller answers those.)"""
    values = property_values(event, DIMENSION_ALIASES.get(dimension, dimension))
    return values[0] if values else ""


# -- attempts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """An attempt of an entity: positions (in the entity's events) of the events of steps
    1..level. In unordered mode the k-th position is the event at which the attempt had
    first done k steps."""

    step_positions: tuple[int, ...]
    step_times_ms: tuple[int, ...]

    @property
    def level(self) -> int:
        return len(self.step_positions)

    @property
    def start(self) -> int:
        return self.step_positions[0]

    def time_to_convert_ms(self) -> int:
        return self.step_times_ms[-1] - self.step_times_ms[0]


class EntityEvents:
    """The events one entity's attempts may use (sorted by :func:`event_order`) and which
    of them match each step and exclusion of ``funnel``."""

    def __init__(self, events: Sequence[Event], funnel: FunnelSpec) -> None:
        self.events = events
        self.funnel = funnel
        n = len(funnel.steps)
        self.n = n
        # For every event, the bit mask of the steps it matches.
        self.masks: list[int] = [0] * len(events)
        self.step_positions: list[list[int]] = [[] for _ in range(n)]
        self.excluded: list[list[int]] = [[] for _ in funnel.exclusions]
        by_type: dict[str, list[int]] = {}
        for k, matcher in enumerate(funnel.step_matchers):
            by_type.setdefault(matcher.event, []).append(k)
        exclusions_by_type: dict[str, list[int]] = {}
        for j, exclusion in enumerate(funnel.exclusions):
            exclusions_by_type.setdefault(exclusion.event, []).append(j)
        for position, event in enumerate(events):
            for k in by_type.get(event.event_type, ()):
                if conditions_hold(event, funnel.step_matchers[k].conditions):
                    self.masks[position] |= 1 << k
                    self.step_positions[k].append(position)
            for j in exclusions_by_type.get(event.event_type, ()):
                if conditions_hold(event, funnel.exclusions[j].conditions):
                    self.excluded[j].append(position)
        self.step_times = [[events[p].event_time_ms for p in ps] for ps in self.step_positions]

    def start_positions(self) -> list[int]:
        """Events that start attempts: step-1 matches; unordered: matches of any step."""
        if self.funnel.mode == "unordered":
            return [p for p, mask in enumerate(self.masks) if mask]
        return list(self.step_positions[0])

    def attempt(self, start: int) -> Attempt:
        mode = self.funnel.mode
        if mode == "strict":
            positions = self._strict(start)
        elif mode == "unordered":
            positions = self._unordered(start)
        else:
            positions = self._ordered(start)
        return Attempt(positions, tuple(self.events[p].event_time_ms for p in positions))

    def _limit(self, k: int, t1: int, previous_ms: int) -> int:
        """The latest time step k (0-based) may have: the window, and its ``within``."""
        limit = t1 + self.funnel.window_ms
        within = self.funnel.step_matchers[k].within_ms
        if within is not None:
            limit = min(limit, previous_ms + within)
        return limit

    def _ordered(self, start: int) -> tuple[int, ...]:
        """Greedy: step k+1 takes the unused matching event with time >= time(step k),
        within the window of t1 and step k+1's ``within``, smallest in the order."""
        events = self.events
        t1 = events[start].event_time_ms
        chain = [start]
        previous = t1
        for k in range(1, self.n):
            limit = self._limit(k, t1, previous)
            candidates = self.step_positions[k]
            found = -1
            for i in range(bisect_left(self.step_times[k], previous), len(candidates)):
                position = candidates[i]
                if events[position].event_time_ms > limit:
                    break
                if position not in chain:
                    found = position
                    break
            if found < 0:
                break
            chain.append(found)
            previous = events[found].event_time_ms
        return tuple(chain)

    def _strict(self, start: int) -> tuple[int, ...]:
        """Step k+1 is the entity's very next event after step k's, or the chain ends."""
        events = self.events
        t1 = events[start].event_time_ms
        chain = [start]
        position = start
        for k in range(1, self.n):
            position += 1
            if position >= len(events) or not self.masks[position] >> k & 1:
                break
            time_ms = events[position].event_time_ms
            if time_ms > self._limit(k, t1, events[chain[-1]].event_time_ms):
                break
            chain.append(position)
        return tuple(chain)

    def _unordered(self, start: int) -> tuple[int, ...]:
        """The events from ``start`` on within the window, one by one; the count of steps
        done is the size of a maximum matching events -> steps (each event fills at most
        one step, each step at most one event). A new event raises it by one exactly when
        an augmenting path starts at it; the start event is matched first and an
        augmentation never unmatches an event, so it is always one of them."""
        events = self.events
        deadline = events[start].event_time_ms + self.funnel.window_ms
        filled_by: dict[int, int] = {}  # step -> position of the event filling it
        done: list[int] = []
        for position in range(start, len(events)):
            if events[position].event_time_ms > deadline:
                break
            if self.masks[position] and self._augment(position, filled_by, set()):
                done.append(position)
                if len(done) == self.n:
                    break
        return tuple(done)

    def _augment(self, position: int, filled_by: dict[int, int], seen: set[int]) -> bool:
        mask = self.masks[position]
        for step in range(self.n):
            if not mask >> step & 1 or step in seen:
                continue
            seen.add(step)
            holder = filled_by.get(step)
            if holder is None or self._augment(holder, filled_by, seen):
                filled_by[step] = position
                return True
        return False

    def qualifies(self, attempt: Attempt) -> bool:
        """No exclusion disqualifies it: for each exclusion (a, b) the attempt reached,
        no matching event lies strictly between its step-a and step-b events (in the
        order), other than the attempt's own step events."""
        steps = attempt.step_positions
        for exclusion, positions in zip(self.funnel.exclusions, self.excluded, strict=True):
            if attempt.level < exclusion.to_step or not positions:
                continue
            low = steps[exclusion.from_step - 1]
            high = steps[exclusion.to_step - 1]
            i = bisect_right(positions, low)
            while i < len(positions) and positions[i] < high:
                if positions[i] not in steps:
                    return False
                i += 1
        return True

    def credited(self, starts: Sequence[int]) -> Attempt | None:
        """The qualifying attempt with the highest level among those starting at
        ``starts`` (positions in event order); ties go to the earliest. None: no
        qualifying attempt, so the entity is not in the funnel."""
        best: Attempt | None = None
        for start in starts:
            attempt = self.attempt(start)
            if not self.qualifies(attempt):
                continue
            if best is None or attempt.level > best.level:
                best = attempt
                if best.level == self.n:
                    break  # nothing later can beat a full chain
        return best


def user_attempt_groups(
    start_positions: Sequence[int], events: Sequence[Event], window_ms: int
) -> list[list[int]]:
    """User scope: a group starts at a start event at t0 and takes every start event
    with time <= t0 + W; the next start event after that starts a new group."""
    groups: list[list[int]] = []
    group_start = 0
    for position in start_positions:
        time_ms = events[position].event_time_ms
        if groups and time_ms <= group_start + window_ms:
            groups[-1].append(position)
        else:
            groups.append([position])
            group_start = time_ms
    return groups
