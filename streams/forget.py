"""Forgetting a person (issue #17): pure logic, no I/O (docs/forget.md).

Every aggregate row is a partition total of visitor contributions, and a visitor's
contributions are a pure function of its counted events, which ``events_raw`` keeps.
Replaying the person's stored events into a fresh state with an infinite watermark and
no thresholds gives their contribution to every row ever written; doing it again
without the forgotten events, and taking the difference, gives what each row must lose:

- rows already final (their window closed): the stored value minus the difference,
  written again with a new version (:func:`corrected_row`);
- rows still open: the processor swaps the visitor's state for the replayed one
  (:func:`rebuilt_state`) and the usual before/after difference of contributions
  corrects them, as for any event.

Which events are forgotten: those of the person inside the request's event-time range
that reached an input no later than the request itself (``received_at_ms``, the
broker's append time). Records appended later count normally, even if processed
earlier; records appended earlier but not processed yet are dropped on arrival
(:class:`streams.state.ForgetMark`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from schemas.forget import ForgetRequest
from schemas.model import Event
from sinks.tables import TableSpec
from streams.aggregates import row_of
from streams.lifecycle import PROSPECT, stage_at
from streams.lives import split_lives
from streams.outputs import AGGREGATES, RowKey
from streams.outputs.family import AggregateFamily, Row, RowContext
from streams.outputs.funnel_outcomes import OpenAttemptKey
from streams.state import ForgetMark, VisitorState
from streams.visitor import (
    Contributions,
    RetentionInputs,
    Rules,
    Thresholds,
    apply_event,
    close_expired,
    contributions,
    drop_forgotten_lives,
    prune_final,
    retention_contributions,
)

# A watermark past every event: every session and attempt group closes.
END_OF_TIME = 2**62


log = logging.getLogger(__name__)


class StoredEventLike(Protocol):
    """One row of ``events_raw`` turned back into its event (sinks/forget_store.py)."""

    @property
    def event(self) -> Event: ...
    @property
    def channel(self) -> str: ...
    @property
    def stream(self) -> str: ...
    @property
    def source_offset(self) -> int: ...
    @property
    def is_late(self) -> bool: ...
    @property
    def received_at_ms(self) -> int: ...


_FAMILY_BY_KEY_TYPE: dict[type, AggregateFamily] = {f.key_type: f for f in AGGREGATES}


def family_of(row: RowKey) -> AggregateFamily:
    return _FAMILY_BY_KEY_TYPE[type(row)]


def is_forgotten(stored: StoredEventLike, request: ForgetRequest, requested_at: int) -> bool:
    return stored.received_at_ms <= requested_at and request.covers(stored.event.event_time_ms)


def replay(events: Iterable[StoredEventLike], partition: int, rules: Rules) -> VisitorState:
    """A fresh state with the counted (on-time) ``events`` applied in offset order."""
    state = VisitorState(partition)
    # Offsets only matter within one input (replay protection, first copy wins); the
    # state does not depend on the order across inputs (out-of-order arrival is exact).
    for stored in sorted((e for e in events if not e.is_late), key=lambda e: e.source_offset):
        event = stored.event
        dims = (
            stored.channel,
            event.utm_campaign or "",
            event.device,
            event.platform,
            event.country,
        )
        apply_event(state, event, dims, stored.stream, stored.source_offset, rules)
    return state


def lifetime_contributions(state: VisitorState, rules: Rules) -> Contributions:
    """What ``state`` contributes to every row, final or not (closes everything)."""
    close_expired(state, END_OF_TIME, rules)
    out = contributions(state, rules, {})
    for key, value in retention_contributions(
        RetentionInputs.of(state), {}, rules.lifecycle
    ).items():
        out[key] = out.get(key, 0) + value
    return out


def lifetime_difference(
    events: Sequence[StoredEventLike],
    request: ForgetRequest,
    requested_at: int,
    partition: int,
    rules: Rules,
) -> tuple[Contributions, list[StoredEventLike]]:
    """What the forgotten events contribute to each key over all time, and the kept events."""
    kept = [e for e in events if not is_forgotten(e, request, requested_at)]
    everything = lifetime_contributions(replay(events, partition, rules), rules)
    without = lifetime_contributions(replay(kept, partition, rules), rules)
    delta: Contributions = {}
    for key in everything.keys() | without.keys():
        if isinstance(key, OpenAttemptKey):
            continue
        change = everything.get(key, 0) - without.get(key, 0)
        if change:
            delta[key] = change
    return delta, kept


def rows_of(delta: Contributions) -> set[RowKey]:
    return {row_of(key) for key in delta}


def is_final(row: RowKey, thresholds: Mapping[str, int]) -> bool:
    return row.final_at < thresholds.get(row.threshold, 0)


@dataclass
class ForgetPlan:
    """What forgetting one visitor changes, before the stored values are read."""

    key: bytes
    request: ForgetRequest
    requested_at: int
    delta: Contributions  # all-time contribution of the forgotten events, per key
    kept: list[StoredEventLike]
    events_forgotten: int
    # Rows final when the request was first handled: corrected from their value then.
    final_then: list[RowKey] = field(default_factory=list)
    # Rows final since (only on a replay whose state change was lost): from their newest.
    final_since: list[RowKey] = field(default_factory=list)
    state_done: bool = False  # the state already carries this request's mark


def corrected_row(
    family: AggregateFamily,
    row: RowKey,
    delta: Contributions,
    stored: Mapping[str, int],
    ctx: RowContext,
) -> Row:
    """The row with each counter at its stored value minus the forgotten contribution."""
    built = list(family.build_row(row, lambda cell: delta.get(cell, 0), ctx))
    columns = family.table.columns
    for column in family.value_columns:
        index = columns.index(column)
        built[index] = int(stored.get(column, 0)) - int(built[index])
    return tuple(built)


def negative_counters(family: AggregateFamily, row: Row) -> list[str]:
    columns = family.table.columns
    return [c for c in family.value_columns if row[columns.index(c)] < 0]


def plan(
    request: ForgetRequest,
    requested_at: int,
    events: list[StoredEventLike],
    thresholds_then: Mapping[str, int],
    thresholds_now: Mapping[str, int],
    state: VisitorState,
    partition: int,
    rules: Rules,
) -> ForgetPlan:
    """Step 1 of a forget (``PartitionProcessor.plan_forget``) for the visitor's current
    ``state``: the forgotten contribution and the final rows it touches."""
    delta, kept = lifetime_difference(events, request, requested_at, partition, rules)
    result = ForgetPlan(
        request.anonymous_id.encode(),
        request,
        requested_at,
        delta,
        kept,
        events_forgotten=sum(1 for e in events if is_forgotten(e, request, requested_at)),
        state_done=any(m.request_id == request.request_id for m in state.forgets),
    )
    for row in sorted(rows_of(delta), key=repr):
        if is_final(row, thresholds_then):
            result.final_then.append(row)
        elif not result.state_done and is_final(row, thresholds_now):
            # Finalised after a first attempt whose state change was lost (a crash):
            # written from the old state, so it still counts the person.
            result.final_since.append(row)
    return result


class RowSink(Protocol):
    def add_row(self, table: TableSpec, row: Row) -> None: ...


def correct_final_rows(
    plan: ForgetPlan,
    stored: Mapping[RowKey, Mapping[str, int]],
    ctx: RowContext,
    result: RowSink,
) -> int:
    """Step 2's final rows: each at its stored value minus the forgotten contribution,
    added to ``result``; the number corrected. ``stored`` holds each final row's counters
    (as of the first attempt for ``final_then``, the newest for ``final_since``)."""
    corrected = 0
    for row in [*plan.final_then, *plan.final_since]:
        values = stored.get(row)
        if values is None:
            log.error("forget %s: no stored row for %r", plan.request.request_id, row)
            continue
        family = family_of(row)
        built = corrected_row(family, row, plan.delta, values, ctx)
        bad = negative_counters(family, built)
        if bad:
            log.error(
                "forget %s: %r would go negative in %s; left as it is",
                plan.request.request_id,
                row,
                ", ".join(bad),
            )
            continue
        result.add_row(family.table, built)
        corrected += 1
    return corrected


def rebuilt_state(
    old: VisitorState,
    kept: Iterable[StoredEventLike],
    mark: ForgetMark,
    watermark: int | None,
    thresholds: Thresholds,
    rules: Rules,
) -> VisitorState:
    """The visitor's state as if the forgotten events had never arrived.

    It keeps the old state's input offsets (a record delivered again after a crash is
    still recognised as applied) and the marks of earlier requests. Lifecycle outputs
    (transitions, triggers, RFM) go on from the current watermark: the person's earlier
    ones are deleted, not re-emitted (docs/forget.md).
    """
    state = replay(kept, old.partition, rules)
    state.anonymous_id = old.anonymous_id
    state.applied = dict(old.applied)
    state.forgets = [*(m for m in old.forgets if m.request_id != mark.request_id), mark]
    if watermark is None:
        state.lifecycle_as_of = old.lifecycle_as_of
        return state
    close_expired(state, watermark, rules)
    state.lifecycle_as_of = max(watermark, old.lifecycle_as_of or watermark)
    lives = split_lives(state.days, state.purchases, rules.lifecycle)
    state.stage = (
        stage_at(list(lives[-1].purchases), watermark - 1, rules.lifecycle) if lives else PROSPECT
    )
    prune_final(state, thresholds, rules.attribution)
    drop_forgotten_lives(state, watermark, thresholds, rules)
    return state


def holds_nothing(state: VisitorState) -> bool:
    """No event left to count: only offsets and forget marks (a stub)."""
    return not (
        state.sessions
        or state.closed
        or state.orders
        or state.user_events
        or state.days
        or state.purchases
        or state.cart
        or state.touches
    )


def split_by_family(
    rows: Iterable[RowKey], family_of: Callable[[RowKey], AggregateFamily]
) -> dict[AggregateFamily, list[RowKey]]:
    out: dict[AggregateFamily, list[RowKey]] = {}
    for row in rows:
        out.setdefault(family_of(row), []).append(row)
    return out
