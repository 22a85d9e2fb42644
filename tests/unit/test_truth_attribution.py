"""The simulator's truth of attribution, ROI and LTV (simulator/truth_attribution.py,
docs/semantics.md section 10), on hand-made events and on a simulated run reconciled with
the KPI truth (simulator/truth.py)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.channels import ChannelRules
from schemas.codec import EventCodec
from schemas.model import Event
from simulator.config import SimConfig
from simulator.errors import SimConfigError
from simulator.generate import generate
from simulator.records import SimRecord
from simulator.truth import compute_truth
from simulator.truth_attribution import (
    MODELS,
    SHARE_UNIT,
    AttributionConfig,
    AttributionRowKey,
    AttributionTruth,
    LtvCell,
    LtvKey,
    RoiCell,
    RoiKey,
    Touchpoint,
    attribution_rows,
    attribution_rows_of,
    attribution_truth,
    attribution_truth_of,
    counted_events_of,
    daily_roi_of,
    largest_remainder,
    ltv_of,
    model_weights,
    touchpoint_shares,
)
from simulator.truth_model import Truth
from tests.unit.truth_builders import DAY, MIN, T0, buy, ev, rec

RULES: Final = ChannelRules.load()
CONFIG: Final = AttributionConfig()
T: Final = T0 + 40 * DAY + 17 * MIN + 5_123  # the order time of the hand-made cases
DAY_OF_T: Final = "2026-12-11"
TIME_DECAY_EXAMPLE: Final = [123_004, 246_007, 299_887, 331_102]

# Sources of hand-made sessions: event fields -> (channel, source, medium, campaign, kol).
DIRECT: Final[dict[str, Any]] = {}
KOL: Final = {
    "utm_source": "douyin",
    "utm_medium": "kol",
    "utm_campaign": "kol_lily_winter",
    "utm_content": "lily",
}
PAID_SEARCH: Final = {"utm_source": "baidu", "utm_medium": "cpc", "utm_campaign": "brand"}
EMAIL: Final = {"utm_source": "newsletter", "utm_medium": "email", "utm_content": "hero"}
ORGANIC: Final = {"referrer": "https://www.Google.com:8443/search?q=shoes"}
KEY_OF: Final = {
    "direct": ("direct", "", "", "", ""),
    "kol": ("kol", "douyin", "kol", "kol_lily_winter", "lily"),
    "paid_search": ("paid_search", "baidu", "cpc", "brand", ""),
    "email": ("email", "newsletter", "email", "", ""),  # utm_content only for kol
    "organic_search": ("organic_search", "www.google.com", "", "", ""),
}
SOURCES: Final = {
    "direct": DIRECT,
    "kol": KOL,
    "paid_search": PAID_SEARCH,
    "email": EMAIL,
    "organic_search": ORGANIC,
}


def visit(t: int, session: str, fields: dict[str, Any], anon: str = "a1") -> Event:
    return ev("page_view", t, f"v-{session}-{t}", anon=anon, session=session, **fields)


def shares_by_key(
    rows: dict[AttributionRowKey, int], model: str, txn: str = "t1"
) -> dict[tuple[str, str, str, str, str], int]:
    return {
        (k.channel, k.source, k.medium, k.campaign, k.kol): share
        for k, share in rows.items()
        if k.model == model and k.transaction_id == txn
    }


# -- the worked example ------------------------------------------------------------------------

EXAMPLE_EVENTS: Final = [
    visit(T - 10 * DAY, "s1", DIRECT),
    visit(T - 3 * DAY, "s2", KOL),
    visit(T - DAY, "s3", PAID_SEARCH),
    buy(T, "t1", 10_000, session="s4"),
]
EXAMPLE_SHARES: Final = {  # per touchpoint, oldest first (docs/semantics.md section 10)
    "first_touch": [1_000_000, 0, 0, 0],
    "last_touch": [0, 0, 0, 1_000_000],
    "last_non_direct": [0, 0, 1_000_000, 0],
    "linear": [250_000, 250_000, 250_000, 250_000],
    "position_based": [400_000, 100_000, 100_000, 400_000],
    "time_decay": TIME_DECAY_EXAMPLE,
}


@pytest.mark.parametrize("model", MODELS)
def test_the_worked_example_of_the_page(model: str) -> None:
    rows = attribution_rows_of(EXAMPLE_EVENTS, CONFIG, channel_rules=RULES)
    direct, kol, paid, direct_now = EXAMPLE_SHARES[model]
    want = {
        KEY_OF["direct"]: direct + direct_now,
        KEY_OF["kol"]: kol,
        KEY_OF["paid_search"]: paid,
    }
    want = {key: share for key, share in want.items() if share > 0}
    got = {k: s for k, s in rows.items() if k.model == model}
    assert got == {
        AttributionRowKey(T // MIN * MIN, T, "a1", "t1", "CNY", 10_000, 1, model, *key): share
        for key, share in want.items()
    }
    touchpoints = [
        Touchpoint(T - 10 * DAY, "s1", "direct", "", "", "", ""),
        Touchpoint(T - 3 * DAY, "s2", "kol", "douyin", "kol", "kol_lily_winter", "lily"),
        Touchpoint(T - DAY, "s3", "paid_search", "baidu", "cpc", "brand", ""),
        Touchpoint(T, "s4", "direct", "", "", "", ""),
    ]
    assert touchpoint_shares(model, touchpoints, T, CONFIG) == EXAMPLE_SHARES[model]


def test_the_time_decay_row_follows_from_the_formula() -> None:
    """2^32 * 2^(-age / 7 days) for ages 10, 3, 1 and 0 days, by the largest remainder."""
    weights = [max(1, int(2.0 ** (-(age * DAY) / (7 * DAY)) * 2**32)) for age in (10, 3, 1, 0)]
    assert weights[-1] == 2**32
    total = sum(weights)
    exact = [SHARE_UNIT * w / total for w in weights]
    assert sum(TIME_DECAY_EXAMPLE) == SHARE_UNIT
    assert all(abs(s - x) < 1 for s, x in zip(TIME_DECAY_EXAMPLE, exact, strict=True))
    assert largest_remainder(weights) == TIME_DECAY_EXAMPLE
    times = [T - age * DAY for age in (10, 3, 1, 0)]
    channels = ["direct", "kol", "paid_search", "direct"]
    assert model_weights("time_decay", times, channels, T, 7 * DAY) == weights


def test_time_decay_weights_are_floored_and_at_least_one() -> None:
    ages = [hour * 3_600_000 + 7 for hour in range(0, 24 * 40, 5)]
    times = [T - age for age in ages]
    want = [int(2.0 ** (-age / (7 * DAY)) * 2**32) for age in ages]
    assert model_weights("time_decay", times, ["direct"] * len(ages), T, 7 * DAY) == want
    assert model_weights("time_decay", [T - 400 * DAY, T], ["kol", "direct"], T, DAY) == [
        1,
        2**32,
    ]


def test_largest_remainder_gives_leftovers_to_the_earlier_touchpoint_on_ties() -> None:
    assert largest_remainder([1, 1, 1]) == [333_334, 333_333, 333_333]
    assert largest_remainder([1, 2]) == [333_333, 666_667]
    assert largest_remainder([0, 5]) == [0, SHARE_UNIT]


# -- touchpoint selection ----------------------------------------------------------------------


def test_lookback_is_inclusive_at_its_start_and_ends_at_the_order() -> None:
    events = [
        visit(T - 30 * DAY - 1, "old", EMAIL),
        visit(T - 30 * DAY, "edge", KOL),
        buy(T, "t1", session="own"),
        visit(T + 1, "after", PAID_SEARCH),
    ]
    rows = attribution_rows_of(events, CONFIG, channel_rules=RULES)
    assert shares_by_key(rows, "first_touch") == {KEY_OF["kol"]: SHARE_UNIT}
    assert shares_by_key(rows, "linear") == {KEY_OF["kol"]: 500_000, KEY_OF["direct"]: 500_000}
    # A shorter lookback moves the start past the kol session; a longer one takes email.
    short = AttributionConfig(lookback_ms=30 * DAY - 1)
    rows = attribution_rows_of(events, short, channel_rules=RULES)
    assert shares_by_key(rows, "first_touch") == {KEY_OF["direct"]: SHARE_UNIT}
    longer = AttributionConfig(lookback_ms=30 * DAY + 1)
    rows = attribution_rows_of(events, longer, channel_rules=RULES)
    assert shares_by_key(rows, "first_touch") == {KEY_OF["email"]: SHARE_UNIT}


def test_max_touches_keeps_the_latest_sessions() -> None:
    order = ["email", "organic_search", "kol", "paid_search"]
    events = [visit(T - (5 - i) * DAY, f"s{i}", SOURCES[c]) for i, c in enumerate(order)]
    events.append(buy(T, "t1", session="own"))
    rows = attribution_rows_of(events, AttributionConfig(max_touches=3), channel_rules=RULES)
    assert shares_by_key(rows, "first_touch") == {KEY_OF["kol"]: SHARE_UNIT}
    assert shares_by_key(rows, "linear") == {
        KEY_OF["kol"]: 333_334,
        KEY_OF["paid_search"]: 333_333,
        KEY_OF["direct"]: 333_333,
    }
    rows = attribution_rows_of(events, CONFIG, channel_rules=RULES)
    assert shares_by_key(rows, "first_touch") == {KEY_OF["email"]: SHARE_UNIT}
    assert set(shares_by_key(rows, "linear")) == {KEY_OF[c] for c in [*order, "direct"]}


def test_a_touchpoint_is_the_earliest_event_of_its_session_over_all_inputs() -> None:
    """The session's first event is a cart event sent without UTM; its later page views
    carry a kol link: the session is direct. Ties on event_time go to the smaller id."""
    events = [
        # Listed (and so sent) in the reverse order of their ids.
        ev("page_view", T - DAY, "e-c", session="s1", **KOL),
        ev("add_to_cart", T - DAY, "e-b", session="s1", currency="CNY"),
        ev("page_view", T - DAY + 1, "e-d", session="s1", **KOL),
        ev("add_to_cart", T - DAY + 2, "e-b2", session="s2", **KOL),
        ev("page_view", T - DAY + 2, "e-a", session="s2", **EMAIL),
        buy(T, "t1", session="s2"),
    ]
    rows = attribution_rows_of(events, CONFIG, channel_rules=RULES)
    assert shares_by_key(rows, "first_touch") == {KEY_OF["direct"]: SHARE_UNIT}
    assert shares_by_key(rows, "last_touch") == {KEY_OF["email"]: SHARE_UNIT}


def test_an_order_whose_only_session_began_before_the_lookback_is_credited_to_none() -> None:
    """Only a session_id used for longer than the lookback can start before it; the
    order then has no touchpoint and is credited to channel "(none)" (the page, 10)."""
    events = [visit(T - 31 * DAY, "s1", KOL), buy(T, "t1", session="s1")]
    rows = attribution_rows_of(events, CONFIG, channel_rules=RULES)
    for model in MODELS:
        assert shares_by_key(rows, model) == {("(none)", "", "", "", ""): SHARE_UNIT}


def test_source_is_utm_source_else_the_referrer_host_else_empty() -> None:
    events = [
        visit(T - 3 * DAY, "s1", {"referrer": "http://[::1/bad"}),  # unparsable: no host
        visit(T - 2 * DAY, "s2", {"referrer": "https://WeiBo.com/u/1", "utm_source": "Ads"}),
        buy(T, "t1", session="s3", referrer="android-app://com.Tencent.mm/"),
    ]
    rows = attribution_rows_of(events, CONFIG, channel_rules=RULES)
    assert {(k[1], k[0]) for k in shares_by_key(rows, "linear")} == {
        ("", RULES.classify(None, None, "http://[::1/bad")),
        ("Ads", RULES.classify("Ads", None, "https://WeiBo.com/u/1")),
        ("com.tencent.mm", RULES.classify(None, None, "android-app://com.Tencent.mm/")),
    }


def test_last_non_direct_skips_direct_and_falls_back_to_the_last_when_all_are_direct() -> None:
    # Direct sessions with a campaign only (no source, medium or referrer) stay direct.
    events = [
        visit(T - 2 * DAY, "s1", {"utm_campaign": "c1"}),
        visit(T - DAY, "s2", {"utm_campaign": "c2"}),
        buy(T - DAY + MIN, "t1", session="s2", utm_campaign="c2"),
        visit(T - 5 * MIN, "s3", KOL, anon="a2"),
        visit(T - 4 * MIN, "s4", {"utm_campaign": "c1"}, anon="a2"),
        buy(T, "t2", session="s4", anon="a2", utm_campaign="c1"),
    ]
    rows = attribution_rows_of(events, CONFIG, channel_rules=RULES)
    assert shares_by_key(rows, "last_non_direct", "t1") == {
        ("direct", "", "", "c2", ""): SHARE_UNIT
    }
    assert shares_by_key(rows, "first_touch", "t1") == {("direct", "", "", "c1", ""): SHARE_UNIT}
    assert shares_by_key(rows, "last_non_direct", "t2") == {KEY_OF["kol"]: SHARE_UNIT}
    assert shares_by_key(rows, "last_touch", "t2") == {("direct", "", "", "c1", ""): SHARE_UNIT}


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
    events = [visit(T - (n - i) * DAY, f"s{i}", {"utm_campaign": f"c{i}"}) for i in range(n - 1)]
    events.append(buy(T, "t1", session=f"s{n - 1}", utm_campaign=f"c{n - 1}"))
    rows = attribution_rows_of(events, CONFIG, channel_rules=RULES)
    assert shares_by_key(rows, "position_based") == {
        ("direct", "", "", f"c{i}", ""): share for i, share in enumerate(expected)
    }


# -- which orders ------------------------------------------------------------------------------


def test_a_duplicate_purchase_counts_once() -> None:
    """A byte copy (same event_id) and a re-send with a new event_id a minute later."""
    first = buy(T, "t1", 5_000, session="s1")
    resent = replace(first, event_id="p-t1-again", event_time_ms=T + MIN)
    records = [rec(visit(T - DAY, "s0", KOL)), rec(first), rec(first), rec(resent)]
    result = attribution_truth_of(records, CONFIG, lateness_ms=5 * MIN, channel_rules=RULES)
    for model in MODELS:
        rows = {k: s for k, s in result.rows.items() if k.model == model}
        assert {k.order_time_ms for k in rows} == {T}
        assert sum(rows.values()) == SHARE_UNIT
    revenue = sum(c.revenue_micro for k, c in result.roi.items() if k.model == "linear")
    assert revenue == 5_000 * SHARE_UNIT
    orders = sum(c.orders_micro for k, c in result.roi.items() if k.model == "linear")
    assert orders == SHARE_UNIT


def test_the_earliest_copy_of_a_purchase_wins_even_when_it_arrives_later() -> None:
    later = buy(T + 2 * MIN, "t1", 900, session="s1")
    earlier = replace(later, event_id="p-z", event_time_ms=T, value_minor=700)
    records = [rec(visit(T - DAY, "s1", KOL)), rec(later), rec(earlier)]  # within lateness
    rows = attribution_rows_of(records, CONFIG, lateness_ms=5 * MIN, channel_rules=RULES)
    assert {(k.order_time_ms, k.window_start_ms, k.value_minor) for k in rows} == {
        (T, T // MIN * MIN, 700)
    }
    # On equal times the smaller event_id wins, whatever the send order.
    tied = replace(later, event_id="p-a", value_minor=500)
    rows = attribution_rows_of(
        [rec(later), rec(tied)], CONFIG, lateness_ms=5 * MIN, channel_rules=RULES
    )
    assert {k.value_minor for k in rows} == {500}
    # A copy later than the lateness is late and does not count at all.
    events = counted_events_of([rec(buy(T + 6 * MIN, "t2")), rec(earlier)], lateness_ms=5 * MIN)
    assert [e.transaction_id for e in events] == ["t2"]


def test_records_need_the_lateness_and_inputs_must_not_mix() -> None:
    with pytest.raises(SimConfigError, match="lateness_ms"):
        counted_events_of([rec(buy(T, "t1"))])
    mixed: list[Any] = [rec(buy(T, "t1")), buy(T, "t2")]
    with pytest.raises(TypeError):
        counted_events_of(mixed, lateness_ms=0)
    with pytest.raises(SimConfigError, match="half_life_ms"):
        AttributionConfig(half_life_ms=0)


def test_is_first_is_the_kpi_first_order_and_currency_and_value_are_the_orders() -> None:
    events = [
        buy(T, "t2", 300, "USD", session="s1"),
        # Same time: the smaller transaction_id is first (section 4), not the event_id.
        replace(buy(T, "t1", 100, "CNY", session="s1"), event_id="p-z"),
        buy(T + DAY, "t0", 50, "CNY", session="s2"),
    ]
    rows = attribution_rows_of(events, CONFIG, channel_rules=RULES)
    seen = {(k.transaction_id, k.is_first, k.currency, k.value_minor) for k in rows}
    assert seen == {("t1", 1, "CNY", 100), ("t2", 0, "USD", 300), ("t0", 0, "CNY", 50)}


# -- refunds and ROI ---------------------------------------------------------------------------


def test_refunds_take_their_orders_shares_on_the_refund_day() -> None:
    events = [
        visit(T - DAY, "s1", KOL),
        buy(T, "t1", 10_000, session="s2", **PAID_SEARCH),
        ev(
            "refund",
            T + 2 * DAY,
            "r1",
            session="srv-1",
            transaction_id="t1",
            currency="CNY",
            value_minor=4_000,
        ),
        # Not bought in the data, bought by someone else, or no transaction_id:
        # (unattributed).
        ev(
            "refund",
            T + 2 * DAY,
            "r2",
            session="srv-2",
            transaction_id="t9",
            currency="CNY",
            value_minor=700,
        ),
        ev(
            "refund",
            T + 2 * DAY,
            "r3",
            anon="a2",
            session="srv-3",
            transaction_id="t1",
            currency="CNY",
            value_minor=20,
        ),
        ev("refund", T + 2 * DAY, "r4", session="srv-4", currency="CNY", value_minor=1),
    ]
    roi = daily_roi_of(events, CONFIG, channel_rules=RULES)
    refund_day = "2026-12-13"
    for model in MODELS:
        assert roi[RoiKey(refund_day, model, "(unattributed)", "", "", "CNY")] == RoiCell(
            0, 0, 721 * SHARE_UNIT, 0
        )
    kol = ("kol", "kol_lily_winter", "lily")
    paid = ("paid_search", "brand", "")
    assert roi[RoiKey(refund_day, "linear", *kol, "CNY")] == RoiCell(0, 0, 4_000 * 500_000, 0)
    assert roi[RoiKey(refund_day, "linear", *paid, "CNY")] == RoiCell(0, 0, 4_000 * 500_000, 0)
    assert roi[RoiKey(DAY_OF_T, "linear", *kol, "CNY")] == RoiCell(
        500_000, 10_000 * 500_000, 0, 500_000
    )
    assert roi[RoiKey(refund_day, "first_touch", *kol, "CNY")].refunded_micro == (
        4_000 * SHARE_UNIT
    )
    assert RoiKey(refund_day, "first_touch", *paid, "CNY") not in roi
    # (unattributed) per model; order and refund cells: one each for first_touch,
    # last_touch and last_non_direct, two each for the other three.
    assert len(roi) == len(MODELS) + 3 * 2 + 3 * 4


# -- LTV ---------------------------------------------------------------------------------------


def test_ltv_windows_include_both_ends() -> None:
    f = T
    events = [
        visit(f - DAY, "s0", KOL),
        buy(f, "t1", 1_000, session="s1"),
        buy(f + 7 * DAY, "t2", 10, session="s2"),
        buy(f + 7 * DAY + 1, "t3", 200, session="s3"),
        buy(f + 30 * DAY, "t4", 3_000, session="s4"),
        buy(f + 30 * DAY + 1, "t5", 40_000, session="s5"),
        buy(f + DAY, "t6", 99_999, "USD", session="s6"),  # another currency: not counted
        buy(f - 1, "t0", 5, anon="a2", session="x1"),  # another customer, the same day
    ]
    cells = ltv_of(events, CONFIG, channel_rules=RULES)
    kol = ("kol", "kol_lily_winter", "lily")
    direct = ("direct", "", "")
    for model in ("first_touch", "last_non_direct"):
        assert cells[LtvKey(DAY_OF_T, model, *kol, "CNY")] == LtvCell(
            SHARE_UNIT, 1_010 * SHARE_UNIT, 4_210 * SHARE_UNIT
        )
    half = SHARE_UNIT // 2
    # a1 (half of it: kol and direct) and a2 (all of it: one direct session).
    assert cells[LtvKey(DAY_OF_T, "linear", *direct, "CNY")] == LtvCell(
        half + SHARE_UNIT, 1_010 * half + 5 * SHARE_UNIT, 4_210 * half + 5 * SHARE_UNIT
    )
    assert cells[LtvKey(DAY_OF_T, "linear", *kol, "CNY")] == LtvCell(
        half, 1_010 * half, 4_210 * half
    )
    assert cells[LtvKey(DAY_OF_T, "last_touch", *direct, "CNY")] == LtvCell(
        2 * SHARE_UNIT, 1_015 * SHARE_UNIT, 4_215 * SHARE_UNIT
    )
    assert sum(c.customers_micro for k, c in cells.items() if k.model == "linear") == (
        2 * SHARE_UNIT
    )
    assert not any(k.currency == "USD" for k in cells)


# -- random touchpoints ------------------------------------------------------------------------

_touch_lists = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=400 * DAY),
        st.sampled_from(["direct", "kol", "email", "paid_search"]),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(_touch_lists, st.sampled_from(MODELS), st.integers(min_value=1, max_value=30 * DAY))
def test_shares_are_non_negative_and_sum_to_one_million(
    raw: list[tuple[int, str]], model: str, half_life_ms: int
) -> None:
    touchpoints = sorted(
        Touchpoint(T - age, f"s{i:03}", channel, "", "", "", "")
        for i, (age, channel) in enumerate(raw)
    )
    config = AttributionConfig(half_life_ms=half_life_ms)
    shares = touchpoint_shares(model, touchpoints, T, config)
    assert len(shares) == len(touchpoints)
    assert all(share >= 0 for share in shares)
    assert sum(shares) == SHARE_UNIT


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=45 * DAY), st.sampled_from(list(SOURCES))),
        max_size=25,
    ),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=0, max_value=10**13),
)
def test_every_order_and_model_credits_exactly_one_million(
    raw: list[tuple[int, str]], max_touches: int, value: int
) -> None:
    events = [visit(T - age, f"s{i:02}", SOURCES[src]) for i, (age, src) in enumerate(raw)]
    events.append(buy(T, "t1", value, session="own"))
    config = AttributionConfig(max_touches=max_touches)
    result = attribution_truth_of(events, config, channel_rules=RULES)
    for model in MODELS:
        rows = shares_by_key(result.rows, model)
        assert all(share > 0 for share in rows.values())
        assert sum(rows.values()) == SHARE_UNIT
        assert 1 <= len(rows) <= max_touches
        revenue = sum(c.revenue_micro for k, c in result.roi.items() if k.model == model)
        assert revenue == value * SHARE_UNIT


# -- a simulated run, reconciled with the KPI truth --------------------------------------------


class _NoBytes(EventCodec):
    """Skips encoding: the truths read ``SimRecord.event``, not the bytes."""

    def encode_avro(self, event: Event, *, version: int | None = None) -> bytes:
        return b""

    def encode_json(self, event: Event) -> bytes:
        return b""


# Three weeks so that refunds (1-12 days after the order) and repeat orders happen; the
# delivery faults exercise section 1 (late records, duplicates, re-sent purchases).
SIM: Final = SimConfig(
    users=2_500, days=21.0, duplicate_pct=3.0, out_of_order_pct=3.0, late_pct=1.0
)


@cache
def simulated() -> tuple[tuple[SimRecord, ...], Truth, AttributionTruth]:
    records = tuple(generate(SIM, codec=_NoBytes()))
    truth = compute_truth(
        records, lateness_ms=SIM.lateness_ms, session_timeout_ms=SIM.session_timeout_ms
    )
    config = AttributionConfig(window_ms=SIM.window_ms)
    result = attribution_truth_of(records, config, lateness_ms=SIM.lateness_ms)
    return records, truth, result


def _day(window_start_ms: int) -> str:
    return datetime.fromtimestamp(window_start_ms // 1000, UTC).date().isoformat()


def _kpi_by(truth: Truth, day: bool) -> dict[tuple[str, str], list[int]]:
    """(day or '', currency) -> [orders, gmv, first_orders, refunded] from the KPI truth."""
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in truth.kpi:
        acc = sums[(_day(row.window_start_ms) if day else "", row.currency)]
        acc[0] += row.orders
        acc[1] += row.gmv_minor
        acc[2] += row.first_orders
        acc[3] += row.refunded_minor
    return {k: v for k, v in sums.items() if any(v)}


def test_the_simulated_run_is_a_real_test_of_section_1_and_multi_touch() -> None:
    records, truth, result = simulated()
    assert truth.stats["late"] > 0 and truth.stats["duplicates_dropped"] > 0
    assert truth.stats.get("purchase_duplicates_dropped", 0) > 0
    orders = {(k.anonymous_id, k.transaction_id) for k in result.rows}
    assert len(orders) == truth.stats["orders"] > 150
    per_order = Counter(
        (k.anonymous_id, k.transaction_id) for k in result.rows if k.model == "linear"
    )
    assert sum(1 for n in per_order.values() if n > 1) > 10  # multi-touch orders
    assert len({k.channel for k in result.rows}) >= 6
    first = {k.model: k for k in result.rows}
    assert len(first) == len(MODELS)
    by_model = {
        m: {
            (k.anonymous_id, k.transaction_id, k.channel): s
            for k, s in result.rows.items()
            if k.model == m
        }
        for m in MODELS
    }
    assert len({frozenset(v.items()) for v in by_model.values()}) == len(MODELS)
    # The counted events are the KPI truth's: naive events would give more orders.
    naive = [r.event for r in records if r.event is not None]
    assert sum(e.event_type == "purchase" for e in naive) > truth.stats["orders"]
    counted = counted_events_of(records, lateness_ms=SIM.lateness_ms)
    assert attribution_rows(counted, AttributionConfig(), channel_rules=RULES) == result.rows


@pytest.mark.parametrize("model", MODELS)
def test_credits_per_model_sum_exactly_to_the_kpi_orders_and_gmv(model: str) -> None:
    _, truth, result = simulated()
    credited: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    per_order: Counter[tuple[str, str]] = Counter()
    for key, share in result.rows.items():
        if key.model == model:
            acc = credited[key.currency]
            acc[0] += share
            acc[1] += key.value_minor * share
            acc[2] += share * key.is_first
            per_order[(key.anonymous_id, key.transaction_id)] += share
    assert set(per_order.values()) == {SHARE_UNIT}
    kpi = _kpi_by(truth, day=False)
    assert {c: v for c, v in credited.items()} == {
        c: [v[0] * SHARE_UNIT, v[1] * SHARE_UNIT, v[2] * SHARE_UNIT]
        for (_, c), v in kpi.items()
        if v[0]
    }
    assert {c: v[1] for c, v in credited.items()} == {
        c: g * SHARE_UNIT for c, g in truth.gmv_by_currency.items() if kpi.get(("", c), [0])[0]
    }


@pytest.mark.parametrize("model", MODELS)
def test_daily_roi_per_model_equals_the_kpi_per_day(model: str) -> None:
    """Orders, revenue, first orders on the order's day and refunded on the refund's
    day, summed over channels: the KPI truth's, day by day and currency by currency."""
    _, truth, result = simulated()
    got: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for key, cell in result.roi.items():
        if key.model == model:
            acc = got[(key.day, key.currency)]
            acc[0] += cell.orders_micro
            acc[1] += cell.revenue_micro
            acc[2] += cell.first_orders_micro
            acc[3] += cell.refunded_micro
    want = {k: [v * SHARE_UNIT for v in vals] for k, vals in _kpi_by(truth, day=True).items()}
    assert dict(got) == want
    assert sum(v[3] for v in want.values()) > 0  # the run has refunds
    assert len({day for day, _ in want}) >= 20


def test_ltv_of_the_simulated_run() -> None:
    records, truth, result = simulated()
    kpi = _kpi_by(truth, day=True)
    totals: dict[str, dict[tuple[str, str], list[int]]] = {
        m: defaultdict(lambda: [0, 0, 0]) for m in MODELS
    }
    for key, cell in result.ltv.items():
        acc = totals[key.model][(key.cohort_day, key.currency)]
        acc[0] += cell.customers_micro
        acc[1] += cell.revenue_d7_micro
        acc[2] += cell.revenue_d30_micro
    for model in MODELS:
        customers = {k: v[0] for k, v in totals[model].items()}
        assert customers == {k: v[2] * SHARE_UNIT for k, v in kpi.items() if v[2]}
        # Each customer's shares sum to one, so the revenue totals do not depend on the model.
        assert dict(totals[model]) == dict(totals["first_touch"])
    # Per cohort, recomputed here from the counted purchases: each customer's first
    # order (the smallest (event_time, transaction_id)) and its orders in the same
    # currency within 7 and 30 days, both ends included.
    purchases: dict[str, list[Event]] = defaultdict(list)
    for event in counted_events_of(records, lateness_ms=SIM.lateness_ms):
        if event.event_type == "purchase":
            purchases[event.anonymous_id].append(event)
    want: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for bought in purchases.values():
        first = min(bought, key=lambda e: (e.event_time_ms, e.transaction_id or ""))
        acc = want[(_day(first.event_time_ms), first.currency or "")]
        acc[0] += SHARE_UNIT
        for index, days in ((1, 7), (2, 30)):
            acc[index] += SHARE_UNIT * sum(
                e.value_minor or 0
                for e in bought
                if e.currency == first.currency
                and 0 <= e.event_time_ms - first.event_time_ms <= days * DAY
            )
    assert dict(totals["linear"]) == dict(want)
    assert sum(d30 - d7 for _, d7, d30 in want.values()) > 0  # repeat orders in 8-30 days


def test_all_three_results_agree_with_the_single_functions() -> None:
    records, _, result = simulated()
    counted = counted_events_of(records, lateness_ms=SIM.lateness_ms)
    config = AttributionConfig(window_ms=SIM.window_ms)
    again = attribution_truth(list(reversed(counted)), config)
    assert again == result
