"""streams.experiment_stats (issue #14): numbers against scipy/statsmodels, mSPRT edge cases
and formula, running readouts, SRM, CUPED and decisions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from funnel.errors import FunnelError
from streams.experiment_stats import (
    DEFAULT_MIXING,
    EVERYTHING,
    AlwaysValidResult,
    CovariateStats,
    ExperimentStatsError,
    Guardrail,
    Interval,
    MeanStats,
    Mixing,
    Moments,
    ProportionStats,
    SrmResult,
    Verdict,
    accumulate,
    always_valid_test,
    cuped_adjust,
    cuped_theta,
    decide,
    msprt_log_lr,
    msprt_multiplier,
    msprt_p_value,
    optimal_ratio,
    srm_chi_square,
    srm_sequential,
    two_proportion_z_test,
    welch_z_test,
)

PROPORTION_CASES = [
    # (n_control, conversions_control, n_treatment, conversions_treatment, alpha)
    (1000, 50, 1000, 65, 0.05),
    (20_000, 1_000, 20_500, 1_130, 0.05),
    (347, 12, 512, 31, 0.10),
    (50_000, 4_000, 49_000, 3_800, 0.01),
    (80, 3, 95, 0, 0.05),
]


def _mean_stats(values: np.ndarray) -> MeanStats:
    return MeanStats(len(values), float(values.sum()), float((values * values).sum()))


# --------------------------------------------------------------------- fixed horizon


@pytest.mark.parametrize(("na", "xa", "nb", "xb", "alpha"), PROPORTION_CASES)
def test_two_proportion_z_test_equals_statsmodels(
    na: int, xa: int, nb: int, xb: int, alpha: float
) -> None:
    res = two_proportion_z_test(ProportionStats(na, xa), ProportionStats(nb, xb), alpha)
    z, p = proportions_ztest(count=[xb, xa], nobs=[nb, na])
    low, high = confint_proportions_2indep(xb, nb, xa, na, method="wald", alpha=alpha)
    assert res.z == pytest.approx(z, rel=1e-10)
    assert res.p_value == pytest.approx(p, rel=1e-9, abs=1e-15)
    assert res.absolute_lift == pytest.approx(xb / nb - xa / na)
    assert res.absolute_ci.low == pytest.approx(low, rel=1e-10)
    assert res.absolute_ci.high == pytest.approx(high, rel=1e-10)


@pytest.mark.parametrize(("na", "xa", "nb", "xb", "alpha"), PROPORTION_CASES)
def test_relative_lift_interval_is_the_delta_method(
    na: int, xa: int, nb: int, xb: int, alpha: float
) -> None:
    res = two_proportion_z_test(ProportionStats(na, xa), ProportionStats(nb, xb), alpha)
    pa, pb = xa / na, xb / nb
    ratio = pb / pa
    # Var(pb/pa) ~ (Var(pb) + ratio^2 Var(pa)) / pa^2
    se = math.sqrt((pb * (1 - pb) / nb + ratio**2 * pa * (1 - pa) / na) / pa**2)
    q = stats.norm.ppf(1 - alpha / 2)
    assert res.relative_lift == pytest.approx(ratio - 1)
    assert res.relative_ci is not None
    assert res.relative_ci.low == pytest.approx(ratio - 1 - q * se)
    assert res.relative_ci.high == pytest.approx(ratio - 1 + q * se)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_welch_z_test_equals_statsmodels_compare_means(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = np.where(rng.random(800 + 37 * seed) < 0.08, rng.lognormal(3.4, 1.0, 800 + 37 * seed), 0.0)
    b = np.where(rng.random(900) < 0.09, rng.lognormal(3.5, 1.1, 900), 0.0)
    alpha = [0.05, 0.01, 0.1, 0.2][seed - 1]
    res = welch_z_test(_mean_stats(a), _mean_stats(b), alpha)
    cm = CompareMeans(DescrStatsW(b), DescrStatsW(a))
    z, p = cm.ztest_ind(usevar="unequal")
    low, high = cm.zconfint_diff(alpha=alpha, usevar="unequal")
    assert res.z == pytest.approx(z, rel=1e-9)
    assert res.p_value == pytest.approx(p, rel=1e-8)
    assert res.absolute_ci.low == pytest.approx(low, rel=1e-9)
    assert res.absolute_ci.high == pytest.approx(high, rel=1e-9)
    assert res.control_mean == pytest.approx(a.mean())
    assert res.treatment_mean == pytest.approx(b.mean())


def test_fixed_horizon_degenerate_inputs() -> None:
    empty = two_proportion_z_test(ProportionStats(0, 0), ProportionStats(10, 3))
    assert empty.p_value == 1.0 and empty.absolute_ci == EVERYTHING and empty.relative_ci is None
    none_converted = two_proportion_z_test(ProportionStats(100, 0), ProportionStats(100, 0))
    assert none_converted.p_value == 1.0 and none_converted.relative_lift is None
    one_user = welch_z_test(MeanStats(1, 5.0, 25.0), MeanStats(10, 50.0, 300.0))
    assert one_user.p_value == 1.0 and one_user.absolute_ci == EVERYTHING
    constant = welch_z_test(MeanStats(10, 10.0, 10.0), MeanStats(10, 20.0, 40.0))
    assert constant.p_value == 1.0 and constant.absolute_ci == EVERYTHING


# --------------------------------------------------------------------- SRM


@pytest.mark.parametrize(
    ("counts", "weights"),
    [
        ({"control": 5000, "treatment": 5100}, {"control": 1, "treatment": 1}),
        ({"control": 10_321, "b": 10_012, "c": 9_880}, {"control": 1, "b": 1, "c": 1}),
        ({"control": 9_000, "treatment": 1_100}, {"control": 0.9, "treatment": 0.1}),
        ({"a": 120, "b": 260, "c": 300, "d": 310}, {"a": 0.1, "b": 0.3, "c": 0.3, "d": 0.3}),
    ],
)
def test_srm_chi_square_equals_scipy(counts: dict[str, int], weights: dict[str, float]) -> None:
    res = srm_chi_square(counts, weights)
    names = sorted(counts)
    obs = np.array([counts[k] for k in names], dtype=float)
    w = np.array([weights[k] for k in names], dtype=float)
    ref = stats.chisquare(obs, f_exp=obs.sum() * w / w.sum())
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_srm_names_the_most_off_split_variant() -> None:
    res = srm_chi_square({"control": 5000, "b": 5010, "c": 4200}, {"control": 1, "b": 1, "c": 1})
    assert res.worst_variant == "c" and res.p_value < 1e-10
    seq = srm_sequential({"control": 5000, "b": 5010, "c": 4200}, {"control": 1, "b": 1, "c": 1})
    assert seq.worst_variant == "c" and seq.p_value < 1e-6


@pytest.mark.parametrize("concentration", [1.0, 100.0, 1000.0])
def test_sequential_srm_bayes_factor_equals_dirichlet_multinomial_over_multinomial(
    concentration: float,
) -> None:
    x = np.array([480, 530, 1010])
    p0 = np.array([0.25, 0.25, 0.5])
    res = srm_sequential(
        {"a": 480, "b": 530, "c": 1010}, {"a": 1, "b": 1, "c": 2}, concentration=concentration
    )
    log_bf = stats.dirichlet_multinomial.logpmf(
        x, concentration * p0, x.sum()
    ) - stats.multinomial.logpmf(x, x.sum(), p0)
    assert res.statistic == pytest.approx(log_bf, rel=1e-9)
    assert res.p_value == pytest.approx(min(1.0, math.exp(-log_bf)))


def test_sequential_srm_keeps_the_running_minimum() -> None:
    w = {"a": 1.0, "b": 1.0}
    first = srm_sequential({"a": 600, "b": 400}, w)
    assert first.p_value < 0.01
    later = srm_sequential({"a": 5_000, "b": 5_000}, w, previous_p_value=first.p_value)
    assert later.p_value == first.p_value
    assert srm_sequential({"a": 5_000, "b": 5_000}, w).p_value == 1.0
    assert srm_sequential({"a": 0, "b": 0}, w).p_value == 1.0


# --------------------------------------------------------------------- mSPRT


def test_msprt_likelihood_ratio_is_the_normal_mixture_integral() -> None:
    """Lambda = integral of N(delta; theta, se^2) / N(delta; 0, se^2) over theta ~ N(0, tau^2)."""
    for delta, se, tau in [
        (0.01, 0.004, 0.02),
        (-0.3, 0.2, 0.05),
        (2.0, 1.5, 3.0),
        (0.0, 0.1, 0.1),
    ]:
        inv_n = 1.0  # so the mixing variance in se units is tau^2 / se^2 with tau2 = (tau/se)^2
        tau2 = (tau / se) ** 2

        def integrand(theta: float, d: float = delta, s: float = se, t: float = tau) -> float:
            return float(
                stats.norm.pdf(d, theta, s) / stats.norm.pdf(d, 0, s) * stats.norm.pdf(theta, 0, t)
            )

        lam, _ = integrate.quad(integrand, -12 * tau, 12 * tau, points=[delta], limit=200)
        got = float(msprt_log_lr(delta, se * se, inv_n, tau2))
        assert got == pytest.approx(math.log(lam), rel=1e-7, abs=1e-9)


def test_msprt_interval_edge_is_where_lambda_reaches_one_over_alpha() -> None:
    res = always_valid_test(ProportionStats(20_000, 1_000), ProportionStats(20_000, 1_120))
    var = 0.05 * 0.95 / 20_000 + 0.056 * 0.944 / 20_000
    inv_n = 2 / 20_000
    for edge in (res.absolute_ci.low, res.absolute_ci.high):
        # the test of H0: difference = edge sees delta - edge
        lam = float(msprt_log_lr(res.absolute_lift - edge, var, inv_n, DEFAULT_MIXING.tau2))
        assert lam == pytest.approx(math.log(1 / 0.05), rel=1e-9)


def test_p_value_and_interval_agree() -> None:
    for xb in range(1_000, 1_250, 10):
        res = always_valid_test(ProportionStats(20_000, 1_000), ProportionStats(20_000, xb))
        assert (res.p_value <= 0.05) == (not res.absolute_ci.contains(0.0))


def test_msprt_edge_cases_give_p_one() -> None:
    for control, treatment in [
        (ProportionStats(0, 0), ProportionStats(0, 0)),
        (ProportionStats(0, 0), ProportionStats(100, 7)),
        (ProportionStats(100, 0), ProportionStats(100, 0)),  # zero variance
        (ProportionStats(500, 40), ProportionStats(500, 40)),  # identical arms
        (MeanStats(0, 0, 0), MeanStats(5, 10.0, 30.0)),
        (MeanStats(1, 3.0, 9.0), MeanStats(1, 4.0, 16.0)),
        (MeanStats(50, 100.0, 200.0), MeanStats(60, 120.0, 240.0)),  # zero variance
        (MeanStats(50, 100.0, 900.0), MeanStats(50, 100.0, 900.0)),  # identical arms
    ]:
        res = always_valid_test(control, treatment)  # type: ignore[arg-type]
        assert res.p_value == 1.0, (control, treatment)
        assert res.log_likelihood_ratio <= 0.0
    res = always_valid_test(ProportionStats(0, 0), ProportionStats(10, 1))
    assert res.absolute_ci == EVERYTHING and res.relative_ci is None


def test_identical_arms_have_p_one_and_a_symmetric_interval() -> None:
    res = always_valid_test(MeanStats(1000, 5_000.0, 90_000.0), MeanStats(1000, 5_000.0, 90_000.0))
    assert res.p_value == 1.0
    assert res.absolute_ci.low == pytest.approx(-res.absolute_ci.high)
    assert res.relative_ci is not None and res.relative_ci.low < 0 < res.relative_ci.high


def test_always_valid_relative_interval_uses_the_same_multiplier() -> None:
    a, b = MeanStats(5_000, 9_000.0, 400_000.0), MeanStats(5_200, 10_100.0, 450_000.0)
    res, fixed = always_valid_test(a, b), welch_z_test(a, b)
    assert res.relative_ci is not None and fixed.relative_ci is not None
    c = float(msprt_multiplier(1 / 5_000 + 1 / 5_200, DEFAULT_MIXING.tau2, 0.05))
    q = stats.norm.ppf(0.975)
    half_fixed = (fixed.relative_ci.high - fixed.relative_ci.low) / 2
    assert (res.relative_ci.high - res.relative_ci.low) / 2 == pytest.approx(half_fixed * c / q)
    assert res.relative_lift == pytest.approx((10_100 / 5_200) / (9_000 / 5_000) - 1)


def test_always_valid_interval_is_wider_than_fixed_horizon() -> None:
    a, b = ProportionStats(20_000, 1_000), ProportionStats(20_000, 1_100)
    av, fixed = always_valid_test(a, b), two_proportion_z_test(a, b)
    assert av.absolute_ci.low < fixed.absolute_ci.low < fixed.absolute_ci.high < av.absolute_ci.high
    assert av.p_value > fixed.p_value


def test_scalar_and_vectorised_cores_agree() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        na, nb = int(rng.integers(2, 50_000)), int(rng.integers(2, 50_000))
        xa, xb = int(rng.binomial(na, 0.06)), int(rng.binomial(nb, 0.065))
        res = always_valid_test(ProportionStats(na, xa), ProportionStats(nb, xb), 0.05)
        pa, pb = xa / na, xb / nb
        var = pa * (1 - pa) / na + pb * (1 - pb) / nb
        inv_n = 1 / na + 1 / nb
        p = float(msprt_p_value(pb - pa, var, inv_n, DEFAULT_MIXING.tau2))
        assert res.p_value == pytest.approx(p, rel=1e-12)
        half = float(msprt_multiplier(inv_n, DEFAULT_MIXING.tau2, 0.05)) * math.sqrt(var)
        assert res.absolute_ci.high - res.absolute_lift == pytest.approx(half, rel=1e-9)


def test_mixing_for_target_n_minimises_the_half_width_there() -> None:
    r = optimal_ratio(0.05)
    assert r == pytest.approx(2 * math.log(20) + math.log1p(r), rel=1e-12)
    assert 8.1 < r < 8.3
    n = 10_000
    inv_n = 2 / n
    best = float(msprt_multiplier(inv_n, Mixing.for_target_n(n).tau2, 0.05))
    for factor in (0.5, 0.8, 1.25, 2.0):
        other = float(msprt_multiplier(inv_n, Mixing.for_target_n(n * factor).tau2, 0.05))
        assert other > best
    assert Mixing.for_relative_mde_proportion(0.05, 0.1).tau2 == pytest.approx(
        (0.005 / math.sqrt(0.05 * 0.95)) ** 2
    )


def test_running_readout_is_monotone() -> None:
    """Peeking on a growing experiment: running p never rises, intervals are nested."""
    rng = np.random.default_rng(11)
    na = nb = xa = xb = 0
    running: AlwaysValidResult | None = None
    for _ in range(300):
        ua, ub = int(rng.poisson(40)), int(rng.poisson(40))
        na, nb = na + ua, nb + ub
        xa, xb = xa + int(rng.binomial(ua, 0.05)), xb + int(rng.binomial(ub, 0.06))
        now = always_valid_test(ProportionStats(na, xa), ProportionStats(nb, xb))
        new = accumulate(running, now)
        assert new.p_value <= now.p_value
        if running is not None:
            assert new.p_value <= running.p_value
            assert running.absolute_ci.low <= new.absolute_ci.low
            assert new.absolute_ci.high <= running.absolute_ci.high
            assert new.absolute_ci.low <= new.absolute_ci.high
        running = new
    assert running is not None and running.p_value < 1.0


def test_accumulate_refuses_mixed_settings() -> None:
    a = always_valid_test(ProportionStats(10, 1), ProportionStats(10, 2), alpha=0.05)
    b = always_valid_test(ProportionStats(10, 1), ProportionStats(10, 2), alpha=0.10)
    with pytest.raises(ExperimentStatsError):
        accumulate(a, b)


# --------------------------------------------------------------------- CUPED


def _covariate_stats(x: np.ndarray, y: np.ndarray) -> CovariateStats:
    return CovariateStats(
        len(x), float(y.sum()), float((y * y).sum()), float(x.sum()), float((x * x).sum()),
        float((x * y).sum()),
    )  # fmt: skip


def test_cuped_theta_is_the_pooled_within_variant_slope() -> None:
    rng = np.random.default_rng(3)
    xa, xb = rng.normal(10, 3, 2000), rng.normal(10, 3, 2100)
    ya, yb = 2 + 0.7 * xa + rng.normal(0, 2, 2000), 3 + 0.7 * xb + rng.normal(0, 2, 2100)
    theta = cuped_theta([_covariate_stats(xa, ya), _covariate_stats(xb, yb)])
    dx = np.concatenate([xa - xa.mean(), xb - xb.mean()])
    dy = np.concatenate([ya - ya.mean(), yb - yb.mean()])
    assert theta == pytest.approx(float((dx * dy).sum() / (dx * dx).sum()), rel=1e-9)
    res = cuped_adjust({"control": _covariate_stats(xa, ya), "b": _covariate_stats(xb, yb)})
    adj_a = ya - theta * (xa - np.concatenate([xa, xb]).mean())
    assert res.adjusted["control"].mean == pytest.approx(adj_a.mean(), rel=1e-9)
    assert res.adjusted["control"].variance == pytest.approx(adj_a.var(ddof=1), rel=1e-8)


def test_cuped_reduces_variance_and_keeps_the_difference_unbiased() -> None:
    rng = np.random.default_rng(2026)
    effect, n, sims = 0.5, 2_000, 400
    raw_diffs, adj_diffs, reductions = [], [], []
    for _ in range(sims):
        x = rng.gamma(2.0, 5.0, size=(2, n))  # pre-exposure spend
        y = 0.8 * x + rng.normal(0, 4, size=(2, n))
        y[1] += effect
        res = cuped_adjust(
            {"control": _covariate_stats(x[0], y[0]), "b": _covariate_stats(x[1], y[1])}
        )
        raw_diffs.append(y[1].mean() - y[0].mean())
        adj_diffs.append(res.adjusted["b"].mean - res.adjusted["control"].mean)
        reductions.append(res.variance_reduction)
        assert res.adjusted["b"].variance < y[1].var(ddof=1)
    raw, adj = np.array(raw_diffs), np.array(adj_diffs)
    # corr(x, y)^2 = 0.64 * 50 / (0.64 * 50 + 16) = 2/3
    assert np.mean(reductions) == pytest.approx(2 / 3, abs=0.02)
    assert adj.var() < 0.45 * raw.var()
    assert abs(adj.mean() - effect) < 4 * adj.std() / math.sqrt(sims)
    assert abs(raw.mean() - effect) < 4 * raw.std() / math.sqrt(sims)
    # The adjusted moments feed the tests directly.
    out = always_valid_test(res.adjusted["control"], res.adjusted["b"])
    assert out.p_value < 0.05
    assert welch_z_test(res.adjusted["control"], res.adjusted["b"]).p_value < 1e-6


def test_cuped_with_uncorrelated_covariate_changes_little() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(0, 1, (2, 5000)), rng.normal(0, 1, (2, 5000))
    res = cuped_adjust({"a": _covariate_stats(x[0], y[0]), "b": _covariate_stats(x[1], y[1])})
    assert abs(res.theta) < 0.05 and res.variance_reduction < 0.01


# --------------------------------------------------------------------- decisions


def _av(p: float, low: float, high: float, lift: float | None = None) -> AlwaysValidResult:
    return AlwaysValidResult(
        method="msprt_normal_mixture", alpha=0.05, tau2=DEFAULT_MIXING.tau2,
        control_mean=0.05, treatment_mean=0.05 + (lift if lift is not None else (low + high) / 2),
        absolute_lift=lift if lift is not None else (low + high) / 2, relative_lift=None, z=0.0,
        log_likelihood_ratio=-math.log(p), p_value=p, absolute_ci=Interval(low, high),
        relative_ci=None,
    )  # fmt: skip


def _srm(p: float, worst: str = "b") -> SrmResult:
    return SrmResult("chi_square", 0.0, p, 100, worst, {}, {})


def test_decisions() -> None:
    win = _av(0.01, 0.001, 0.01)
    lose = _av(0.01, -0.01, -0.001)
    flat = _av(0.4, -0.01, 0.01)
    assert decide(variant="b", primary=flat).verdict is Verdict.NONE
    assert decide(variant="b", primary=win).verdict is Verdict.WIN
    assert decide(variant="b", primary=lose).verdict is Verdict.LOSE
    # A metric where lower is better (e.g. time to checkout).
    assert decide(variant="b", primary=lose, good_direction="decrease").verdict is Verdict.WIN
    assert decide(variant="b", primary=win, alpha=0.001).verdict is Verdict.NONE

    refunds_up = Guardrail("refund_rate", _av(0.001, 0.002, 0.02), "increase")
    refunds_down = Guardrail("refund_rate", _av(0.001, -0.02, -0.002), "increase")
    refunds_flat = Guardrail("refund_rate", _av(0.9, -0.02, 0.02), "increase")
    d = decide(variant="b", primary=win, guardrails=[refunds_flat, refunds_up])
    assert (d.verdict, d.metric, d.variant) == (Verdict.GUARDRAIL_BREACH, "refund_rate", "b")
    assert decide(variant="b", primary=win, guardrails=[refunds_down]).verdict is Verdict.WIN

    d = decide(variant="b", primary=win, guardrails=[refunds_up], srm=_srm(1e-5, "c"))
    assert (d.verdict, d.variant) == (Verdict.SRM, "c")
    assert decide(variant="b", primary=win, srm=_srm(0.2)).verdict is Verdict.WIN
    assert decide(variant="b", primary=win, srm=_srm(0.01), srm_alpha=0.001).verdict is Verdict.WIN


def test_decision_side_follows_the_running_interval() -> None:
    # Running interval excludes 0 on the positive side though the latest estimate dipped.
    running = _av(0.02, 0.001, 0.004, lift=-0.0005)
    assert decide(variant="b", primary=running).verdict is Verdict.WIN


def test_decision_from_real_readouts() -> None:
    av = always_valid_test(ProportionStats(40_000, 2_000), ProportionStats(40_000, 2_300))
    assert decide(variant="treatment", primary=av).verdict is Verdict.WIN
    srm = srm_sequential({"control": 40_000, "treatment": 40_000}, {"control": 1, "treatment": 1})
    assert decide(variant="treatment", primary=av, srm=srm).verdict is Verdict.WIN


# --------------------------------------------------------------------- input errors


@pytest.mark.parametrize(
    "make",
    [
        lambda: ProportionStats(-1, 0),
        lambda: ProportionStats(10, 11),
        lambda: ProportionStats(10, -1),
        lambda: MeanStats(-1, 0.0, 0.0),
        lambda: MeanStats(10, 100.0, 10.0),  # sum of squares < total^2 / n
        lambda: MeanStats(0, 1.0, 1.0),
        lambda: MeanStats(3, math.nan, 1.0),
        lambda: Moments(3, 1.0, -0.5),
        lambda: CovariateStats(4, 1.0, 1.0, 10.0, 1.0, 0.0),
        lambda: two_proportion_z_test(ProportionStats(1, 0), ProportionStats(1, 0), alpha=0.0),
        lambda: always_valid_test(ProportionStats(1, 0), ProportionStats(1, 0), alpha=1.0),
        lambda: welch_z_test(MeanStats(2, 1.0, 1.0), MeanStats(2, 1.0, 1.0), alpha=1.5),
        lambda: Mixing(0.0),
        lambda: Mixing.for_target_n(0),
        lambda: srm_chi_square({"a": 1, "b": 2}, {"a": 1, "c": 1}),
        lambda: srm_chi_square({"a": 1}, {"a": 1}),
        lambda: srm_chi_square({"a": 1, "b": -2}, {"a": 1, "b": 1}),
        lambda: srm_chi_square({"a": 1, "b": 2}, {"a": 1, "b": 0}),
        lambda: srm_sequential({"a": 1, "b": 2}, {"a": 1, "b": 1}, concentration=0),
        lambda: decide(variant="b", primary=_av(0.5, -1, 1), alpha=0),
        lambda: always_valid_test(ProportionStats(5, 1), MeanStats(5, 1.0, 1.0)),
    ],
)
def test_invalid_input_raises(make: object) -> None:
    with pytest.raises(ExperimentStatsError) as info:
        make()  # type: ignore[operator]
    assert isinstance(info.value, ValueError) and isinstance(info.value, FunnelError)


def test_rounding_noise_in_sums_is_not_an_error() -> None:
    # 3 users of 0.1: total_sq a hair below total^2 / n in floating point.
    m = MeanStats(3, 0.1 + 0.1 + 0.1, 0.03 - 1e-18)
    assert welch_z_test(m, m).p_value == 1.0
