"""simulator/truth_exploration.py: the truth of `funnel query paths` and `funnel query
retention` (docs/semantics.md 3a) on small hand-built event lists."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import clickhouse_connect
import pytest

from reports.exploration import run_retention
from schemas.model import Event, StreamKind
from simulator import truth_exploration as tx
from simulator.records import SimRecord
from simulator.truth_exploration import CohortRow, PathLink
from sinks.clickhouse import apply_migrations

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


T = ms("2026-11-02T10:00:00")  # a Monday
EVER = (0, ms("2100-01-01T00:00:00"))


def ev(
    event_type: str,
    t: int,
    event_id: str,
    person: str = "p1",
    session: str = "s1",
    transaction_id: str | None = None,
) -> Event:
    stream: StreamKind = "orders" if event_type == "purchase" else "clickstream"
    return Event(
        stream=stream,
        event_type=event_type,
        event_id=event_id,
        event_time_ms=t,
        sent_time_ms=t,
        anonymous_id=person,
        session_id=session,
        transaction_id=transaction_id,
    )


def session(types: str, person: str = "p1", sid: str = "s1", start: int = T) -> list[Event]:
    """One event a minute, ids ``<sid>-00``, ``<sid>-01``, ..."""
    return [
        ev(kind, start + i * MIN, f"{person}{sid}-{i:02}", person, sid)
        for i, kind in enumerate(types.split())
    ]


# -- paths ------------------------------------------------------------------------------


def test_after_starts_at_the_first_anchor_and_stops_at_the_depth() -> None:
    events = session("page_view view_item add_to_cart view_item add_to_cart purchase")
    got = tx.paths(events, "view_item", "after", *EVER, depth=3)
    assert got == [
        PathLink(1, "view_item", "add_to_cart", 1),
        PathLink(2, "add_to_cart", "view_item", 1),
        PathLink(3, "view_item", "add_to_cart", 1),
    ]


def test_before_ends_at_the_last_anchor_and_reads_left_to_right() -> None:
    events = session("page_view view_item add_to_cart view_item add_to_cart purchase")
    got = tx.paths(events, "view_item", "before", *EVER, depth=2)
    # The last view_item is the 4th event; one back is add_to_cart, two back view_item.
    assert got == [
        PathLink(1, "add_to_cart", "view_item", 1),
        PathLink(2, "view_item", "add_to_cart", 1),
    ]


def test_a_short_path_ends_early_and_a_session_without_the_anchor_adds_nothing() -> None:
    events = (
        session("page_view add_to_cart", sid="a")
        + session("add_to_cart", sid="b")  # anchor last: no link at all
        + session("page_view view_item", sid="c")  # no anchor
    )
    assert tx.paths(events, "add_to_cart", "after", *EVER, depth=3) == []
    assert tx.paths(events, "add_to_cart", "before", *EVER, depth=3) == [
        PathLink(1, "page_view", "add_to_cart", 1)
    ]


def test_ties_in_time_are_ordered_by_event_id() -> None:
    events = [
        ev("page_view", T, "x9"),
        ev("add_to_cart", T + MIN, "b"),
        ev("view_item", T + MIN, "a"),  # same millisecond, smaller id: first
        ev("purchase", T + 2 * MIN, "c"),
    ]
    assert tx.paths(events, "view_item", "after", *EVER, depth=2) == [
        PathLink(1, "view_item", "add_to_cart", 1),
        PathLink(2, "add_to_cart", "purchase", 1),
    ]
    assert tx.paths(events, "add_to_cart", "before", *EVER, depth=2) == [
        PathLink(1, "view_item", "add_to_cart", 1),
        PathLink(2, "page_view", "view_item", 1),
    ]


def test_a_session_is_person_and_session_id_unsplit_by_gaps() -> None:
    events = [
        # Two persons may reuse a session_id: two sessions.
        *session("view_item add_to_cart", person="p1", sid="s"),
        *session("view_item search", person="p2", sid="s"),
        # A 3-hour gap does not split a session here (section 2's 30 min does not apply).
        ev("view_item", T, "q1", "p3", "s"),
        ev("purchase", T + 3 * HOUR, "q2", "p3", "s"),
        # Another session of p1: its own path from its own first view_item.
        *session("view_item add_to_cart", person="p1", sid="t", start=T + DAY),
    ]
    assert tx.paths(events, "view_item", "after", *EVER, depth=1) == [
        PathLink(1, "view_item", "add_to_cart", 2),
        PathLink(1, "view_item", "purchase", 1),
        PathLink(1, "view_item", "search", 1),
    ]


def test_the_range_cuts_sessions_and_the_limit_keeps_the_most_common_links() -> None:
    events = (
        session("view_item search page_view", sid="a")
        + session("view_item add_to_cart", sid="b")
        + session("view_item add_to_cart", sid="c")
        + session("view_item page_view", sid="d", start=T + HOUR)
    )
    # [T, T + 1 min): only the anchors of a, b, c; d is after --to.
    assert tx.paths(events, "view_item", "after", T, T + MIN) == []
    # [T + 1 min, ...): the anchors before --from are gone, d's path remains.
    assert tx.paths(events, "view_item", "after", T + MIN, T + DAY) == [
        PathLink(1, "view_item", "page_view", 1)
    ]
    got = tx.paths(events, "view_item", "after", *EVER, depth=2, limit=2)
    assert got == [
        PathLink(1, "view_item", "add_to_cart", 2),
        PathLink(1, "view_item", "page_view", 1),  # ties by (source, target)
        PathLink(2, "search", "page_view", 1),
    ]


# -- retention --------------------------------------------------------------------------


def test_period_starts_and_indexes() -> None:
    sunday, monday = date(2026, 5, 31), date(2026, 6, 1)
    assert tx.period_start(sunday, "week") == date(2026, 5, 25)
    assert tx.period_start(monday, "week") == monday
    assert tx.period_start(sunday, "month") == date(2026, 5, 1)
    assert tx.period_index(date(2026, 5, 25), monday, "week") == 1
    assert tx.period_index(date(2026, 5, 1), monday, "month") == 1
    assert tx.period_index(date(2025, 12, 1), date(2026, 1, 31), "month") == 1
    assert tx.period_index(sunday, monday, "day") == 1


def test_cohort_is_the_first_start_event_in_the_range() -> None:
    events = [
        ev("sign_up", ms("2026-05-30T12:00:00"), "a", "p1"),
        ev("sign_up", ms("2026-05-31T23:59:59.999"), "b", "p1"),
        ev("page_view", ms("2026-06-01T00:00:00"), "c", "p1"),  # next day, week, month
    ]
    whole = (ms("2026-05-01T00:00:00"), ms("2026-08-01T00:00:00"))
    assert tx.retention(events, "sign_up", "page_view", "day", 3, *whole) == [
        CohortRow(date(2026, 5, 30), 1, (0, 0, 1))
    ]
    later = (ms("2026-05-31T00:00:00"), whole[1])  # the first sign_up is before --from
    for period, cohort in (
        ("day", date(2026, 5, 31)),
        ("week", date(2026, 5, 25)),
        ("month", date(2026, 5, 1)),
    ):
        assert tx.retention(events, "sign_up", "page_view", period, 2, *later) == [
            CohortRow(cohort, 1, (0, 1))
        ]


def test_period_zero_counts_returns_at_or_after_the_first_start_only() -> None:
    day = ms("2026-11-02T00:00:00")
    events = [
        ev("page_view", day + HOUR, "a", "p1"),  # before p1's first start: not period 0
        ev("sign_up", day + 2 * HOUR, "b", "p1"),
        ev("sign_up", day + 3 * HOUR, "c", "p2"),
        ev("page_view", day + 3 * HOUR, "d", "p2"),  # same millisecond: counts
        ev("sign_up", day + 4 * HOUR, "e", "p3"),
        ev("page_view", day + DAY + HOUR, "f", "p3"),  # period 1
        ev("page_view", day + 9 * DAY, "g", "p1"),  # beyond the periods asked for
    ]
    assert tx.retention(events, "sign_up", "page_view", "day", 3, day, day + 30 * DAY) == [
        CohortRow(date(2026, 11, 2), 3, (1, 1, 0))
    ]
    assert tx.retention(events, "sign_up", "page_view", "week", 2, day, day + 30 * DAY) == [
        CohortRow(date(2026, 11, 2), 3, (2, 1))
    ]


def test_a_period_starting_at_or_after_to_is_blank() -> None:
    day = ms("2026-11-02T00:00:00")
    events = [ev("sign_up", day + HOUR, "a"), ev("page_view", day + 2 * HOUR, "b")]
    # --to exactly at a midnight: the period starting then is blank.
    assert tx.retention(events, "sign_up", "page_view", "day", 3, day, day + DAY) == [
        CohortRow(date(2026, 11, 2), 1, (1, None, None))
    ]
    # --to 1 ms later: that period has started (0 people), the next has not.
    assert tx.retention(events, "sign_up", "page_view", "day", 3, day, day + DAY + 1) == [
        CohortRow(date(2026, 11, 2), 1, (1, 0, None))
    ]
    assert tx.retention(events, "sign_up", "page_view", "month", 2, day, day + DAY) == [
        CohortRow(date(2026, 11, 1), 1, (1, None))
    ]
    assert tx.retention(events, "sign_up", "page_view", "week", 2, day, day + 7 * DAY + 1) == [
        CohortRow(date(2026, 11, 2), 1, (1, 0))
    ]
    # No start event in the range: no cohort.
    assert tx.retention(events, "purchase", "page_view", "day", 3, day, day + DAY) == []


# -- the counted events (section 1) ------------------------------------------------------


def record(event: Event, *, partition: int = 0, duplicate: bool = False) -> SimRecord:
    return SimRecord(
        stream=event.stream,
        partition=partition,
        key=event.anonymous_id.encode(),
        value=b"",
        send_time_ms=event.event_time_ms,
        event=event,
        malformed_reason=None,
        is_duplicate=duplicate,
        intended_late=False,
    )


def test_counted_events_drop_late_records_duplicates_and_resent_purchases() -> None:
    lateness = 5 * MIN
    first = ev("purchase", T + 10 * MIN, "z-first", transaction_id="T1")
    resent = ev("purchase", T + 12 * MIN, "a-resent", transaction_id="T1")
    tie = ev("purchase", T + 10 * MIN, "y-tie", transaction_id="T1")  # same ms, smaller id
    view = ev("view_item", T + 20 * MIN, "v")
    late = ev("page_view", T + 1 * MIN, "late")  # 19 min behind its partition
    records = [
        record(resent),
        record(first),
        record(tie, duplicate=True),
        record(view),
        record(view, duplicate=True),
        record(late),
    ]
    counted = tx.counted_events(records, lateness)
    assert [e.event_id for e in counted] == ["y-tie", "v"]
    # Paths and retention over them: the re-sent purchases and the late page_view are gone.
    assert tx.paths(counted, "purchase", "after", *EVER) == [
        PathLink(1, "purchase", "view_item", 1)
    ]
    assert tx.retention(counted, "purchase", "view_item", "day", 1, *EVER) == [
        CohortRow(date(2026, 11, 2), 1, (1,))
    ]


# -- the truth against the SQL on the same hand-built events -----------------------------


@pytest.fixture
def chdb() -> Iterator[Any]:
    # chDB has one engine per process: collect unreferenced clients first, close ours.
    gc.collect()
    admin = clickhouse_connect.get_client(dsn="chdb://memory")
    database = f"truth_exploration_{uuid.uuid4().hex[:8]}"
    admin.command(f"CREATE DATABASE {database}")
    handle = clickhouse_connect.get_client(dsn="chdb://memory", database=database)
    apply_migrations(handle)
    try:
        yield handle
    finally:
        handle.close()
        admin.command(f"DROP DATABASE IF EXISTS {database}")
        admin.close()
        gc.collect()


def test_more_periods_than_one_retention_call_takes(chdb: Any) -> None:
    """`funnel query retention --periods 40`: ClickHouse's retention() takes at most 32
    conditions, so periods 31.. need a further call (returns on days 31, 33 and 38)."""
    day = ms("2026-11-02T00:00:00")
    events = [
        ev("sign_up", day + HOUR, "a", "p1"),
        ev("page_view", day + 2 * HOUR, "b", "p1"),
        ev("page_view", day + 31 * DAY, "c", "p1"),
        ev("sign_up", day + DAY, "d", "p2"),
        ev("page_view", day + 34 * DAY, "e", "p2"),  # period 33
        ev("page_view", day + 38 * DAY + HOUR, "f", "p3"),
        ev("sign_up", day + 38 * DAY, "g", "p3"),
    ]
    chdb.insert(
        "events_raw",
        [
            [e.event_id, e.event_type, datetime.fromtimestamp(e.event_time_ms / 1000, UTC),
             e.anonymous_id, e.session_id, 0, 1]
            for e in events
        ],
        column_names=["event_id", "event_type", "event_time", "anonymous_id", "session_id",
                      "is_late", "version"],
    )  # fmt: skip
    to = day + 39 * DAY + 1
    got = run_retention(chdb, "sign_up", "page_view", "day", 40, day, to)
    want = tx.retention(events, "sign_up", "page_view", "day", 40, day, to)
    assert [(c.cohort, c.size, c.returned) for c in got] == [tuple(w) for w in want]
    first = want[0].returned
    assert (first[0], first[31], first[32], first[39]) == (1, 1, 0, 0)
    assert want[1].returned[33] == 1 and want[1].returned[38:] == (0, None)
    assert want[2] == CohortRow(date(2026, 12, 10), 1, (1, 0, *[None] * 38))
