"""The §7-§8 ground truth on hand-made events: stage transitions at exact thresholds,
purchases, RFM values, stage triggers, abandoned carts and the watermark cut."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.triggers import TriggerItem, trigger_id
from simulator.errors import SimConfigError
from simulator.truth import read_truth, write_truth
from simulator.truth_model import DAY_MS, LifecycleParams, Truth
from tests.unit.truth_builders import (
    DAY,
    MIN,
    T0,
    buy,
    cart,
    ev,
    truth_of,
)

# Minutes-scale thresholds: new 10 min, dormant 30 min, churned 60 min.
FAST = LifecycleParams(
    rfm_new_ms=10 * MIN, rfm_dormant_ms=30 * MIN, rfm_churn_ms=60 * MIN, cart_abandon_ms=30 * MIN
)
LATER = T0 + 10 * DAY  # a final watermark after everything


def steps(truth: Truth, anon: str = "a1") -> list[tuple[int, str, str]]:
    """(minutes after T0, from, to) of the visitor's transitions."""
    return [
        ((t.at_ms - T0) // MIN, t.from_stage, t.to_stage)
        for t in truth.transitions
        if t.anonymous_id == anon
    ]


def triggers(truth: Truth, kind: str | None = None) -> list[tuple[str, int]]:
    """(type, minutes after T0) of the triggers, in time order."""
    return [
        (t.trigger_type, (t.occurred_at_ms - T0) // MIN)
        for t in truth.triggers
        if kind is None or t.trigger_type == kind
    ]


# -- stages and transitions ------------------------------------------------------------------


def test_a_single_purchase_walks_through_every_stage_at_the_exact_thresholds() -> None:
    truth = truth_of([buy(T0, "T1")], FAST, watermark=LATER)
    assert steps(truth) == [
        (0, "prospect", "new"),
        (10, "new", "active"),
        (30, "active", "dormant"),
        (60, "dormant", "churned"),
    ]
    assert triggers(truth) == [
        ("first_purchase", 0),
        ("segment_changed", 0),
        ("segment_changed", 10),
        ("segment_changed", 30),
        ("user_became_dormant", 30),
        ("segment_changed", 60),
        ("user_churned", 60),
    ]
    (rfm,) = truth.rfm
    assert (rfm.stage, rfm.frequency, rfm.monetary_minor, rfm.as_of_ms) == (
        "churned",
        1,
        1000,
        LATER,
    )


def test_trigger_ids_use_the_documented_parts() -> None:
    truth = truth_of([buy(T0, "T1")], FAST, watermark=LATER)
    dormant_at = T0 + 30 * MIN
    expected = {
        ("first_purchase", trigger_id("first_purchase", "a1", "T1")),
        ("segment_changed", trigger_id("segment_changed", "a1", str(T0), "new")),
        ("segment_changed", trigger_id("segment_changed", "a1", str(dormant_at), "dormant")),
        ("user_became_dormant", trigger_id("user_became_dormant", "a1", str(dormant_at))),
        ("user_churned", trigger_id("user_churned", "a1", str(T0 + 60 * MIN))),
    }
    assert expected <= {(t.trigger_type, t.trigger_id) for t in truth.triggers}
    assert len({t.trigger_id for t in truth.triggers}) == len(truth.triggers)
    dormant = next(t for t in truth.triggers if t.trigger_type == "user_became_dormant")
    assert (dormant.previous_segment, dormant.segment) == ("active", "dormant")


@pytest.mark.parametrize(
    ("watermark_min", "last_step", "stage"),
    # Half-open: a step exactly at the watermark waits for the next advance.
    [(30, (10, "new", "active"), "active"), (31, (30, "active", "dormant"), "dormant")],
)
def test_transitions_and_triggers_stop_at_the_final_watermark(
    watermark_min: int, last_step: tuple[int, str, str], stage: str
) -> None:
    truth = truth_of([buy(T0, "T1")], FAST, watermark=T0 + watermark_min * MIN)
    assert steps(truth)[-1] == last_step
    assert max(t.occurred_at_ms for t in truth.triggers) == T0 + last_step[0] * MIN
    (rfm,) = truth.rfm
    assert (rfm.stage, rfm.as_of_ms) == (stage, T0 + watermark_min * MIN)


def test_a_purchase_while_new_keeps_new_but_moves_the_dormancy_deadline() -> None:
    truth = truth_of([buy(T0, "T1"), buy(T0 + 5 * MIN, "T2")], FAST, watermark=LATER)
    assert steps(truth) == [
        (0, "prospect", "new"),
        (10, "new", "active"),
        (35, "active", "dormant"),
        (65, "dormant", "churned"),
    ]


def test_a_purchase_while_active_keeps_active_and_moves_the_deadline() -> None:
    truth = truth_of([buy(T0, "T1"), buy(T0 + 20 * MIN, "T2")], FAST, watermark=LATER)
    assert steps(truth)[1:] == [
        (10, "new", "active"),
        (50, "active", "dormant"),
        (80, "dormant", "churned"),
    ]
    assert not triggers(truth, "user_reactivated")


@pytest.mark.parametrize(("back_min", "from_stage"), [(40, "dormant"), (70, "churned")])
def test_a_purchase_while_dormant_or_churned_reactivates(back_min: int, from_stage: str) -> None:
    back = T0 + back_min * MIN
    truth = truth_of([buy(T0, "T1"), buy(back, "T2")], FAST, watermark=back + 20 * MIN)
    assert steps(truth)[-1] == (back_min, from_stage, "active")
    (reactivated,) = [t for t in truth.triggers if t.trigger_type == "user_reactivated"]
    assert reactivated.trigger_id == trigger_id("user_reactivated", "a1", "T2")
    assert (reactivated.occurred_at_ms, reactivated.previous_segment) == (back, from_stage)
    (rfm,) = truth.rfm
    assert (rfm.stage, rfm.frequency, rfm.last_purchase_ms) == ("active", 2, back)


def test_a_purchase_exactly_at_a_threshold_absorbs_it() -> None:
    # At 30 min the buyer would become dormant; the purchase in that millisecond keeps
    # them active: no dormant step, no reactivation.
    truth = truth_of([buy(T0, "T1"), buy(T0 + 30 * MIN, "T2")], FAST, watermark=LATER)
    assert steps(truth)[1:3] == [(10, "new", "active"), (60, "active", "dormant")]
    assert not triggers(truth, "user_reactivated")
    # At 10 min the buyer stops being new: the purchase then is a new -> active step.
    at_ten = truth_of([buy(T0, "T1"), buy(T0 + 10 * MIN, "T2")], FAST, watermark=LATER)
    assert steps(at_ten)[1] == (10, "new", "active")
    assert not triggers(at_ten, "user_reactivated")


def test_purchases_in_one_millisecond_are_one_step_credited_to_the_smallest_transaction() -> None:
    back = T0 + 45 * MIN
    events = [buy(T0, "T1"), buy(back, "T9"), buy(back, "T3")]
    truth = truth_of(events, FAST, watermark=back + MIN)
    assert steps(truth)[-1] == (45, "dormant", "active")
    (reactivated,) = [t for t in truth.triggers if t.trigger_type == "user_reactivated"]
    assert reactivated.trigger_id == trigger_id("user_reactivated", "a1", "T3")
    assert truth.rfm[0].frequency == 3


def test_unusual_thresholds_jump_from_new_straight_to_dormant() -> None:
    odd = LifecycleParams(rfm_new_ms=60 * MIN, rfm_dormant_ms=30 * MIN, rfm_churn_ms=90 * MIN)
    truth = truth_of([buy(T0, "T1")], odd, watermark=LATER)
    assert steps(truth) == [
        (0, "prospect", "new"),
        (60, "new", "dormant"),
        (90, "dormant", "churned"),
    ]


def test_default_thresholds_are_days() -> None:
    truth = truth_of([buy(T0, "T1")], watermark=T0 + 200 * DAY)
    assert [(t.at_ms - T0) // DAY_MS for t in truth.transitions] == [0, 30, 60, 180]


def test_rfm_counts_purchases_up_to_the_watermark_and_money_in_the_first_currency() -> None:
    events = [
        ev("session_start", T0 - MIN, "e0", utm_source="newsletter", utm_medium="email"),
        buy(T0, "T1", value=500, currency="CNY"),
        buy(T0 + 5 * MIN, "T2", value=9900, currency="USD"),
        buy(T0 + 8 * MIN, "T3", value=700, currency="CNY"),
        buy(T0 + 20 * MIN, "T4", value=100_000, currency="CNY"),  # after the watermark
        buy(T0 + 25 * MIN, "T5", anon="late-buyer"),  # first purchase after the watermark
    ]
    truth = truth_of(events, FAST, watermark=T0 + 15 * MIN)
    (rfm,) = truth.rfm
    assert rfm == rfm._replace(
        anonymous_id="a1",
        stage="active",
        first_purchase_ms=T0,
        last_purchase_ms=T0 + 8 * MIN,
        frequency=3,
        monetary_minor=1200,
        currency="CNY",
        channel="email",
        as_of_ms=T0 + 15 * MIN,
    )
    assert {t.anonymous_id for t in truth.triggers} == {"a1"}


def test_a_forgotten_buyer_stops_transitioning_and_comes_back_as_a_new_buyer() -> None:
    short = LifecycleParams(
        rfm_new_ms=10 * MIN, rfm_dormant_ms=30 * MIN, rfm_churn_ms=60 * MIN, buyer_ttl_ms=45 * MIN
    )
    back = T0 + 2 * 60 * MIN
    truth = truth_of([buy(T0, "T1"), buy(back, "T2")], short, watermark=LATER)
    # Life 1 is forgotten at 45 min, before it would churn at 60 min: it leaves
    # 'dormant' then (issue #12 bug 4: it stayed there and was counted twice).
    assert steps(truth) == [
        (0, "prospect", "new"),
        (10, "new", "active"),
        (30, "active", "dormant"),
        (45, "dormant", "forgotten"),
        (120, "prospect", "new"),
        (130, "new", "active"),
        (150, "active", "dormant"),
        (165, "dormant", "forgotten"),
    ]
    assert triggers(truth, "first_purchase") == [("first_purchase", 0), ("first_purchase", 120)]
    (rfm,) = truth.rfm
    assert (rfm.first_purchase_ms, rfm.stage, rfm.as_of_ms) == (back, "dormant", back + 45 * MIN)


def test_lifecycle_thresholds_must_be_positive() -> None:
    with pytest.raises(SimConfigError, match="rfm_new_ms"):
        LifecycleParams(rfm_new_ms=0)
    assert LifecycleParams.from_days() == LifecycleParams()
    assert LifecycleParams.from_days(cart_abandon_minutes=1).cart_abandon_ms == MIN


# -- abandoned carts -------------------------------------------------------------------------


def abandoned(truth: Truth) -> list[tuple[int, int | None, tuple[TriggerItem, ...]]]:
    """(minutes after T0, cart value, items) of the cart_abandoned triggers."""
    return [
        ((t.occurred_at_ms - T0) // MIN, t.cart_value_minor, t.items)
        for t in truth.triggers
        if t.trigger_type == "cart_abandoned"
    ]


def test_an_abandoned_cart_fires_at_the_last_activity_plus_the_wait() -> None:
    truth = truth_of([cart("add_to_cart", T0, "c1", [("sku-1", 2, 300)])], watermark=LATER)
    (trigger,) = truth.triggers
    assert trigger == trigger._replace(
        trigger_id=trigger_id("cart_abandoned", "a1", "c1"),
        trigger_type="cart_abandoned",
        anonymous_id="a1",
        occurred_at_ms=T0 + 30 * MIN,
        cart_value_minor=600,
        currency="CNY",
        items=(TriggerItem("sku-1", 2, 300),),
        segment=None,
    )


def test_removals_count_down_and_an_empty_cart_never_fires() -> None:
    partly = [
        cart("add_to_cart", T0, "c1", [("sku-1", 2, 300)]),
        cart("add_to_cart", T0 + MIN, "c2", [("sku-2", 1, 1000)]),
        cart("remove_from_cart", T0 + 2 * MIN, "c3", [("sku-1", 1, 300)]),
    ]
    assert abandoned(truth_of(partly, watermark=LATER)) == [
        (32, 1300, (TriggerItem("sku-1", 1, 300), TriggerItem("sku-2", 1, 1000)))
    ]
    emptied = [
        cart("add_to_cart", T0, "c1", [("sku-1", 1, 300)]),
        cart("remove_from_cart", T0 + MIN, "c2", [("sku-1", 5, 300)]),  # more than there is
    ]
    assert abandoned(truth_of(emptied, watermark=LATER)) == []
    readded = [*emptied, cart("add_to_cart", T0 + 2 * MIN, "c3", [("sku-1", 1, 250)])]
    assert abandoned(truth_of(readded, watermark=LATER)) == [
        (32, 250, (TriggerItem("sku-1", 1, 250),))
    ]
    never_added = [cart("remove_from_cart", T0, "c1", [("sku-1", 1, 300)])]
    assert abandoned(truth_of(never_added, watermark=LATER)) == []


def test_view_cart_is_an_activity_that_does_not_change_the_contents() -> None:
    events = [
        cart("add_to_cart", T0, "c1", [("sku-1", 1, 300)]),
        cart("view_cart", T0 + 10 * MIN, "c2", [("sku-1", 7, 999), ("sku-9", 1, 5)]),
    ]
    (trigger,) = truth_of(events, watermark=LATER).triggers
    assert trigger.trigger_id == trigger_id("cart_abandoned", "a1", "c2")
    assert (trigger.occurred_at_ms, trigger.cart_value_minor) == (T0 + 40 * MIN, 300)


@pytest.mark.parametrize(
    ("checkout_after", "fires"), [(10 * MIN, False), (30 * MIN, False), (30 * MIN + 1, True)]
)
def test_a_checkout_within_the_wait_cancels_the_trigger(checkout_after: int, fires: bool) -> None:
    events = [
        cart("add_to_cart", T0, "c1", [("sku-1", 1, 300)]),
        cart("begin_checkout", T0 + checkout_after, "c2", [("sku-1", 1, 300)]),
    ]
    assert len(abandoned(truth_of(events, watermark=LATER))) == fires


def test_checkout_and_purchase_empty_the_cart() -> None:
    after_checkout = [
        cart("add_to_cart", T0, "c1", [("sku-1", 1, 300)]),
        cart("begin_checkout", T0 + MIN, "c2"),
        cart("view_cart", T0 + 2 * MIN, "c3"),
    ]
    assert abandoned(truth_of(after_checkout, watermark=LATER)) == []
    after_purchase = [
        cart("add_to_cart", T0, "c1", [("sku-1", 1, 300)]),
        buy(T0 + 40 * MIN, "T1"),
        cart("add_to_cart", T0 + 50 * MIN, "c3", [("sku-2", 1, 700)]),
    ]
    assert abandoned(truth_of(after_purchase, watermark=LATER)) == [
        (30, 300, (TriggerItem("sku-1", 1, 300),)),
        (80, 700, (TriggerItem("sku-2", 1, 700),)),
    ]


def test_buy_now_checks_out_the_add_in_the_same_millisecond_whatever_the_ids() -> None:
    events = [
        cart("add_to_cart", T0, "zz-add", [("sku-1", 1, 300)]),
        cart("begin_checkout", T0, "aa-checkout", [("sku-1", 1, 300)]),
    ]
    assert abandoned(truth_of(events, watermark=LATER)) == []


def test_one_trigger_per_last_activity_and_the_cart_carries_over_between_sessions() -> None:
    events = [
        cart("add_to_cart", T0, "c1", [("sku-1", 1, 300)]),
        cart("view_cart", T0 + 10 * MIN, "c2"),  # replaces c1 as the last activity
        cart("add_to_cart", T0 + 50 * MIN, "c3", [("sku-2", 2, 100)], session="s2"),
    ]
    truth = truth_of(events, watermark=LATER)
    assert abandoned(truth) == [
        (40, 300, (TriggerItem("sku-1", 1, 300),)),
        (80, 500, (TriggerItem("sku-1", 1, 300), TriggerItem("sku-2", 2, 100))),
    ]
    assert [t.trigger_id for t in truth.triggers] == [
        trigger_id("cart_abandoned", "a1", "c2"),
        trigger_id("cart_abandoned", "a1", "c3"),
    ]


@pytest.mark.parametrize(("watermark_after", "fires"), [(30 * MIN, False), (30 * MIN + 1, True)])
def test_a_cart_trigger_after_the_final_watermark_is_not_included(
    watermark_after: int, fires: bool
) -> None:
    events = [cart("add_to_cart", T0, "c1", [("sku-1", 1, 300)])]
    assert len(abandoned(truth_of(events, watermark=T0 + watermark_after))) == fires


def test_the_watermark_visitor_of_these_tests_triggers_nothing() -> None:
    truth = truth_of([], watermark=LATER)
    assert truth.triggers == () and truth.transitions == ()
    assert truth.stats["visitors"] == 1
    assert {r.channel for r in truth.retention} == {"direct"}


# -- the truth file --------------------------------------------------------------------------


def test_lifecycle_fields_survive_the_truth_file(tmp_path: Path) -> None:
    events = [
        cart("add_to_cart", T0, "c1", [("sku-1", 2, 300), ("sku-2", 1, 5)]),
        buy(T0 + 40 * MIN, "T1"),
        buy(T0 + 40 * MIN + 400 * DAY, "T2"),
    ]
    truth = truth_of(events, FAST, watermark=T0 + 500 * DAY)
    assert truth.order_gaps and truth.rfm and truth.transitions
    assert {t.trigger_type for t in truth.triggers} >= {"cart_abandoned", "user_reactivated"}
    path = tmp_path / "truth.json"
    write_truth(truth, path)
    assert read_truth(path) == truth
