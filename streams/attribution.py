"""Multi-touch attribution of an order to the visitor's sessions (docs/semantics.md 10).

Pure functions over a visitor's touchpoints (one per session: its earliest counted
event) and one order. Every model gives integer shares in millionths that sum to exactly
:data:`SHARE_UNIT`, so credited revenue (``value_minor * share / 10^6``) sums exactly to
the order value whatever the model.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass
from typing import Final, NamedTuple
from urllib.parse import urlsplit

from schemas.model import Event

SHARE_UNIT: Final = 1_000_000
MODELS: Final = (
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "position_based",
    "time_decay",
)
DIRECT: Final = "direct"
NO_TOUCHPOINT: Final = "(none)"
KOL_CHANNEL: Final = "kol"
_DECAY_SCALE: Final = 2**32


class TouchKey(NamedTuple):
    """What a touchpoint is credited as (one attribution row per order, model and key)."""

    channel: str
    source: str
    medium: str
    campaign: str
    kol: str


class Touch(NamedTuple):
    """A session's touchpoint: its earliest counted event, ordered by (t, session_id)."""

    t: int
    session_id: str
    event_id: str
    channel: str
    source: str
    medium: str
    campaign: str
    kol: str

    @property
    def key(self) -> TouchKey:
        return TouchKey(self.channel, self.source, self.medium, self.campaign, self.kol)


@dataclass(frozen=True, slots=True)
class AttributionRules:
    lookback_ms: int = 30 * 86_400_000
    half_life_ms: int = 7 * 86_400_000
    max_touches: int = 50

    @property
    def kept_touches(self) -> int:
        """Touchpoints a visitor keeps: an order's own plus room for sessions after it
        while its window is not final (docs/semantics.md 10, "Touchpoints")."""
        return 2 * self.max_touches


def source_of(event: Event) -> str:
    if event.utm_source:
        return event.utm_source
    if event.referrer:
        try:
            return urlsplit(event.referrer).hostname or ""
        except ValueError:  # an unparsable referrer names no host
            return ""
    return ""


def touch_of(event: Event, channel: str, campaign: str) -> Touch:
    return Touch(
        event.event_time_ms,
        event.session_id,
        event.event_id,
        channel,
        source_of(event),
        event.utm_medium or "",
        campaign,
        (event.utm_content or "") if channel == KOL_CHANNEL else "",
    )


def record_touch(touches: list[Touch], candidate: Touch, rules: AttributionRules) -> None:
    """Keep ``candidate`` if it is its session's earliest counted event so far."""
    for index, touch in enumerate(touches):
        if touch.session_id == candidate.session_id:
            if (candidate.t, candidate.event_id) >= (touch.t, touch.event_id):
                return
            del touches[index]
            break
    insort(touches, candidate)
    if len(touches) > rules.kept_touches:
        del touches[: len(touches) - rules.kept_touches]


def prune_touches(touches: list[Touch], oldest_order_t: int, rules: AttributionRules) -> None:
    """Drop touchpoints no order at or after ``oldest_order_t`` can use."""
    horizon = oldest_order_t - rules.lookback_ms
    keep = 0
    while keep < len(touches) and touches[keep].t < horizon:
        keep += 1
    if keep:
        del touches[:keep]


def order_touches(touches: list[Touch], order_t: int, rules: AttributionRules) -> list[Touch]:
    """The touchpoints of an order at ``order_t``, oldest first; with none inside the
    lookback (a session id reused for longer than it), one credited to ``(none)``."""
    low = order_t - rules.lookback_ms
    inside = [touch for touch in touches if low <= touch.t <= order_t]
    if not inside:
        return [Touch(order_t, "", "", NO_TOUCHPOINT, "", "", "", "")]
    return inside[-rules.max_touches :]


def weights(model: str, touches: list[Touch], order_t: int, rules: AttributionRules) -> list[int]:
    n = len(touches)
    if model == "first_touch":
        return [1] + [0] * (n - 1)
    if model == "last_touch":
        return [0] * (n - 1) + [1]
    if model == "last_non_direct":
        chosen = n - 1
        for index in range(n - 1, -1, -1):
            if touches[index].channel != DIRECT:
                chosen = index
                break
        return [1 if index == chosen else 0 for index in range(n)]
    if model == "linear":
        return [1] * n
    if model == "position_based":
        if n <= 2:
            return [1] * n
        ends = 40 * (n - 2)
        return [ends] + [20] * (n - 2) + [ends]
    if model == "time_decay":
        half_life = rules.half_life_ms
        return [
            max(1, int(2.0 ** (-(order_t - touch.t) / half_life) * _DECAY_SCALE))
            for touch in touches
        ]
    raise ValueError(f"unknown attribution model {model!r}; use one of {', '.join(MODELS)}")


def apportion(weights: list[int], total: int = SHARE_UNIT) -> list[int]:
    """Integer parts of ``total`` proportional to ``weights`` (largest remainder; on equal
    remainders the earlier part gets the unit)."""
    whole = sum(weights)
    if whole <= 0:
        raise ValueError("attribution weights must have a positive sum")
    parts = [total * w // whole for w in weights]
    left = total - sum(parts)
    if left:
        order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
        for index in order[:left]:
            parts[index] += 1
    return parts


def shares(
    model: str, touches: list[Touch], order_t: int, rules: AttributionRules
) -> dict[TouchKey, int]:
    """Each touchpoint key's share of the order in millionths (sums to SHARE_UNIT)."""
    out: dict[TouchKey, int] = {}
    if not touches:
        return out
    for touch, part in zip(
        touches, apportion(weights(model, touches, order_t, rules)), strict=True
    ):
        if part:
            key = touch.key
            out[key] = out.get(key, 0) + part
    return out
