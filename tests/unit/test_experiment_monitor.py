"""streams.experiment_monitor without a broker or ClickHouse: what one evaluation writes,
sets and sends, and that a decision goes out once. The SQL it runs and the once-only
decision across SIGKILLs are tested end to end in tests/integration/test_experiments_e2e.py."""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from deploy.prometheus.alert_rules import RuleParams
from reports.experiment_readout import ExperimentSums, RatioSums, RevenueSums, VariantSums
from schemas.codec import EventCodec
from schemas.triggers import Trigger
from sinks.metrics import PipelineMetrics
from sinks.tables import TableSpec
from streams import experiment_monitor
from streams.experiment_monitor import (
    ExperimentMonitor,
    decision_trigger_id,
    unrecorded_decisions,
)
from streams.experiments import ExperimentDef, FunnelStepMetric, Guardrail, VariantDef
from streams.outputs import experiment_decisions, experiment_readouts, experiment_status

EXP = ExperimentDef(
    name="cb",
    variants=(VariantDef("A", Fraction(1, 2)), VariantDef("B", Fraction(1, 2))),
    control="A",
    primary=FunnelStepMetric("checkout", 4, "purchase"),
    guardrails=(Guardrail("payment_failure_rate"),),
)


def sums(a: int, b: int, converted_b: int = 500) -> ExperimentSums:
    def v(name: str, n: int, converted: int) -> VariantSums:
        guard = RatioSums(n, 10, 100, 10, 100, 10)
        return VariantSums(
            name,
            n,
            converted,
            converted,
            {"CNY": RevenueSums(n, 0, 0)},
            {"payment_failure_rate": guard},
        )

    return ExperimentSums("cb", {"A": v("A", a, 500), "B": v("B", b, converted_b)}, 0, 0)


class FakeWriter:
    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        self.flushes = 0

    async def submit(self, table: TableSpec, rows: list[tuple[Any, ...]]) -> None:
        self.rows.setdefault(table.name, []).extend(rows)

    async def flush(self) -> None:
        self.flushes += 1


class FakeFuture:
    def __init__(self, offset: int) -> None:
        self.offset = offset

    def __await__(self) -> Any:
        yield from asyncio.sleep(0).__await__()
        return self


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []

    async def send(self, topic: str, value: bytes, key: bytes, partition: int) -> FakeFuture:
        self.sent.append((topic, value, partition))
        return FakeFuture(len(self.sent) - 1)


class FaustProducer:
    def __init__(self, producer: FakeProducer) -> None:
        self._producer = producer


def monitor(
    monkeypatch: pytest.MonkeyPatch, current: list[ExperimentSums]
) -> tuple[ExperimentMonitor, FakeWriter, FakeProducer, CollectorRegistry]:
    monkeypatch.setattr(experiment_monitor, "experiment_sums", lambda client, exp: current[0])
    registry = CollectorRegistry()
    writer, producer = FakeWriter(), FakeProducer()
    m = ExperimentMonitor(
        [EXP],
        reader=lambda: object(),
        writer=writer,  # type: ignore[arg-type]
        metrics=PipelineMetrics(registry),
        codec=EventCodec(),
        triggers_topic="shop.triggers",
        bootstrap="unused:9092",
        producer=lambda: FaustProducer(producer),
        now_ms=lambda: 1_800_000_000_000,
    )
    m._sent = set()  # nothing sent before: skip the broker read of _recover
    return m, writer, producer, registry


def test_an_evaluation_writes_rows_and_gauges(monkeypatch: pytest.MonkeyPatch) -> None:
    m, writer, producer, registry = monitor(monkeypatch, [sums(5000, 5000, 505)])
    [result] = asyncio.run(m.evaluate())
    assert result.decision.verdict.value == "none"
    assert producer.sent == []
    readouts = writer.rows[experiment_readouts.TABLE.name]
    # A and B: primary, revenue in CNY, orders, the guardrail.
    assert len(readouts) == 8
    assert len(writer.rows[experiment_status.TABLE.name]) == 1
    value = registry.get_sample_value
    assert (
        value("shopfunnel_experiment_exposed_users", {"experiment": "cb", "variant": "B"}) == 5000
    )
    assert value("shopfunnel_experiment_verdict", {"experiment": "cb", "verdict": "none"}) == 1
    assert value("shopfunnel_experiment_verdict", {"experiment": "cb", "verdict": "win"}) == 0
    labels = {"experiment": "cb", "variant": "B", "metric": "primary", "test": "fixed_horizon"}
    assert value("shopfunnel_experiment_p_value", labels) == pytest.approx(
        result.metrics["B"][0].fixed_horizon.p_value
    )
    assert value("shopfunnel_experiment_last_evaluation_timestamp_seconds") is not None


def test_a_decision_is_sent_once_and_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    current = [sums(5000, 5000, 800)]
    m, writer, producer, _ = monitor(monkeypatch, current)
    for _ in range(3):
        asyncio.run(m.evaluate())
    assert len(producer.sent) == 1
    topic, value, partition = producer.sent[0]
    trigger = EventCodec().decode_trigger(value)
    assert (topic, partition, trigger.trigger_type) == ("shop.triggers", 0, "experiment_decision")
    assert trigger.trigger_id == decision_trigger_id("cb", "win", "B")
    assert trigger.detail["verdict"] == "win" and trigger.detail["experiment"] == "cb"
    [row] = writer.rows[experiment_decisions.TABLE.name]
    assert row[1:4] == ("cb", "win", "B") and row[-1] == 0  # its offset in the topic
    assert writer.flushes == 1
    # A broken split later is another decision: sent once more.
    current[0] = sums(4000, 6000, 1200)
    asyncio.run(m.evaluate())
    assert [EventCodec().decode_trigger(v).detail["verdict"] for _, v, _ in producer.sent] == [
        "win",
        "srm",
    ]


def test_a_decision_sent_before_a_restart_is_not_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m, _, producer, _ = monitor(monkeypatch, [sums(5000, 5000, 800)])
    m._sent = {decision_trigger_id("cb", "win", "B")}  # what _recover found
    asyncio.run(m.evaluate())
    assert producer.sent == []


def test_a_failed_evaluation_is_counted_and_the_next_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m, _, _, registry = monitor(monkeypatch, [sums(5000, 5000)])

    def broken(client: object, exp: object) -> ExperimentSums:
        raise RuntimeError("engine gone")

    monkeypatch.setattr(experiment_monitor, "experiment_sums", broken)
    assert m.due()
    assert asyncio.run(m.evaluate()) == []
    assert registry.get_sample_value("shopfunnel_experiment_evaluation_failures_total") == 1
    m._next_at += 3600  # as after an evaluation that took 400 s
    assert not m.due()


def test_an_evaluations_time_is_exported_and_sets_the_wait_before_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m, _, _, registry = monitor(monkeypatch, [sums(5000, 5000)])
    clock = [1000.0]
    # The monitor's clock only (asyncio keeps the real one).
    fake_time = SimpleNamespace(monotonic=lambda: clock[0], time=time.time)
    monkeypatch.setattr(experiment_monitor, "time", fake_time)

    def slow(client: object, exp: object) -> ExperimentSums:
        clock[0] += 90.0  # a large store's evaluation
        return sums(5000, 5000)

    monkeypatch.setattr(experiment_monitor, "experiment_sums", slow)
    asyncio.run(m.evaluate())
    assert registry.get_sample_value("shopfunnel_experiment_evaluation_seconds") == 90.0
    clock[0] += m.BACKOFF * 90.0 - 1
    assert not m.due()
    clock[0] += 1
    assert m.due()
    # The stale alert allows for this cycle: the wait and the evaluation itself.
    assert RuleParams().experiment_cycle_evaluations == m.BACKOFF + 1


def test_a_restart_resumes_the_running_readout_from_clickhouse() -> None:
    from streams.experiment_monitor import restored_running
    from streams.experiment_stats import DEFAULT_MIXING

    tau2 = DEFAULT_MIXING.tau2
    status = [("cb", 0.2, 0.05, tau2), ("gone", 0.5, 0.05, tau2)]
    readouts = [
        ("cb", "B", "primary", "", 0.10, 0.30, 1e-6),
        ("cb", "B", "payment_failure_rate", "", None, None, 0.9),
        ("gone", "B", "primary", "", 0.1, 0.2, 0.01),  # no longer configured
    ]
    previous, srm = restored_running([EXP], status, readouts)
    assert srm == {"cb": 0.2}
    primary = previous["cb"][("B", "primary", "")]
    assert primary.p_value == 1e-6 and primary.relative_ci is not None
    assert (primary.relative_ci.low, primary.relative_ci.high) == (0.10, 0.30)
    assert previous["cb"][("B", "payment_failure_rate", "")].relative_ci is None
    # A changed alpha or mixing: the stored intervals are of another level; start again.
    assert restored_running([EXP], [("cb", 0.2, 0.10, tau2)], readouts) == ({}, {})
    assert restored_running([EXP], [("cb", 0.2, 0.05, tau2 * 2)], readouts) == ({}, {})


def test_after_a_restart_an_earlier_win_stays_a_win(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.experiment_monitor import restored_running
    from streams.experiment_stats import DEFAULT_MIXING

    m, _, _, _ = monitor(monkeypatch, [sums(5000, 5000, 505)])  # alone: no difference
    previous, srm = restored_running(
        [EXP],
        [("cb", 1.0, 0.05, DEFAULT_MIXING.tau2)],
        [("cb", "B", "primary", "", 0.05, 0.30, 1e-6)],
    )
    m._previous.update(previous)
    m._previous_srm.update(srm)
    [result] = asyncio.run(m.evaluate())
    primary = result.metrics["B"][0].always_valid
    assert primary.p_value == 1e-6  # the running minimum
    assert primary.relative_ci is not None and primary.relative_ci.low >= 0.05
    assert result.decision.verdict.value == "win"


def test_readout_rows_carry_every_step_reached_and_the_orders_behind_the_aov() -> None:
    from dataclasses import replace

    from reports.experiment_readout import readout

    base = sums(5000, 5000, 505)
    a = replace(
        base.variants["A"],
        reached=(900, 700, 600, 500),
        revenue={"CNY": RevenueSums(5000, 90_000, 9_000_000, 120)},
    )
    r = readout(EXP, replace(base, variants={"A": a, "B": base.variants["B"]}))
    rows = {(row[2], row[4], row[5]): row for row in experiment_readouts.build_rows(r, 1)}
    steps = [rows[("A", f"step_{k}", "")][7] for k in range(1, 5)]
    assert steps == [900, 700, 600, 500]
    assert ("A", "step_5", "") not in rows
    revenue = rows[("A", "revenue_per_user", "CNY")]
    assert revenue[7:10] == (90_000, 9_000_000, 120)  # total, total_sq, purchases


def _decision(verdict: str, variant: str, at: int) -> Trigger:
    return Trigger(
        trigger_id=decision_trigger_id("cb", verdict, variant),
        trigger_type="experiment_decision",
        anonymous_id="",
        occurred_at_ms=at,
        emitted_at_ms=at + 5,
        detail={
            "experiment": "cb",
            "verdict": verdict,
            "variant": variant,
            "metric": "primary",
            "reason": "why",
        },
    )


def test_a_decision_sent_just_before_a_crash_is_recorded_once_at_restart() -> None:
    """The worker died between the send and the record: the restart's read of the topic
    finds the trigger, and its row is written with the trigger's offset, once."""
    win, srm = _decision("win", "B", 1_000), _decision("srm", "", 2_000)
    recorded = {decision_trigger_id("cb", "win", "B")}
    found = [(41, srm), (7, win), (44, srm)]  # the second srm: a resend's duplicate
    rows = unrecorded_decisions(recorded, found)
    assert rows == [experiment_decisions.build_row(2_000, "cb", "srm", "", "primary", "why", 41)]
    assert unrecorded_decisions(set(), found)[0][-1] == 7  # nothing recorded: win first
    assert unrecorded_decisions(recorded | {srm.trigger_id}, found) == []
