"""A batch's counters as metrics (``streams/runtime_metrics.py``), against plain sums.

The step entries of a batch are summed per label set before the counters are touched;
every counter must still equal the sum of the positive changes of the keys it covers, the
conversion ring must still see every change, negative ones included, and unknown channels
and campaigns past the limit still fall into their bounded labels.
"""

from __future__ import annotations

import random
from collections import Counter

from prometheus_client import CollectorRegistry

from sinks.metrics import NO_CAMPAIGN, OTHER, PipelineMetrics
from streams.batch import BatchResult, BatchStats
from streams.conversion import ConversionTracker
from streams.runtime_metrics import RuntimeMetrics

CHANNELS = ("direct", "paid_search")
STEPS = {"shop": ("session_start", "add_to_cart", "purchase"), "signup": ("visit", "sign_up")}
TOPICS = {"clickstream": "shop.clickstream"}
MINUTE = 60_000


def _batch(rng: random.Random) -> Counter[tuple[str, int, int, str, str]]:
    entries: Counter[tuple[str, int, int, str, str]] = Counter()
    newest = 1_000 * MINUTE
    for _ in range(2_000):
        funnel = rng.choice(sorted(STEPS))
        step = rng.randint(1, len(STEPS[funnel]))
        window = newest - rng.randint(0, 40) * MINUTE
        channel = rng.choice((*CHANNELS, "tiktok", ""))
        campaign = rng.choice(("", "spring", "summer", "autumn", "winter sale!", "x"))
        entries[(funnel, step, window, channel, campaign)] += rng.choice((-1, 1, 1, 2))
    return entries


def _samples(metrics: PipelineMetrics, family: str) -> dict[tuple[str, ...], float]:
    found: dict[tuple[str, ...], float] = {}
    for metric in metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == f"{family}_total":
                found[tuple(sample.labels.values())] = sample.value
    return found


def test_step_entry_counters_and_the_conversion_ring_equal_plain_sums() -> None:
    rng = random.Random(16)
    metrics = PipelineMetrics(CollectorRegistry(), channels=CHANNELS, campaign_limit=2)
    conversion = ConversionTracker(STEPS, minutes=15)
    observed = RuntimeMetrics(metrics, conversion, TOPICS, STEPS)
    reference = ConversionTracker(STEPS, minutes=15)
    by_channel: Counter[tuple[str, ...]] = Counter()
    by_campaign: Counter[tuple[str, ...]] = Counter()
    labels = PipelineMetrics(CollectorRegistry(), channels=CHANNELS, campaign_limit=2)
    for _ in range(3):
        entries = _batch(rng)
        observed.batch_applied(0, BatchResult(stats=BatchStats(step_entries=entries)))
        for (funnel, step, window, channel, campaign), change in entries.items():
            reference.record(funnel, step - 1, window, change)
            if change <= 0:
                continue
            name = STEPS[funnel][step - 1]
            by_channel[(funnel, name, channel if channel in CHANNELS else OTHER)] += change
            label = labels.campaign_label(campaign)  # first seen, first labelled
            by_campaign[(funnel, name, label)] += change

    assert _samples(metrics, "shopfunnel_funnel_step_entries") == by_channel
    assert _samples(metrics, "shopfunnel_campaign_step_entries") == by_campaign
    assert {NO_CAMPAIGN, OTHER} < {k[2] for k in by_campaign}  # the limit was reached
    for window in (1, 5, 15):
        assert conversion.ratios(window) == reference.ratios(window)
