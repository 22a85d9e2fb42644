"""Scenarios: time-boxed changes to behaviour or tracking, for alerting demos and tests.

- ``checkout-outage``: the payment provider is down; almost every payment attempt fails,
  so begin_checkout -> purchase collapses and payment_failed spikes.
- ``payment-degraded``: a partial failure; the failure rate rises from 5% to 35%.
- ``tracking-broken``: a bad app release sends schema-violating events; real behaviour is
  unchanged, but many records become dead letters.
- ``traffic-spike``: five times the usual new sessions for the period.
- ``campaign-launch``: a new KOL campaign whose traffic ramps up linearly over the period
  and stays at its peak afterwards.

Experiment scenarios (issue #14, live experiment readouts): one known true effect on the
``checkout_button`` experiment (simulator/catalog.py), for the whole run (they have no
window: ``scenario_window_ms`` is the run, and a start or duration is refused). Each
*replaces* the default effect of variant B (``checkout_button_lift``, +15% on
P(intends to pay | begin_checkout)) so that the scenario's effect is the only difference
between A and B:

- ``experiment-lift``: B multiplies P(intends to pay | begin_checkout)
  (:func:`simulator.behaviour.completion_probability`) by exactly 1.10 (+10%), A by 1.
  Paying succeeds with the same probability in both, so P(purchase | begin_checkout)
  is also exactly 1.10x A's, for every visitor and traffic source.
- ``experiment-payment-failures``: every payment attempt of a B visitor fails with
  probability 10% instead of 5% (a guardrail breach of payment_failure_rate); B's
  P(intends to pay) is A's.
- ``experiment-srm``: a broken split, 45/55 instead of 50/50: a B assignment is forced on
  10% of the visitors the sticky hash assigns to A (an independent hash of the
  anonymous_id), as a redirect bug would. No behaviour differs between A and B.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, MutableMapping
from typing import Final

from schemas.model import Event
from schemas.reasons import Reason
from simulator.catalog import CHECKOUT_BUTTON
from simulator.config import SimConfig
from simulator.daily import diurnal_weight

BASE_PAYMENT_FAILURE: Final = 0.05
OUTAGE_PAYMENT_FAILURE: Final = 0.95
DEGRADED_PAYMENT_FAILURE: Final = 0.35
SPIKE_FACTOR: Final = 5.0
# Peak arrival rate of the launched campaign, relative to the base rate of new visitors.
LAUNCH_PEAK_SHARE: Final = 0.5
# A bad release breaks most events of the app; web trackers are mostly fine.
BROKEN_TRACKING_APP: Final = 0.6
BROKEN_TRACKING_OTHER: Final = 0.05
BROKEN_TRACKING_REASONS: Final = (
    Reason.WRONG_TYPE,
    Reason.MISSING_FIELD,
    Reason.UNKNOWN_EVENT_TYPE,
    Reason.INVALID_PLATFORM,
)
# Experiment scenarios: variant B's effect on checkout_button (A is never changed).
EXPERIMENT_LIFT: Final = 0.10  # experiment-lift: P(intends to pay | begin_checkout) x 1.10
EXPERIMENT_B_PAYMENT_FAILURE: Final = 0.10  # experiment-payment-failures (A: 0.05)
SRM_B_SHARE: Final = 0.55  # experiment-srm: B's share of visitors (configured: 0.5)
# A -> B flips that give B its share: 0.5 + 0.5 * flip = SRM_B_SHARE.
SRM_FLIP_SHARE: Final = (SRM_B_SHARE - 0.5) / 0.5
_CHECKOUT_LIFT: Final = {
    "experiment-lift": EXPERIMENT_LIFT,
    "experiment-payment-failures": 0.0,
    "experiment-srm": 0.0,
}


class ScenarioEffects:
    """Answers "what is different at time t" for the configured scenario (if any)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.kind = config.scenario
        self.window = config.scenario_window_ms()

    def active(self, time_ms: int) -> bool:
        return self.window is not None and self.window[0] <= time_ms < self.window[1]

    def checkout_lift(self, configured: float) -> float:
        """Variant B's relative lift on P(intends to pay | begin_checkout): the configured
        ``checkout_button_lift``, or the experiment scenario's own (which replaces it)."""
        return _CHECKOUT_LIFT.get(self.kind or "", configured)

    def assign_variants(self, anonymous_id: str, experiments: MutableMapping[str, str]) -> None:
        """experiment-srm: a new visitor's checkout_button assignment, 45/55 instead of
        50/50 (10% of A visitors, by an independent hash, get B). Other scenarios: as is."""
        if self.kind != "experiment-srm":
            return
        control, treatment = CHECKOUT_BUTTON.variants
        if experiments.get(CHECKOUT_BUTTON.name) != control:
            return
        digest = hashlib.sha256(f"srm:{CHECKOUT_BUTTON.name}:{anonymous_id}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2.0**64 < SRM_FLIP_SHARE:
            experiments[CHECKOUT_BUTTON.name] = treatment

    def payment_failure_probability(
        self, time_ms: int, experiments: Mapping[str, str] | None = None
    ) -> float:
        """P(one payment attempt fails) at ``time_ms`` for a visitor in ``experiments``."""
        if (
            self.kind == "experiment-payment-failures"
            and experiments is not None
            and experiments.get(CHECKOUT_BUTTON.name) == CHECKOUT_BUTTON.variants[1]
        ):
            return EXPERIMENT_B_PAYMENT_FAILURE
        if self.active(time_ms):
            if self.kind == "checkout-outage":
                return OUTAGE_PAYMENT_FAILURE
            if self.kind == "payment-degraded":
                return DEGRADED_PAYMENT_FAILURE
        return BASE_PAYMENT_FAILURE

    def retry_factor(self, time_ms: int) -> float:
        """Shoppers give up sooner when nothing works."""
        if self.kind == "checkout-outage" and self.active(time_ms):
            return 0.5
        return 1.0

    def broken_tracking_probability(self, event: Event) -> float:
        if self.kind != "tracking-broken" or not self.active(event.event_time_ms):
            return 0.0
        return BROKEN_TRACKING_APP if event.platform == "app" else BROKEN_TRACKING_OTHER

    def extra_arrivals(self) -> list[int]:
        """First-visit times of the additional visitors this scenario brings."""
        if self.window is None or self.kind not in ("traffic-spike", "campaign-launch"):
            return []
        config = self.config
        begin, end = self.window
        end = min(end, config.end_ms)
        length = max(0, end - begin)
        base_rate = config.users / max(1, config.span_ms)  # new visitors per ms
        rng = random.Random(f"{config.seed}:scenario-arrivals")
        if self.kind == "traffic-spike":
            # (factor - 1) times the first visits the daily curve puts into the window.
            usual = config.users * traffic_share(config.start_ms, config.end_ms, begin, end)
            count = round((SPIKE_FACTOR - 1.0) * usual)
            return sorted(begin + int(rng.random() * length) for _ in range(count))
        # campaign-launch: density rises linearly over the window, then stays at the peak.
        peak = LAUNCH_PEAK_SHARE * base_rate
        after = max(0, config.end_ms - end)
        ramp_count = round(peak * length / 2)
        flat_count = round(peak * after)
        ramp = [begin + int(length * rng.random() ** 0.5) for _ in range(ramp_count)]
        flat = [end + int(after * rng.random()) for _ in range(flat_count)]
        return sorted(ramp + flat)


def traffic_share(start_ms: int, end_ms: int, begin: int, end: int) -> float:
    """Share of the run's first visits (which follow the daily curve) in [begin, end)."""
    step = 60_000
    total = inside = 0.0
    for minute in range(start_ms, end_ms, step):
        weight = diurnal_weight(minute + step // 2)
        total += weight
        if begin <= minute < end:
            inside += weight
    return inside / total if total else 0.0
