"""The experiment scenarios end to end, in process: simulate, take the truth's sufficient
statistics (simulator/truth_experiments.py), read them out with the statistics engine
(streams/experiment_stats.py), and find the known true effect of each scenario.

Known true effects (simulator/scenarios.py), each the only difference between A and B of
checkout_button (the scenarios replace the default +15% of B):

- experiment-lift: B's P(intends to pay | begin_checkout) is exactly 1.10x A's, and so is
  P(purchase | begin_checkout). Per exposed visitor (the primary: any checkout attempt
  at or after exposure reaching purchase) the expected lift is a little below +10%
  (about +9.7%), because a visitor with several checkouts converts once. Paired runs of
  100,000 visitors (the same visitors with and without the effect, seeds 1 and 2; A is
  identical in both) realised +8.9% and +8.8% per visitor, against +9.2% and +9.1% per
  begin_checkout (expected exactly +10%): TRUE_VISITOR_LIFT spans 8.8% to 10%.
- experiment-payment-failures: a B payment attempt fails with probability 10% (A: 5%).
- experiment-srm: visitors are split 45/55 instead of the configured 50/50.

The readouts use the engine's default mixing (``DEFAULT_MIXING``, tuned for 10,000 users
per arm) and the packaged experiment definitions (streams/experiments.yaml). The lift is
read twice: with the packaged ``exposure: first_event`` (every visitor is exposed, so the
+9% on a 7% rate is not reliably significant at this size; only its sign and interval are
checked) and
with ``exposure: {event: begin_checkout}`` (the visitors the change can affect; the
always-valid test must find B better). The records are generated without their encoded
bytes (the truth reads the events), which takes 40% off the generation time.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cache

import pytest

from schemas.codec import EventCodec
from schemas.model import Event
from simulator.config import SimConfig
from simulator.errors import SimConfigError
from simulator.generate import generate
from simulator.scenarios import (
    BASE_PAYMENT_FAILURE,
    EXPERIMENT_B_PAYMENT_FAILURE,
    EXPERIMENT_LIFT,
    SRM_B_SHARE,
)
from simulator.truth_experiments import ExperimentTruth, VariantTruth, experiment_truth_of_events
from simulator.truth_exploration import counted_events
from streams.experiment_stats import (
    AlwaysValidResult,
    Decision,
    Guardrail,
    Moments,
    ProportionStats,
    SrmResult,
    Verdict,
    always_valid_test,
    decide,
    srm_chi_square,
    srm_sequential,
)
from streams.experiments import ExperimentDef, ExposureRule, load_experiments
from streams.funnels import load_funnels

EXPERIMENTS = load_experiments(funnels=load_funnels())
CHECKOUT_BUTTON = next(e for e in EXPERIMENTS if e.name == "checkout_button")
BANNER = next(e for e in EXPERIMENTS if e.name == "free_shipping_banner")
AT_CHECKOUT = replace(CHECKOUT_BUTTON, exposure=ExposureRule("begin_checkout"))
ALPHA = float(CHECKOUT_BUTTON.alpha)
# Visitors per run: enough for each effect to show with always-valid inference.
# The lift (about +9.7% of 56% per visitor who begins checkout) and the breach (5% -> 10%
# of payment attempts) have an expected z of about 5, so that other seeds pass too (the
# always-valid test needs z >= 3.1 here; seeds 1-4 were checked).
USERS = {
    "experiment-lift": 70_000,
    "experiment-payment-failures": 36_000,
    "experiment-srm": 6_000,
    None: 6_000,
}
# The per-visitor lift of experiment-lift lies in here (module docstring).
TRUE_VISITOR_LIFT = (0.088, EXPERIMENT_LIFT)


class _NoBytes(EventCodec):
    """Skips encoding: the truth reads ``SimRecord.event``, not the bytes."""

    def encode_avro(self, event: Event, *, version: int | None = None) -> bytes:
        return b""

    def encode_json(self, event: Event) -> bytes:
        return b""


def config(scenario: str | None, users: int, lift: float = 0.15) -> SimConfig:
    return SimConfig(users=users, days=1.0, scenario=scenario, checkout_button_lift=lift)


@cache
def events_of(scenario: str | None) -> tuple[Event, ...]:
    cfg = config(scenario, USERS[scenario])
    return tuple(counted_events(generate(cfg, codec=_NoBytes()), cfg.lateness_ms))


def truth(scenario: str | None, experiment: ExperimentDef) -> ExperimentTruth:
    cfg = config(scenario, USERS[scenario])
    return experiment_truth_of_events(
        events_of(scenario), [experiment], session_timeout_ms=cfg.session_timeout_ms
    )[experiment.name]


def primary_test(t: ExperimentTruth) -> AlwaysValidResult:
    return always_valid_test(_proportion(t.variants["A"]), _proportion(t.variants["B"]), ALPHA)


def _proportion(v: VariantTruth) -> ProportionStats:
    assert v.primary is not None
    return ProportionStats(v.primary.n, v.primary.conversions)


def srm_tests(t: ExperimentTruth) -> tuple[SrmResult, SrmResult]:
    return srm_chi_square(t.counts(), t.weights), srm_sequential(t.counts(), t.weights)


def readout(t: ExperimentTruth, experiment: ExperimentDef) -> Decision:
    """The decision for the experiment's (one) treatment, as the live readout takes it."""
    (treatment,) = experiment.treatments
    control = t.variants[experiment.control]
    variant = t.variants[treatment]
    guardrails = [
        Guardrail(
            g.metric,
            always_valid_test(
                Moments(*control.guardrails[g.metric].moments()),
                Moments(*variant.guardrails[g.metric].moments()),
                ALPHA,
            ),
            "increase",
        )
        for g in experiment.guardrails
    ]
    return decide(
        variant=treatment,
        primary=always_valid_test(_proportion(control), _proportion(variant), ALPHA),
        alpha=ALPHA,
        guardrails=guardrails,
        srm=srm_sequential(t.counts(), t.weights),
    )


# -- the scenarios --------------------------------------------------------------------------


def test_experiment_scenarios_run_the_whole_time() -> None:
    for name in ("experiment-lift", "experiment-payment-failures", "experiment-srm"):
        cfg = config(name, 10)
        assert cfg.scenario_window_ms() == (cfg.start_ms, cfg.end_ms)
        with pytest.raises(SimConfigError, match="whole run"):
            SimConfig(scenario=name, scenario_start_s=60.0)


def visits(cfg: SimConfig) -> dict[str, tuple[str, list[tuple[str, int]]]]:
    """Per visitor: its checkout_button variant and its events (type, time)."""
    out: dict[str, tuple[str, list[tuple[str, int]]]] = {}
    for record in generate(cfg, codec=_NoBytes()):
        e = record.event
        if e is not None:
            variant = e.experiments["checkout_button"]
            out.setdefault(e.anonymous_id, (variant, []))[1].append((e.event_type, e.event_time_ms))
    return out


@pytest.mark.parametrize(
    "scenario", ["experiment-lift", "experiment-payment-failures", "experiment-srm"]
)
def test_a_scenario_changes_b_and_nothing_else(scenario: str) -> None:
    # Against the same visitors with no effect on B at all (lift 0, no scenario).
    changed = visits(config(scenario, 2000))
    null = visits(config(None, 2000, lift=0.0))
    assert changed.keys() == null.keys()
    a_same = all(changed[v] == null[v] for v, (variant, _) in null.items() if variant == "A")
    if scenario == "experiment-srm":
        # Some of A moved to B, with their behaviour; the others are untouched.
        moved = [v for v in null if null[v][0] == "A" and changed[v][0] == "B"]
        assert 0.07 < len(moved) / sum(1 for v in null.values() if v[0] == "A") < 0.13
        assert all(changed[v][1] == null[v][1] for v in null)
        assert all(changed[v][0] == "A" for v in null if null[v][0] == "A" and v not in moved)
        return
    assert a_same
    b_changed = [v for v, (variant, _) in null.items() if variant == "B" and changed[v] != null[v]]
    assert b_changed


def test_experiment_lift_is_found_with_the_true_effect_in_the_interval() -> None:
    t = truth("experiment-lift", AT_CHECKOUT)
    result = primary_test(t)
    assert result.p_value <= ALPHA
    assert result.absolute_ci.low > 0
    assert result.relative_ci is not None
    low, high = TRUE_VISITOR_LIFT
    assert result.relative_ci.low <= low and high <= result.relative_ci.high
    decision = readout(t, AT_CHECKOUT)
    assert (decision.verdict, decision.variant) == (Verdict.WIN, "B")
    # The packaged definition (everyone exposed at the first event): the same visitors
    # convert, diluted by those who never check out; the interval holds the effect.
    packaged = primary_test(truth("experiment-lift", CHECKOUT_BUTTON))
    assert packaged.relative_ci is not None and packaged.relative_lift is not None
    assert packaged.relative_lift > 0
    assert packaged.relative_ci.low <= low and high <= packaged.relative_ci.high
    # The data: P(purchase | begin_checkout) per variant (truth counts, exposure at it).
    a, b = (_proportion(t.variants[v]) for v in ("A", "B"))
    assert 1.0 < (b.conversions / b.n) / (a.conversions / a.n) < 1.2


def test_experiment_payment_failures_breach_the_guardrail() -> None:
    t = truth("experiment-payment-failures", CHECKOUT_BUTTON)
    a = t.variants["A"].guardrails["payment_failure_rate"]
    b = t.variants["B"].guardrails["payment_failure_rate"]
    # The data: about 5% and 10% of payment attempts fail (within 4 standard errors).
    for sums, p in ((a, BASE_PAYMENT_FAILURE), (b, EXPERIMENT_B_PAYMENT_FAILURE)):
        assert abs(sums.rate - p) < 4 * math.sqrt(p * (1 - p) / sums.denominator)
    decision = readout(t, CHECKOUT_BUTTON)
    assert decision.verdict == Verdict.GUARDRAIL_BREACH
    assert (decision.variant, decision.metric) == ("B", "payment_failure_rate")


def test_experiment_srm_is_flagged_and_the_baseline_is_not() -> None:
    broken = truth("experiment-srm", CHECKOUT_BUTTON)
    counts = broken.counts()
    assert abs(counts["B"] / sum(counts.values()) - SRM_B_SHARE) < 0.02  # 4 standard errors
    for result in srm_tests(broken):
        assert result.p_value <= ALPHA
        assert result.worst_variant in ("A", "B")
    decision = readout(broken, CHECKOUT_BUTTON)
    assert decision.verdict == Verdict.SRM
    # The other experiment of the same run keeps its split.
    assert all(r.p_value > ALPHA for r in srm_tests(truth("experiment-srm", BANNER)))
    baseline = truth(None, CHECKOUT_BUTTON)
    counts = baseline.counts()
    assert abs(counts["B"] / sum(counts.values()) - 0.5) < 0.02
    assert all(r.p_value > ALPHA for r in srm_tests(baseline))


def test_baseline_decides_nothing_wrong() -> None:
    # free_shipping_banner has no effect at all: no decision. checkout_button has the
    # default simulation's true effect (B: P(intends to pay | begin_checkout) x 1.15, so
    # P(purchase | begin_checkout) too): with 6,000 visitors, all exposed, it is not
    # significant yet with this seed (none); another seed may already call it a win, but
    # never a loss, an SRM or a guardrail breach.
    assert readout(truth(None, BANNER), BANNER).verdict == Verdict.NONE
    assert readout(truth(None, CHECKOUT_BUTTON), CHECKOUT_BUTTON).verdict in (
        Verdict.NONE,
        Verdict.WIN,
    )
    for experiment in (CHECKOUT_BUTTON, BANNER):
        t = truth(None, experiment)
        assert (t.mixed, t.unknown) == (0, 0)
        assert sum(t.counts().values()) == USERS[None]  # every visitor exposed once
