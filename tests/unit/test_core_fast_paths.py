"""Fast paths of the core equal the straightforward code they replace.

Each reference below is the code as it was before the fast path (or the general path of
the same function), compared on generated inputs.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.model import Event
from streams.funnel_eval import FunnelEvent
from streams.lifecycle import DAY_MS
from streams.lives import DayActivity, add_activity
from streams.outputs.raw_events import build_row
from streams.visitor import first_segment_end, split_segments

T0 = 1_790_000_000_000


def reference_segments(events: list[FunnelEvent], timeout_ms: int) -> list[list[FunnelEvent]]:
    if not events:
        return []
    segments: list[list[FunnelEvent]] = [[events[0]]]
    for previous, event in itertools.pairwise(events):
        if event.t - previous.t > timeout_ms:
            segments.append([event])
        else:
            segments[-1].append(event)
    return segments


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(0, 5_000), max_size=30), st.integers(0, 2_000))
def test_split_segments_and_first_segment_end(gaps: list[int], timeout: int) -> None:
    times = list(itertools.accumulate(gaps, initial=T0))[1:]
    events = [FunnelEvent(t, f"e{i}", "page_view", 0) for i, t in enumerate(times)]
    segments = split_segments(events, timeout)
    assert segments == reference_segments(events, timeout)
    assert all(type(s) is list for s in segments)
    if events:
        assert first_segment_end(events, timeout) == reference_segments(events, timeout)[0][-1].t


def reference_add_activity(
    days: list[DayActivity], t: int, event_id: str, channel: str, platform: str
) -> None:
    day = t // DAY_MS
    for index, entry in enumerate(days):
        if entry.day == day:
            earliest = (t, event_id) < (entry.first_t, entry.first_event_id)
            days[index] = DayActivity(
                day,
                t if earliest else entry.first_t,
                event_id if earliest else entry.first_event_id,
                channel if earliest else entry.channel,
                platform if earliest else entry.platform,
                max(entry.last_t, t),
            )
            return
        if entry.day > day:
            days.insert(index, DayActivity(day, t, event_id, channel, platform, t))
            return
    days.append(DayActivity(day, t, event_id, channel, platform, t))


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5 * DAY_MS), st.sampled_from("abc"), st.sampled_from(["x", "y"])),
        max_size=25,
    )
)
def test_add_activity_equals_the_scan(events: list[tuple[int, str, str]]) -> None:
    fast: list[DayActivity] = []
    slow: list[DayActivity] = []
    for offset, event_id, channel in events:
        add_activity(fast, T0 + offset, event_id, channel, "web")
        reference_add_activity(slow, T0 + offset, event_id, channel, "web")
        assert fast == slow


class _NonEmptyLooking(tuple):  # type: ignore[type-arg]
    """No items, but truthy: takes build_row's general path."""

    def __bool__(self) -> bool:
        return True


def test_raw_row_without_items_equals_the_general_path() -> None:
    event = Event(
        "clickstream",
        "page_view",
        "e1",
        T0,
        T0 + 5,
        "a1",
        "s1",
        user_id="u1",
        page_url="https://shop/p",
        utm_source="google",
        experiments={"x": "B"},
        properties={"k": "v"},
        search_term="shoes",
        value_minor=None,
    )
    for late in (False, True):
        fast = build_row(event, "direct", late, "c", 3, 17, T0 + 9)
        general = build_row(
            replace(event, items=_NonEmptyLooking()), "direct", late, "c", 3, 17, T0 + 9
        )
        assert fast == general
        assert [type(v) for v in fast] == [type(v) for v in general]
