"""A/A false positives and power under continuous peeking (issue #14), as Markdown tables.

    .venv/bin/python -m bench.experiment_aa --experiments 2000 --minutes 1440

Simulates experiments minute by minute, in process and vectorised with numpy: each arm
gets Poisson(``--users-per-minute``) new users a minute, each converts with probability
``--baseline`` (treatment: times ``1 + effect``), and a converter spends a lognormal amount
(revenue per user is mostly zeros). After every minute both tests of
``streams.experiment_stats`` are evaluated on the cumulative sufficient statistics:

- always valid: the mSPRT p-value, "significant" if its running minimum is <= alpha at
  any peek (the decision one would take when stopping at the first significant peek);
- fixed horizon peeked: the z-test (pooled two-proportion / Welch) at every minute, same
  rule - what a dashboard without sequential correction does;
- fixed horizon, one look: the z-test only at the last minute (its intended use).

The users per arm also feed the sample-ratio-mismatch tests (configured split 50/50): the
sequential Dirichlet-multinomial test against the chi-square test peeked every minute.

A false-positive rate is the share of A/A experiments declared significant; power the
share of experiments with a true +``effect`` declared significant (for the always-valid
test, at any peek; the table also gives the median minute of first detection).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from streams.experiment_stats import (
    DEFAULT_MIXING,
    Mixing,
    msprt_p_value,
    srm_log_bayes_factor,
    z_p_value,
)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SimConfig:
    experiments: int = 1000
    minutes: int = 1440
    users_per_minute: float = 30.0  # per arm
    baseline: float = 0.05
    relative_effect: float = 0.0  # treatment conversion = baseline * (1 + effect)
    revenue_log_mean: float = 3.5  # lognormal order value: median ~ 33
    revenue_log_sd: float = 1.0
    alpha: float = 0.05
    mixing: Mixing = field(default_factory=lambda: DEFAULT_MIXING)
    seed: int = 20_141_401
    chunk: int = 250  # experiments simulated at a time (memory)


@dataclass(frozen=True)
class SimResult:
    """Per-experiment outcomes (True = declared significant) for one metric."""

    always_valid: BoolArray  # running-min mSPRT p <= alpha at some peek
    fixed_peeked: BoolArray  # z-test p <= alpha at some peek
    fixed_final: BoolArray  # z-test p <= alpha at the last minute only
    first_detection_minute: FloatArray  # always valid; nan when never


@dataclass(frozen=True)
class Simulation:
    config: SimConfig
    conversion: SimResult
    revenue: SimResult
    srm: SimResult  # users per arm vs the 50/50 split: sequential test vs chi-square
    seconds: float


def _outcomes(
    p_av: FloatArray, p_fixed: FloatArray, alpha: float
) -> tuple[BoolArray, BoolArray, BoolArray, FloatArray]:
    running = np.minimum.accumulate(p_av, axis=1)  # the reported always-valid p-value
    hit = running <= alpha
    ever: BoolArray = np.asarray(hit.any(axis=1), dtype=np.bool_)
    first: FloatArray = np.where(ever, hit.argmax(axis=1) + 1.0, np.nan).astype(np.float64)
    peeked: BoolArray = np.asarray((p_fixed <= alpha).any(axis=1), dtype=np.bool_)
    final: BoolArray = np.asarray(p_fixed[:, -1] <= alpha, dtype=np.bool_)
    return ever, peeked, final, first


def _revenue_sums(
    rng: np.random.Generator, conv: npt.NDArray[np.int64], cfg: SimConfig
) -> tuple[FloatArray, FloatArray]:
    """Per (experiment, minute) sum and sum of squares of the converters' order values."""
    flat = conv.ravel()
    amounts = rng.lognormal(cfg.revenue_log_mean, cfg.revenue_log_sd, size=int(flat.sum()))
    idx = np.repeat(np.arange(flat.size), flat)
    s1: FloatArray = np.bincount(idx, weights=amounts, minlength=flat.size).astype(np.float64)
    s2: FloatArray = np.bincount(idx, weights=amounts * amounts, minlength=flat.size).astype(
        np.float64
    )
    s1, s2 = s1.reshape(conv.shape), s2.reshape(conv.shape)
    return s1, s2


def _chunk(rng: np.random.Generator, cfg: SimConfig, e: int) -> tuple[list[FloatArray], ...]:
    shape = (e, cfg.minutes)
    rates = (cfg.baseline, cfg.baseline * (1.0 + cfg.relative_effect))
    n, x, s1, s2 = [], [], [], []
    for rate in rates:
        users = rng.poisson(cfg.users_per_minute, size=shape)
        conv = rng.binomial(users, rate)
        r1, r2 = _revenue_sums(rng, conv, cfg)
        n.append(np.cumsum(users, axis=1).astype(np.float64))
        x.append(np.cumsum(conv, axis=1).astype(np.float64))
        s1.append(np.cumsum(r1, axis=1))
        s2.append(np.cumsum(r2, axis=1))
    return n, x, s1, s2


def simulate(cfg: SimConfig) -> Simulation:
    start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    conv_parts: list[tuple[BoolArray, BoolArray, BoolArray, FloatArray]] = []
    rev_parts: list[tuple[BoolArray, BoolArray, BoolArray, FloatArray]] = []
    srm_parts: list[tuple[BoolArray, BoolArray, BoolArray, FloatArray]] = []
    tau2 = cfg.mixing.tau2
    with np.errstate(divide="ignore", invalid="ignore"):
        for lo in range(0, cfg.experiments, cfg.chunk):
            e = min(cfg.chunk, cfg.experiments - lo)
            (na, nb), (xa, xb), (sa, sb), (qa, qb) = _chunk(rng, cfg, e)
            empty = (na == 0) | (nb == 0)
            inv_n = np.where(empty, np.inf, 1.0 / na + 1.0 / nb)

            # Conversion: unpooled variance for the mSPRT, pooled for the z-test.
            pa, pb = np.where(na > 0, xa / na, 0.0), np.where(nb > 0, xb / nb, 0.0)
            delta = pb - pa
            var = np.where(empty, 0.0, pa * (1 - pa) / na + pb * (1 - pb) / nb)
            pooled = np.where(empty, 0.0, (xa + xb) / (na + nb))
            var0 = np.where(empty, 0.0, pooled * (1 - pooled) * inv_n)
            conv_parts.append(
                _outcomes(msprt_p_value(delta, var, inv_n, tau2), z_p_value(delta, var0), cfg.alpha)
            )

            # Revenue per user: Welch (unequal variances) for both.
            few = (na < 2) | (nb < 2)
            ma, mb = np.where(na > 0, sa / na, 0.0), np.where(nb > 0, sb / nb, 0.0)
            va = np.maximum(qa - sa * sa / na, 0.0) / (na - 1)
            vb = np.maximum(qb - sb * sb / nb, 0.0) / (nb - 1)
            var_m = np.where(few, 0.0, va / na + vb / nb)
            inv_m = np.where(few, np.inf, inv_n)
            delta_m = mb - ma
            rev_parts.append(
                _outcomes(
                    msprt_p_value(delta_m, var_m, inv_m, tau2),
                    z_p_value(delta_m, var_m),
                    cfg.alpha,
                )
            )

            # SRM on the users per arm (split 50/50): Dirichlet-multinomial Bayes factor
            # vs chi-square with 1 df (= a squared z on the control count).
            log_bf = srm_log_bayes_factor(np.stack([na, nb], axis=-1), [0.5, 0.5])
            total = na + nb
            srm_parts.append(
                _outcomes(
                    np.exp(np.minimum(0.0, -log_bf)),
                    z_p_value(na - total / 2, total / 4),
                    cfg.alpha,
                )
            )

    def merge(parts: list[tuple[BoolArray, BoolArray, BoolArray, FloatArray]]) -> SimResult:
        return SimResult(*(np.concatenate([p[i] for p in parts]) for i in range(4)))

    return Simulation(
        cfg, merge(conv_parts), merge(rev_parts), merge(srm_parts), time.perf_counter() - start
    )


def rate_and_se(hits: BoolArray) -> tuple[float, float]:
    rate = float(hits.mean())
    return rate, math.sqrt(max(rate * (1 - rate), 1e-12) / hits.size)


def _pct(hits: BoolArray) -> str:
    rate, se = rate_and_se(hits)
    return f"{100 * rate:.1f}% ± {100 * se:.1f}"


def _minute(first: FloatArray) -> str:
    return "-" if np.all(np.isnan(first)) else f"{np.nanmedian(first):,.0f}"


def markdown(aa: Simulation, power: Simulation) -> str:
    c = aa.config
    n_arm = c.users_per_minute * c.minutes
    lines = [
        f"{c.experiments:,} simulated experiments per row, peeked every minute for "
        f"{c.minutes:,} minutes; Poisson({c.users_per_minute:g}) users per arm per minute "
        f"(~{n_arm:,.0f} per arm at the end); baseline conversion {c.baseline:.1%}; revenue "
        f"per converter lognormal(mu={c.revenue_log_mean:g}, sigma={c.revenue_log_sd:g}); "
        f"alpha = {c.alpha:g}; mSPRT mixing tau2 = {c.mixing.tau2:.3g} (per-user-variance "
        f"units); seed {c.seed}. ± is one Monte-Carlo standard error.",
        "",
        "**A/A false-positive rate** (share of experiments with no true difference declared "
        "significant)",
        "",
        "| metric | always valid (mSPRT), any peek | fixed-horizon z, any peek | "
        "fixed-horizon z, final look only |",
        "|---|---|---|---|",
    ]
    for name, r in (("conversion", aa.conversion), ("revenue per user", aa.revenue)):
        lines.append(
            f"| {name} | {_pct(r.always_valid)} | {_pct(r.fixed_peeked)} | {_pct(r.fixed_final)} |"
        )
    s = aa.srm
    lines.append(
        "| SRM, users per arm (sequential Dirichlet-multinomial vs chi-square) | "
        f"{_pct(s.always_valid)} | {_pct(s.fixed_peeked)} | {_pct(s.fixed_final)} |"
    )
    p = power.config
    lines += [
        "",
        f"**Power** against a true {p.relative_effect:+.0%} relative lift in conversion "
        "(revenue per user moves by the same factor)",
        "",
        "| metric | always valid (mSPRT), any peek | median minute of first detection | "
        "fixed-horizon z, final look only |",
        "|---|---|---|---|",
    ]
    for name, r in (("conversion", power.conversion), ("revenue per user", power.revenue)):
        lines.append(
            f"| {name} | {_pct(r.always_valid)} | {_minute(r.first_detection_minute)} | "
            f"{_pct(r.fixed_final)} |"
        )
    lines += [
        "",
        f"(simulation wall time: {aa.seconds:.1f} s A/A + {power.seconds:.1f} s power)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--experiments", type=int, default=2000)
    ap.add_argument("--minutes", type=int, default=1440)
    ap.add_argument("--users-per-minute", type=float, default=30.0, help="per arm")
    ap.add_argument("--baseline", type=float, default=0.05)
    ap.add_argument("--effect", type=float, default=0.10, help="relative lift for power")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument(
        "--target-n",
        type=float,
        default=None,
        help="tune the mSPRT mixing for this many users per arm (default: the library "
        "default, 10,000)",
    )
    ap.add_argument("--seed", type=int, default=20_141_401)
    args = ap.parse_args(argv)
    mixing = DEFAULT_MIXING if args.target_n is None else Mixing.for_target_n(args.target_n)
    base = SimConfig(
        experiments=args.experiments,
        minutes=args.minutes,
        users_per_minute=args.users_per_minute,
        baseline=args.baseline,
        alpha=args.alpha,
        mixing=mixing,
        seed=args.seed,
    )
    aa = simulate(base)
    power = simulate(
        SimConfig(**{**base.__dict__, "relative_effect": args.effect, "seed": args.seed + 1})
    )
    print(markdown(aa, power))
    return 0


if __name__ == "__main__":
    sys.exit(main())
