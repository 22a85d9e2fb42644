"""Experiment statistics (issue #14): lift, always-valid inference, SRM, CUPED, decisions.

Pure functions over per-variant sufficient statistics; no Kafka, no ClickHouse. Inputs and
results are frozen dataclasses; invalid input raises :class:`ExperimentStatsError` (a
``ValueError`` and a :class:`funnel.errors.FunnelError`).

Always-valid method: the mixture sequential probability ratio test (mSPRT) of Johari,
Koomen, Pekelis and Walsh ("Peeking at A/B tests", KDD 2017; "Always valid inference:
continuous monitoring of A/B tests", Operations Research 70(3), 2022) with a normal mixing
distribution ``N(0, tau^2)`` over the difference of means, on the normal approximation
(the variance is plugged in from the data, as Optimizely does). With ``z = delta / se`` and
``r = tau^2 / se^2``::

    Lambda = (1 + r) ** -0.5 * exp(z**2 * r / (2 * (1 + r)))     # mixture likelihood ratio
    p      = min(1, 1 / Lambda)                                   # this peek
    CI     = delta -+ se * sqrt((1 + 1/r) * (2*log(1/alpha) + log(1 + r)))

Reported p-values are the running minimum over peeks and intervals the running
intersection (:func:`accumulate`). ``tau^2`` is set in units of the per-user variance
(:class:`Mixing`), so ``r = mixing.tau2 / (1/n_control + 1/n_treatment)`` depends only on
the sample sizes. The docs section "Experiments: statistics" has the full write-up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from funnel.errors import FunnelError

FloatArray = npt.NDArray[np.float64]
ArrayLike = float | FloatArray
Direction = Literal["increase", "decrease"]


class ExperimentStatsError(FunnelError, ValueError):
    """Experiment statistics were given impossible input (the message says which and why)."""


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ProportionStats:
    """One variant of a conversion metric: ``conversions`` of ``n`` users converted."""

    n: int
    conversions: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ExperimentStatsError(f"n must be >= 0, got {self.n}")
        if self.conversions < 0:
            raise ExperimentStatsError(f"conversions must be >= 0, got {self.conversions}")
        if self.conversions > self.n:
            raise ExperimentStatsError(
                f"conversions ({self.conversions}) cannot exceed n ({self.n})"
            )


@dataclass(frozen=True)
class MeanStats:
    """One variant of a per-user metric (e.g. revenue): count, sum and sum of squares."""

    n: int
    total: float
    total_sq: float

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ExperimentStatsError(f"n must be >= 0, got {self.n}")
        if not (math.isfinite(self.total) and math.isfinite(self.total_sq)):
            raise ExperimentStatsError("total and total_sq must be finite")
        if self.total_sq < 0:
            raise ExperimentStatsError(f"total_sq must be >= 0, got {self.total_sq}")
        if self.n == 0 and (self.total != 0 or self.total_sq != 0):
            raise ExperimentStatsError("n == 0 but total/total_sq are not 0")
        if self.n > 0:
            _centered_ss(self.n, self.total, self.total_sq, what="total_sq")


@dataclass(frozen=True)
class Moments:
    """Count, mean and per-user variance of one variant (what every test consumes)."""

    n: int
    mean: float
    variance: float

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ExperimentStatsError(f"n must be >= 0, got {self.n}")
        if not (math.isfinite(self.mean) and math.isfinite(self.variance)):
            raise ExperimentStatsError("mean and variance must be finite")
        if self.variance < 0:
            raise ExperimentStatsError(f"variance must be >= 0, got {self.variance}")


@dataclass(frozen=True)
class CovariateStats:
    """One variant for CUPED: outcome ``y`` and pre-exposure covariate ``x`` per user."""

    n: int
    total_y: float
    total_y_sq: float
    total_x: float
    total_x_sq: float
    total_xy: float

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ExperimentStatsError(f"n must be >= 0, got {self.n}")
        if self.n > 0:
            _centered_ss(self.n, self.total_y, self.total_y_sq, what="total_y_sq")
            _centered_ss(self.n, self.total_x, self.total_x_sq, what="total_x_sq")


Stats = ProportionStats | MeanStats | Moments


def _centered_ss(n: int, total: float, total_sq: float, *, what: str) -> float:
    """``sum (v - mean)^2`` from sums; tiny negative rounding is clamped, more is an error."""
    ss = total_sq - total * total / n
    if ss < 0:
        if ss < -1e-9 * max(total_sq, 1.0):
            raise ExperimentStatsError(
                f"{what} is too small for total and n (negative variance: "
                f"sum of squares {total_sq} < total^2/n = {total * total / n})"
            )
        ss = 0.0
    return ss


def moments(stats_: Stats) -> Moments:
    """Mean and per-user variance.

    Proportions use ``p(1-p)`` (the Wald / statsmodels convention); means use the sample
    variance with ``n - 1`` (0 when ``n < 2``).
    """
    if isinstance(stats_, Moments):
        return stats_
    if isinstance(stats_, ProportionStats):
        if stats_.n == 0:
            return Moments(0, 0.0, 0.0)
        p = stats_.conversions / stats_.n
        return Moments(stats_.n, p, p * (1.0 - p))
    if stats_.n == 0:
        return Moments(0, 0.0, 0.0)
    ss = _centered_ss(stats_.n, stats_.total, stats_.total_sq, what="total_sq")
    var = ss / (stats_.n - 1) if stats_.n > 1 else 0.0
    return Moments(stats_.n, stats_.total / stats_.n, var)


def _check_alpha(alpha: float) -> None:
    if not (0.0 < alpha < 1.0):
        raise ExperimentStatsError(f"alpha must be in (0, 1), got {alpha}")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


EVERYTHING = Interval(-math.inf, math.inf)


@dataclass(frozen=True)
class FixedHorizonResult:
    """A classical test, valid for ONE look at a sample size fixed in advance."""

    method: str
    alpha: float
    control_mean: float
    treatment_mean: float
    absolute_lift: float
    relative_lift: float | None  # None when the control mean is 0
    z: float
    p_value: float
    absolute_ci: Interval
    relative_ci: Interval | None


@dataclass(frozen=True)
class AlwaysValidResult:
    """mSPRT readout. After :func:`accumulate`, ``p_value`` is the running minimum and the
    intervals are the running intersection over every peek so far."""

    method: str
    alpha: float
    tau2: float  # Mixing.tau2 (per-user-variance units)
    control_mean: float
    treatment_mean: float
    absolute_lift: float
    relative_lift: float | None
    z: float
    log_likelihood_ratio: float  # log Lambda at this peek (H0: no difference)
    p_value: float
    absolute_ci: Interval
    relative_ci: Interval | None


# --------------------------------------------------------------------------- mixing


def optimal_ratio(alpha: float) -> float:
    """``r* = tau^2 / se^2`` minimising the mSPRT half-width: root of ``r = 2 log(1/a) + log(1+r)``.

    (About 8.21 for alpha = 0.05; the fixed-point iteration is a contraction.)
    """
    _check_alpha(alpha)
    two_l = 2.0 * math.log(1.0 / alpha)
    r = two_l + 1.0
    for _ in range(200):
        nxt = two_l + math.log1p(r)
        if abs(nxt - r) < 1e-13:
            return nxt
        r = nxt
    return r


@dataclass(frozen=True)
class Mixing:
    """Normal mixing distribution ``N(0, tau2 * sigma^2)`` over the true difference.

    ``tau2`` is the mixing variance of the *standardised* effect ``delta / sigma``
    (``sigma^2`` the per-user variance), so one setting fits every metric. Any
    ``tau2 > 0`` gives a valid test; it only moves where power is concentrated.
    """

    tau2: float

    def __post_init__(self) -> None:
        if not (self.tau2 > 0 and math.isfinite(self.tau2)):
            raise ExperimentStatsError(f"mixing tau2 must be > 0 and finite, got {self.tau2}")

    @classmethod
    def for_target_n(cls, n_per_arm: float, alpha: float = 0.05) -> Mixing:
        """Tightest interval when each arm has ``n_per_arm`` users (Howard et al.'s
        ``rho`` tuning): ``tau2 = r*(alpha) * 2 / n_per_arm``."""
        if n_per_arm <= 0:
            raise ExperimentStatsError(f"n_per_arm must be > 0, got {n_per_arm}")
        return cls(optimal_ratio(alpha) * 2.0 / n_per_arm)

    @classmethod
    def for_mde(cls, mde: float, sigma: float) -> Mixing:
        """Johari et al.'s rule of thumb ``tau = MDE``: ``tau2 = (mde / sigma)^2``."""
        if mde == 0 or sigma <= 0:
            raise ExperimentStatsError("mde must be != 0 and sigma > 0")
        return cls((mde / sigma) ** 2)

    @classmethod
    def for_relative_mde_proportion(cls, baseline: float, relative_mde: float) -> Mixing:
        """``tau = relative_mde * baseline`` on a conversion rate ``baseline`` in (0, 1)."""
        if not 0 < baseline < 1:
            raise ExperimentStatsError(f"baseline must be in (0, 1), got {baseline}")
        return cls.for_mde(relative_mde * baseline, math.sqrt(baseline * (1 - baseline)))


#: Tuned for 10,000 users per arm at alpha = 0.05 (tau2 = 1.64e-3, i.e. tau ~ 0.04 sigma).
DEFAULT_MIXING = Mixing.for_target_n(10_000, 0.05)


# --------------------------------------------------------------------------- vectorised cores


def _arr(x: ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def msprt_log_lr(
    delta: ArrayLike, variance: ArrayLike, inv_n: ArrayLike, tau2: float
) -> FloatArray:
    """``log Lambda`` of the normal-mixture SPRT of ``H0: true difference = 0``.

    ``variance`` is ``se^2`` of ``delta``; ``inv_n = 1/n_control + 1/n_treatment``;
    ``r = tau2 / inv_n``. No information (``se^2 <= 0`` or an empty arm) gives 0.
    """
    d, v, inv = _arr(delta), _arr(variance), _arr(inv_n)
    ok = (v > 0) & np.isfinite(inv) & (inv > 0)
    safe_v = np.where(ok, v, 1.0)
    r = np.where(ok, tau2 / np.where(ok, inv, 1.0), 0.0)
    z2 = np.where(ok, d * d / safe_v, 0.0)
    out: FloatArray = -0.5 * np.log1p(r) + z2 * r / (2.0 * (1.0 + r))
    return np.where(ok, out, 0.0)


def msprt_p_value(
    delta: ArrayLike, variance: ArrayLike, inv_n: ArrayLike, tau2: float
) -> FloatArray:
    """Always-valid p-value of one peek, ``min(1, 1/Lambda)`` (take the running minimum)."""
    return np.exp(np.minimum(0.0, -msprt_log_lr(delta, variance, inv_n, tau2)))


def msprt_multiplier(inv_n: ArrayLike, tau2: float, alpha: float) -> FloatArray:
    """``c`` with ``CI = delta -+ c * se``: ``sqrt((1 + 1/r)(2 log(1/alpha) + log(1 + r)))``.

    Infinite when an arm is empty.
    """
    _check_alpha(alpha)
    inv = _arr(inv_n)
    ok = np.isfinite(inv) & (inv > 0)
    r = np.where(ok, tau2 / np.where(ok, inv, 1.0), 1.0)
    c: FloatArray = np.sqrt((1.0 + 1.0 / r) * (2.0 * math.log(1.0 / alpha) + np.log1p(r)))
    return np.where(ok, c, np.inf)


def z_p_value(delta: ArrayLike, variance: ArrayLike) -> FloatArray:
    """Two-sided normal p-value ``2 * Phi(-|delta| / se)``; 1 when ``se^2 <= 0``."""
    d, v = _arr(delta), _arr(variance)
    ok = v > 0
    z = np.where(ok, np.abs(d) / np.sqrt(np.where(ok, v, 1.0)), 0.0)
    p: FloatArray = 2.0 * special.ndtr(-z)
    return np.where(ok, np.minimum(p, 1.0), 1.0)


def _inv_n(a: Moments, b: Moments) -> float:
    if a.n == 0 or b.n == 0:
        return math.inf
    return 1.0 / a.n + 1.0 / b.n


# --------------------------------------------------------------------------- lifts


@dataclass(frozen=True)
class _Lift:
    a: Moments
    b: Moments
    delta: float
    var_delta: float  # se^2 of the absolute lift, unequal variances
    relative: float | None
    var_relative: float | None  # delta-method se^2 of the relative lift


def _lift(control: Stats, treatment: Stats) -> _Lift:
    a, b = moments(control), moments(treatment)
    delta = b.mean - a.mean
    if a.n == 0 or b.n == 0:
        return _Lift(a, b, delta, math.inf, None, None)
    va, vb = a.variance / a.n, b.variance / b.n
    var = va + vb
    if a.mean == 0:
        return _Lift(a, b, delta, var, None, None)
    # Delta method for mean_b / mean_a - 1 (independent arms):
    # Var ~ Var(mean_b) / mean_a^2 + mean_b^2 Var(mean_a) / mean_a^4
    rel = b.mean / a.mean - 1.0
    var_rel = vb / a.mean**2 + b.mean**2 * va / a.mean**4
    return _Lift(a, b, delta, var, rel, var_rel)


def _interval(center: float, half: float) -> Interval:
    if not math.isfinite(half):
        return EVERYTHING
    return Interval(center - half, center + half)


def _z(delta: float, var: float) -> float:
    return delta / math.sqrt(var) if 0 < var < math.inf else 0.0


# --------------------------------------------------------------------------- fixed horizon


def two_proportion_z_test(
    control: ProportionStats, treatment: ProportionStats, alpha: float = 0.05
) -> FixedHorizonResult:
    """Two-proportion z-test, pooled variance for the p-value (``statsmodels
    proportions_ztest``), unpooled Wald interval on the absolute lift
    (``confint_proportions_2indep(method='wald')``) and a delta-method interval on the
    relative lift. A single look at a pre-set sample size only."""
    _check_alpha(alpha)
    lift = _lift(control, treatment)
    n_a, n_b = control.n, treatment.n
    if n_a and n_b:
        pooled = (control.conversions + treatment.conversions) / (n_a + n_b)
        var0 = pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b)
    else:
        var0 = 0.0
    return _fixed("two_proportion_z", alpha, lift, var0)


def welch_z_test(
    control: MeanStats | Moments, treatment: MeanStats | Moments, alpha: float = 0.05
) -> FixedHorizonResult:
    """Two-sample z-test on means with unequal variances (statsmodels ``CompareMeans``
    ``ztest_ind`` / ``zconfint_diff`` with ``usevar='unequal'``), plus a delta-method
    interval on the relative lift. Arms with n < 2, or zero variance in both arms, carry
    no variance information: ``p = 1`` and unbounded intervals."""
    _check_alpha(alpha)
    lift = _lift(control, treatment)
    if lift.a.n < 2 or lift.b.n < 2 or lift.var_delta <= 0:
        lift = replace(lift, var_delta=math.inf, var_relative=None)
    return _fixed("welch_z", alpha, lift, lift.var_delta)


def _fixed(method: str, alpha: float, lift: _Lift, var_test: float) -> FixedHorizonResult:
    q = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    var_test = var_test if math.isfinite(var_test) else 0.0
    p = float(z_p_value(lift.delta, var_test))
    abs_half = q * math.sqrt(lift.var_delta) if lift.var_delta > 0 else 0.0
    if not math.isfinite(lift.var_delta):
        abs_half = math.inf
    rel_ci = None
    if lift.relative is not None and lift.var_relative is not None:
        rel_ci = _interval(lift.relative, q * math.sqrt(lift.var_relative))
    return FixedHorizonResult(
        method=method,
        alpha=alpha,
        control_mean=lift.a.mean,
        treatment_mean=lift.b.mean,
        absolute_lift=lift.delta,
        relative_lift=lift.relative,
        z=_z(lift.delta, var_test),
        p_value=p,
        absolute_ci=_interval(lift.delta, abs_half),
        relative_ci=rel_ci,
    )


# --------------------------------------------------------------------------- always valid


def always_valid_test(
    control: Stats,
    treatment: Stats,
    alpha: float = 0.05,
    mixing: Mixing = DEFAULT_MIXING,
) -> AlwaysValidResult:
    """mSPRT readout of ONE peek (combine peeks with :func:`accumulate`).

    Works for proportions (variance ``p(1-p)`` per arm), means (sample variance) and
    :class:`Moments` (e.g. CUPED-adjusted). ``se^2 = var_a/n_a + var_b/n_b``. With no
    information yet (an empty arm, or zero variance in both arms) ``p = 1`` and the
    intervals are unbounded.
    """
    _check_alpha(alpha)
    if isinstance(control, ProportionStats) != isinstance(treatment, ProportionStats):
        raise ExperimentStatsError(
            "control and treatment must both be ProportionStats or both be means "
            f"(got {type(control).__name__} and {type(treatment).__name__})"
        )
    lift = _lift(control, treatment)
    if not isinstance(control, ProportionStats) and (lift.a.n < 2 or lift.b.n < 2):
        lift = replace(lift, var_delta=math.inf, var_relative=None)
    inv_n = _inv_n(lift.a, lift.b)
    var = lift.var_delta if math.isfinite(lift.var_delta) else 0.0
    log_lr = float(msprt_log_lr(lift.delta, var, inv_n, mixing.tau2))
    c = float(msprt_multiplier(inv_n, mixing.tau2, alpha))
    abs_ci = _interval(lift.delta, c * math.sqrt(var)) if var > 0 else EVERYTHING
    rel_ci = None
    if lift.relative is not None and lift.var_relative is not None and lift.var_relative > 0:
        rel_ci = _interval(lift.relative, c * math.sqrt(lift.var_relative))
    return AlwaysValidResult(
        method="msprt_normal_mixture",
        alpha=alpha,
        tau2=mixing.tau2,
        control_mean=lift.a.mean,
        treatment_mean=lift.b.mean,
        absolute_lift=lift.delta,
        relative_lift=lift.relative,
        z=_z(lift.delta, var),
        log_likelihood_ratio=log_lr,
        p_value=math.exp(min(0.0, -log_lr)),
        absolute_ci=abs_ci,
        relative_ci=rel_ci,
    )


def _intersect(a: Interval | None, b: Interval | None) -> Interval | None:
    if a is None:
        return b
    if b is None:
        return a
    low, high = max(a.low, b.low), min(a.high, b.high)
    # Empty only with probability <= alpha (or a broken model): keep the newest interval.
    return Interval(low, high) if low <= high else b


def accumulate(previous: AlwaysValidResult | None, current: AlwaysValidResult) -> AlwaysValidResult:
    """Fold a new peek into the running readout: ``p = min(p_prev, p_now)``, intervals
    intersected. Point estimates and ``z`` are the current ones."""
    if previous is None:
        return current
    if previous.alpha != current.alpha or previous.tau2 != current.tau2:
        raise ExperimentStatsError(
            "cannot accumulate peeks with different alpha or mixing tau2 "
            f"({previous.alpha}/{previous.tau2} vs {current.alpha}/{current.tau2})"
        )
    abs_ci = _intersect(previous.absolute_ci, current.absolute_ci)
    assert abs_ci is not None
    return replace(
        current,
        p_value=min(previous.p_value, current.p_value),
        absolute_ci=abs_ci,
        relative_ci=_intersect(previous.relative_ci, current.relative_ci),
    )


# --------------------------------------------------------------------------- SRM


@dataclass(frozen=True)
class SrmResult:
    method: str  # "chi_square" or "dirichlet_multinomial_sequential"
    statistic: float  # chi^2, or log Bayes factor for the sequential test
    p_value: float
    total: int
    worst_variant: str | None  # largest |observed - expected| / sqrt(expected)
    observed_share: Mapping[str, float]
    expected_share: Mapping[str, float]


def _srm_inputs(
    counts: Mapping[str, int], weights: Mapping[str, float]
) -> tuple[list[str], FloatArray, FloatArray]:
    if set(counts) != set(weights):
        raise ExperimentStatsError(
            f"counts and weights name different variants: {sorted(counts)} vs {sorted(weights)}"
        )
    if len(counts) < 2:
        raise ExperimentStatsError("SRM needs at least 2 variants")
    names = sorted(counts)
    x = np.array([counts[k] for k in names], dtype=np.float64)
    w = np.array([weights[k] for k in names], dtype=np.float64)
    if np.any(x < 0):
        raise ExperimentStatsError("variant counts must be >= 0")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ExperimentStatsError("configured split weights must be > 0")
    return names, x, w / w.sum()


def _srm_result(
    method: str, stat: float, p: float, names: list[str], x: FloatArray, p0: FloatArray
) -> SrmResult:
    total = float(x.sum())
    worst = None
    if total > 0:
        resid = (x - total * p0) / np.sqrt(total * p0)
        worst = names[int(np.argmax(np.abs(resid)))]
    return SrmResult(
        method=method,
        statistic=stat,
        p_value=p,
        total=int(total),
        worst_variant=worst,
        observed_share={
            k: (float(v) / total if total else 0.0) for k, v in zip(names, x, strict=True)
        },
        expected_share={k: float(v) for k, v in zip(names, p0, strict=True)},
    )


def srm_chi_square(counts: Mapping[str, int], weights: Mapping[str, float]) -> SrmResult:
    """Pearson chi-square goodness of fit of the users per variant against the configured
    split (``scipy.stats.chisquare``), ``k - 1`` degrees of freedom. Fixed horizon."""
    names, x, p0 = _srm_inputs(counts, weights)
    total = x.sum()
    if total == 0:
        return _srm_result("chi_square", 0.0, 1.0, names, x, p0)
    expected = total * p0
    stat = float(((x - expected) ** 2 / expected).sum())
    p = float(stats.chi2.sf(stat, len(names) - 1))
    return _srm_result("chi_square", stat, p, names, x, p0)


def srm_log_bayes_factor(
    counts: npt.ArrayLike, split: npt.ArrayLike, concentration: float = 100.0
) -> FloatArray:
    """Vectorised ``log BF`` of :func:`srm_sequential`; variants on the last axis of
    ``counts``, ``split`` the configured probabilities (summing to 1)."""
    x = np.asarray(counts, dtype=np.float64)
    p0 = np.asarray(split, dtype=np.float64)
    a = concentration * p0
    out: FloatArray = (
        special.gammaln(concentration)
        - special.gammaln(concentration + x.sum(axis=-1))
        + (special.gammaln(a + x) - special.gammaln(a)).sum(axis=-1)
        - (x * np.log(p0)).sum(axis=-1)
    )
    return out


def srm_sequential(
    counts: Mapping[str, int],
    weights: Mapping[str, float],
    previous_p_value: float = 1.0,
    concentration: float = 100.0,
) -> SrmResult:
    """Anytime-valid SRM test of Lindon & Malek (2020), "Anytime-valid inference for
    multinomial count data": Bayes factor of a Dirichlet(``concentration * p0``) mixture
    against the multinomial with the configured split ``p0``::

        log BF = lgamma(A) - lgamma(A + N) + sum_i [lgamma(a_i + x_i) - lgamma(a_i)]
                 - sum_i x_i log p0_i,          a_i = A p0_i, A = concentration

    ``p = min(previous_p_value, 1 / BF)``: pass the previous result's p-value to keep the
    running minimum. BF is a nonnegative martingale under H0, so by Ville's inequality
    ``P(ever p <= alpha) <= alpha``.
    """
    if not (concentration > 0 and math.isfinite(concentration)):
        raise ExperimentStatsError(f"concentration must be > 0, got {concentration}")
    if not 0 < previous_p_value <= 1:
        raise ExperimentStatsError(f"previous_p_value must be in (0, 1], got {previous_p_value}")
    names, x, p0 = _srm_inputs(counts, weights)
    log_bf = float(srm_log_bayes_factor(x, p0, concentration))
    p = min(previous_p_value, math.exp(min(0.0, -log_bf)))
    return _srm_result("dirichlet_multinomial_sequential", log_bf, p, names, x, p0)


# --------------------------------------------------------------------------- CUPED


@dataclass(frozen=True)
class CupedResult:
    theta: float
    covariate_mean: float  # pooled mean of x over all variants
    adjusted: Mapping[str, Moments]
    variance_reduction: float  # 1 - pooled adjusted variance / pooled raw variance


def cuped_theta(variants: Iterable[CovariateStats]) -> float:
    """``theta = cov(x, y) / var(x)`` pooled within variants (so the treatment effect on
    ``y`` does not enter): sums of centred cross products over sums of centred squares."""
    sxy = sxx = 0.0
    for v in variants:
        if v.n == 0:
            continue
        sxy += v.total_xy - v.total_x * v.total_y / v.n
        sxx += _centered_ss(v.n, v.total_x, v.total_x_sq, what="total_x_sq")
    return sxy / sxx if sxx > 0 else 0.0


def cuped_adjust(variants: Mapping[str, CovariateStats], theta: float | None = None) -> CupedResult:
    """CUPED (Deng, Xu, Kohavi, Walker 2013): ``y' = y - theta (x - mean_x)``.

    Per variant, mean ``ybar - theta (xbar - xbar_all)`` and variance
    ``s_y^2 - 2 theta s_xy + theta^2 s_x^2`` (n - 1 denominators). ``x`` must be measured
    before exposure, so ``E[xbar_i - xbar_all] = 0`` and lifts stay unbiased. Feed the
    returned :class:`Moments` to :func:`welch_z_test` or :func:`always_valid_test`.
    """
    if not variants:
        raise ExperimentStatsError("CUPED needs at least one variant")
    th = cuped_theta(variants.values()) if theta is None else theta
    n_all = sum(v.n for v in variants.values())
    x_all = sum(v.total_x for v in variants.values()) / n_all if n_all else 0.0
    adjusted: dict[str, Moments] = {}
    raw_ss = adj_ss = 0.0
    for name, v in variants.items():
        if v.n == 0:
            adjusted[name] = Moments(0, 0.0, 0.0)
            continue
        syy = _centered_ss(v.n, v.total_y, v.total_y_sq, what="total_y_sq")
        sxx = _centered_ss(v.n, v.total_x, v.total_x_sq, what="total_x_sq")
        sxy = v.total_xy - v.total_x * v.total_y / v.n
        ss = max(syy - 2.0 * th * sxy + th * th * sxx, 0.0)
        raw_ss += syy
        adj_ss += ss
        mean = v.total_y / v.n - th * (v.total_x / v.n - x_all)
        adjusted[name] = Moments(v.n, mean, ss / (v.n - 1) if v.n > 1 else 0.0)
    reduction = 1.0 - adj_ss / raw_ss if raw_ss > 0 else 0.0
    return CupedResult(th, x_all, adjusted, reduction)


# --------------------------------------------------------------------------- decisions


class Verdict(StrEnum):
    NONE = "none"
    WIN = "win"
    LOSE = "lose"
    GUARDRAIL_BREACH = "guardrail_breach"
    SRM = "srm"


@dataclass(frozen=True)
class Guardrail:
    metric: str
    result: AlwaysValidResult
    bad_direction: Direction


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    variant: str | None  # the treatment variant, or for SRM the most off-split variant
    metric: str | None
    reason: str


def significant_direction(result: AlwaysValidResult, alpha: float) -> Direction | None:
    """``increase``/``decrease`` when ``p <= alpha``, else None. The side comes from the
    (running) interval when it excludes 0, else from the sign of the lift."""
    _check_alpha(alpha)
    if result.p_value > alpha:
        return None
    if result.absolute_ci.low > 0:
        return "increase"
    if result.absolute_ci.high < 0:
        return "decrease"
    if result.absolute_lift > 0:
        return "increase"
    if result.absolute_lift < 0:
        return "decrease"
    return None


def decide(
    *,
    variant: str,
    primary: AlwaysValidResult,
    alpha: float = 0.05,
    primary_metric: str = "primary",
    good_direction: Direction = "increase",
    guardrails: Sequence[Guardrail] = (),
    srm: SrmResult | None = None,
    srm_alpha: float | None = None,
) -> Decision:
    """One verdict for ``variant`` vs control, first match wins:

    1. ``srm`` when the SRM p-value <= ``srm_alpha`` (default ``alpha``): the split is
       broken, nothing else can be trusted; ``variant`` names the most off-split variant.
    2. ``guardrail_breach`` when a guardrail moved significantly in its bad direction.
    3. ``win`` / ``lose`` when the primary metric moved significantly (good / bad way).
    4. ``none`` otherwise (keep collecting).
    """
    _check_alpha(alpha)
    s_alpha = alpha if srm_alpha is None else srm_alpha
    _check_alpha(s_alpha)
    if srm is not None and srm.p_value <= s_alpha:
        return Decision(
            Verdict.SRM,
            srm.worst_variant,
            None,
            f"sample ratio mismatch ({srm.method}) p={srm.p_value:.3g} <= {s_alpha}",
        )
    for g in guardrails:
        if significant_direction(g.result, alpha) == g.bad_direction:
            return Decision(
                Verdict.GUARDRAIL_BREACH,
                variant,
                g.metric,
                f"guardrail {g.metric} moved {g.bad_direction} p={g.result.p_value:.3g}",
            )
    side = significant_direction(primary, alpha)
    if side is None:
        return Decision(Verdict.NONE, variant, primary_metric, "no significant difference yet")
    verdict = Verdict.WIN if side == good_direction else Verdict.LOSE
    return Decision(
        verdict, variant, primary_metric, f"{primary_metric} {side} p={primary.p_value:.3g}"
    )
