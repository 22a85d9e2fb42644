"""Scenarios change what they claim to change, inside their window only."""

from __future__ import annotations

from collections import Counter
from functools import cache

from simulator.catalog import LAUNCH_SOURCE
from simulator.config import SimConfig
from simulator.costs import campaign_costs
from simulator.generate import SimRecord, generate

SPAN_DAYS = 0.25
HALF_S = SPAN_DAYS * 86_400 / 2


def scenario(name: str | None, users: int = 2000) -> SimConfig:
    # The scenario covers the second half of the run; the first half is the baseline.
    return SimConfig(
        users=users,
        days=SPAN_DAYS,
        scenario=name,
        scenario_start_s=HALF_S,
        scenario_duration_s=HALF_S,
    )


@cache
def records(config: SimConfig) -> tuple[SimRecord, ...]:
    return tuple(generate(config))


def counts(config: SimConfig) -> tuple[Counter[str], Counter[str]]:
    """Event types (and "malformed") inside and before the scenario window."""
    begin, end = scenario(config.scenario or "traffic-spike").scenario_window_ms() or (0, 0)
    inside: Counter[str] = Counter()
    before: Counter[str] = Counter()
    for record in records(config):
        time_ms = record.event.event_time_ms if record.event else record.send_time_ms
        kind = record.event.event_type if record.event else "malformed"
        if begin <= time_ms < end:
            inside[kind] += 1
        elif time_ms < begin:
            before[kind] += 1
    return inside, before


def test_checkout_outage_collapses_checkout_to_purchase() -> None:
    inside, before = counts(scenario("checkout-outage"))
    rate_inside = inside["purchase"] / inside["begin_checkout"]
    rate_before = before["purchase"] / before["begin_checkout"]
    assert rate_before > 0.4
    assert rate_inside < 0.25 * rate_before
    assert inside["payment_failed"] > inside["purchase"]


def test_payment_degraded_raises_failures_partially() -> None:
    inside, before = counts(scenario("payment-degraded"))
    failure_inside = inside["payment_failed"] / inside["begin_checkout"]
    failure_before = before["payment_failed"] / before["begin_checkout"]
    assert failure_inside > 3 * failure_before
    assert inside["purchase"] / inside["begin_checkout"] > 0.2  # partial, not an outage


def test_tracking_broken_spikes_dead_letters_while_behaviour_is_unchanged() -> None:
    inside, before = counts(scenario("tracking-broken"))
    assert before["malformed"] == 0
    assert inside["malformed"] > 0.1 * sum(inside.values())
    # The same visits happen: every event exists, some of them as broken records.
    assert len(records(scenario("tracking-broken"))) == len(records(scenario(None)))


def test_traffic_spike_multiplies_sessions_in_the_window() -> None:
    config = scenario("traffic-spike", users=600)
    inside, _ = counts(config)
    baseline, _ = counts(scenario(None, users=600))
    assert (
        4.0 * baseline["session_start"] < inside["session_start"] < 6.0 * baseline["session_start"]
    )


def test_campaign_launch_ramps_up_a_new_campaign_with_a_cost() -> None:
    config = scenario("campaign-launch", users=1000)
    begin, end = config.scenario_window_ms() or (0, 0)
    middle = (begin + end) // 2
    starts = [
        r.event.event_time_ms
        for r in records(config)
        if r.event
        and r.event.event_type == "session_start"
        and r.event.utm_campaign == LAUNCH_SOURCE.utm_campaign
    ]
    assert starts and min(starts) >= begin
    first_half = sum(begin <= t < middle for t in starts)
    second_half = sum(middle <= t < end for t in starts)
    assert second_half > 1.5 * first_half
    campaigns = {row.campaign for row in campaign_costs(config)}
    assert LAUNCH_SOURCE.utm_campaign in campaigns
    assert LAUNCH_SOURCE.utm_campaign not in {r.campaign for r in campaign_costs(scenario(None))}


def test_scenarios_leave_other_visits_alone() -> None:
    # Visits outside the window draw the same random numbers with or without a scenario.
    with_outage = {
        r.event.event_id
        for r in records(scenario("checkout-outage"))
        if r.event and r.event.event_time_ms < HALF_S * 1000 + SimConfig().start_ms - 3_600_000
    }
    without = {
        r.event.event_id
        for r in records(scenario(None))
        if r.event and r.event.event_time_ms < HALF_S * 1000 + SimConfig().start_ms - 3_600_000
    }
    assert with_outage == without
