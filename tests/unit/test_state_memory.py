"""What a stored visitor state costs in memory: its length, not a serializer's buffer."""

from __future__ import annotations

import tracemalloc

from streams.funnel_eval import FunnelEvent
from streams.state import OpenSession, VisitorState, decode_state, encode_state


def _visitor() -> VisitorState:
    state = VisitorState(partition=0, dims=[("email", "", "mobile", "web", "CN")])
    events = [FunnelEvent(1000 + i, f"e{i}", "view_item", 0) for i in range(3)]
    state.sessions["s1"] = OpenSession("s1", 0, events)
    return state


def test_encoded_state_occupies_about_its_length() -> None:
    # orjson returns bytes on a 4 KiB buffer whatever their length; the table keeps one
    # value per visitor, so a spare buffer would multiply the worker's memory by ~7.
    state = _visitor()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        values = [encode_state(state) for _ in range(200)]
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    per_value = used / len(values)
    assert len(values[0]) < 1000
    assert per_value < len(values[0]) + 128, (per_value, len(values[0]))
    assert decode_state(values[0]) == state
