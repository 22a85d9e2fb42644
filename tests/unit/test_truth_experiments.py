"""The experiment readouts' truth (simulator/truth_experiments.py) on hand-built events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from schemas.model import Event
from simulator.records import SimRecord
from simulator.truth_experiments import (
    ExperimentTruth,
    MeanSums,
    ProportionCounts,
    RatioSums,
    experiment_truth,
)
from streams.experiment_stats import Moments, ProportionStats, always_valid_test
from streams.experiments import ExperimentDef, ExposureRule, parse_experiments
from streams.funnels import load_funnels
from tests.unit.truth_builders import LATENESS, MIN, T0, TIMEOUT, buy, ev, rec

EXPERIMENTS = parse_experiments(
    """
experiments:
  - name: cb
    variants: [A, B]
    control: A
    primary: {funnel: checkout, step: purchase}
    guardrails: [payment_failure_rate, refund_rate, checkout_error_rate]
""",
    funnels=load_funnels(),
)
CB = EXPERIMENTS[0]
AT_CHECKOUT = replace(CB, exposure=ExposureRule("begin_checkout"))


def tagged(variant: str | None) -> dict[str, Any]:
    return {} if variant is None else {"experiments": {"cb": variant}}


def checkout(
    anon: str, t: int, variant: str | None, txn: str | None = "T1", **fields: Any
) -> list[Event]:
    """begin_checkout, add_shipping_info, add_payment_info (one minute apart) and, with a
    ``txn``, a 1000 CNY purchase a minute later, all carrying ``variant``."""
    kw = {"anon": anon, **tagged(variant), **fields}
    events = [
        ev("begin_checkout", t, f"{anon}-bc-{t}", **kw),
        ev("add_shipping_info", t + MIN, f"{anon}-si-{t}", **kw),
        ev("add_payment_info", t + 2 * MIN, f"{anon}-pi-{t}", **kw),
    ]
    if txn is not None:
        events.append(buy(t + 3 * MIN, f"{anon}-{txn}", **kw))
    return events


def truth_of(
    events: Sequence[Event | SimRecord], experiment: ExperimentDef = CB
) -> ExperimentTruth:
    """Records as given; bare events are sent in event-time order (so none is late)."""
    records = [e for e in events if isinstance(e, SimRecord)]
    bare = [e for e in events if isinstance(e, Event)]
    records += [rec(e) for e in sorted(bare, key=lambda e: e.event_time_ms)]
    result = experiment_truth(
        records, [experiment], lateness_ms=LATENESS, session_timeout_ms=TIMEOUT
    )
    return result[experiment.name]


def primary(truth: ExperimentTruth, variant: str) -> ProportionCounts:
    counts = truth.variants[variant].primary
    assert counts is not None
    return counts


def test_exposure_at_the_first_event_carrying_the_experiment() -> None:
    events = [
        # Before the exposure (no 'cb' key): a purchase that is not the experiment's.
        *checkout("a1", T0, None, txn="T0"),
        ev("page_view", T0 + 10 * MIN, "a1-pv", anon="a1", **tagged("B")),
        *checkout("a2", T0, "A"),
        ev("page_view", T0, "a3-pv", anon="a3", **tagged("A")),
    ]
    truth = truth_of(events)
    assert truth.counts() == {"A": 2, "B": 1}
    assert primary(truth, "B") == ProportionCounts(1, 0)  # its attempt began before exposure
    assert primary(truth, "A") == ProportionCounts(2, 1)
    assert truth.variants["B"].orders == 0
    assert truth.variants["B"].revenue["CNY"] == MeanSums(1, 0, 0)
    assert truth.variants["A"].revenue["CNY"] == MeanSums(2, 1000, 1000**2)
    assert (truth.mixed, truth.unknown) == (0, 0)
    assert truth.weights == {"A": 0.5, "B": 0.5}


def test_an_attempt_must_start_at_or_after_the_exposure() -> None:
    # Exposure on add_payment_info: the attempt began at begin_checkout, before it.
    late_exposure = replace(CB, exposure=ExposureRule("add_payment_info"))
    events = checkout("a1", T0, "B")
    assert primary(truth_of(events, late_exposure), "B") == ProportionCounts(1, 0)
    # ... but the purchase is after the exposure: revenue and orders count it.
    assert truth_of(events, late_exposure).variants["B"].revenue["CNY"].total == 1000
    # Exposure on begin_checkout: the exposure event itself starts the attempt.
    assert primary(truth_of(events, AT_CHECKOUT), "B") == ProportionCounts(1, 1)


def test_explicit_exposure_event() -> None:
    events = [
        # Events of other types carrying cb do not expose, whatever they carry.
        ev("page_view", T0, "a1-pv", anon="a1", **tagged("A")),
        # A begin_checkout without the key exposes nobody.
        *checkout("a1", T0 + MIN, None, txn=None),
        *checkout("a1", T0 + 10 * MIN, "B"),
        # Never reaches begin_checkout: not exposed.
        ev("page_view", T0, "a2-pv", anon="a2", **tagged("B")),
    ]
    truth = truth_of(events, AT_CHECKOUT)
    assert truth.counts() == {"A": 0, "B": 1}  # the earlier 'A' is before exposure: not mixed
    assert truth.mixed == 0
    # The session's credited checkout attempt is the one begun at T0 + MIN (before the
    # exposure; it reaches purchase through the later events): the funnel report counts
    # that one, so the experiment does not count the visitor as converted.
    assert primary(truth, "B") == ProportionCounts(1, 0)
    # In a session of its own, the attempt begun at the exposure is the credited one.
    alone = [*checkout("a1", T0 + MIN, None, txn=None), *checkout("a1", T0 + 90 * MIN, "B")]
    assert primary(truth_of(alone, AT_CHECKOUT), "B") == ProportionCounts(1, 1)
    # With first_event exposure the same visitor is exposed to A and then mixed.
    first = truth_of(events)
    assert (first.counts(), first.mixed) == ({"A": 0, "B": 1}, 1)


def test_mixed_visitors_are_counted_and_excluded_from_everything() -> None:
    events = [
        *checkout("a1", T0, "A"),
        ev("page_view", T0 + 20 * MIN, "a1-pv", anon="a1", **tagged("B")),
        # An unknown value after exposure flags the visitor the same way.
        *checkout("a2", T0, "B", txn="T2"),
        ev("page_view", T0 + 30 * MIN, "a2-pv", anon="a2", **tagged("Z")),
        # An event without the key after exposure changes nothing.
        *checkout("a3", T0, "B", txn="T3"),
        ev("page_view", T0 + 30 * MIN, "a3-pv", anon="a3"),
    ]
    truth = truth_of(events)
    assert truth.mixed == 2
    assert truth.counts() == {"A": 0, "B": 1}
    assert primary(truth, "A") == ProportionCounts(0, 0)
    assert truth.variants["A"].orders == 0
    assert truth.variants["A"].guardrails["payment_failure_rate"] == RatioSums(0, 0, 0, 0, 0, 0)
    assert truth.variants["B"].revenue["CNY"] == MeanSums(1, 1000, 1000**2)


def test_unknown_values_expose_nobody() -> None:
    events = [
        ev("page_view", T0, "a1-pv1", anon="a1", **tagged("C")),
        ev("page_view", T0 + MIN, "a1-pv2", anon="a1", **tagged("A")),  # exposes a1 to A
        ev("page_view", T0, "a2-pv", anon="a2", **tagged("C")),
        ev("page_view", T0 + MIN, "a2-pv2", anon="a2", **tagged("D")),
    ]
    truth = truth_of(events)
    assert truth.counts() == {"A": 1, "B": 0}
    assert truth.unknown == 2  # visitors
    assert truth.unknown_values == {"C": 2, "D": 1}
    assert truth.mixed == 0


def test_late_and_duplicate_events_are_ignored() -> None:
    landing = ev("page_view", T0 + 19 * MIN, "a1-pv", anon="a1", **tagged("A"))
    on_time = [landing, *checkout("a1", T0 + 20 * MIN, "A")]
    # Late: 19 minutes behind its topic-partition's newest event (lateness 5 min). It would
    # have been a1's exposure (to B) and, counted, made a1 mixed.
    late = ev("page_view", T0, "a1-late", anon="a1", **tagged("B"))
    # A duplicate event_id carrying another variant: the first copy counts.
    duplicate = replace(on_time[1], experiments={"cb": "B"})
    records = [rec(e) for e in on_time] + [rec(late), rec(duplicate)]
    truth = truth_of(records)
    assert truth.counts() == {"A": 1, "B": 0}
    assert truth.mixed == 0
    assert primary(truth, "A") == ProportionCounts(1, 1)
    # Counted, the late event would make a1 a B visitor who is then mixed.
    counted = truth_of([late, *on_time])
    assert (counted.counts(), counted.mixed) == ({"A": 0, "B": 0}, 1)


def test_a_purchase_counts_once_per_transaction_in_its_earliest_copy() -> None:
    events = checkout("a1", T0, "B")
    resent = replace(events[-1], event_id="p-copy", event_time_ms=events[-1].event_time_ms + MIN)
    truth = truth_of([*events, resent])
    assert truth.variants["B"].orders == 1
    assert truth.variants["B"].revenue["CNY"] == MeanSums(1, 1000, 1000**2)
    assert truth.variants["B"].guardrails["payment_failure_rate"].denominator == 1


def test_revenue_per_user_includes_zero_revenue_visitors_per_currency() -> None:
    events = [
        *checkout("b1", T0, "B", txn="T1"),
        *checkout("b2", T0, "B", txn=None),  # exposed, never bought: a zero
        ev("page_view", T0, "b3-pv", anon="b3", **tagged("B")),
        buy(T0 + MIN, "b3-T1", value=500, currency="USD", anon="b3", **tagged("B")),
        buy(T0 + 2 * MIN, "b3-T2", value=700, currency="USD", anon="b3", **tagged("B")),
        ev("page_view", T0, "a1-pv", anon="a1", **tagged("A")),
    ]
    truth = truth_of(events)
    b = truth.variants["B"]
    assert b.revenue == {"CNY": MeanSums(3, 1000, 1000**2), "USD": MeanSums(3, 1200, 1200**2)}
    assert truth.variants["A"].revenue == {"CNY": MeanSums(1, 0, 0), "USD": MeanSums(1, 0, 0)}
    assert b.orders == 3


def test_guardrails_count_events_after_exposure_with_the_visitor_as_unit() -> None:
    def failed(anon: str, t: int, event_id: str) -> Event:
        return ev("payment_failed", t, event_id, anon=anon, transaction_id="x", **tagged("B"))

    error = Event(
        stream="clickstream",
        event_type="custom:checkout_error",
        event_id="b1-err",
        event_time_ms=T0 + 30,
        sent_time_ms=T0 + 30,
        anonymous_id="b1",
        session_id="s1",
        experiments={"cb": "B"},
    )
    events = [
        *checkout("b1", T0, "B"),
        failed("b1", T0 + 2 * MIN + 1, "b1-f1"),
        failed("b1", T0 + 2 * MIN + 2, "b1-f2"),
        error,
        ev("refund", T0 + 50 * MIN, "b1-r", anon="b1", transaction_id="b1-T1", **tagged("B")),
        *checkout("b2", T0, "B", txn=None),
        failed("b2", T0 + 3 * MIN, "b2-f1"),
        ev("page_view", T0, "b3-pv", anon="b3", **tagged("B")),
    ]
    b = truth_of(events).variants["B"]
    pf = b.guardrails["payment_failure_rate"]
    # Visitors (num, den): b1 (2, 3), b2 (1, 1), b3 (0, 0).
    assert pf == RatioSums(3, 3, 4, 2 * 2 + 1, 3 * 3 + 1, 2 * 3 + 1)
    assert b.guardrails["refund_rate"] == RatioSums(3, 1, 1, 1, 1, 1)
    assert b.guardrails["checkout_error_rate"] == RatioSums(3, 1, 2, 1, 1 + 1, 1)
    # The delta-method moments: variance of (num_i - R den_i) / mean(den).
    n, mean, variance = pf.moments()
    r = 3 / 4
    lin = [(num - r * den) / (4 / 3) for num, den in ((2, 3), (1, 1), (0, 0))]
    expected = sum(v * v for v in lin) / 2  # the linearised values have mean 0
    assert (n, mean) == (3, r)
    assert variance == pytest.approx(expected)


def test_the_sufficient_statistics_feed_the_stats_engine() -> None:
    events = [*checkout("a1", T0, "A"), *checkout("b1", T0, "B", txn=None)]
    events += [*checkout("a2", T0, "A", txn=None), *checkout("b2", T0, "B")]
    truth = truth_of(events)
    a, b = truth.variants["A"], truth.variants["B"]
    pa, pb = primary(truth, "A"), primary(truth, "B")
    result = always_valid_test(
        ProportionStats(pa.n, pa.conversions), ProportionStats(pb.n, pb.conversions)
    )
    assert (result.control_mean, result.treatment_mean) == (0.5, 0.5)
    guard = always_valid_test(
        Moments(*a.guardrails["payment_failure_rate"].moments()),
        Moments(*b.guardrails["payment_failure_rate"].moments()),
    )
    assert guard.p_value == 1.0


def test_primary_respects_the_funnel_window_and_session_segments() -> None:
    window = [
        *checkout("a1", T0, "A", txn=None),
        buy(T0 + 61 * MIN, "a1-T1", anon="a1", **tagged("A")),  # the 1h window is over
    ]
    window.insert(2, ev("page_view", T0 + 31 * MIN, "a1-pv", anon="a1", **tagged("A")))
    window.insert(3, ev("page_view", T0 + 59 * MIN, "a1-pv2", anon="a1", **tagged("A")))
    # The purchase comes after a gap of more than the session timeout: another segment.
    segments = [
        *checkout("a2", T0, "A", txn=None),
        buy(T0 + 2 * MIN + TIMEOUT + 1, "a2-T1", anon="a2", **tagged("A")),
    ]
    truth = truth_of([*window, *segments])
    assert primary(truth, "A") == ProportionCounts(2, 0)
    assert truth.variants["A"].orders == 2


def test_cuped_covariates_come_from_the_lookback_before_the_exposure() -> None:
    from simulator.truth_experiments import CovariateTruth
    from streams.experiments import CupedRule, RevenuePerUser

    hour = 60 * MIN
    revenue = replace(
        CB,
        primary=RevenuePerUser(),
        guardrails=(),
        exposure=ExposureRule("begin_checkout"),
        cuped=CupedRule("pre_exposure_revenue", 2 * hour),
    )
    events = [
        # Before the exposure: a purchase 3 h before it (outside the 2 h lookback) and
        # one 1 h before it (inside), both untagged.
        buy(T0, "b1-T0", value=300, anon="b1"),
        buy(T0 + 2 * hour, "b1-T1", value=400, anon="b1"),
        *checkout("b1", T0 + 3 * hour, "B", txn="T2"),  # exposed here, then buys 1000
        *checkout("b2", T0 + 3 * hour, "B", txn=None),  # exposed, no revenue at all
    ]
    truth = truth_of(events, revenue)
    # y = post-exposure revenue (1000, 0), x = pre-exposure revenue in the lookback (400, 0).
    assert truth.variants["B"].cuped == {
        "CNY": CovariateTruth(2, 1000, 1000**2, 400, 400**2, 400 * 1000)
    }
    activity = replace(revenue, cuped=CupedRule("pre_exposure_activity", 2 * hour))
    # x = counted events in the lookback: b1's purchase an hour before (1), b2 none.
    assert truth_of(events, activity).variants["B"].cuped["CNY"] == CovariateTruth(
        2, 1000, 1000**2, 1, 1, 1000
    )
    # A funnel-step primary: y is the conversion.
    funnel = replace(AT_CHECKOUT, cuped=CupedRule("pre_exposure_activity", 2 * hour))
    assert truth_of(events, funnel).variants["B"].cuped == {"": CovariateTruth(2, 1, 1, 1, 1, 1)}
    assert truth_of(events).variants["B"].cuped == {}  # no cuped configured
