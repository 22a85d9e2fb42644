"""The ground truth: every number of docs/semantics.md, recomputed from emitted records.

Input is only what the simulator emitted, in send order: each record's stream,
partition, decoded event (or the reason it is malformed) and position. From that:

1. §1 which events count: dead letters; late records by each topic-partition's
   watermark; duplicates by event_id per visitor; purchases once per transaction.
2. §2 session segments, §3 every funnel (ordered, strict and unordered attempts, step
   filters, ``within``, exclusions, credit, window, breakdown, outcomes, time-to-convert
   and the ``funnel_attempts`` rows; by default the funnels of ``streams/funnels.yaml``;
   :mod:`simulator.truth_funnel`), §4 KPIs.
3. §6 visitor lives (forgetting), retention cohorts and time between orders
   (:mod:`simulator.truth_retention`); §7 lifecycle stages, transitions and RFM
   (:mod:`simulator.truth_lifecycle`); §8 marketing triggers (stage triggers there,
   ``cart_abandoned`` in :mod:`simulator.truth_carts`). Transitions, RFM and triggers are
   as of each partition's final watermark (:meth:`_Intake.final_watermarks`).

This module must not import ``streams/`` or ``sinks/``: it is the independent
implementation the pipeline is checked against. Only the funnel definitions are shared,
as :class:`FunnelSpec` values (:func:`simulator.truth_model.funnel_specs`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import orjson

from schemas.channels import ChannelRules
from schemas.model import Event
from schemas.triggers import TriggerItem
from simulator.errors import SimConfigError, TruthFileError
from simulator.records import SimRecord
from simulator.truth_carts import cart_triggers
from simulator.truth_funnel import (
    Attempt,
    EntityEvents,
    breakdown_value,
    event_order,
    split_segments,
    user_attempt_groups,
)
from simulator.truth_lifecycle import life_horizon, lifecycle_of
from simulator.truth_model import (
    TTC_BUCKETS_S,
    AttributionRow,
    DeadLetterRow,
    Dims,
    ExperimentRow,
    FunnelAttemptRow,
    FunnelOutcomeRow,
    FunnelSpec,
    FunnelStepRow,
    FunnelTtcRow,
    KpiRow,
    LifecycleParams,
    OrderGapRow,
    RetentionRow,
    RfmRow,
    TransitionRow,
    TriggerRow,
    Truth,
    funnel_from_json,
    funnel_specs,
    funnel_to_json,
)
from simulator.truth_retention import VisitorLife, order_gap_rows, retention_rows, split_lives

if TYPE_CHECKING:
    from simulator import truth_attribution

__all__ = ["Truth", "compute_truth", "read_truth", "write_truth"]

# /2: retention became the §6 cohort rows; order gaps, RFM, transitions, triggers added.
# /3: funnel modes, filters, exclusions, breakdown columns, funnel_attempts.
TRUTH_FORMAT: Final = "shop-funnel-truth/3"


class _Counted(NamedTuple):
    event: Event
    partition: int


class _Channels:
    """ChannelRules.classify with a cache: a run has few distinct source combinations."""

    def __init__(self, rules: ChannelRules) -> None:
        self._rules = rules
        self._cache: dict[tuple[str | None, str | None, str | None], str] = {}

    def of(self, event: Event) -> str:
        key = (event.utm_source, event.utm_medium, event.referrer)
        channel = self._cache.get(key)
        if channel is None:
            channel = self._rules.classify(event.utm_source, event.utm_medium, event.referrer)
            self._cache[key] = channel
        return channel

    def dims(self, event: Event) -> Dims:
        return Dims(
            self.of(event), event.utm_campaign or "", event.device, event.platform, event.country
        )


def window_start(time_ms: int, window_ms: int) -> int:
    return time_ms // window_ms * window_ms


def compute_truth(
    records: Iterable[SimRecord],
    *,
    lateness_ms: int,
    session_timeout_ms: int,
    window_ms: int = 60_000,
    funnels: Sequence[FunnelSpec] | None = None,
    channel_rules: ChannelRules | None = None,
    true_effects: Mapping[str, float] | None = None,
    lifecycle: LifecycleParams | None = None,
    inputs_finished: bool = False,
    attribution: truth_attribution.AttributionConfig | None = None,
) -> Truth:
    """The truth of ``records`` (in send order) under the given settings.

    ``lifecycle`` holds the §6-§8 thresholds (TTLs, RFM stage thresholds, cart abandon
    wait) in milliseconds; None means the documented defaults. ``funnels`` None means
    the funnels of ``streams/funnels.yaml``. ``inputs_finished``: the worker declared its
    inputs finished at the end (``funnel worker --until-idle`` in replay): each
    partition's final watermark is just after its last event time.
    """
    # Imported here: truth_attribution reads the counted events through
    # truth_exploration, which imports this module's intake.
    from simulator.truth_attribution import AttributionConfig, attribution_rows

    if funnels is None:
        funnels = funnel_specs()
    params = lifecycle or LifecycleParams()
    channels = _Channels(channel_rules or ChannelRules.load())
    intake = _Intake(lateness_ms)
    for record in records:
        intake.add(record)
    counted = intake.counted_events()
    watermarks = intake.final_watermarks(inputs_finished)

    funnel_acc = _FunnelAccumulator(channels, window_ms)
    by_visitor: dict[str, list[_Counted]] = defaultdict(list)
    for item in counted:
        by_visitor[item.event.anonymous_id].append(item)
    segments = 0
    sessions: set[tuple[str, str]] = set()
    lives: list[VisitorLife] = []
    for anonymous_id, visitor_events in by_visitor.items():
        visitor_events.sort(key=lambda c: event_order(c.event))
        partition = visitor_events[0].partition
        watermark = watermarks.get(partition)
        events = [c.event for c in visitor_events]
        lives.extend(split_lives(anonymous_id, partition, events, params))
        by_session: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            by_session[event.session_id].append(event)
        for session_id, session_events in by_session.items():
            sessions.add((events[0].anonymous_id, session_id))
            for segment_id, segment in split_segments(session_events, session_timeout_ms):
                segments += 1
                for funnel in funnels:
                    if funnel.scope == "session":
                        funnel_acc.add_session(
                            funnel, segment_id, segment, session_timeout_ms, watermark
                        )
        for funnel in funnels:
            if funnel.scope == "user":
                funnel_acc.add_user(funnel, events, watermark)

    kpi = _kpi_rows(counted, channels, window_ms)
    lifecycle_rows = _lifecycle(lives, watermarks, params, channels)
    stats = dict(intake.stats)
    stats.update(
        counted_events=len(counted),
        visitors=len(by_visitor),
        visitor_lives=len(lives),
        sessions=len(sessions),
        session_segments=segments,
        buyers=len(lifecycle_rows.rfm),
        transitions=len(lifecycle_rows.transitions),
    )
    for trigger in lifecycle_rows.triggers:
        name = f"triggers_{trigger.trigger_type}"
        stats[name] = stats.get(name, 0) + 1
    gmv: Counter[str] = Counter()
    for row in kpi:
        gmv[row.currency] += row.gmv_minor
        stats["orders"] = stats.get("orders", 0) + row.orders
    return Truth(
        lateness_ms=lateness_ms,
        session_timeout_ms=session_timeout_ms,
        window_ms=window_ms,
        funnels=tuple(funnels),
        funnel_steps=funnel_acc.step_rows(),
        funnel_outcomes=funnel_acc.outcome_rows(),
        funnel_ttc=funnel_acc.ttc_rows(),
        kpi=kpi,
        retention=retention_rows(lives, channels.of),
        dead_letters=tuple(
            sorted(DeadLetterRow(s, r, n) for (s, r), n in intake.dead_letters.items())
        ),
        experiments=funnel_acc.experiment_rows(),
        late_event_ids=frozenset(intake.late_ids),
        final_watermarks=dict(sorted(watermarks.items())),
        stats=dict(sorted(stats.items())),
        gmv_by_currency=dict(sorted(gmv.items())),
        true_effects=dict(true_effects or {}),
        lifecycle=params,
        order_gaps=order_gap_rows(lives, channels.of),
        rfm=lifecycle_rows.rfm,
        transitions=lifecycle_rows.transitions,
        triggers=lifecycle_rows.triggers,
        funnel_attempts=funnel_acc.attempt_rows(),
        order_attribution=tuple(
            AttributionRow(*key, share)
            for key, share in attribution_rows(
                [c.event for c in counted],
                attribution or AttributionConfig(window_ms=window_ms),
                channel_rules=channel_rules,
            ).items()
        ),
    )


class _LifecycleRows(NamedTuple):
    rfm: tuple[RfmRow, ...]
    transitions: tuple[TransitionRow, ...]
    triggers: tuple[TriggerRow, ...]


def _lifecycle(
    lives: Sequence[VisitorLife],
    watermarks: Mapping[int, int],
    params: LifecycleParams,
    channels: _Channels,
) -> _LifecycleRows:
    """§7-§8 per life; ``lives`` of one visitor come in time order, so the last buyer
    life of an anonymous_id is the one its RFM row shows."""
    rfm: dict[str, RfmRow] = {}
    transitions: list[TransitionRow] = []
    triggers: list[TriggerRow] = []
    for life in lives:
        watermark = watermarks.get(life.partition)
        result = lifecycle_of(life, watermark, params, channels.of)
        if result.rfm is not None:
            rfm[life.anonymous_id] = result.rfm
        transitions.extend(result.transitions)
        triggers.extend(result.triggers)
        triggers.extend(cart_triggers(life, life_horizon(life, watermark), params))
    return _LifecycleRows(
        tuple(sorted(rfm.values())),
        tuple(sorted(transitions)),
        tuple(sorted(triggers, key=lambda t: (t.occurred_at_ms, t.trigger_type, t.trigger_id))),
    )


class _Intake:
    """§1 in record order: dead letters, late records, event_id duplicates."""

    def __init__(self, lateness_ms: int) -> None:
        self.lateness_ms = lateness_ms
        self.max_event_time: dict[tuple[str, int], int] = {}
        self.seen: set[tuple[str, str]] = set()
        self.kept: list[_Counted] = []
        self.late_ids: set[str] = set()
        self.dead_letters: Counter[tuple[str, str]] = Counter()
        self.stats: Counter[str] = Counter()

    def add(self, record: SimRecord) -> None:
        stats = self.stats
        stats["records"] += 1
        stats[f"records_{record.stream}"] += 1
        stats["flagged_duplicates"] += record.is_duplicate
        stats["flagged_out_of_order"] += record.out_of_order
        stats["intended_late"] += record.intended_late
        event = record.event
        if event is None:
            reason = record.malformed_reason.value if record.malformed_reason else "unknown"
            self.dead_letters[(record.stream, reason)] += 1
            stats["malformed"] += 1
            return
        stats["valid"] += 1
        tp = (record.stream, record.partition)
        high = self.max_event_time.get(tp)
        time_ms = event.event_time_ms
        late = high is not None and time_ms < high - self.lateness_ms
        if high is None or time_ms > high:
            self.max_event_time[tp] = time_ms
        if late != record.intended_late:
            stats["intended_late_mismatches"] += 1
        if late:
            stats["late"] += 1
            self.late_ids.add(event.event_id)
            return
        key = (event.anonymous_id, event.event_id)
        if key in self.seen:
            stats["duplicates_dropped"] += 1
            return
        self.seen.add(key)
        self.kept.append(_Counted(event, record.partition))

    def counted_events(self) -> list[_Counted]:
        """Kept events minus purchases that lost the (event_time, event_id) tie-break of
        their (anonymous_id, transaction_id)."""
        winners: dict[tuple[str, str], Event] = {}
        for item in self.kept:
            event = item.event
            if event.event_type != "purchase":
                continue
            key = (event.anonymous_id, event.transaction_id or "")
            current = winners.get(key)
            if current is None or event_order(event) < event_order(current):
                winners[key] = event
        counted = []
        for item in self.kept:
            event = item.event
            key = (event.anonymous_id, event.transaction_id or "")
            if event.event_type == "purchase" and winners[key] is not event:
                self.stats["purchase_duplicates_dropped"] += 1
                continue
            counted.append(item)
        return counted

    def final_watermarks(self, finished: bool = False) -> dict[int, int]:
        """Per partition: min over its topic-partitions with records of (max - lateness);
        inputs declared finished: the max over them, plus 1 ms (every event is behind it)."""
        result: dict[int, int] = {}
        for (_stream, partition), high in self.max_event_time.items():
            if finished:
                result[partition] = max(high + 1, result.get(partition, high + 1))
            else:
                mark = high - self.lateness_ms
                result[partition] = min(mark, result.get(partition, mark))
        return result


class _FunnelAccumulator:
    def __init__(self, channels: _Channels, window_ms: int) -> None:
        self.channels = channels
        self.window_ms = window_ms
        self.steps: Counter[tuple[str, int, Dims, tuple[str, ...], int, str]] = Counter()
        self.outcomes: Counter[tuple[str, int, Dims, tuple[str, ...], str]] = Counter()
        self.ttc: Counter[tuple[str, int, Dims, tuple[str, ...], float]] = Counter()
        self.experiments: Counter[tuple[str, str, str, bool]] = Counter()
        self.attempts: list[FunnelAttemptRow] = []

    def add_session(
        self,
        funnel: FunnelSpec,
        segment_id: str,
        segment: Sequence[Event],
        timeout_ms: int,
        watermark: int | None,
    ) -> None:
        """Session scope: the entity is the segment; it closes ``timeout`` after its end."""
        entity = EntityEvents(segment, funnel)
        closes_after = segment[-1].event_time_ms + timeout_ms
        self._add_entity(
            funnel, entity, entity.start_positions(), closes_after, watermark, segment_id
        )

    def add_user(self, funnel: FunnelSpec, events: Sequence[Event], watermark: int | None) -> None:
        """User scope: one entity per attempt group over all the visitor's events."""
        entity = EntityEvents(events, funnel)
        for group in user_attempt_groups(entity.start_positions(), events, funnel.window_ms):
            t0 = events[group[0]].event_time_ms
            self._add_entity(funnel, entity, group, t0 + 2 * funnel.window_ms, watermark, "")

    def _add_entity(
        self,
        funnel: FunnelSpec,
        entity: EntityEvents,
        starts: Sequence[int],
        closes_after_ms: int,
        watermark: int | None,
        entity_id: str,
    ) -> None:
        attempt = entity.credited(starts)
        if attempt is None:
            return  # no (qualifying) attempt: not in the funnel
        step1 = entity.events[attempt.start]
        window = window_start(step1.event_time_ms, self.window_ms)
        dims = self.channels.dims(step1)
        breakdown = self._breakdown(funnel, entity, attempt)
        for step in range(1, attempt.level + 1):
            self.steps[(funnel.name, window, dims, breakdown, step, funnel.steps[step - 1])] += 1
        converted = attempt.level == len(funnel.steps)
        if converted:
            outcome = "converted"
            seconds = attempt.time_to_convert_ms() / 1000.0
            bucket = next(le for le in TTC_BUCKETS_S if seconds <= le)
            self.ttc[(funnel.name, window, dims, breakdown, bucket)] += 1
        elif watermark is not None and watermark > closes_after_ms:
            outcome = "dropped"
        else:
            outcome = "in_progress"
        self.outcomes[(funnel.name, window, dims, breakdown, outcome)] += 1
        for experiment, variant in step1.experiments.items():
            self.experiments[(funnel.name, experiment, variant, converted)] += 1
        self.attempts.append(
            FunnelAttemptRow(
                funnel.name,
                window,
                *dims,
                breakdown,
                step1.anonymous_id,
                entity_id,
                step1.event_id,
                outcome,
                attempt.level,
                attempt.step_times_ms,
            )
        )

    def _breakdown(
        self, funnel: FunnelSpec, entity: EntityEvents, attempt: Attempt
    ) -> tuple[str, ...]:
        """The breakdown values on the credited attempt's attributed event (§3)."""
        spec = funnel.breakdown
        if spec is None:
            return ()
        if spec.attribution == "first_touch":
            step = 1
        elif spec.attribution == "last_touch":
            step = attempt.level
        else:
            step = int(spec.attribution[len("step:") :])
            if attempt.level < step:
                return ("",) * len(spec.dimensions)
        event = entity.events[attempt.step_positions[step - 1]]
        dims = self.channels.dims(event)._asdict()
        return tuple(dims[d] if d in dims else breakdown_value(event, d) for d in spec.dimensions)

    def step_rows(self) -> tuple[FunnelStepRow, ...]:
        return tuple(
            sorted(
                FunnelStepRow(name, window, *dims, breakdown, step, step_name, n)
                for (name, window, dims, breakdown, step, step_name), n in self.steps.items()
            )
        )

    def outcome_rows(self) -> tuple[FunnelOutcomeRow, ...]:
        return tuple(
            sorted(
                FunnelOutcomeRow(name, window, *dims, breakdown, outcome, n)
                for (name, window, dims, breakdown, outcome), n in self.outcomes.items()
            )
        )

    def ttc_rows(self) -> tuple[FunnelTtcRow, ...]:
        return tuple(
            sorted(
                FunnelTtcRow(name, window, *dims, breakdown, le, n)
                for (name, window, dims, breakdown, le), n in self.ttc.items()
            )
        )

    def attempt_rows(self) -> tuple[FunnelAttemptRow, ...]:
        return tuple(sorted(self.attempts))

    def experiment_rows(self) -> tuple[ExperimentRow, ...]:
        totals: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for (name, experiment, variant, converted), n in self.experiments.items():
            totals[(name, experiment, variant)][0] += n
            if converted:
                totals[(name, experiment, variant)][1] += n
        return tuple(
            sorted(ExperimentRow(*key, entered, conv) for key, (entered, conv) in totals.items())
        )


_KPI_EVENTS: Final = frozenset({"purchase", "refund", "payment_failed", "order_cancelled"})


def _kpi_rows(
    counted: Sequence[_Counted], channels: _Channels, window_ms: int
) -> tuple[KpiRow, ...]:
    """§4: per minute window of each event's own time and its own dimensions."""
    first_purchase: dict[str, tuple[int, str]] = {}
    for item in counted:
        event = item.event
        if event.event_type == "purchase":
            order = (event.event_time_ms, event.transaction_id or "")
            known = first_purchase.get(event.anonymous_id)
            if known is None or order < known:
                first_purchase[event.anonymous_id] = order
    sums: dict[tuple[int, Dims, str], list[int]] = defaultdict(lambda: [0] * 11)
    for item in counted:
        event = item.event
        if event.event_type not in _KPI_EVENTS:
            continue
        key = (
            window_start(event.event_time_ms, window_ms),
            channels.dims(event),
            event.currency or "",
        )
        acc = sums[key]
        value = event.value_minor or 0
        if event.event_type == "purchase":
            acc[0] += 1
            acc[1] += value
            acc[2] += sum(line.quantity for line in event.items)
            has_coupon = bool(event.coupon) or any(line.coupon for line in event.items)
            acc[3] += has_coupon
            acc[4] += (event.discount_minor or 0) + sum(
                line.discount_minor * line.quantity for line in event.items
            )
            is_first = first_purchase[event.anonymous_id] == (
                event.event_time_ms,
                event.transaction_id or "",
            )
            acc[5 if is_first else 6] += 1
        elif event.event_type == "refund":
            acc[7] += 1
            acc[8] += value
        elif event.event_type == "payment_failed":
            acc[9] += 1
        else:
            acc[10] += 1
    return tuple(
        sorted(
            KpiRow(window, *dims, currency, *values)
            for (window, dims, currency), values in sums.items()
            if any(values)
        )
    )


# -- files ----------------------------------------------------------------------------------


def _encode_float(value: float) -> float | str:
    # JSON has no infinity; the +Inf time-to-convert bucket is written as a string.
    return "+Inf" if value == float("inf") else value


def _decode_float(value: float | str) -> float:
    return float("inf") if value == "+Inf" else float(value)


_INFINITE_COLUMNS: Final = frozenset({"le_seconds", "le_days"})


def _encode_value(value: Any) -> Any:
    if isinstance(value, float):
        return _encode_float(value)
    if isinstance(value, tuple):  # a trigger's items, a breakdown, step times
        return [
            [item.item_id, item.quantity, item.price_minor]
            if isinstance(item, TriggerItem)
            else item
            for item in value
        ]
    return value


def _decode_value(row_type: Any, name: str, value: Any) -> Any:
    if name in _INFINITE_COLUMNS:
        return _decode_float(value)
    if row_type is TriggerRow and name == "items":
        return tuple(TriggerItem(str(i), int(q), int(p)) for i, q, p in value)
    if name == "breakdown":
        return tuple(str(v) for v in value)
    if name == "step_times_ms":
        return tuple(int(v) for v in value)
    return value


def _table(rows: Sequence[tuple[Any, ...]], columns: Sequence[str]) -> dict[str, Any]:
    return {
        "columns": list(columns),
        "rows": [[_encode_value(v) for v in row] for row in rows],
    }


def write_truth(truth: Truth, path: Path) -> None:
    """Write ``truth`` as JSON (deterministic: same truth, same bytes)."""
    document = {
        "format": TRUTH_FORMAT,
        "params": {
            "lateness_ms": truth.lateness_ms,
            "session_timeout_ms": truth.session_timeout_ms,
            "window_ms": truth.window_ms,
            "lifecycle_ms": vars(truth.lifecycle),
        },
        "funnels": [funnel_to_json(f) for f in truth.funnels],
        "stats": truth.stats,
        "gmv_by_currency": truth.gmv_by_currency,
        "true_effects": truth.true_effects,
        "final_watermarks_ms": {str(p): w for p, w in truth.final_watermarks.items()},
        "funnel_steps": _table(truth.funnel_steps, FunnelStepRow._fields),
        "funnel_outcomes": _table(truth.funnel_outcomes, FunnelOutcomeRow._fields),
        "funnel_ttc": _table(truth.funnel_ttc, FunnelTtcRow._fields),
        "funnel_attempts": _table(truth.funnel_attempts, FunnelAttemptRow._fields),
        "order_attribution": _table(truth.order_attribution, AttributionRow._fields),
        "kpi": _table(truth.kpi, KpiRow._fields),
        "retention": _table(truth.retention, RetentionRow._fields),
        "dead_letters": _table(truth.dead_letters, DeadLetterRow._fields),
        "experiments": _table(truth.experiments, ExperimentRow._fields),
        "order_gaps": _table(truth.order_gaps, OrderGapRow._fields),
        "rfm": _table(truth.rfm, RfmRow._fields),
        "transitions": _table(truth.transitions, TransitionRow._fields),
        "triggers": _table(truth.triggers, TriggerRow._fields),
        "late_event_ids": sorted(truth.late_event_ids),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as exc:
        raise TruthFileError(
            f"cannot write the ground truth to {path}: {exc}; choose a writable --truth-out"
        ) from exc


def read_truth(path: Path) -> Truth:
    """Read a file written by :func:`write_truth`."""
    try:
        document = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise TruthFileError(f"cannot read the ground truth {path}: {exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise TruthFileError(f"{path} is not a ground-truth JSON file: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != TRUTH_FORMAT:
        raise TruthFileError(
            f"{path} is not a {TRUTH_FORMAT} file; regenerate it with `funnel simulate`"
        )
    try:
        return _truth_from_document(document)
    except (KeyError, TypeError, ValueError, SimConfigError) as exc:
        raise TruthFileError(f"{path} is damaged ({exc}); regenerate it") from exc


def _rows(table: Mapping[str, Any], row_type: Any) -> tuple[Any, ...]:
    if list(table["columns"]) != list(row_type._fields):
        raise ValueError(f"columns {table['columns']} differ from {list(row_type._fields)}")
    rows = []
    for raw in table["rows"]:
        values = [
            _decode_value(row_type, name, v) for name, v in zip(row_type._fields, raw, strict=True)
        ]
        rows.append(row_type(*values))
    return tuple(rows)


def _truth_from_document(document: Mapping[str, Any]) -> Truth:
    params = document["params"]
    return Truth(
        lateness_ms=int(params["lateness_ms"]),
        session_timeout_ms=int(params["session_timeout_ms"]),
        window_ms=int(params["window_ms"]),
        funnels=tuple(funnel_from_json(f) for f in document["funnels"]),
        funnel_steps=_rows(document["funnel_steps"], FunnelStepRow),
        funnel_outcomes=_rows(document["funnel_outcomes"], FunnelOutcomeRow),
        funnel_ttc=_rows(document["funnel_ttc"], FunnelTtcRow),
        kpi=_rows(document["kpi"], KpiRow),
        retention=_rows(document["retention"], RetentionRow),
        dead_letters=_rows(document["dead_letters"], DeadLetterRow),
        experiments=_rows(document["experiments"], ExperimentRow),
        late_event_ids=frozenset(document["late_event_ids"]),
        final_watermarks={int(p): int(w) for p, w in document["final_watermarks_ms"].items()},
        stats={str(k): int(v) for k, v in document["stats"].items()},
        gmv_by_currency={str(k): int(v) for k, v in document["gmv_by_currency"].items()},
        true_effects={str(k): float(v) for k, v in document["true_effects"].items()},
        lifecycle=LifecycleParams(**{k: int(v) for k, v in params["lifecycle_ms"].items()}),
        order_gaps=_rows(document["order_gaps"], OrderGapRow),
        rfm=_rows(document["rfm"], RfmRow),
        transitions=_rows(document["transitions"], TransitionRow),
        triggers=_rows(document["triggers"], TriggerRow),
        funnel_attempts=_rows(document["funnel_attempts"], FunnelAttemptRow),
        order_attribution=(
            _rows(document["order_attribution"], AttributionRow)
            if "order_attribution" in document
            else ()
        ),
    )
