"""PipelineMetrics: every metric of the contract, bounded labels, and the cardinality proof."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sinks.errors import SinkError
from sinks.metrics import (
    CAMPAIGN_LABEL_MAX_CHARS,
    NO_CAMPAIGN,
    OTHER,
    PipelineMetrics,
    sanitise_label,
)

CHANNELS = ("direct", "organic_search", "paid_search", "wechat", "douyin")

# attribute -> (prometheus_client class, family name in the exposition, type, label names)
CONTRACT: dict[str, tuple[type, str, str, set[str]]] = {
    "step_entries": (
        Counter,
        "shopfunnel_funnel_step_entries",
        "counter",
        {"funnel", "step", "channel"},
    ),
    "campaign_step_entries": (
        Counter,
        "shopfunnel_campaign_step_entries",
        "counter",
        {"funnel", "step", "campaign"},
    ),
    "orders": (Counter, "shopfunnel_orders", "counter", {"channel", "currency"}),
    "gmv_minor": (Counter, "shopfunnel_gmv_minor", "counter", {"channel", "currency"}),
    "events_ingested": (Counter, "shopfunnel_events_ingested", "counter", {"topic"}),
    "dead_letters": (Counter, "shopfunnel_dead_letters", "counter", {"topic", "reason"}),
    "late_events": (Counter, "shopfunnel_late_events", "counter", {"topic", "reason"}),
    "duplicates": (Counter, "shopfunnel_duplicate_events", "counter", {"topic"}),
    "input_stalls": (Counter, "shopfunnel_input_stalls", "counter", {"topic"}),
    "step_conversion": (
        Gauge,
        "shopfunnel_funnel_step_conversion_ratio",
        "gauge",
        {"funnel", "step", "window"},
    ),
    "consumer_lag": (Gauge, "shopfunnel_consumer_lag_records", "gauge", {"topic", "partition"}),
    "watermark_delay": (Gauge, "shopfunnel_watermark_delay_seconds", "gauge", {"partition"}),
    "watermark": (Gauge, "shopfunnel_watermark_timestamp_seconds", "gauge", {"partition"}),
    "sink_batch": (Histogram, "shopfunnel_sink_batch_duration_seconds", "histogram", {"table"}),
    "sink_rows": (Counter, "shopfunnel_sink_rows", "counter", {"table"}),
    "sink_failures": (Counter, "shopfunnel_sink_failures", "counter", {"table"}),
    "sink_queue_rows": (Gauge, "shopfunnel_sink_queue_rows", "gauge", set()),
    "state_keys": (Gauge, "shopfunnel_state_keys", "gauge", {"store"}),
    "state_bytes": (Gauge, "shopfunnel_state_bytes", "gauge", {"store"}),
    "changelog_records": (Counter, "shopfunnel_changelog_records", "counter", set()),
    "batch_events": (Histogram, "shopfunnel_batch_events", "histogram", set()),
    "batch_duration": (Histogram, "shopfunnel_batch_duration_seconds", "histogram", set()),
    "triggers": (Counter, "shopfunnel_triggers", "counter", {"type"}),
    "trigger_delay": (Histogram, "shopfunnel_trigger_delay_seconds", "histogram", {"type"}),
    "worker_info": (Info, "shopfunnel_worker_info", "gauge", {"worker", "version"}),
}


def _metrics(**kwargs: object) -> PipelineMetrics:
    return PipelineMetrics(CollectorRegistry(), channels=CHANNELS, **kwargs)  # type: ignore[arg-type]


def _touch_every_metric(m: PipelineMetrics) -> None:
    """Give every metric one child with the contract's labels so it is exposed."""
    for attribute, (_, _, _, labelnames) in CONTRACT.items():
        metric = getattr(m, attribute)
        if attribute == "worker_info":
            m.set_worker_info("worker-1", "0.1.0")
            continue
        child = metric.labels(**{name: "x" for name in labelnames}) if labelnames else metric
        if isinstance(metric, Histogram):
            child.observe(1.0)
        elif isinstance(metric, Gauge):
            child.set(1.0)
        else:
            child.inc()


def _families(registry: CollectorRegistry) -> dict[str, object]:
    text = generate_latest(registry).decode("utf-8")
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_every_contract_metric_exists_with_its_type_and_labels() -> None:
    m = _metrics()
    _touch_every_metric(m)
    families = _families(m.registry)
    for attribute, (cls, family_name, kind, labelnames) in CONTRACT.items():
        assert isinstance(getattr(m, attribute), cls), attribute
        family = families[family_name]
        assert family.type == kind, (attribute, family.type)  # type: ignore[attr-defined]
        samples = family.samples  # type: ignore[attr-defined]
        assert samples, attribute
        for sample in samples:
            assert set(sample.labels) - {"le"} == labelnames, (attribute, sample)


def test_all_metric_names_are_prefixed_and_seconds_use_the_unit() -> None:
    m = _metrics()
    _touch_every_metric(m)
    for family in text_string_to_metric_families(generate_latest(m.registry).decode()):
        assert family.name.startswith("shopfunnel_"), family.name
    assert m.batch_duration._name.endswith("_seconds")
    assert m.watermark_delay._name.endswith("_seconds")


def test_batch_events_buckets_span_one_to_100k() -> None:
    m = _metrics()
    m.batch_events.observe(3)
    text = generate_latest(m.registry).decode()
    assert 'shopfunnel_batch_events_bucket{le="1.0"}' in text
    assert 'shopfunnel_batch_events_bucket{le="100000.0"}' in text


def test_metrics_use_the_injected_registry_not_the_global_one() -> None:
    from prometheus_client import REGISTRY

    before = set(REGISTRY._names_to_collectors)
    first, second = _metrics(), _metrics()  # a second instance must not clash either
    assert set(REGISTRY._names_to_collectors) == before
    assert first.registry is not second.registry


def test_channel_label_keeps_known_channels_only() -> None:
    m = _metrics()
    assert m.channel_label("wechat") == "wechat"
    assert m.channel_label("WeChat") == OTHER
    assert m.channel_label("") == OTHER
    assert m.channel_label('"}\nevil') == OTHER


def test_default_channels_come_from_the_channel_rules() -> None:
    from schemas.channels import CHANNELS

    m = PipelineMetrics(CollectorRegistry())
    assert all(m.channel_label(channel) == channel for channel in CHANNELS)
    assert m.channel_label("not-a-channel") == OTHER


def test_campaign_label_keeps_the_first_campaigns_then_other() -> None:
    m = _metrics(campaign_limit=2)
    assert m.campaign_label("") == NO_CAMPAIGN
    assert m.campaign_label("spring_sale") == "spring_sale"
    assert m.campaign_label("kol_lily") == "kol_lily"
    assert m.campaign_label("third") == OTHER
    # Already kept campaigns stay kept; the "none" label uses no slot.
    assert m.campaign_label("spring_sale") == "spring_sale"
    assert m.campaign_label("") == NO_CAMPAIGN


def test_known_campaigns_are_kept_without_using_slots() -> None:
    m = _metrics(campaign_limit=1, known_campaigns=["双11大促", "618"])
    assert m.campaign_label("first_seen") == "first_seen"
    assert m.campaign_label("second_seen") == OTHER
    assert m.campaign_label("双11大促") == "双11大促"
    assert m.campaign_label("618") == "618"


def test_campaigns_that_sanitise_alike_share_one_slot() -> None:
    m = _metrics(campaign_limit=1)
    assert m.campaign_label('summer "sale"') == "summer_sale"
    assert m.campaign_label("summer\nsale") == "summer_sale"
    assert m.campaign_label("other_campaign") == OTHER


def test_a_campaign_with_nothing_printable_is_other() -> None:
    m = _metrics()
    assert m.campaign_label('"\n\\ ') == OTHER


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("spring_sale-2025", "spring_sale-2025"),
        ('a"b\\c\nd', "a_b_c_d"),
        ("  padded  ", "padded"),
        ("双11 大促", "双11_大促"),
        ("x\u202ey", "x_y"),  # right-to-left override: a format character
        ("lone\ud800surrogate", "lone_surrogate"),
        ("utm/fb:ad+1@x.y", "utm/fb:ad+1@x.y"),
    ],
)
def test_sanitise_label(raw: str, label: str) -> None:
    assert sanitise_label(raw) == label


def test_sanitise_label_caps_the_length_and_the_work() -> None:
    assert len(sanitise_label("a" * 10_000_000)) == CAMPAIGN_LABEL_MAX_CHARS


def test_negative_campaign_limit_is_rejected() -> None:
    with pytest.raises(SinkError, match="campaign_limit"):
        _metrics(campaign_limit=-1)


def test_set_worker_info_exports_one_series() -> None:
    m = _metrics()
    m.set_worker_info("worker-2", "0.1.0")
    samples = _families(m.registry)["shopfunnel_worker_info"].samples  # type: ignore[attr-defined]
    assert [(s.labels, s.value) for s in samples] == [
        ({"worker": "worker-2", "version": "0.1.0"}, 1.0)
    ]


def _hostile_campaigns(count: int, seed: int = 6) -> list[str]:
    rng = random.Random(seed)
    pieces = [
        '"',
        "\\",
        "\n",
        "\r",
        "\t",
        "}",
        "{",
        "=",
        ",",
        " ",
        "\u202e",
        "\x00",
        "\ud800",
        "双11",
        "🎉",
        "ü",
        "' OR 1=1 --",
        "${jndi:ldap://x}",
        "<script>",
    ]
    campaigns = []
    for i in range(count):
        noise = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        length = rng.choice((1, 10, 70, 500, 5_000))
        campaigns.append(f"{noise}camp{i}{noise}" + "x" * length)
    return campaigns


def test_100k_hostile_campaigns_cannot_explode_cardinality() -> None:
    limit = 20
    m = _metrics(campaign_limit=limit)
    campaigns = _hostile_campaigns(100_000)
    assert len(set(campaigns)) == 100_000
    for campaign in [*campaigns, "", ""]:
        label = m.campaign_label(campaign)
        m.campaign_step_entries.labels(funnel="shop", step="session_start", campaign=label).inc()

    text = generate_latest(m.registry).decode("utf-8")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    series = [
        s for s in families["shopfunnel_campaign_step_entries"].samples if s.name.endswith("_total")
    ]
    assert len(series) <= limit + 2
    by_label = {s.labels["campaign"]: s.value for s in series}
    assert by_label[NO_CAMPAIGN] == 2
    assert by_label[OTHER] == 100_000 - limit
    assert sum(by_label.values()) == 100_002  # nothing lost, only bucketed
    for label in by_label:
        assert label == sanitise_label(label), label  # printable, one line, bounded
        assert len(label) <= CAMPAIGN_LABEL_MAX_CHARS

    # Prometheus's own parser and linter accept the exposition too.
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install -y prometheus"
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
