"""ConversionTracker: event-time step conversion over the last minutes, exported as gauges."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sinks.metrics import PipelineMetrics
from streams.conversion import ConversionTracker
from streams.errors import StreamError

FUNNELS = {"shop": ("session_start", "view_item", "purchase"), "checkout": ("begin", "pay")}
MIN = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % MIN  # a minute boundary


def test_ratio_over_the_window_ending_at_the_newest_minute() -> None:
    tracker = ConversionTracker(FUNNELS, minutes=15)
    for minute in range(10):
        tracker.record("shop", 0, T0 + minute * MIN, count=10)
        tracker.record("shop", 1, T0 + minute * MIN, count=4 if minute < 5 else 2)
    ratios = tracker.ratios(5)
    assert ratios[("shop", "view_item")] == pytest.approx(0.2)  # minutes 5..9 only
    assert tracker.ratios(10)[("shop", "view_item")] == pytest.approx(0.3)


def test_no_previous_step_entries_gives_none() -> None:
    tracker = ConversionTracker(FUNNELS)
    tracker.record("shop", 0, T0, count=3)
    ratios = tracker.ratios(5)
    assert ratios[("shop", "view_item")] == 0.0
    assert ratios[("shop", "purchase")] is None
    assert ratios[("checkout", "pay")] is None


def test_every_later_step_of_every_funnel_has_a_key() -> None:
    assert set(ConversionTracker(FUNNELS).ratios(15)) == {
        ("shop", "view_item"),
        ("shop", "purchase"),
        ("checkout", "pay"),
    }


def test_milliseconds_inside_a_minute_land_in_that_minute() -> None:
    tracker = ConversionTracker(FUNNELS, minutes=2)
    tracker.record("checkout", 0, T0 + 59_999, count=4)
    tracker.record("checkout", 1, T0 + 1, count=1)
    tracker.record("checkout", 0, T0 + MIN, count=0)  # newest minute = T0 + 1 min
    assert tracker.ratios(2)[("checkout", "pay")] == pytest.approx(0.25)
    assert tracker.ratios(1)[("checkout", "pay")] is None


def test_the_ring_forgets_minutes_older_than_its_size() -> None:
    tracker = ConversionTracker(FUNNELS, minutes=3)
    tracker.record("checkout", 0, T0, count=100)
    tracker.record("checkout", 1, T0, count=100)
    # Three minutes later the slot of T0 is reused: its counts must not leak in.
    tracker.record("checkout", 0, T0 + 3 * MIN, count=10)
    tracker.record("checkout", 1, T0 + 3 * MIN, count=1)
    assert tracker.ratios(3)[("checkout", "pay")] == pytest.approx(0.1)


def test_late_minutes_outside_the_ring_are_ignored_inside_are_counted() -> None:
    tracker = ConversionTracker(FUNNELS, minutes=5)
    tracker.record("checkout", 0, T0 + 10 * MIN, count=10)
    tracker.record("checkout", 1, T0 + 10 * MIN, count=5)
    tracker.record("checkout", 1, T0, count=1_000)  # 10 minutes old: outside a 5 minute ring
    tracker.record("checkout", 1, T0 + 8 * MIN, count=2)  # late but inside
    assert tracker.ratios(5)[("checkout", "pay")] == pytest.approx(0.7)


def test_invalid_use_names_the_problem() -> None:
    tracker = ConversionTracker(FUNNELS, minutes=15)
    with pytest.raises(StreamError, match="unknown funnel"):
        tracker.record("nope", 0, T0)
    with pytest.raises(StreamError, match="out of range"):
        tracker.record("checkout", 2, T0)
    with pytest.raises(StreamError, match=r"outside 1\.\.15"):
        tracker.ratios(16)
    with pytest.raises(StreamError, match="at least two steps"):
        ConversionTracker({"one": ("only",)})
    with pytest.raises(StreamError, match="minutes"):
        ConversionTracker(FUNNELS, minutes=0)


def _conversion_samples(metrics: PipelineMetrics) -> dict[tuple[str, str, str], float]:
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        if family.name == "shopfunnel_funnel_step_conversion_ratio":
            return {
                (s.labels["funnel"], s.labels["step"], s.labels["window"]): s.value
                for s in family.samples
            }
    raise AssertionError("conversion gauge missing")


def test_export_sets_5m_and_15m_gauges_and_drops_undefined_ratios() -> None:
    metrics = PipelineMetrics(CollectorRegistry(), channels=("direct",))
    tracker = ConversionTracker(FUNNELS, minutes=15)
    for minute in range(15):
        tracker.record("shop", 0, T0 + minute * MIN, count=10)
        tracker.record("shop", 1, T0 + minute * MIN, count=5 if minute >= 10 else 1)
    tracker.record("checkout", 0, T0 + 14 * MIN, count=2)
    tracker.record("checkout", 1, T0 + 14 * MIN, count=1)
    tracker.export(metrics)
    assert _conversion_samples(metrics) == {
        ("shop", "view_item", "5m"): 0.5,
        ("shop", "view_item", "15m"): pytest.approx(35 / 150),
        ("shop", "purchase", "5m"): 0.0,
        ("shop", "purchase", "15m"): 0.0,
        ("checkout", "pay", "5m"): 0.5,
        ("checkout", "pay", "15m"): 0.5,
    }

    # Ten minutes later with no checkout traffic: the checkout gauges disappear instead
    # of showing a stale 50%.
    tracker.record("shop", 0, T0 + 24 * MIN, count=10)
    tracker.export(metrics)
    samples = _conversion_samples(metrics)
    assert ("checkout", "pay", "5m") not in samples
    assert ("checkout", "pay", "15m") in samples


def test_export_skips_windows_longer_than_the_ring() -> None:
    metrics = PipelineMetrics(CollectorRegistry(), channels=("direct",))
    tracker = ConversionTracker(FUNNELS, minutes=5)
    tracker.record("checkout", 0, T0, count=2)
    tracker.record("checkout", 1, T0, count=1)
    tracker.export(metrics)
    assert set(_conversion_samples(metrics)) == {("checkout", "pay", "5m")}
