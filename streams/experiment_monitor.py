"""The live experiment readout (issue #14): every ``experiment_eval_seconds`` the worker
that holds input partition 0 reads each configured experiment out.

One evaluation, per experiment:

1. its sufficient statistics, by the SQL of :mod:`reports.experiment_readout` over the
   counted events and funnel attempts in ClickHouse (run in a thread, on a read handle of
   its own: the agent keeps processing meanwhile);
2. the readout (:func:`reports.experiment_readout.readout`), folding in the previous
   evaluation's always-valid results, so p-values are running minima and intervals
   running intersections (docs/semantics.md §3b);
3. rows in ``experiment_readouts`` and ``experiment_status``, and the gauges;
4. a decision (win, lose, guardrail breach, sample-ratio mismatch) goes on the triggers
   topic once: trigger ids are derived from (experiment, verdict, variant), and the ones
   already sent are known from ``experiment_decisions`` plus a read of the triggers
   partition after the last recorded one (a crash between the send and the record).

Only one worker evaluates: the holder of partition 0 of the clickstream topic, so a
consumer group publishes each decision from one place. The numbers are exact whenever
the tables are (they are what the SQL reads); the evaluation is as live as the writer's
flush interval plus ``experiment_eval_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from reports.experiment_readout import ExperimentReadout, experiment_sums, readout
from schemas.codec import EventCodec
from schemas.triggers import Trigger, trigger_id
from sinks.clickhouse import ClickHouseWriter
from sinks.metrics import PipelineMetrics
from streams.experiment_stats import (
    DEFAULT_MIXING,
    EVERYTHING,
    AlwaysValidResult,
    Interval,
    Verdict,
)
from streams.experiments import ExperimentDef
from streams.faust_private import underlying_producer
from streams.outputs import experiment_decisions, experiment_readouts, experiment_status
from streams.outputs.family import Row

log = logging.getLogger(__name__)

DECISION_TRIGGER = "experiment_decision"
DECISIONS_PARTITION = 0


def decision_trigger_id(experiment: str, verdict: str, variant: str) -> str:
    return trigger_id(DECISION_TRIGGER, "", experiment, verdict, variant)


def restored_running(
    experiments: Sequence[ExperimentDef],
    status: Sequence[Sequence[Any]],
    readouts: Sequence[Sequence[Any]],
) -> tuple[dict[str, dict[tuple[str, str, str], AlwaysValidResult]], dict[str, float]]:
    """The running state of the newest stored readout: per experiment, the always-valid
    p-value and relative interval of every (variant, metric, currency), and the
    sequential SRM p-value. ``status``: (experiment, srm_sequential_p, alpha, mixing_tau2);
    ``readouts``: (experiment, variant, metric, currency, ci_low, ci_high, p_always_valid).
    An experiment whose alpha or mixing changed since is left out."""
    tau2 = DEFAULT_MIXING.tau2
    current = {e.name: e for e in experiments}
    kept: dict[str, float] = {}
    for name, srm_p, alpha, mixing in status:
        exp = current.get(str(name))
        if exp is not None and float(alpha) == float(exp.alpha) and float(mixing) == tau2:
            kept[str(name)] = float(srm_p)
    previous: dict[str, dict[tuple[str, str, str], AlwaysValidResult]] = {}
    for name, variant, metric, currency, low, high, p in readouts:
        if str(name) not in kept or p is None:
            continue
        exp = current[str(name)]
        previous.setdefault(str(name), {})[(str(variant), str(metric), str(currency))] = (
            AlwaysValidResult(
                method="msprt_normal_mixture",
                alpha=float(exp.alpha),
                tau2=tau2,
                control_mean=0.0,
                treatment_mean=0.0,
                absolute_lift=0.0,
                relative_lift=None,
                z=0.0,
                log_likelihood_ratio=0.0,
                p_value=float(p),
                absolute_ci=EVERYTHING,
                relative_ci=(
                    Interval(float(low), float(high))
                    if low is not None and high is not None
                    else None
                ),
            )
        )
    return previous, {name: p for name, p in kept.items() if 0 < p <= 1}


def unrecorded_decisions(recorded: set[str], found: Sequence[tuple[int, Trigger]]) -> list[Row]:
    """The ``experiment_decisions`` rows of the decision triggers ``found`` in the topic
    (with their offsets) whose ids are not ``recorded``: each once, at its first offset."""
    rows: list[Row] = []
    seen = set(recorded)
    for offset, trig in sorted(found, key=lambda pair: pair[0]):
        if trig.trigger_id in seen:
            continue
        seen.add(trig.trigger_id)
        d = trig.detail
        rows.append(
            experiment_decisions.build_row(
                trig.occurred_at_ms,
                str(d["experiment"]),
                str(d["verdict"]),
                str(d.get("variant", "")),
                str(d.get("metric", "")),
                str(d.get("reason", "")),
                offset,
            )
        )
    return rows


@dataclass
class ExperimentMonitor:
    experiments: Sequence[ExperimentDef]
    reader: Callable[[], Any]  # a clickhouse-connect client of its own (a read handle)
    writer: ClickHouseWriter
    metrics: PipelineMetrics
    codec: EventCodec
    triggers_topic: str
    bootstrap: str
    producer: Callable[[], Any] = lambda: None  # the app's Faust producer
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000)
    # Running state between evaluations (rebuilt from ClickHouse when it starts).
    _previous: dict[str, dict[tuple[str, str, str], AlwaysValidResult]] = field(
        default_factory=dict
    )
    _previous_srm: dict[str, float] = field(default_factory=dict)
    _sent: set[str] | None = None
    _client: Any = None
    _next_at: float = 0.0  # monotonic seconds

    # An evaluation's SQL reads every stored event (BENCHMARKS.md: about 0.75 s per
    # experiment at 240,000 events): the next one waits at least this many times as long
    # as the last took, so the readout never takes more than a tenth of a core.
    BACKOFF = 9.0

    def due(self) -> bool:
        return time.monotonic() >= self._next_at

    def _reader(self) -> Any:
        if self._client is None:
            self._client = self.reader()
        return self._client

    async def evaluate(self) -> list[ExperimentReadout]:
        """One evaluation of every experiment (a failure is logged and counted; the next
        evaluation tries again)."""
        started = time.monotonic()
        try:
            if self._sent is None:
                try:
                    await self._restore_running()
                except Exception:  # starting afresh is valid, only less tight
                    log.warning("could not resume the running readouts; starting afresh")
                self._sent = await self._recover()
            out = []
            for exp in self.experiments:
                sums = await asyncio.to_thread(experiment_sums, self._reader(), exp)
                result = readout(
                    exp, sums, self._previous.get(exp.name), self._previous_srm.get(exp.name, 1.0)
                )
                self._previous[exp.name] = {
                    (variant, m.metric, m.currency): m.always_valid
                    for variant, ms in result.metrics.items()
                    for m in ms
                }
                self._previous_srm[exp.name] = result.srm_sequential.p_value
                at = self.now_ms()
                await self.writer.submit(
                    experiment_readouts.TABLE, experiment_readouts.build_rows(result, at)
                )
                await self.writer.submit(
                    experiment_status.TABLE, [experiment_status.build_row(result, at)]
                )
                self._observe(result)
                await self._decide(result, at)
                out.append(result)
            self.metrics.experiment_last_evaluation.set(time.time())
            return out
        except Exception:
            self.metrics.experiment_evaluation_failures.inc()
            log.exception("experiment evaluation failed; trying again at the next one")
            return []
        finally:
            took = time.monotonic() - started
            self.metrics.experiment_evaluation_seconds.set(took)
            self._next_at = time.monotonic() + self.BACKOFF * took

    def _observe(self, r: ExperimentReadout) -> None:
        m, name = self.metrics, r.exp.name
        for variant, count in r.sums.counts().items():
            m.experiment_exposed.labels(name, variant).set(count)
        m.experiment_excluded.labels(name, "mixed").set(r.sums.mixed)
        m.experiment_excluded.labels(name, "unknown").set(r.sums.unknown)
        m.experiment_srm_p_value.labels(name, "chi_square").set(r.srm_chi_square.p_value)
        m.experiment_srm_p_value.labels(name, "sequential").set(r.srm_sequential.p_value)
        m.set_experiment_verdict(name, r.decision.verdict.value, [v.value for v in Verdict])
        for variant, readouts in r.metrics.items():
            for x in readouts:
                if x.currency:  # revenue per currency: ClickHouse and the report only
                    continue
                av = x.always_valid
                labels = (name, variant, x.metric)
                if av.relative_lift is not None:
                    m.experiment_lift.labels(*labels).set(av.relative_lift)
                if av.relative_ci is not None:
                    m.experiment_ci_low.labels(*labels).set(av.relative_ci.low)
                    m.experiment_ci_high.labels(*labels).set(av.relative_ci.high)
                m.experiment_p_value.labels(*labels, "always_valid").set(av.p_value)
                m.experiment_p_value.labels(*labels, "fixed_horizon").set(x.fixed_horizon.p_value)

    async def _decide(self, r: ExperimentReadout, at: int) -> None:
        d = r.decision
        if d.verdict == Verdict.NONE:
            return
        assert self._sent is not None
        variant = d.variant or ""
        tid = decision_trigger_id(r.exp.name, d.verdict.value, variant)
        if tid in self._sent:
            return
        offset = await self._publish(
            Trigger(
                trigger_id=tid,
                trigger_type=DECISION_TRIGGER,
                anonymous_id="",
                occurred_at_ms=at,
                emitted_at_ms=self.now_ms(),
                detail={
                    "experiment": r.exp.name,
                    "verdict": d.verdict.value,
                    "variant": variant,
                    "metric": d.metric or "",
                    "reason": d.reason,
                },
            )
        )
        self._sent.add(tid)
        await self.writer.submit(
            experiment_decisions.TABLE,
            [
                experiment_decisions.build_row(
                    at, r.exp.name, d.verdict.value, variant, d.metric or "", d.reason, offset
                )
            ],
        )
        await self.writer.flush()
        log.warning(
            "experiment %s: %s (%s); trigger %s at offset %d",
            r.exp.name,
            d.verdict.value,
            d.reason,
            tid,
            offset,
        )

    async def _publish(self, trigger: Trigger) -> int:
        producer = underlying_producer(self.producer())
        if producer is None:
            raise RuntimeError("the app's Kafka producer is not started")
        future = await producer.send(
            self.triggers_topic,
            self.codec.encode_trigger(trigger),
            key=trigger.trigger_id.encode(),
            partition=DECISIONS_PARTITION,
        )
        metadata = await future
        return int(metadata.offset)

    async def _restore_running(self) -> None:
        """Fold the newest stored readout into the running state, so that a restart keeps
        the running p-values and intervals (docs/semantics.md §3b); only for experiments
        whose alpha and mixing are unchanged. The absolute intervals are not stored: they
        start again."""
        status = await asyncio.to_thread(
            lambda: (
                self._reader()
                .query(
                    "SELECT experiment, argMax(srm_sequential_p, evaluated_at), "
                    "argMax(alpha, evaluated_at), argMax(mixing_tau2, evaluated_at) "
                    "FROM experiment_status GROUP BY experiment"
                )
                .result_rows
            )
        )
        readouts = await asyncio.to_thread(
            lambda: (
                self._reader()
                .query(
                    "SELECT experiment, variant, metric, currency, ci_low, ci_high, p_always_valid "
                    "FROM v_experiment_readouts_latest WHERE p_always_valid IS NOT NULL"
                )
                .result_rows
            )
        )
        previous, srm = restored_running(self.experiments, status, readouts)
        self._previous.update(previous)
        self._previous_srm.update(srm)
        if previous:
            log.info("experiment readouts resumed from ClickHouse: %s", ", ".join(previous))

    async def _recover(self) -> set[str]:
        """Decision triggers already sent: those recorded in ClickHouse, and any in the
        triggers partition after the last recorded one (sent, then a crash before the
        record; with none recorded, the partition's last 10,000 records)."""
        rows = await asyncio.to_thread(
            lambda: (
                self._reader()
                .query(
                    "SELECT experiment, verdict, variant, triggers_offset "
                    "FROM experiment_decisions FINAL"
                )
                .result_rows
            )
        )
        recorded = {decision_trigger_id(e, v, var) for e, v, var, _ in rows}
        after = max((int(row[3]) + 1 for row in rows), default=None)
        found: list[tuple[int, Trigger]] = []
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(self.triggers_topic, DECISIONS_PARTITION)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            start = after if after is not None else max(0, end - 10_000)
            if start < end:
                consumer.seek(tp, start)
                while (await consumer.position(tp)) < end:
                    batch = await consumer.getmany(tp, timeout_ms=2000)
                    for record in batch.get(tp, []):
                        trig = self.codec.decode_trigger(record.value)
                        if trig.trigger_type == DECISION_TRIGGER:
                            found.append((int(record.offset), trig))
        finally:
            await consumer.stop()
        missing = unrecorded_decisions(recorded, found)
        if missing:
            # Sent, then a crash before the record: record them now, so that the table
            # lists every published decision (and the next restart reads less of the topic).
            await self.writer.submit(experiment_decisions.TABLE, missing)
            await self.writer.flush()
            log.warning(
                "experiment decisions published before a crash, now recorded: %d", len(missing)
            )
        sent = recorded | {trig.trigger_id for _, trig in found}
        if sent:
            log.info("experiment decisions already published: %d", len(sent))
        return sent
