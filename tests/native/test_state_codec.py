"""The compiled core's state codec against the Python one (issue #16, item 2).

The compiled core must read the states the Python core wrote and write the same bytes, so
that either core can run on the other's changelog and the differential tests can compare
state bytes. Checked on every state the Python core writes over simulated traffic (with
the default funnels and with ten funnels that store properties and user-scope events), on
hypothesis-built states covering every field, and on bytes that are not a state.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import orjson
import pytest
import shopfunnel_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import state_memory
from streams.attribution import Touch
from streams.errors import StateCorruptError
from streams.funnel_eval import FunnelEvent
from streams.lifecycle import CartEvent, Purchase
from streams.lives import DayActivity
from streams.state import (
    FORMAT_VERSION,
    ClosedCredit,
    ForgetMark,
    OpenSession,
    OrderLine,
    VisitorState,
    decode_state,
    encode_state,
)

MIXED_FUNNELS = Path(__file__).resolve().parents[2] / "bench" / "funnels_mixed.yaml"


@functools.cache
def _states_written(funnels_file: str | None) -> list[bytes]:
    """Every state value the Python core wrote for one partition of simulated traffic."""
    import os

    old = os.environ.pop("FUNNEL_FUNNELS_FILE", None)
    if funnels_file:
        os.environ["FUNNEL_FUNNELS_FILE"] = funnels_file
    try:
        records = state_memory.partition_zero(6_000, 20)
        table = state_memory.MemoryTable()
        processor = state_memory.new_processor(table, 0)
        written: list[bytes] = []
        offsets: dict[str, int] = {}
        for start in range(0, len(records), 500):
            by_stream: dict[str, list[state_memory.InputRecord]] = {}
            for stream, key, value, ts in records[start : start + 500]:
                offset = offsets.get(stream, 0)
                offsets[stream] = offset + 1
                by_stream.setdefault(stream, []).append(
                    state_memory.InputRecord(offset, key, value, ts)
                )
            for stream, batch in by_stream.items():
                result = processor.process(stream, batch, None)
                for key, value in result.state_writes.items():
                    table.put(key, value)
                    if value is not None:
                        written.append(value)
        for value in processor.tick({}, finished=True).state_writes.values():
            if value is not None:
                written.append(value)
        return written
    finally:
        os.environ.pop("FUNNEL_FUNNELS_FILE", None)
        if old is not None:
            os.environ["FUNNEL_FUNNELS_FILE"] = old


def _python_reencoded(raw: bytes) -> bytes:
    return encode_state(decode_state(raw, "v"))


@pytest.mark.parametrize("funnels", [None, str(MIXED_FUNNELS)], ids=["default", "ten_funnels"])
def test_every_state_the_python_core_writes_reencodes_to_the_same_bytes(
    funnels: str | None,
) -> None:
    written = _states_written(funnels)
    assert len(written) > 1_000
    different = [raw for raw in written if shopfunnel_core.reencode_state(raw, "v") != raw]
    assert different == []
    # The simulated states exercise the fields a codec could get wrong.
    payloads = [orjson.loads(raw) for raw in written]
    assert any(p[5] for p in payloads), "no order lines"
    assert any(p[16] for p in payloads), "no cart events"
    assert any(p[20] for p in payloads), "no touches"
    assert any(p[4] for p in payloads), "no closed credits"
    if funnels:
        assert any(len(e) == 5 for p in payloads for e in p[12]), "no user event properties"


# -- hypothesis: every field, odd values ---------------------------------------------------

text = st.text(max_size=6)  # any code point but lone surrogates (orjson refuses them)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
small = st.integers(min_value=0, max_value=3)
props = st.lists(st.tuples(text, text), max_size=3).map(tuple)


def _event(dims: int) -> st.SearchStrategy[FunnelEvent]:
    return st.builds(FunnelEvent, ints, text, text, st.integers(0, dims - 1), props)


@st.composite
def visitor_states(draw: st.DrawFn) -> VisitorState:
    dims = draw(st.lists(st.tuples(text, text, text, text, text), min_size=1, max_size=4))
    n = len(dims)
    sessions = {
        sid: OpenSession(sid, draw(small), draw(st.lists(_event(n), max_size=3)))
        for sid in draw(st.lists(text, max_size=3, unique=True))
    }
    closed = draw(
        st.lists(
            st.builds(
                ClosedCredit,
                text,
                ints,
                st.integers(0, n - 1),
                small,
                st.none() | ints,
                text,
                text,
                st.lists(ints, max_size=3).map(tuple),
                st.lists(text, max_size=2).map(tuple),
            ),
            max_size=3,
        )
    )
    orders = draw(
        st.lists(
            st.builds(
                OrderLine,
                ints,
                text,
                text,
                text,
                ints,
                ints,
                st.booleans(),
                ints,
                st.integers(0, n - 1),
                text,
            ),
            max_size=3,
        )
    )
    lines = st.lists(st.tuples(text, ints, ints), max_size=2).map(tuple)
    return VisitorState(
        partition=draw(st.integers(0, 1000)),
        anonymous_id="v",
        dims=dims,
        sessions=sessions,
        closed=closed,
        orders=orders,
        transactions=draw(st.lists(text, max_size=3)),
        first_purchase=draw(st.none() | st.tuples(ints, text)),
        first_seen_t=draw(st.none() | ints),
        last_seen_t=draw(st.none() | ints),
        user_id=draw(st.none() | text),
        applied=draw(st.dictionaries(text, ints, max_size=3)),
        user_events=draw(st.lists(_event(n), max_size=3)),
        user_closed_groups=draw(small),
        user_consumed=draw(st.dictionaries(text, ints, max_size=2)),
        days=draw(st.lists(st.builds(DayActivity, ints, ints, text, text, text, ints), max_size=3)),
        purchases=draw(st.lists(st.builds(Purchase, ints, text, ints, text, text), max_size=3)),
        cart=draw(st.lists(st.builds(CartEvent, ints, text, text, lines, text, text), max_size=2)),
        stage=draw(text),
        lifecycle_as_of=draw(st.none() | ints),
        touches=draw(
            st.lists(st.builds(Touch, ints, text, text, text, text, text, text, text), max_size=2)
        ),
        forgets=draw(
            st.lists(
                st.builds(ForgetMark, text, ints, st.none() | ints, st.none() | ints), max_size=2
            )
        ),
    )


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(visitor_states())
def test_hypothesis_states_encode_the_same_in_both_cores(state: VisitorState) -> None:
    raw = encode_state(state)
    assert shopfunnel_core.reencode_state(raw, "v") == raw
    # Unreferenced dimension tuples are dropped by both: decode-encode is a fixed point.
    assert shopfunnel_core.reencode_state(raw, "v") == _python_reencoded(raw)


def test_states_of_older_writers_decode_with_the_defaults() -> None:
    """States written before the appended fields (5-field credits, 19-field payloads)."""
    old = orjson.dumps(
        [
            FORMAT_VERSION,
            3,
            [["web", "", "mobile", "web", "DE"]],
            [["s1", 0, [[10, "e1", "page_view", 0]]]],
            [["shop", 5, 0, 2, None]],
            [],
            [],
            None,
            10,
            10,
            None,
            {"clickstream": 4},
            [],
            0,
            [],
            [],
            [],
            "prospect",
            None,
        ]
    )
    assert shopfunnel_core.reencode_state(old, "v") == _python_reencoded(old)


def test_a_state_of_another_format_version_is_refused_as_such() -> None:
    raw = orjson.dumps([FORMAT_VERSION + 1, 0])
    with pytest.raises(StateCorruptError):
        decode_state(raw)
    with pytest.raises(ValueError, match=f"^version {FORMAT_VERSION + 1}$"):
        shopfunnel_core.reencode_state(raw, "v")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[2, 0]",
        b"[2.5]",
        b"[" * 200,
        b'{"a": 1}',
        orjson.dumps([FORMAT_VERSION, 0, [["a"]]] + [[]] * 17),
        b'"\\ud800"',
    ],
)
def test_bytes_that_are_not_a_state_are_refused_by_both(raw: bytes) -> None:
    with pytest.raises(StateCorruptError):
        decode_state(raw)
    with pytest.raises(ValueError):
        shopfunnel_core.reencode_state(raw, "v")


@settings(max_examples=75, deadline=None)
@given(st.binary(max_size=64) | st.from_regex(rb"\[2,[\[\]0-9,\"a-z{}:]{0,40}\]", fullmatch=True))
def test_arbitrary_bytes_never_crash_either_codec(raw: bytes) -> None:
    """Garbage from a foreign changelog is the codec's own error, never a crash (the
    compiled one: a ValueError, never a panic)."""
    with contextlib.suppress(ValueError):
        shopfunnel_core.reencode_state(raw, "v")
    with contextlib.suppress(StateCorruptError):
        decode_state(raw)
