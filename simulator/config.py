"""What to simulate: one frozen, validated object; the CLI builds it from its options."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from simulator.errors import SimConfigError

# 2026-11-01T00:00:00Z. A fixed default keeps "same seed, same bytes" true across days;
# the wall clock is used only when the CLI is asked for "now".
DEFAULT_START_MS: Final = 1_793_491_200_000

# Experiment scenarios (issue #14): a known true effect on the checkout_button experiment
# for the whole run (simulator/scenarios.py). They have no window.
EXPERIMENT_SCENARIOS: Final = (
    "experiment-lift",
    "experiment-payment-failures",
    "experiment-srm",
)
SCENARIOS: Final = (
    "checkout-outage",
    "payment-degraded",
    "tracking-broken",
    "traffic-spike",
    "campaign-launch",
    *EXPERIMENT_SCENARIOS,
)

_DAY_MS: Final = 86_400_000
_PERCENT_FIELDS: Final = (
    "duplicate_pct",
    "out_of_order_pct",
    "late_pct",
    "malformed_pct",
    "json_pct",
)


@dataclass(frozen=True)
class SimConfig:
    """One simulation run. Equal configs give byte-identical records."""

    seed: int = 42
    users: int = 1000
    days: float = 1.0
    start_ms: int = DEFAULT_START_MS
    partitions: int = 4

    # Delivery knobs, in percent of records.
    duplicate_pct: float = 0.0
    out_of_order_pct: float = 0.0
    late_pct: float = 0.0
    malformed_pct: float = 0.0
    json_pct: float = 0.0
    # EVENT_TIME_TOO_OLD depends on the validator's wall clock, so it is opt-in.
    include_too_old: bool = False

    scenario: str | None = None
    # None: the scenario starts 40% into the run and lasts 20% of it. The experiment
    # scenarios apply to the whole run and refuse a start or duration.
    scenario_start_s: float | None = None
    scenario_duration_s: float | None = None

    # Must match the pipeline's settings for "late" and "session" to mean the same thing.
    lateness_ms: int = 300_000
    session_timeout_ms: int = 1_800_000
    window_ms: int = 60_000

    # Validation bounds of the workers (schemas/validation.py); malformed records are
    # built just outside them.
    max_payload_bytes: int = 64 * 1024
    max_future_ms: int = 300_000
    max_past_ms: int = 7 * _DAY_MS

    # The checkout_button experiment: variant B multiplies P(purchase | begin_checkout)
    # by (1 + this). The truth file records it. The experiment scenarios replace it with
    # their own (simulator/scenarios.py ScenarioEffects.checkout_lift).
    checkout_button_lift: float = 0.15

    def __post_init__(self) -> None:
        _require(self.users >= 1, "users must be at least 1 (--users 1000)")
        _require(
            math.isfinite(self.days) and 0 < self.days <= 3650,
            "days must be a positive number of simulated days up to 3650 (--days 1)",
        )
        _require(1 <= self.partitions <= 1024, "partitions must be 1..1024 (--partitions 4)")
        for name in _PERCENT_FIELDS:
            value = getattr(self, name)
            _require(
                math.isfinite(value) and 0.0 <= value <= 100.0,
                f"{name} must be a percentage between 0 and 100, got {value}",
            )
        _require(
            self.late_pct + self.out_of_order_pct <= 100.0,
            "late_pct + out_of_order_pct must not exceed 100",
        )
        _require(
            self.scenario is None or self.scenario in SCENARIOS,
            f"unknown scenario {self.scenario!r}; choose one of {', '.join(SCENARIOS)}",
        )
        for name in ("scenario_start_s", "scenario_duration_s"):
            value = getattr(self, name)
            _require(
                value is None or self.scenario not in EXPERIMENT_SCENARIOS,
                f"scenario {self.scenario} applies to the whole run; drop {name} "
                "(--scenario-start / --scenario-duration)",
            )
            _require(
                value is None or (math.isfinite(value) and value >= 0),
                f"{name} must be a non-negative number of simulated seconds",
            )
        _require(self.lateness_ms >= 0, "lateness_ms must not be negative")
        _require(self.session_timeout_ms >= 60_000, "session_timeout_ms must be >= 60000")
        _require(self.window_ms >= 1000, "window_ms must be >= 1000")
        _require(self.max_payload_bytes >= 256, "max_payload_bytes must be >= 256")
        _require(self.max_future_ms >= 0 and self.max_past_ms >= 0, "time bounds must be >= 0")
        _require(
            -1.0 < self.checkout_button_lift <= 0.4,
            "checkout_button_lift must be in (-1, 0.4] so probabilities stay below 1",
        )

    @property
    def span_ms(self) -> int:
        return int(self.days * _DAY_MS)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.span_ms

    def scenario_window_ms(self) -> tuple[int, int] | None:
        """[start, end) of the scenario in event time, or None without a scenario."""
        if self.scenario is None:
            return None
        if self.scenario in EXPERIMENT_SCENARIOS:
            return (self.start_ms, self.end_ms)
        if self.scenario_start_s is None:
            begin = self.start_ms + int(self.span_ms * 0.4)
        else:
            begin = self.start_ms + int(self.scenario_start_s * 1000)
        if self.scenario_duration_s is None:
            length = int(self.span_ms * 0.2)
        else:
            length = int(self.scenario_duration_s * 1000)
        return (begin, begin + length)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SimConfigError(f"invalid simulation option: {message}")
