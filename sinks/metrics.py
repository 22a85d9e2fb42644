"""The worker's Prometheus metrics, created together against an injected registry.

Every label value comes from a bounded set, because Prometheus keeps one time series per
distinct label combination and input events are untrusted: a tracker that puts a session id
or garbage into ``utm_campaign`` must not be able to create millions of series.

- ``channel``: one of the channel names of ``schemas.channels`` (else ``other``);
- ``campaign``: the configured known campaigns plus the first ``campaign_limit`` distinct
  campaigns this worker sees, sanitised; everything after that is ``other``, an absent
  campaign is ``none``. ClickHouse keeps the full value for analysis;
- ``topic``, ``table``, ``store``, ``type``: names from the configuration;
- ``reason``: ``schemas.reasons.Reason`` values (on the experiment metrics: ``mixed`` or
  ``unknown``); ``partition``: Kafka partition numbers;
- ``experiment``, ``variant``: names from the validated experiments file (at most 20
  experiments of at most 10 variants each);
- ``part`` (memory): the fixed set ``sinks.memory.PARTS``;
- ``disk``: the disk names of ClickHouse's own configuration (``system.disks``);
- ``metric``: ``primary`` or a guardrail name of the experiments file;
- ``test`` (``always_valid``, ``fixed_horizon``; ``chi_square``, ``sequential``) and
  ``verdict`` (``streams.experiment_stats.Verdict``): fixed sets;
- ``model`` (attribution): the models the caller passes (``streams.attribution.MODELS``),
  else ``other``; the attribution gauges' ``channel`` is a known channel,
  ``(unattributed)`` (refunds of unknown orders) or ``other``.

The campaign set is per worker (first come, first kept), so two workers may keep different
campaigns; pass the campaigns that matter as ``known_campaigns`` to make every worker agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from schemas.iso4217 import MINOR_UNIT_EXPONENT
from sinks.disk import DiskSpace
from sinks.errors import SinkError
from sinks.memory import PARTS as MEMORY_PARTS

PREFIX: Final = "shopfunnel"
OTHER: Final = "other"
UNATTRIBUTED: Final = "(unattributed)"
NO_CAMPAIGN: Final = "none"
CAMPAIGN_LABEL_MAX_CHARS: Final = 64
CONVERSION_WINDOWS: Final = ("5m", "15m")

# Unicode letters and digits stay (Chinese campaign names are common and must stay
# readable); quotes, backslashes, whitespace, control and format characters and lone
# surrogates become "_" so a label is printable, one line, and valid UTF-8.
_UNSAFE_LABEL_CHARS: Final = re.compile(r"[^\w.:/+@-]+")
# Sanitising looks at a bounded prefix, so a megabyte-long campaign costs no more than a
# short one.
_SANITISE_INPUT_CHARS: Final = CAMPAIGN_LABEL_MAX_CHARS * 4

BATCH_EVENTS_BUCKETS: Final = (
    1,
    10,
    50,
    100,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
)
BATCH_SECONDS_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SINK_SECONDS_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TRIGGER_DELAY_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


def sanitise_label(value: str, max_chars: int = CAMPAIGN_LABEL_MAX_CHARS) -> str:
    """A printable one-line label of at most ``max_chars`` characters ("" if nothing is left)."""
    cleaned = _UNSAFE_LABEL_CHARS.sub("_", value[:_SANITISE_INPUT_CHARS])
    return cleaned.strip("_")[:max_chars]


def _default_channels() -> frozenset[str]:
    # Imported when needed, not at module import: the channel rules live with the schemas.
    from schemas.channels import CHANNELS

    return frozenset(CHANNELS)


class PipelineMetrics:
    """All metrics of one worker. Attributes are prometheus_client metric objects."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        campaign_limit: int = 20,
        known_campaigns: Iterable[str] = (),
        channels: Iterable[str] | None = None,
    ) -> None:
        if campaign_limit < 0:
            raise SinkError(
                f"campaign_limit must be >= 0, got {campaign_limit}; use 0 to keep none"
            )
        self.registry = registry
        self.campaign_limit = campaign_limit
        self._channels = frozenset(channels) if channels is not None else _default_channels()
        self._known_campaigns = frozenset(
            label for label in (sanitise_label(c) for c in known_campaigns) if label
        )
        self._seen_campaigns: set[str] = set()
        self._create_funnel_metrics(registry)
        self._create_ingest_metrics(registry)
        self._create_sink_and_state_metrics(registry)
        self._create_experiment_metrics(registry)
        self._create_attribution_metrics(registry)
        # Label sets the attribution gauges hold now (stale ones are removed).
        self._attribution_series: dict[str, set[tuple[str, ...]]] = {}

    # -- label bounding -------------------------------------------------------------------

    def currency_seen(self, currency: str) -> None:
        """Export ``currency``'s minor-unit scale (labels: validated ISO 4217 codes only)."""
        exponent = MINOR_UNIT_EXPONENT.get(currency)
        if exponent is not None:
            self.currency_scale.labels(currency).set(10**exponent)

    def channel_label(self, channel: str) -> str:
        """``channel`` if it is a known channel name, else ``other``."""
        return channel if channel in self._channels else OTHER

    def campaign_label(self, campaign: str) -> str:
        """A bounded label for ``utm_campaign``: its sanitised name, ``none`` or ``other``."""
        if not campaign:
            return NO_CAMPAIGN
        label = sanitise_label(campaign)
        if not label:
            return OTHER
        if label in self._known_campaigns or label in self._seen_campaigns:
            return label
        if len(self._seen_campaigns) < self.campaign_limit:
            self._seen_campaigns.add(label)
            return label
        return OTHER

    def set_memory(self, parts: Mapping[str, int]) -> None:
        """The readings of ``sinks.memory.memory_parts`` (unknown parts are ignored)."""
        for part, value in parts.items():
            if part in MEMORY_PARTS:
                self.memory_bytes.labels(part).set(value)

    def set_disks(self, disks: Iterable[DiskSpace]) -> None:
        """The readings of ``sinks.disk.disk_space``."""
        for disk in disks:
            self.clickhouse_disk_free_bytes.labels(disk.name).set(disk.free)
            self.clickhouse_disk_total_bytes.labels(disk.name).set(disk.total)

    def observe_full_collection(self, seconds: float, collected: int) -> None:
        self.gc_full_seconds.observe(seconds)
        self.gc_collected.inc(collected)

    def set_experiment_verdict(
        self, experiment: str, verdict: str, verdicts: Sequence[str]
    ) -> None:
        """Set ``experiment``'s verdict gauge: 1 for ``verdict``, 0 for every other one of
        ``verdicts`` (the values of ``streams.experiment_stats.Verdict``)."""
        if verdict not in verdicts:
            raise SinkError(
                f"unknown experiment verdict {verdict!r}; expected one of {list(verdicts)}"
            )
        for value in verdicts:
            self.experiment_verdict.labels(experiment, value).set(1 if value == verdict else 0)

    def set_attribution_today(
        self,
        net_revenue: Mapping[tuple[str, str], float],
        cost: Mapping[str, float],
        models: Sequence[str],
    ) -> None:
        """Set the attribution gauges to one day's values, all in one currency's major
        units: ``net_revenue[(channel, model)]`` (net attributed revenue) and
        ``cost[channel]``. Channels and models are bounded first (values that fall into
        one label are added up); every model of ``models`` gets a revenue gauge for every
        channel that sold or spent, ROAS is set where the cost is not 0, and series of an
        earlier day that are absent now are removed."""
        known_models = frozenset(models)
        revenue: dict[tuple[str, str], float] = {}
        spent: dict[str, float] = {}
        for (channel, model), value in net_revenue.items():
            key = (
                self.attribution_channel_label(channel),
                model if model in known_models else OTHER,
            )
            revenue[key] = revenue.get(key, 0.0) + value
        for channel, value in cost.items():
            label = self.attribution_channel_label(channel)
            spent[label] = spent.get(label, 0.0) + value
        channels = {channel for channel, _ in revenue} | set(spent)
        all_models = [*models, *sorted({m for _, m in revenue} - known_models)]
        revenue_series: set[tuple[str, ...]] = set()
        roas_series: set[tuple[str, ...]] = set()
        for channel in channels:
            for model in all_models:
                value = revenue.get((channel, model), 0.0)
                self.attribution_revenue_today.labels(channel, model).set(value)
                revenue_series.add((channel, model))
                if spent.get(channel, 0.0) != 0.0:
                    self.attribution_roas.labels(channel, model).set(value / spent[channel])
                    roas_series.add((channel, model))
        for channel, value in spent.items():
            self.marketing_cost_today.labels(channel).set(value)
        self._replace_series("revenue", self.attribution_revenue_today, revenue_series)
        self._replace_series("roas", self.attribution_roas, roas_series)
        self._replace_series("cost", self.marketing_cost_today, {(c,) for c in spent})

    def _replace_series(self, name: str, gauge: Gauge, now: set[tuple[str, ...]]) -> None:
        for labels in self._attribution_series.get(name, set()) - now:
            gauge.remove(*labels)
        self._attribution_series[name] = now

    def attribution_channel_label(self, channel: str) -> str:
        """A known channel, ``(unattributed)``, else ``other``."""
        return channel if channel == UNATTRIBUTED else self.channel_label(channel)

    def set_worker_info(self, worker: str, version: str) -> None:
        """Publish ``shopfunnel_worker_info{worker,version} 1``."""
        self.worker_info.info({"worker": worker, "version": version})

    # -- metric families ------------------------------------------------------------------

    def _create_funnel_metrics(self, registry: CollectorRegistry) -> None:
        self.step_entries = Counter(
            f"{PREFIX}_funnel_step_entries",
            "Funnel entities (sessions or users) entering a funnel step, by first-touch channel.",
            ["funnel", "step", "channel"],
            registry=registry,
        )
        self.campaign_step_entries = Counter(
            f"{PREFIX}_campaign_step_entries",
            "Funnel entities entering a step, by bounded campaign label (top campaigns, else "
            "other).",
            ["funnel", "step", "campaign"],
            registry=registry,
        )
        self.orders = Counter(
            f"{PREFIX}_orders",
            "Counted purchases (valid, on time, deduplicated by transaction).",
            ["channel", "currency"],
            registry=registry,
        )
        self.gmv_minor = Counter(
            f"{PREFIX}_gmv_minor",
            "Gross merchandise value of counted purchases in minor units of the currency.",
            ["channel", "currency"],
            registry=registry,
        )
        self.currency_scale = Gauge(
            f"{PREFIX}_currency_minor_units_per_major",
            "10^(ISO 4217 exponent) of each currency seen: divide a minor-unit amount (GMV, "
            "AOV) by it for major units (100 for USD, 1 for JPY and KRW, 1000 for KWD).",
            ["currency"],
            registry=registry,
        )
        self.step_conversion = Gauge(
            f"{PREFIX}_funnel_step_conversion_ratio",
            "This worker's event-time step conversion entered(step)/entered(previous step).",
            ["funnel", "step", "window"],
            registry=registry,
        )

    def _create_ingest_metrics(self, registry: CollectorRegistry) -> None:
        self.events_ingested = Counter(
            f"{PREFIX}_events_ingested",
            "Records read from an input topic, valid or not (dead letters included).",
            ["topic"],
            registry=registry,
        )
        self.input_stalls = Counter(
            f"{PREFIX}_input_stalls",
            "Times an input partition with records to read delivered none for "
            "FUNNEL_INPUT_STALL_SECONDS and was read again.",
            ["topic"],
            registry=registry,
        )
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters",
            "Records that failed decoding or validation and went to the dead-letter topic.",
            ["topic", "reason"],
            registry=registry,
        )
        self.late_events = Counter(
            f"{PREFIX}_late_events",
            "Valid records behind the watermark (or in a finalised window), kept but not counted.",
            ["topic", "reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            f"{PREFIX}_duplicate_events",
            "Valid records ignored as duplicates of an event or transaction already counted.",
            ["topic"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            f"{PREFIX}_consumer_lag_records",
            "Records between this worker's position and the end of an assigned partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.watermark_delay = Gauge(
            f"{PREFIX}_watermark_delay_seconds",
            "Wall-clock now minus the partition's event-time watermark.",
            ["partition"],
            registry=registry,
        )
        self.watermark = Gauge(
            f"{PREFIX}_watermark_timestamp_seconds",
            "The partition's event-time watermark as unix seconds.",
            ["partition"],
            registry=registry,
        )
        self.batch_events = Histogram(
            f"{PREFIX}_batch_events",
            "Events per processed batch.",
            buckets=BATCH_EVENTS_BUCKETS,
            registry=registry,
        )
        self.batch_duration = Histogram(
            f"{PREFIX}_batch_duration_seconds",
            "Time to process one batch of events.",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=registry,
        )
        self.triggers = Counter(
            f"{PREFIX}_triggers",
            "Marketing triggers emitted (cart abandoned, became dormant, segment changed...).",
            ["type"],
            registry=registry,
        )
        self.trigger_delay = Histogram(
            f"{PREFIX}_trigger_delay_seconds",
            "Wall-clock delay between the moment a trigger became due and its emission.",
            ["type"],
            buckets=TRIGGER_DELAY_BUCKETS,
            registry=registry,
        )

    def _create_sink_and_state_metrics(self, registry: CollectorRegistry) -> None:
        self.sink_batch = Histogram(
            f"{PREFIX}_sink_batch_duration_seconds",
            "Time to write one batch to a ClickHouse table (including retries).",
            ["table"],
            buckets=SINK_SECONDS_BUCKETS,
            registry=registry,
        )
        self.sink_rows = Counter(
            f"{PREFIX}_sink_rows",
            "Rows written to a ClickHouse table.",
            ["table"],
            registry=registry,
        )
        self.sink_failures = Counter(
            f"{PREFIX}_sink_failures",
            "Failed attempts to write a batch to a ClickHouse table (each retry counts).",
            ["table"],
            registry=registry,
        )
        self.sink_rows_rejected = Counter(
            f"{PREFIX}_sink_rows_rejected",
            "Rows ClickHouse refused as bad data (type or range), dead-lettered instead.",
            ["table"],
            registry=registry,
        )
        self.gc_full_seconds = Histogram(
            f"{PREFIX}_gc_full_collection_seconds",
            "Duration of the worker's scheduled full garbage collections.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.event_loop_blocked_seconds = Histogram(
            f"{PREFIX}_event_loop_blocked_seconds",
            "Stalls of the worker's event loop of half a second or more "
            "(streams/loop_watchdog.py logs what it was running).",
            buckets=(0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0),
            registry=registry,
        )
        self.gc_collected = Counter(
            f"{PREFIX}_gc_collected_objects",
            "Unreachable objects found by the scheduled full garbage collections.",
            registry=registry,
        )
        self.memory_bytes = Gauge(
            f"{PREFIX}_memory_bytes",
            "Where the worker's memory is (sinks/memory.py): rss_anon, glibc's heap "
            "(malloc_in_use, malloc_free_held, malloc_mmapped), Python's allocated blocks "
            "(python_blocks, a count), the embedded ClickHouse's own accounting "
            "(clickhouse_*).",
            ["part"],
            registry=registry,
        )
        self.clickhouse_disk_free_bytes = Gauge(
            f"{PREFIX}_clickhouse_disk_free_bytes",
            "Free bytes on each of ClickHouse's disks (system.disks; the embedded engine's "
            "is the store's directory). Inserts and the readouts' spilled GROUP BYs need it.",
            ["disk"],
            registry=registry,
        )
        self.clickhouse_disk_total_bytes = Gauge(
            f"{PREFIX}_clickhouse_disk_total_bytes",
            "Size in bytes of each of ClickHouse's disks (system.disks).",
            ["disk"],
            registry=registry,
        )
        self.sink_queue_rows = Gauge(
            f"{PREFIX}_sink_queue_rows",
            "Rows waiting in the sink queue (backpressure starts at the configured maximum).",
            registry=registry,
        )
        self.input_behind = Gauge(
            f"{PREFIX}_input_behind",
            "1 while the worker's input is behind (more records to read than it processes "
            "in FUNNEL_SINK_FLUSH_SECONDS, two ticks in a row) and the ClickHouse writer "
            "inserts in bulk; 0 at the live pace (streams/backlog.py).",
            registry=registry,
        )
        self.state_keys = Gauge(
            f"{PREFIX}_state_keys",
            "Keys held in a state store.",
            ["store"],
            registry=registry,
        )
        self.state_bytes = Gauge(
            f"{PREFIX}_state_bytes",
            "Approximate size of a state store in bytes.",
            ["store"],
            registry=registry,
        )
        self.changelog_records = Counter(
            f"{PREFIX}_changelog_records",
            "State changelog records produced.",
            registry=registry,
        )
        self.worker_info = Info(
            f"{PREFIX}_worker",
            "Worker identity; the value is always 1.",
            registry=registry,
        )

    def _create_experiment_metrics(self, registry: CollectorRegistry) -> None:
        # Live experiment readouts (issue #14, docs/semantics.md section 3b), set by the
        # experiment monitor at every evaluation; ClickHouse keeps the full history
        # (experiment_readouts, experiment_status).
        self.experiment_exposed = Gauge(
            f"{PREFIX}_experiment_exposed_users",
            "Visitors exposed to an experiment variant at the last evaluation (mixed "
            "visitors excluded).",
            ["experiment", "variant"],
            registry=registry,
        )
        self.experiment_excluded = Gauge(
            f"{PREFIX}_experiment_excluded_users",
            "Visitors excluded from an experiment's readout at the last evaluation: mixed "
            "(saw two variants after exposure) or unknown (a variant not in the experiment "
            "file).",
            ["experiment", "reason"],
            registry=registry,
        )
        lift_labels = ["experiment", "variant", "metric"]
        self.experiment_lift = Gauge(
            f"{PREFIX}_experiment_relative_lift",
            "Relative lift of a treatment variant over the control (mean_B / mean_A - 1) of "
            "the primary metric or a guardrail (metric), at the last evaluation.",
            lift_labels,
            registry=registry,
        )
        self.experiment_ci_low = Gauge(
            f"{PREFIX}_experiment_relative_lift_ci_low",
            "Lower bound of the always-valid (mSPRT) interval of the relative lift, "
            "intersected over every evaluation so far.",
            lift_labels,
            registry=registry,
        )
        self.experiment_ci_high = Gauge(
            f"{PREFIX}_experiment_relative_lift_ci_high",
            "Upper bound of the always-valid (mSPRT) interval of the relative lift, "
            "intersected over every evaluation so far.",
            lift_labels,
            registry=registry,
        )
        self.experiment_p_value = Gauge(
            f"{PREFIX}_experiment_p_value",
            "p-value of a treatment vs the control: always_valid (mSPRT, running minimum; "
            "safe to act on at any evaluation) or fixed_horizon (valid at one pre-planned "
            "look only, shown for comparison).",
            [*lift_labels, "test"],
            registry=registry,
        )
        self.experiment_srm_p_value = Gauge(
            f"{PREFIX}_experiment_srm_p_value",
            "Sample-ratio mismatch p-value of the exposed visitors against the configured "
            "split: chi_square (fixed horizon) or sequential (always valid).",
            ["experiment", "test"],
            registry=registry,
        )
        self.experiment_verdict = Gauge(
            f"{PREFIX}_experiment_verdict",
            "1 for an experiment's current verdict (none, win, lose, guardrail_breach, srm), "
            "0 for the others.",
            ["experiment", "verdict"],
            registry=registry,
        )
        self.experiment_last_evaluation = Gauge(
            f"{PREFIX}_experiment_last_evaluation_timestamp_seconds",
            "Unix time of the last successful evaluation of the experiment readouts.",
            registry=registry,
        )
        self.experiment_evaluation_seconds = Gauge(
            f"{PREFIX}_experiment_evaluation_seconds",
            "Wall time of the last evaluation of the experiment readouts (every experiment, "
            "failed or not); the next one starts at least 9 times as long after it. It grows "
            "with the stored events.",
            registry=registry,
        )
        self.experiment_evaluation_failures = Counter(
            f"{PREFIX}_experiment_evaluation_failures",
            "Evaluations of the experiment readouts that failed (query or statistics error).",
            registry=registry,
        )

    def _create_attribution_metrics(self, registry: CollectorRegistry) -> None:
        # Attribution and ROI (issue #15, docs/semantics.md section 10), set by the
        # attribution monitor (streams/attribution_monitor.py) for "today": the UTC day of
        # the newest attributed order (event time). Money is in the major units of the
        # cost's currency; ClickHouse has every day, campaign and currency
        # (v_attribution_daily).
        self.attribution_roas = Gauge(
            f"{PREFIX}_attribution_roas",
            "Today's ROAS of a channel under an attribution model: net attributed revenue "
            "(revenue minus refunds) / marketing cost, in the cost's currency.",
            ["channel", "model"],
            registry=registry,
        )
        self.attribution_revenue_today = Gauge(
            f"{PREFIX}_attribution_revenue_today",
            "Today's net attributed revenue (revenue minus refunds) of a channel under an "
            "attribution model, in major units of the cost's currency.",
            ["channel", "model"],
            registry=registry,
        )
        self.marketing_cost_today = Gauge(
            f"{PREFIX}_marketing_cost_today",
            "Today's marketing cost of a channel (latest import of the day), in major units "
            "of its currency.",
            ["channel"],
            registry=registry,
        )
        self.attribution_last_evaluation = Gauge(
            f"{PREFIX}_attribution_last_evaluation_timestamp_seconds",
            "Unix time of the last successful read of today's attribution and cost.",
            registry=registry,
        )
        self.attribution_evaluation_failures = Counter(
            f"{PREFIX}_attribution_evaluation_failures",
            "Reads of today's attribution and cost that failed (query error).",
            registry=registry,
        )
        # Forget requests (issue #17, docs/forget.md).
        self.forget_requests = Counter(
            f"{PREFIX}_forget_requests",
            "Forget requests carried out (audited in the forget_audit table).",
            registry=registry,
        )
        self.forgotten_events = Counter(
            f"{PREFIX}_forgotten_events",
            "Events removed by forget requests: stored ones, and records dropped in flight.",
            ["where"],
            registry=registry,
        )
        self.forget_rows_corrected = Counter(
            f"{PREFIX}_forget_rows_corrected",
            "Final aggregate rows rewritten without a forgotten person's contribution.",
            registry=registry,
        )
