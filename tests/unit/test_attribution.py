"""The worker's attribution models (streams/attribution.py, docs/semantics.md 10)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.attribution import (
    MODELS,
    SHARE_UNIT,
    AttributionRules,
    Touch,
    apportion,
    order_touches,
    prune_touches,
    record_touch,
    shares,
    weights,
)

DAY = 86_400_000
T = 400 * DAY
RULES = AttributionRules()


def touch(t: int, session: str, channel: str = "direct", campaign: str = "") -> Touch:
    return Touch(t, session, f"e-{session}", channel, "", "", campaign, "")


EXAMPLE = [
    touch(T - 10 * DAY, "s1"),
    Touch(T - 3 * DAY, "s2", "e2", "kol", "douyin", "kol", "kol_lily_winter", "lily_makeup"),
    Touch(T - 1 * DAY, "s3", "e3", "paid_search", "baidu", "cpc", "brand", ""),
    touch(T, "s4"),
]
# docs/semantics.md section 10, the worked example, one row per model.
EXPECTED = {
    "first_touch": [1_000_000, 0, 0, 0],
    "last_touch": [0, 0, 0, 1_000_000],
    "last_non_direct": [0, 0, 1_000_000, 0],
    "linear": [250_000] * 4,
    "position_based": [400_000, 100_000, 100_000, 400_000],
    "time_decay": [123_004, 246_007, 299_887, 331_102],
}


@pytest.mark.parametrize("model", MODELS)
def test_the_worked_example(model: str) -> None:
    assert apportion(weights(model, EXAMPLE, T, RULES)) == EXPECTED[model]
    merged = shares(model, EXAMPLE, T, RULES)
    direct = EXAMPLE[0].key
    assert merged.get(direct, 0) == EXPECTED[model][0] + EXPECTED[model][3]
    assert sum(merged.values()) == SHARE_UNIT


def test_last_non_direct_falls_back_to_the_last_touch_when_all_are_direct() -> None:
    touches = [touch(T - 2 * DAY, "a"), touch(T - DAY, "b", campaign="x")]
    assert apportion(weights("last_non_direct", touches, T, RULES)) == [0, SHARE_UNIT]


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, [1_000_000]),
        (2, [500_000, 500_000]),
        (3, [400_000, 200_000, 400_000]),
        (5, [400_000, 66_667, 66_667, 66_666, 400_000]),
    ],
)
def test_position_based_is_40_20_40(n: int, expected: list[int]) -> None:
    touches = [touch(T - i * DAY, f"s{i}") for i in range(n, 0, -1)]
    assert apportion(weights("position_based", touches, T, RULES)) == expected


def test_largest_remainder_gives_leftovers_to_the_earlier_touch_on_ties() -> None:
    assert apportion([1, 1, 1]) == [333_334, 333_333, 333_333]
    assert apportion([1, 2]) == [333_333, 666_667]


def test_lookback_is_inclusive_and_max_touches_keeps_the_latest() -> None:
    rules = AttributionRules(lookback_ms=10 * DAY, max_touches=2)
    touches = [
        touch(T - 10 * DAY - 1, "old"),
        touch(T - 10 * DAY, "edge"),
        touch(T - DAY, "mid"),
        touch(T, "own"),
        touch(T + 1, "after"),
    ]
    assert [t.session_id for t in order_touches(touches, T, rules)] == ["mid", "own"]
    wide = AttributionRules(lookback_ms=10 * DAY, max_touches=10)
    assert [t.session_id for t in order_touches(touches, T, wide)] == ["edge", "mid", "own"]


def test_a_session_keeps_its_earliest_event_as_its_touch() -> None:
    touches: list[Touch] = []
    record_touch(touches, touch(T, "s", "email"), RULES)
    record_touch(touches, touch(T + 5, "s", "paid_search"), RULES)  # later: ignored
    assert [t.channel for t in touches] == ["email"]
    earlier = Touch(T - 5, "s", "e0", "kol", "", "", "", "k")
    record_touch(touches, earlier, RULES)  # an earlier event arrives late: it wins
    assert touches == [earlier]


def test_touches_are_bounded_and_pruned_by_the_lookback() -> None:
    rules = AttributionRules(lookback_ms=DAY, max_touches=3)
    touches: list[Touch] = []
    for i in range(20):
        record_touch(touches, touch(T + i, f"s{i:02}"), rules)
    assert len(touches) == rules.kept_touches == 6
    assert touches[0].session_id == "s14"
    prune_touches(touches, T + 16 + DAY, rules)
    assert [t.session_id for t in touches] == ["s16", "s17", "s18", "s19"]


def test_an_unknown_model_is_refused_with_the_known_ones_named() -> None:
    with pytest.raises(ValueError, match="time_decay"):
        weights("u_shaped", EXAMPLE, T, RULES)


_touch_lists = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=40 * DAY),
        st.sampled_from(["direct", "kol", "email", "paid_search"]),
        st.sampled_from(["", "c1", "c2"]),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(_touch_lists, st.sampled_from(MODELS), st.integers(min_value=1, max_value=10**12))
def test_every_model_credits_exactly_the_order_value(
    raw: list[tuple[int, str, str]], model: str, value_minor: int
) -> None:
    rules = AttributionRules(half_life_ms=DAY)
    touches: list[Touch] = []
    for i, (age, channel, campaign) in enumerate(raw):
        record_touch(touches, touch(T - age, f"s{i:03}", channel, campaign), rules)
    record_touch(touches, touch(T, "own"), rules)  # the order's own session
    used = order_touches(touches, T, rules)
    merged = shares(model, used, T, rules)
    assert all(share > 0 for share in merged.values())
    assert sum(merged.values()) == SHARE_UNIT
    # Revenue in millionths of a minor unit: exactly the order value.
    assert sum(value_minor * share for share in merged.values()) == value_minor * SHARE_UNIT


# --- the visitor's state and contributions (streams/visitor.py) ----------------------

from schemas.channels import ChannelRules  # noqa: E402
from streams.outputs.order_attribution import OrderAttributionKey  # noqa: E402
from streams.state import VisitorState, decode_state, encode_state  # noqa: E402
from streams.visitor import Rules, apply_event, contributions, diff  # noqa: E402
from tests.unit.truth_builders import T0, buy, ev  # noqa: E402

CHANNELS = ChannelRules.load()


def _apply(state: VisitorState, event: object, offset: int) -> None:
    from schemas.model import Event

    assert isinstance(event, Event)
    channel = CHANNELS.classify(event.utm_source, event.utm_medium, event.referrer)
    dims = (channel, event.utm_campaign or "", event.device, event.platform, event.country)
    apply_event(state, event, dims, event.stream, offset, Rules(funnels=()))


def _credits(state: VisitorState) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for key, value in contributions(state, Rules(funnels=()), {}).items():
        if isinstance(key, OrderAttributionKey):
            out[(key.model, key.channel)] = out.get((key.model, key.channel), 0) + value
    return out


def test_a_late_earlier_session_moves_the_first_touch_credit_and_zeroes_the_old_row() -> None:
    state = VisitorState(0)
    _apply(state, ev("page_view", T0 + 1000, "v1", session="s2"), 0)
    _apply(state, buy(T0 + 5000, "t1", session="s2"), 1)
    before = contributions(state, Rules(funnels=()), {})
    assert _credits(state)[("first_touch", "direct")] == SHARE_UNIT
    kol = ev(
        "page_view",
        T0 - 3 * DAY,
        "v0",
        session="s1",
        utm_source="douyin",
        utm_medium="kol",
        utm_campaign="kol_lily_winter",
        utm_content="lily_makeup",
    )
    _apply(state, kol, 2)
    credits = _credits(state)
    assert credits[("first_touch", "kol")] == SHARE_UNIT
    assert credits[("last_touch", "direct")] == SHARE_UNIT
    assert credits[("linear", "kol")] == credits[("linear", "direct")] == SHARE_UNIT // 2
    change = diff(before, contributions(state, Rules(funnels=()), {}))
    old = [k for k, v in change.items() if isinstance(k, OrderAttributionKey) and v < 0]
    assert {(k.model, k.channel) for k in old} >= {("first_touch", "direct")}
    again = decode_state(encode_state(state), state.anonymous_id)
    assert again.touches == state.touches
    assert [t.kol for t in again.touches] == ["lily_makeup", ""]


def test_states_written_before_touchpoints_still_decode() -> None:
    import orjson

    state = VisitorState(1, "anon-1")
    _apply(state, ev("page_view", T0, "v1"), 0)
    payload = orjson.loads(encode_state(state))
    assert payload[20]  # the touchpoints' slot
    older = decode_state(orjson.dumps(payload[:20]), "anon-1")
    assert older.touches == [] and older.first_seen_t == T0
    # States written before forget marks (slot 21, issue #17) decode with none.
    assert payload[21] == []
    assert decode_state(orjson.dumps(payload[:21]), "anon-1").forgets == []
