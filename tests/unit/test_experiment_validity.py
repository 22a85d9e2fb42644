"""Monte-Carlo validity under continuous peeking (issue #14), in process with numpy.

Thousands of simulated experiments, each peeked after every simulated minute. Under A/A
(no true difference) the always-valid test (mSPRT, running-minimum p-value) may be
significant at ANY peek in at most alpha of the experiments (plus Monte-Carlo noise),
while the fixed-horizon z-test peeked the same way is not: that contrast is what shows the
simulation can tell a valid test from an invalid one. A power check against a true +10%
lift keeps the always-valid test from passing by never rejecting. Deterministic (seeded).

Run with ``-s`` to see the tables (also ``python -m bench.experiment_aa``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.experiment_aa import SimConfig, Simulation, markdown, rate_and_se, simulate
from streams.experiment_stats import DEFAULT_MIXING, Mixing, srm_log_bayes_factor, z_p_value

ALPHA = 0.05


def _bound(experiments: int, alpha: float = ALPHA) -> float:
    """alpha + 3 Monte-Carlo standard errors of a rate equal to alpha."""
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / experiments)


@pytest.fixture(scope="module")
def aa() -> Simulation:
    # 2,000 experiments x 1,440 one-minute peeks, ~30 users per arm per minute, 5% baseline.
    return simulate(SimConfig(experiments=2000, minutes=1440, users_per_minute=30.0, seed=1))


@pytest.fixture(scope="module")
def power() -> Simulation:
    return simulate(
        SimConfig(
            experiments=1000, minutes=1440, users_per_minute=30.0, relative_effect=0.10, seed=2
        )
    )


def test_conversion_aa_false_positive_rate_under_peeking(aa: Simulation) -> None:
    r = aa.conversion
    n = r.always_valid.size
    av, _ = rate_and_se(r.always_valid)
    peeked, _ = rate_and_se(r.fixed_peeked)
    final, final_se = rate_and_se(r.fixed_final)
    print(f"\nconversion A/A: always valid {av:.3f}, z peeked {peeked:.3f}, z final {final:.3f}")
    assert av <= _bound(n)
    assert peeked > 2 * ALPHA  # peeking a fixed-horizon test inflates its error rate
    assert abs(final - ALPHA) < 4 * final_se  # one look at the end is calibrated


def test_revenue_per_user_aa_false_positive_rate_under_peeking(aa: Simulation) -> None:
    r = aa.revenue
    av, _ = rate_and_se(r.always_valid)
    peeked, _ = rate_and_se(r.fixed_peeked)
    print(f"\nrevenue A/A: always valid {av:.3f}, z peeked {peeked:.3f}")
    assert av <= _bound(r.always_valid.size)
    assert peeked > 2 * ALPHA


def test_validity_with_low_traffic_and_an_aggressive_mixing() -> None:
    """Fewer users (20 per arm per minute), 10% baseline, and tau tuned for 200 users per arm
    so that the earliest, smallest-sample peeks (plug-in variance) carry the most weight."""
    sim = simulate(
        SimConfig(
            experiments=1500,
            minutes=720,
            users_per_minute=20.0,
            baseline=0.10,
            mixing=Mixing.for_target_n(200),
            seed=3,
        )
    )
    for r in (sim.conversion, sim.revenue):
        assert rate_and_se(r.always_valid)[0] <= _bound(r.always_valid.size)
        assert rate_and_se(r.fixed_peeked)[0] > 2 * ALPHA


def test_power_against_ten_percent_lift(aa: Simulation, power: Simulation) -> None:
    print("\n" + markdown(aa, power))
    av = rate_and_se(power.conversion.always_valid)[0]
    fixed = rate_and_se(power.conversion.fixed_final)[0]
    # The price of peeking safely is some power; the test must still find real effects.
    assert 0.5 < av < fixed
    assert rate_and_se(power.revenue.always_valid)[0] > 0.1


def test_sequential_srm_aa_false_positive_rate_under_peeking() -> None:
    """A correct 50/50 split, checked every minute: the Dirichlet-multinomial Bayes-factor
    test stays valid, the chi-square test peeked the same way does not."""
    experiments, minutes = 2000, 1440
    rng = np.random.default_rng(4)
    users = rng.poisson(60.0, size=(experiments, minutes))
    a = np.cumsum(rng.binomial(users, 0.5), axis=1).astype(np.float64)
    b = np.cumsum(users, axis=1) - a
    counts = np.stack([a, b], axis=-1)
    log_bf = srm_log_bayes_factor(counts, [0.5, 0.5])
    sequential = (np.exp(np.minimum(0.0, -log_bf)) <= ALPHA).any(axis=1)
    total = a + b
    # chi-square with 1 df is the square of a z-statistic: p = 2 Phi(-|a - total/2| / sd)
    chi_peeked = (z_p_value(a - total / 2, total / 4) <= ALPHA).any(axis=1)
    seq_rate, chi_rate = float(sequential.mean()), float(chi_peeked.mean())
    print(f"\nSRM A/A: sequential {seq_rate:.3f}, chi-square peeked {chi_rate:.3f}")
    assert seq_rate <= _bound(experiments)
    assert chi_rate > 2 * ALPHA


def test_simulation_is_deterministic() -> None:
    cfg = SimConfig(experiments=50, minutes=60, seed=9, mixing=DEFAULT_MIXING)
    one, two = simulate(cfg), simulate(cfg)
    for x, y in ((one.conversion, two.conversion), (one.revenue, two.revenue)):
        assert np.array_equal(x.always_valid, y.always_valid)
        assert np.array_equal(x.fixed_peeked, y.fixed_peeked)
