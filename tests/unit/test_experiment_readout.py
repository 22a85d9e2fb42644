"""reports.experiment_readout's readout (issue #14): what the engine makes of the sums,
without a broker or ClickHouse. The SQL behind the sums is compared with the simulator's
truth end to end in tests/integration/test_experiments_e2e.py."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest
from statsmodels.stats.proportion import proportions_ztest

from reports.experiment_readout import (
    SRM_ALPHA,
    ExperimentSums,
    RatioSums,
    RevenueSums,
    VariantSums,
    ratio_moments,
    readout,
)
from simulator.truth_experiments import RatioSums as TruthRatioSums
from streams.experiment_stats import Verdict
from streams.experiments import (
    ExperimentDef,
    FunnelStepMetric,
    Guardrail,
    RevenuePerUser,
    VariantDef,
)

HALF = Fraction(1, 2)
EXP = ExperimentDef(
    name="cb",
    variants=(VariantDef("A", HALF), VariantDef("B", HALF)),
    control="A",
    primary=FunnelStepMetric("checkout", 4, "purchase"),
    guardrails=(Guardrail("payment_failure_rate"),),
)


def variant(name: str, n: int, converted: int, failures: int = 0, payments: int = 0) -> VariantSums:
    # One payment attempt per paying visitor: squares equal the counts.
    guard = RatioSums(n, failures, payments, failures, payments, failures)
    return VariantSums(
        name,
        n,
        converted,
        converted,
        {"CNY": RevenueSums(n, 0, 0)},
        {"payment_failure_rate": guard},
    )


def sums(a: VariantSums, b: VariantSums, mixed: int = 0) -> ExperimentSums:
    return ExperimentSums("cb", {"A": a, "B": b}, mixed=mixed, unknown=0)


def test_a_clear_win_is_decided_and_the_fixed_test_matches_statsmodels() -> None:
    r = readout(EXP, sums(variant("A", 5000, 500), variant("B", 5000, 700)))
    assert r.decision.verdict == Verdict.WIN and r.decision.variant == "B"
    [primary, guard] = r.metrics["B"]
    assert primary.metric == "primary" and guard.metric == "payment_failure_rate"
    _, p = proportions_ztest([700, 500], [5000, 5000])
    assert primary.fixed_horizon.p_value == pytest.approx(p, rel=1e-9)
    assert primary.always_valid.relative_lift == pytest.approx(0.4)
    # The always-valid p-value is larger than the fixed one (the price of peeking).
    assert primary.always_valid.p_value > primary.fixed_horizon.p_value


def test_no_difference_is_no_decision() -> None:
    r = readout(EXP, sums(variant("A", 5000, 500), variant("B", 5000, 505)))
    assert r.decision.verdict == Verdict.NONE
    assert r.srm_chi_square.p_value == pytest.approx(1.0)


def test_a_broken_split_stops_everything_else() -> None:
    r = readout(EXP, sums(variant("A", 4000, 400), variant("B", 6000, 900)))
    assert r.srm_sequential.p_value <= SRM_ALPHA
    assert r.decision.verdict == Verdict.SRM


def test_a_worse_guardrail_breaks_even_a_winner() -> None:
    a = variant("A", 5000, 500, failures=50, payments=1000)
    b = variant("B", 5000, 700, failures=200, payments=1000)
    r = readout(EXP, sums(a, b))
    assert r.decision.verdict == Verdict.GUARDRAIL_BREACH
    assert r.decision.metric == "payment_failure_rate"
    # With a tolerated change larger than what the data shows, the win stands.
    tolerant = replace(EXP, guardrails=(Guardrail("payment_failure_rate", threshold=Fraction(50)),))
    assert readout(tolerant, sums(a, b)).decision.verdict == Verdict.WIN


def test_a_better_guardrail_is_no_breach_unless_any_direction_is_watched() -> None:
    a = variant("A", 5000, 500, failures=200, payments=1000)
    b = variant("B", 5000, 500, failures=50, payments=1000)
    assert readout(EXP, sums(a, b)).decision.verdict == Verdict.NONE
    both = replace(EXP, guardrails=(Guardrail("payment_failure_rate", direction="any"),))
    assert readout(both, sums(a, b)).decision.verdict == Verdict.GUARDRAIL_BREACH


def test_previous_evaluations_are_folded_in() -> None:
    first = readout(EXP, sums(variant("A", 5000, 500), variant("B", 5000, 700)))
    previous = {
        (v, m.metric, m.currency): m.always_valid for v, ms in first.metrics.items() for m in ms
    }
    # Later data with a smaller lift: the running p-value keeps the earlier minimum, and
    # the interval is the intersection.
    later = readout(
        EXP,
        sums(variant("A", 10000, 1000), variant("B", 10000, 1250)),
        previous,
        first.srm_sequential.p_value,
    )
    assert later.metrics["B"][0].always_valid.p_value == first.metrics["B"][0].always_valid.p_value
    assert later.decision.verdict == Verdict.WIN
    ci, first_ci = (
        later.metrics["B"][0].always_valid.relative_ci,
        first.metrics["B"][0].always_valid.relative_ci,
    )
    assert ci is not None and first_ci is not None
    assert first_ci.low <= ci.low and ci.high <= first_ci.high


def test_revenue_per_user_reads_each_currency() -> None:
    exp = replace(EXP, primary=RevenuePerUser(), guardrails=())

    def rev(name: str, n: int, cny: tuple[int, int], usd: tuple[int, int]) -> VariantSums:
        revenue = {"CNY": RevenueSums(n, *cny), "USD": RevenueSums(n, *usd)}
        return VariantSums(name, n, None, 0, revenue, {})

    r = readout(
        exp, sums(rev("A", 100, (1000, 50_000), (0, 0)), rev("B", 100, (2000, 90_000), (10, 100)))
    )
    assert [(m.metric, m.currency) for m in r.metrics["B"]] == [
        ("revenue_per_user", "CNY"),
        ("revenue_per_user", "USD"),
    ]
    cny = r.metrics["B"][0].always_valid
    assert (cny.control_mean, cny.treatment_mean) == (10.0, 20.0)


@pytest.mark.parametrize(
    "numbers",
    [(100, 30, 120, 40, 200, 60), (2, 1, 2, 1, 2, 1), (50, 0, 40, 0, 60, 0), (10, 5, 0, 5, 0, 0)],
)
def test_the_guardrail_delta_method_agrees_with_the_truths_own(numbers: tuple[int, ...]) -> None:
    n, num, den, num_sq, den_sq, cross = numbers
    ours = ratio_moments(RatioSums(n, num, den, num_sq, den_sq, cross))
    theirs = TruthRatioSums(n, num, den, num_sq, den_sq, cross).moments()
    assert (ours.n, ours.mean, ours.variance) == pytest.approx(theirs)


def test_cuped_adjusts_the_primary_and_decides_with_it() -> None:
    from reports.experiment_readout import CovariateSums
    from streams.experiments import CupedRule

    # Revenue per user whose pre-exposure revenue x explains most of y: CUPED narrows
    # the interval of the same lift.
    exp = replace(
        EXP,
        primary=RevenuePerUser("CNY"),
        guardrails=(),
        cuped=CupedRule("pre_exposure_revenue", 86_400_000),
    )

    def rev(name: str, n: int, y: int, y_sq: int, x: int, x_sq: int, xy: int) -> VariantSums:
        return VariantSums(
            name,
            n,
            None,
            0,
            {"CNY": RevenueSums(n, y, y_sq)},
            {},
            cuped={"CNY": CovariateSums(n, y, y_sq, x, x_sq, xy)},
        )

    a = rev("A", 1000, 100_000, 20_000_000, 100_000, 20_000_000, 19_500_000)
    b = rev("B", 1000, 108_000, 22_000_000, 100_000, 20_000_000, 20_300_000)
    r = readout(exp, sums(a, b))
    by_metric = {m.metric: m for m in r.metrics["B"]}
    assert set(by_metric) == {"revenue_per_user", "revenue_per_user_cuped"}
    raw, adjusted = by_metric["revenue_per_user"], by_metric["revenue_per_user_cuped"]
    raw_ci, adj_ci = raw.fixed_horizon.relative_ci, adjusted.fixed_horizon.relative_ci
    assert raw_ci is not None and adj_ci is not None
    assert adj_ci.high - adj_ci.low < (raw_ci.high - raw_ci.low) / 2
    assert r.decision.metric == "revenue_per_user_cuped:CNY"
