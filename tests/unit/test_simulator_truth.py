"""The ground truth on tiny hand-made record lists: one test per rule of docs/semantics.md."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.model import STREAM_OF_EVENT, Event, Item
from schemas.reasons import Reason
from simulator.records import SimRecord
from simulator.truth import compute_truth, read_truth, write_truth
from simulator.truth_model import FunnelSpec, Truth, funnel_specs
from streams.funnels import load_funnels

DEFAULT_FUNNELS = funnel_specs()

MIN = 60_000
HOUR = 3_600_000
LATENESS = 5 * MIN
TIMEOUT = 30 * MIN
T0 = 1_793_491_200_000  # 2026-11-01T00:00Z, a minute boundary
FUNNELS_YAML = Path(__file__).resolve().parents[2] / "streams" / "funnels.yaml"


def ev(event_type: str, t: int, event_id: str, **fields: Any) -> Event:
    """An event at T0 + t; ``anon`` and ``session`` default to a1 / s1."""
    anon = fields.pop("anon", "a1")
    session = fields.pop("session", "s1")
    return Event(
        stream=STREAM_OF_EVENT[event_type],  # type: ignore[arg-type]
        event_type=event_type,
        event_id=event_id,
        event_time_ms=T0 + t,
        sent_time_ms=T0 + t,
        anonymous_id=anon,
        session_id=session,
        **fields,
    )


def rec(event: Event, partition: int = 0, *, intended_late: bool = False) -> SimRecord:
    return SimRecord(
        stream=event.stream,
        partition=partition,
        key=event.anonymous_id.encode(),
        value=b"",
        send_time_ms=event.event_time_ms,
        event=event,
        malformed_reason=None,
        is_duplicate=False,
        intended_late=intended_late,
    )


def truth_of(
    events: Sequence[Event | SimRecord], funnels: Sequence[FunnelSpec] = DEFAULT_FUNNELS
) -> Truth:
    records = [e if isinstance(e, SimRecord) else rec(e) for e in events]
    return compute_truth(records, lateness_ms=LATENESS, session_timeout_ms=TIMEOUT, funnels=funnels)


def entered(truth: Truth, funnel: str) -> dict[int, int]:
    counts: Counter[int] = Counter()
    for row in truth.funnel_steps:
        if row.funnel == funnel:
            counts[row.step] += row.entered
    return dict(counts)


def purchase(t: int, event_id: str, txn: str, value: int = 1000, **fields: Any) -> Event:
    fields.update(transaction_id=txn, currency="CNY", value_minor=value)
    return ev("purchase", t, event_id, **fields)


CHECKOUT = ("begin_checkout", "add_shipping_info", "add_payment_info")


def test_equal_timestamps_count_for_the_next_step_whatever_the_event_ids() -> None:
    # All five steps in one millisecond; ids sort against the step order on purpose.
    events = [
        ev("session_start", 0, "e5"),
        ev("view_item", 0, "e4"),
        ev("add_to_cart", 0, "e3"),
        ev("begin_checkout", 0, "e2"),
        purchase(0, "e1", "T1"),
    ]
    truth = truth_of(events)
    assert entered(truth, "shop") == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    (ttc,) = [r for r in truth.funnel_ttc if r.funnel == "shop"]
    assert (ttc.le_seconds, ttc.converted) == (10.0, 1)


def test_a_later_step_before_the_earlier_one_earns_no_credit() -> None:
    events = [
        ev("session_start", 0, "e1"),
        ev("add_to_cart", 1000, "e2"),
        ev("view_item", 2000, "e3"),
    ]
    assert entered(truth_of(events), "shop") == {1: 1, 2: 1}


def test_one_event_never_fills_two_steps_of_the_same_type() -> None:
    twice = FunnelSpec("two_views", ("view_item", "view_item"), HOUR)
    one_view = [ev("view_item", 0, "v1")]
    two_views = [ev("view_item", 0, "v1"), ev("view_item", 0, "v2")]
    assert entered(truth_of(one_view, [twice]), "two_views") == {1: 1}
    assert entered(truth_of(two_views, [twice]), "two_views") == {1: 1, 2: 1}


def test_the_window_is_inclusive() -> None:
    def run(last_offset: int) -> dict[int, int]:
        events = [
            ev("begin_checkout", 0, "c1"),
            ev("add_shipping_info", 20 * MIN, "c2"),
            ev("add_payment_info", 40 * MIN, "c3"),
            purchase(last_offset, "c4", "T1"),
        ]
        return entered(truth_of(events), "checkout")

    assert run(HOUR) == {1: 1, 2: 1, 3: 1, 4: 1}
    assert run(HOUR + 1) == {1: 1, 2: 1, 3: 1}


def test_the_truth_counts_every_funnel_of_the_yaml_by_default() -> None:
    # streams/funnels.yaml is the only list of funnels: the truth reads it as FunnelSpecs.
    configured = load_funnels()
    events = [ev(f.steps[0], k * 1000, f"e{k}") for k, f in enumerate(configured)]
    records = [rec(e) for e in events]
    truth = compute_truth(records, lateness_ms=LATENESS, session_timeout_ms=TIMEOUT)
    assert truth.funnels == DEFAULT_FUNNELS == funnel_specs(configured)
    assert [f.name for f in truth.funnels] == [f.name for f in configured]
    assert {r.funnel for r in truth.funnel_steps} == {f.name for f in configured}


def test_a_funnel_added_to_the_yaml_reaches_the_truth(tmp_path: Path) -> None:
    document = yaml.safe_load(FUNNELS_YAML.read_text(encoding="utf-8"))
    browse = {"name": "browse", "steps": ["session_start", "view_item"], "window": "30m"}
    document["funnels"].append({**browse, "scope": "user"})
    funnels_file = tmp_path / "funnels.yaml"
    funnels_file.write_text(yaml.safe_dump(document), encoding="utf-8")

    specs = funnel_specs(load_funnels(funnels_file))
    assert specs[:-1] == DEFAULT_FUNNELS
    assert specs[-1] == FunnelSpec("browse", ("session_start", "view_item"), 30 * MIN, "user")
    events = [ev("session_start", 0, "e1"), ev("view_item", 30 * MIN, "e2", session="s2")]
    assert entered(truth_of(events, specs), "browse") == {1: 1, 2: 1}
    assert entered(truth_of(events), "browse") == {}


def test_time_to_convert_bucket_bounds_are_inclusive() -> None:
    def bucket(ttc_ms: int) -> float:
        # Steps spread out so no gap exceeds the session timeout.
        events = [ev("begin_checkout", 0, "c1"), ev("add_shipping_info", ttc_ms // 3, "c2")]
        events += [ev("add_payment_info", 2 * ttc_ms // 3, "c3"), purchase(ttc_ms, "c4", "T1")]
        (row,) = [r for r in truth_of(events).funnel_ttc if r.funnel == "checkout"]
        return row.le_seconds

    assert bucket(10_000) == 10.0
    assert bucket(10_001) == 30.0
    assert bucket(3_600_000) == 3600.0


def test_the_furthest_attempt_is_credited_with_its_step1_dimensions() -> None:
    # Attempt 1 (desktop, t=0) cannot reach the payment at 70 min (outside its window);
    # attempt 2 (mobile, t=50 min) reaches it. Page views keep the gaps under 30 min.
    events = [
        ev("begin_checkout", 0, "b1", device="desktop"),
        ev("add_shipping_info", 1 * MIN, "s1"),
        ev("page_view", 20 * MIN, "p1"),
        ev("page_view", 40 * MIN, "p2"),
        ev("begin_checkout", 50 * MIN, "b2", device="mobile"),
        ev("add_shipping_info", 55 * MIN, "s2"),
        ev("add_payment_info", 70 * MIN, "pay"),
    ]
    truth = truth_of(events)
    rows = [r for r in truth.funnel_steps if r.funnel == "checkout"]
    assert {(r.step, r.device, r.window_start_ms, r.entered) for r in rows} == {
        (1, "mobile", T0 + 50 * MIN, 1),
        (2, "mobile", T0 + 50 * MIN, 1),
        (3, "mobile", T0 + 50 * MIN, 1),
    }


def test_equal_levels_credit_the_earliest_attempt() -> None:
    events = [
        ev("begin_checkout", 0, "b1", device="desktop"),
        ev("begin_checkout", 5 * MIN, "b2", device="mobile"),
        ev("add_shipping_info", 6 * MIN, "s1"),
    ]
    rows = [r for r in truth_of(events).funnel_steps if r.funnel == "checkout"]
    assert {(r.step, r.device, r.window_start_ms) for r in rows} == {
        (1, "desktop", T0),
        (2, "desktop", T0),
    }


def test_equal_step1_times_credit_the_smaller_event_id() -> None:
    events = [
        ev("begin_checkout", 0, "b2", device="mobile"),
        ev("begin_checkout", 0, "b1", device="tablet"),
    ]
    rows = [r for r in truth_of(events).funnel_steps if r.funnel == "checkout"]
    assert [(r.step, r.device, r.entered) for r in rows] == [(1, "tablet", 1)]


def test_sessions_split_only_when_the_gap_exceeds_the_timeout() -> None:
    same = truth_of([ev("session_start", 0, "e1"), ev("view_item", TIMEOUT, "e2")])
    assert entered(same, "shop") == {1: 1, 2: 1}
    assert same.stats["session_segments"] == 1
    split = truth_of([ev("session_start", 0, "e1"), ev("view_item", TIMEOUT + 1, "e2")])
    # The second segment has no session_start, so it is not in the shop funnel.
    assert entered(split, "shop") == {1: 1}
    assert split.stats["session_segments"] == 2


def test_segments_without_step1_are_not_in_the_funnel() -> None:
    truth = truth_of([ev("page_view", 0, "e1"), ev("view_item", 1000, "e2")])
    assert truth.funnel_steps == ()
    assert truth.funnel_outcomes == ()


def test_late_is_decided_per_topic_partition_watermark() -> None:
    ahead = ev("page_view", 10 * MIN, "ahead")
    at_watermark = ev("page_view", 5 * MIN, "on_time")
    below = ev("page_view", 5 * MIN - 1, "late")
    other_partition = ev("page_view", 0, "other", anon="a2")
    other_topic = ev("add_to_cart", 0, "cart")
    truth = truth_of(
        [rec(ahead), rec(at_watermark), rec(below), rec(other_partition, 1), rec(other_topic)]
    )
    assert truth.late_event_ids == frozenset({"late"})
    assert truth.stats["late"] == 1
    assert truth.stats["counted_events"] == 4


def test_late_purchases_count_nowhere() -> None:
    truth = truth_of([rec(purchase(10 * MIN, "p1", "T1")), rec(purchase(0, "p2", "T2"))])
    assert [(r.orders, r.gmv_minor) for r in truth.kpi] == [(1, 1000)]
    assert truth.late_event_ids == frozenset({"p2"})


def test_intended_late_is_compared_with_the_rule() -> None:
    first = ev("page_view", 10 * MIN, "x")
    truth = truth_of([rec(first), rec(ev("page_view", 9 * MIN, "y"), intended_late=True)])
    assert truth.stats["intended_late_mismatches"] == 1


def test_duplicates_by_event_id_count_once_per_visitor() -> None:
    order = purchase(0, "p1", "T1")
    other_visitor = purchase(0, "p1", "T9", anon="a2")
    truth = truth_of([order, order, other_visitor])
    assert sum(r.orders for r in truth.kpi) == 2
    assert truth.stats["duplicates_dropped"] == 1


def test_a_purchase_counts_once_per_transaction_earliest_then_smallest_id() -> None:
    later = purchase(2000, "p0", "T1", country="US")
    earliest = purchase(1000, "p9", "T1", country="CN")
    truth = truth_of([later, earliest])
    assert [(r.country, r.orders) for r in truth.kpi] == [("CN", 1)]
    tie_a = purchase(1000, "pb", "T2", country="JP")
    tie_b = purchase(1000, "pa", "T2", country="FR")
    truth = truth_of([tie_a, tie_b])
    assert [(r.country, r.orders) for r in truth.kpi] == [("FR", 1)]
    assert truth.stats["purchase_duplicates_dropped"] == 1


def test_the_funnel_uses_the_counted_purchase_only() -> None:
    # The re-sent purchase (same transaction, later) must not satisfy the funnel's step.
    events = [
        ev("begin_checkout", 0, "b1"),
        ev("add_shipping_info", 1000, "s1"),
        purchase(1500, "p1", "T1"),
        ev("add_payment_info", 2000, "a1"),
        purchase(3000, "p2", "T1"),
    ]
    assert entered(truth_of(events), "checkout") == {1: 1, 2: 1, 3: 1}


def test_kpi_columns() -> None:
    items = (
        Item("SKU-1", 1000, quantity=2, coupon="SKU15OFF", discount_minor=150),
        Item("SKU-2", 500, quantity=1),
    )
    first = purchase(0, "p1", "T1", value=2200, items=items, discount_minor=100)
    repeat = purchase(MIN, "p2", "T2", value=300, coupon="DOUBLE11")
    refund = ev("refund", 2 * MIN, "r1", transaction_id="T1", currency="CNY", value_minor=700)
    failed = ev("payment_failed", 2 * MIN, "f1", currency="CNY", value_minor=300)
    cancelled = ev("order_cancelled", 2 * MIN, "c1", currency="CNY", value_minor=300)
    rows = truth_of([first, repeat, refund, failed, cancelled]).kpi
    assert [r._asdict() for r in rows] == [
        {
            "window_start_ms": T0, "channel": "direct", "campaign": "", "device": "desktop",
            "platform": "web", "country": "", "currency": "CNY", "orders": 1,
            "gmv_minor": 2200, "items": 3, "coupon_orders": 1, "discount_minor": 400,
            "first_orders": 1, "repeat_orders": 0, "refunds": 0, "refunded_minor": 0,
            "payment_failures": 0, "cancellations": 0,
        },
        {
            "window_start_ms": T0 + MIN, "channel": "direct", "campaign": "",
            "device": "desktop", "platform": "web", "country": "", "currency": "CNY",
            "orders": 1, "gmv_minor": 300, "items": 0, "coupon_orders": 1, "discount_minor": 0,
            "first_orders": 0, "repeat_orders": 1, "refunds": 0, "refunded_minor": 0,
            "payment_failures": 0, "cancellations": 0,
        },
        {
            "window_start_ms": T0 + 2 * MIN, "channel": "direct", "campaign": "",
            "device": "desktop", "platform": "web", "country": "", "currency": "CNY",
            "orders": 0, "gmv_minor": 0, "items": 0, "coupon_orders": 0, "discount_minor": 0,
            "first_orders": 0, "repeat_orders": 0, "refunds": 1, "refunded_minor": 700,
            "payment_failures": 1, "cancellations": 1,
        },
    ]  # fmt: skip


def test_kpi_dimensions_come_from_each_event_and_channel_rules() -> None:
    paid = purchase(0, "p1", "T1", utm_source="baidu", utm_medium="cpc", utm_campaign="brand")
    kol = purchase(0, "p2", "T2", utm_source="douyin", utm_medium="kol", utm_campaign="lily")
    rows = truth_of([paid, kol]).kpi
    assert sorted((r.channel, r.campaign) for r in rows) == [
        ("kol", "lily"),
        ("paid_search", "brand"),
    ]


def test_outcomes_close_by_the_final_watermark_of_the_partition_group() -> None:
    # Visitor a1 (partition 0) drops at level 1; clickstream p0 moves far ahead, but the
    # cart topic's partition 0 lags, so the group's watermark is the cart one.
    stalled = [ev("session_start", 0, "e1"), ev("view_item", 1000, "e2")]
    lagging_cart = ev("add_to_cart", 20 * MIN, "c1", anon="a3", session="s3")
    far_ahead = ev("page_view", 5 * HOUR, "x1", anon="a2", session="s2")
    truth = truth_of([*map(rec, stalled), rec(lagging_cart), rec(far_ahead)])
    assert truth.final_watermarks == {0: T0 + 20 * MIN - LATENESS}
    outcomes = {(r.funnel, r.outcome): r.entities for r in truth.funnel_outcomes}
    assert outcomes == {("shop", "in_progress"): 1}

    ahead_cart = ev("add_to_cart", 5 * HOUR, "c1", anon="a3", session="s3")
    truth = truth_of([*map(rec, stalled), rec(ahead_cart), rec(far_ahead)])
    outcomes = {(r.funnel, r.outcome): r.entities for r in truth.funnel_outcomes}
    assert outcomes == {("shop", "dropped"): 1}


def test_a_segment_closes_only_when_the_watermark_passes_its_end_plus_timeout() -> None:
    stalled = ev("session_start", 0, "e1")
    # Watermark = (max - lateness) == end + timeout exactly: not yet passed.
    edge = ev("page_view", TIMEOUT + LATENESS, "x1", anon="a2", session="s2")
    truth = truth_of([stalled, edge])
    assert {r.outcome for r in truth.funnel_outcomes} == {"in_progress"}
    past = ev("page_view", TIMEOUT + LATENESS + 1, "x1", anon="a2", session="s2")
    truth = truth_of([stalled, past])
    assert {r.outcome for r in truth.funnel_outcomes} == {"dropped"}


def test_user_scope_groups_attempts_and_credits_within_the_group() -> None:
    funnel = FunnelSpec("user_buy", ("session_start", "purchase"), HOUR, scope="user")
    events = [
        ev("session_start", 0, "s-a", session="s1", device="desktop"),
        ev("session_start", 30 * MIN, "s-b", session="s2", device="mobile"),
        purchase(80 * MIN, "p1", "T1", session="s2"),
        ev("session_start", 2 * HOUR, "s-c", session="s3", device="tablet"),
    ]
    truth = truth_of(events, [funnel])
    rows = {(r.device, r.step, r.window_start_ms): r.entered for r in truth.funnel_steps}
    # Group 1 = s-a and s-b (within W of s-a); s-b reaches the purchase (50 min), s-a not.
    assert rows == {
        ("mobile", 1, T0 + 30 * MIN): 1,
        ("mobile", 2, T0 + 30 * MIN): 1,
        ("tablet", 1, T0 + 2 * HOUR): 1,
    }


def test_retention_by_cohort_day_and_first_touch_channel() -> None:
    day = 86_400_000
    events = [
        ev("session_start", 0, "e1", utm_source="newsletter", utm_medium="email"),
        ev("session_start", 2 * day, "e2", session="s2"),
        ev("session_start", 2 * day + 1000, "e3", session="s2"),
        # Beyond day 30, and within the 35-day anonymous TTL of e3 (same visitor).
        ev("session_start", 31 * day, "e4", session="s3"),
    ]
    rows = truth_of(events).retention
    daily_visits = [
        (r.cohort_start, r.channel, r.period, r.users)
        for r in rows
        if (r.cohort_kind, r.granularity, r.activity) == ("first_visit", "day", "visit")
    ]
    assert daily_visits == [("2026-11-01", "email", 0, 1), ("2026-11-01", "email", 2, 1)]


def test_dead_letters_by_stream_and_reason() -> None:
    bad = SimRecord(
        stream="cart",
        partition=2,
        key=b"a1",
        value=b"\x1f\x8b",
        send_time_ms=T0,
        event=None,
        malformed_reason=Reason.UNDECODABLE,
        is_duplicate=False,
        intended_late=False,
    )
    truth = truth_of([bad, bad])
    assert [tuple(r) for r in truth.dead_letters] == [("cart", "undecodable", 2)]
    assert truth.stats["malformed"] == 2


def test_truth_file_round_trip(tmp_path: Path) -> None:
    events = [ev("begin_checkout", 0, "c1"), ev("add_shipping_info", 1, "c2")]
    events += [ev("add_payment_info", 2, "c3"), purchase(20 * MIN, "c4", "T1")]
    truth = truth_of([*events, ev("page_view", 5 * HOUR, "late-pusher", anon="b")])
    (ttc,) = [r for r in truth.funnel_ttc if r.funnel == "checkout"]
    assert ttc.le_seconds == 1800.0
    infinite = FunnelSpec("slow", ("session_start", "purchase"), 100 * 86_400_000, "user")
    slow = truth_of(
        [ev("session_start", 0, "s1"), purchase(2 * 86_400_000, "p1", "T7", session="s9")],
        [infinite],
    )
    assert [r.le_seconds for r in slow.funnel_ttc] == [math.inf]
    for original in (truth, slow):
        path = tmp_path / "truth.json"
        write_truth(original, path)
        assert read_truth(path) == original


def test_reading_a_foreign_file_names_the_fix(tmp_path: Path) -> None:
    from simulator.errors import TruthFileError

    path = tmp_path / "other.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(TruthFileError, match="regenerate"):
        read_truth(path)
