"""The processing core against the simulator's independent ground truth, without a broker.

Records go through the real codec and channel rules into one PartitionProcessor per
partition, in the order the simulator would produce them per topic-partition; the
batches interleave the three topics at random. Every aggregate row must equal the
truth (docs/semantics.md), including after crashes at random points.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas.channels import ChannelRules
from schemas.codec import EventCodec
from schemas.triggers import Trigger
from schemas.validation import ValidationBounds
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.records import SimRecord
from simulator.truth import compute_truth
from simulator.truth_model import LifecycleParams, Truth, funnel_specs
from streams.batch import BatchResult
from streams.checkpoint import meta_key
from streams.funnels import load_funnels
from streams.lifecycle import DAY_MS, LifecycleRules
from streams.outputs.dead_letters import TABLE as DEAD_LETTERS
from streams.outputs.late_events import TABLE as LATE_EVENTS
from streams.outputs.segment_transitions import TABLE as SEGMENT_TRANSITIONS
from streams.outputs.user_rfm import TABLE as USER_RFM
from streams.processor import PartitionProcessor
from streams.records import Record as InputRecord
from streams.visitor import Rules
from tests.native.twin import TwinProcessor
from tests.pipeline_harness import attribution_table
from tests.unit.fakes import DictStore, row_layouts

TOPICS = {"clickstream": "c", "cart": "k", "orders": "o"}
MIXED_FUNNELS = Path(__file__).parents[2] / "bench" / "funnels_mixed.yaml"


LAYOUTS = row_layouts()


class Sink:
    """Newest version per ClickHouse key, like ReplacingMergeTree ... FINAL."""

    def __init__(self) -> None:
        # (table, key) -> (version, values, counters, is_final) of the newest row.
        self.rows: dict[
            tuple[str, tuple[object, ...]],
            tuple[int, tuple[object, ...], tuple[object, ...], bool],
        ] = {}
        self.late_ids: set[str] = set()
        self.dead: Counter[tuple[str, str]] = Counter()
        self.rfm: dict[str, tuple[int, tuple[object, ...]]] = {}
        self.transitions: set[tuple[object, ...]] = set()
        self.triggers: dict[str, Trigger] = {}

    def write(self, result: BatchResult) -> None:
        for spec, rows in result.rows.items():
            if spec in LAYOUTS:
                at = LAYOUTS[spec]
                for row in rows:
                    key = (spec.name, at.key(row))
                    version = at.version(row)
                    if key not in self.rows or self.rows[key][0] <= version:
                        self.rows[key] = (
                            version,
                            at.values(row),
                            at.counters(row),
                            at.is_final(row),
                        )
            elif spec is LATE_EVENTS:
                self.late_ids.update(str(r[0]) for r in rows)
            elif spec is DEAD_LETTERS:
                for r in rows:
                    self.dead[(str(r[0]), str(r[5]))] += 1
            elif spec is USER_RFM:
                for r in rows:
                    if r[0] not in self.rfm or self.rfm[str(r[0])][0] <= r[-1]:  # type: ignore[operator]
                        self.rfm[str(r[0])] = (r[-1], r[2:9])  # type: ignore[assignment]
            elif spec is SEGMENT_TRANSITIONS:
                self.transitions.update(r[:4] for r in rows)
        for trigger in result.triggers:
            self.triggers[trigger.trigger_id] = trigger

    def open_keys(self, partition: int) -> list[tuple[object, ...]]:
        """What the worker reads back at recovery: non-final, non-zero rows' keys."""
        specs = {spec.name: spec for spec in LAYOUTS}
        keys = []
        for (name, key), (_, _values, counters, final) in self.rows.items():
            if key[-1] == partition and not final and any(counters):
                keys.append(LAYOUTS[specs[name]].read_key(key))
        return keys

    def summed(self, table: str) -> dict[tuple[object, ...], tuple[int, ...]]:
        """Rows summed over the partition column, zero rows dropped."""
        out: dict[tuple[object, ...], list[object]] = {}
        for (name, key), (_, values, _counters, _final) in self.rows.items():
            if name != table:
                continue
            head = key[:-1]  # the partition is the last key column
            acc = out.setdefault(head, [0 if isinstance(v, int) else v for v in values])
            for i, v in enumerate(values):
                if isinstance(v, int):
                    acc[i] += v  # type: ignore[operator]
        return {
            k: tuple(v)  # type: ignore[misc]
            for k, v in out.items()
            if any(x for x in v if isinstance(x, int))
        }


def day_s(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def lifecycle_truth(truth: Truth) -> dict[str, object]:
    return {
        "retention": {
            (
                r.cohort_kind,
                r.granularity,
                day_s(r.cohort_start),
                r.activity,
                r.period,
                r.channel,
                r.platform,
            ): (r.users,)
            for r in truth.retention
        },
        "gaps": {(day_s(r.day), r.channel, r.le_days): (r.orders,) for r in truth.order_gaps},
        "rfm": {
            r.anonymous_id: (
                r.stage,
                r.first_purchase_ms,
                r.last_purchase_ms,
                r.frequency,
                r.monetary_minor,
                r.currency,
                r.channel,
            )
            for r in truth.rfm
        },
        "transitions": {
            (r.anonymous_id, r.at_ms, r.from_stage, r.to_stage) for r in truth.transitions
        },
        "triggers": {
            r.trigger_id: (
                r.trigger_type,
                r.anonymous_id,
                r.occurred_at_ms,
                r.cart_value_minor,
                r.currency,
                tuple((i.item_id, i.quantity, i.price_minor) for i in r.items),
                r.segment,
                r.previous_segment,
            )
            for r in truth.triggers
        },
    }


def lifecycle_pipeline(sink: Sink) -> dict[str, object]:
    def retention_key(k: tuple[object, ...]) -> tuple[object, ...]:
        kind, gran, cohort, activity, n, channel, platform = k
        return (
            kind,
            gran,
            int(datetime(cohort.year, cohort.month, cohort.day, tzinfo=UTC).timestamp()),  # type: ignore[attr-defined]
            activity,
            n,
            channel,
            platform,
        )

    def gap_key(k: tuple[object, ...]) -> tuple[object, ...]:
        day, channel, bucket = k
        return (
            int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()),
            channel,
            bucket,
        )  # type: ignore[attr-defined]

    return {
        "retention": {retention_key(k): v for k, v in sink.summed("retention_cohorts").items()},
        "gaps": {gap_key(k): v for k, v in sink.summed("order_gaps_daily").items()},
        "rfm": {a: row[:4] + row[4:7] for a, (_, row) in sink.rfm.items()},
        "transitions": set(sink.transitions),
        "triggers": {
            t.trigger_id: (
                t.trigger_type,
                t.anonymous_id,
                t.occurred_at_ms,
                t.cart_value_minor,
                t.currency,
                tuple((i.item_id, i.quantity, i.price_minor) for i in t.items),
                t.segment,
                t.previous_segment,
            )
            for t in sink.triggers.values()
        },
    }


def _dims(r: Any) -> tuple[str, str, str, str, str]:
    return (r.channel, r.campaign, r.device, r.platform, r.country)


def truth_tables(truth: Truth) -> dict[str, dict[tuple[object, ...], tuple[object, ...]]]:
    """The truth keyed like :meth:`Sink.summed`: key columns, then values."""
    t = truth
    return {
        "funnel_steps_minute": {
            (r.funnel, r.window_start_ms // 1000, *_dims(r), r.step, r.breakdown): (
                r.step_name,
                r.entered,
            )
            for r in t.funnel_steps
        },
        "funnel_outcomes_minute": {
            (r.funnel, r.window_start_ms // 1000, *_dims(r), r.outcome, r.breakdown): (r.entities,)
            for r in t.funnel_outcomes
        },
        "funnel_ttc_minute": {
            (r.funnel, r.window_start_ms // 1000, *_dims(r), r.le_seconds, r.breakdown): (
                r.converted,
            )
            for r in t.funnel_ttc
        },
        "funnel_attempts": {
            (
                r.funnel,
                r.window_start_ms // 1000,
                *_dims(r),
                r.anonymous_id,
                r.entity,
                r.start_event_id,
                r.outcome,
                r.level,
                r.step_times_ms,
                r.breakdown,
            ): (1,)
            for r in t.funnel_attempts
        },
        "kpi_minute": {
            (r.window_start_ms // 1000, *_dims(r), r.currency): tuple(r[7:]) for r in t.kpi
        },
    }


def pipeline_tables(sink: Sink) -> dict[str, dict[tuple[object, ...], tuple[object, ...]]]:
    return {
        name: sink.summed(name)
        for name in (
            "funnel_steps_minute",
            "funnel_outcomes_minute",
            "funnel_ttc_minute",
            "funnel_attempts",
            "kpi_minute",
            "order_attribution",
        )
    }


class PartitionRun:
    """One partition's worker: a table store, its changelog log, and crash/recovery."""

    def __init__(self, partition: int, rules: Rules, sink: Sink, cache_visitors: int = 0) -> None:
        self.partition = partition
        self.cache_visitors = cache_visitors
        self.rules = rules
        self.sink = sink
        self.codec = EventCodec(bounds=ValidationBounds(replay=True))
        self.channels = ChannelRules.load()
        self.log: list[tuple[bytes, bytes | None]] = []
        self.store = DictStore()
        self.proc = self._fresh()
        self.keep(self.proc.recover())

    def _fresh(self) -> PartitionProcessor | TwinProcessor:
        # Both cores, compared on every call (tests/native/twin.py); the compiled core's
        # results go on to the sink, whose tables are checked against the truth.
        return TwinProcessor(
            self.partition,
            self.rules,
            self.codec,
            self.channels,
            TOPICS,
            self.store,
            cache_visitors=self.cache_visitors,
        )

    def keep(self, result: BatchResult) -> None:
        writes = list(result.state_writes.items())
        if result.meta:
            writes.append((meta_key(self.partition), self.proc.meta_record()))
        for key, value in writes:  # None: a tombstone (a visitor with nothing left)
            self.store.put(key, value, self.partition)
            self.log.append((key, value))
        self.sink.write(result)

    def crash(self, rnd: random.Random, durable: int) -> None:
        """Keep the changelog up to the last commit plus a random prefix of the rest."""
        del self.log[rnd.randint(durable, len(self.log)) :]
        self.store = DictStore()
        for key, value in self.log:
            self.store.put(key, value, self.partition)
        self.proc = self._fresh()
        self.keep(self.proc.recover(self.sink.open_keys(self.partition)))


def run_core(
    records: list[SimRecord],
    config: SimConfig,
    seed: int,
    crashes: int = 0,
    cache_visitors: int = 0,
    lifecycle: LifecycleRules | None = None,
    funnels: Path | None = None,
) -> Sink:
    rnd = random.Random(seed)
    rules = Rules(
        load_funnels(funnels),
        window_ms=config.window_ms,
        session_timeout_ms=config.session_timeout_ms,
        lateness_ms=config.lateness_ms,
        lifecycle=lifecycle or LifecycleRules(),
    )
    per_tp: dict[tuple[str, int], list[InputRecord]] = defaultdict(list)
    for rec in records:
        queue = per_tp[(rec.stream, rec.partition)]
        queue.append(InputRecord(len(queue), rec.key, rec.value, rec.send_time_ms))
    sink = Sink()
    for partition in sorted({p for _, p in per_tp}):
        inputs = {s: per_tp[(s, partition)] for s in TOPICS}
        worker = PartitionRun(partition, rules, sink, cache_visitors)
        position = dict.fromkeys(TOPICS, 0)
        committed = dict(position)
        durable = 0
        total = sum(len(v) for v in inputs.values())
        crash_after = sorted(rnd.sample(range(total // 2000 + 2, total // 500 + 4), crashes))
        batches = 0
        while any(position[s] < len(inputs[s]) for s in TOPICS):
            stream = rnd.choice([s for s in TOPICS if position[s] < len(inputs[s])])
            chunk = inputs[stream][position[stream] : position[stream] + rnd.randint(1, 700)]
            position[stream] += len(chunk)
            worker.keep(worker.proc.process(stream, chunk, committed[stream]))
            batches += 1
            if rnd.random() < 0.3:
                committed, durable = dict(position), len(worker.log)
            if crash_after and batches == crash_after[0]:
                crash_after.pop(0)
                worker.crash(rnd, durable)
                position = dict(committed)
        worker.keep(worker.proc.tick({s: len(inputs[s]) for s in TOPICS}))
    return sink


CONFIG = SimConfig(
    seed=7,
    users=400,
    days=0.25,
    duplicate_pct=3,
    out_of_order_pct=8,
    late_pct=1.5,
    malformed_pct=1,
    json_pct=10,
)


@pytest.fixture(scope="module")
def simulated() -> tuple[list[SimRecord], object]:
    records = list(generate(CONFIG))
    truth = compute_truth(
        records,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
        window_ms=CONFIG.window_ms,
    )
    return records, truth


def assert_tables_equal(
    got: dict[str, dict[tuple[object, ...], tuple[object, ...]]],
    want: dict[str, dict[tuple[object, ...], tuple[object, ...]]],
) -> None:
    for table, rows in want.items():
        mismatched = {
            k: (rows.get(k), got[table].get(k))
            for k in set(rows) | set(got[table])
            if rows.get(k) != got[table].get(k)
        }
        assert not mismatched, (
            f"{table}: {len(mismatched)} rows differ, e.g. {list(mismatched.items())[:3]}"
        )
        assert rows, f"{table}: the truth has no rows; the scenario is too small"


def test_every_aggregate_row_equals_the_truth(simulated: tuple[list[SimRecord], object]) -> None:
    records, truth = simulated
    sink = run_core(records, CONFIG, seed=1)
    assert_tables_equal(pipeline_tables(sink), truth_tables(truth))
    assert sink.late_ids == set(truth.late_event_ids)  # type: ignore[attr-defined]
    assert sink.late_ids, "the scenario must contain late events"
    want_dead = Counter({(TOPICS[r.stream], r.reason): r.records for r in truth.dead_letters})  # type: ignore[attr-defined]
    assert sink.dead == want_dead


@pytest.mark.parametrize(("seed", "cache_visitors"), [(2, 0), (3, 0), (4, 50)])
def test_random_crashes_leave_every_row_equal_to_the_truth(
    simulated: tuple[list[SimRecord], object], seed: int, cache_visitors: int
) -> None:
    # 50 cached visitors: the optional decoded-state cache, evicting all the time.
    records, truth = simulated
    sink = run_core(records, CONFIG, seed=seed, crashes=3, cache_visitors=cache_visitors)
    assert_tables_equal(pipeline_tables(sink), truth_tables(truth))


@pytest.fixture(scope="module")
def simulated_mixed(
    simulated: tuple[list[SimRecord], Truth],
) -> tuple[list[SimRecord], Truth]:
    """The same traffic under ten funnels: every mode, both scopes, filters, exclusions,
    per-step windows, breakdowns and a custom event (bench/funnels_mixed.yaml)."""
    records = simulated[0]
    truth = compute_truth(
        records,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
        window_ms=CONFIG.window_ms,
        funnels=funnel_specs(load_funnels(MIXED_FUNNELS)),
    )
    return records, truth


def _funnels_with_rows(truth: Truth) -> set[str]:
    return {r.funnel for r in truth.funnel_steps}


@pytest.mark.parametrize(("seed", "crashes", "cache_visitors"), [(1, 0, 0), (6, 3, 0), (8, 3, 40)])
def test_mixed_funnels_equal_the_truth_with_crashes(
    simulated_mixed: tuple[list[SimRecord], Truth], seed: int, crashes: int, cache_visitors: int
) -> None:
    records, truth = simulated_mixed
    # Every funnel of the file has rows (the scenario exercises each feature), and the
    # breakdowns have values other than empty.
    assert _funnels_with_rows(truth) == {f.name for f in load_funnels(MIXED_FUNNELS)}
    assert {r.breakdown for r in truth.funnel_steps if r.funnel == "size_guide"} - {("",)}
    sink = run_core(
        records,
        CONFIG,
        seed=seed,
        crashes=crashes,
        cache_visitors=cache_visitors,
        funnels=MIXED_FUNNELS,
    )
    assert_tables_equal(pipeline_tables(sink), truth_tables(truth))


# A month of traffic with short lifecycle thresholds, so every transition kind happens.
LIFECYCLE = SimConfig(
    seed=21,
    users=500,
    days=20,
    duplicate_pct=2,
    out_of_order_pct=5,
    late_pct=1,
    malformed_pct=0.5,
    json_pct=5,
)
LIFECYCLE_MS = {
    "new_ms": DAY_MS,
    "dormant_ms": 3 * DAY_MS,
    "churn_ms": 7 * DAY_MS,
    "cart_abandon_ms": 30 * 60_000,
    "anonymous_ttl_ms": 5 * DAY_MS,
    "buyer_ttl_ms": 12 * DAY_MS,
}


@pytest.fixture(scope="module")
def month_of_traffic() -> tuple[list[SimRecord], Truth]:
    records = list(generate(LIFECYCLE))
    params = LifecycleParams(
        anonymous_ttl_ms=LIFECYCLE_MS["anonymous_ttl_ms"],
        buyer_ttl_ms=LIFECYCLE_MS["buyer_ttl_ms"],
        rfm_new_ms=LIFECYCLE_MS["new_ms"],
        rfm_dormant_ms=LIFECYCLE_MS["dormant_ms"],
        rfm_churn_ms=LIFECYCLE_MS["churn_ms"],
        cart_abandon_ms=LIFECYCLE_MS["cart_abandon_ms"],
    )
    truth = compute_truth(
        records,
        lateness_ms=LIFECYCLE.lateness_ms,
        session_timeout_ms=LIFECYCLE.session_timeout_ms,
        window_ms=LIFECYCLE.window_ms,
        lifecycle=params,
    )
    return records, truth


@pytest.mark.parametrize("crashes", [0, 3])
def test_retention_rfm_transitions_and_triggers_equal_the_truth(
    month_of_traffic: tuple[list[SimRecord], Truth], crashes: int
) -> None:
    records, truth = month_of_traffic
    sink = run_core(
        records,
        LIFECYCLE,
        seed=5 + crashes,
        crashes=crashes,
        lifecycle=LifecycleRules(**LIFECYCLE_MS),
    )
    got, want = lifecycle_pipeline(sink), lifecycle_truth(truth)
    for part in ("retention", "gaps", "rfm", "transitions", "triggers"):
        g, w = got[part], want[part]
        assert w, f"the truth has no {part}; the scenario is too small"
        if isinstance(w, dict):
            bad = {k: (w.get(k), g.get(k)) for k in set(w) | set(g) if w.get(k) != g.get(k)}  # type: ignore[union-attr]
        else:
            bad = {k: (k in w, k in g) for k in set(w) ^ set(g)}  # type: ignore[operator, arg-type]
        assert not bad, f"{part}: {len(bad)} differ, e.g. {sorted(bad.items(), key=repr)[:3]}"
    # Attribution over a month: buyers with many sessions, states that outlive the short
    # TTLs because their touchpoints are inside the 30-day lookback.
    want_credit, got_credit = attribution_table(truth), sink.summed("order_attribution")
    bad_credit = {
        k: (want_credit.get(k), got_credit.get(k))
        for k in set(want_credit) | set(got_credit)
        if want_credit.get(k) != got_credit.get(k)
    }
    assert not bad_credit, (
        f"order_attribution: {len(bad_credit)} differ, "
        f"e.g. {sorted(bad_credit.items(), key=repr)[:3]}"
    )
    keys_per_order = Counter(k[2] for k in want_credit if k[3] == "linear")
    assert sum(1 for n in keys_per_order.values() if n >= 2) >= 10, Counter(keys_per_order.values())
    kinds = Counter(t[0] for t in want["triggers"].values())  # type: ignore[union-attr]
    assert {
        "cart_abandoned",
        "first_purchase",
        "user_became_dormant",
        "user_churned",
        "user_reactivated",
        "segment_changed",
    } <= set(kinds), kinds
