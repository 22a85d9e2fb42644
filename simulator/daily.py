"""The daily traffic curve shared by arrivals and scenarios."""

from __future__ import annotations

import math
from typing import Final

_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 86_400_000


def diurnal_weight(time_ms: int) -> float:
    """Relative traffic by hour: most visitors are in China, evenings (12-14 UTC) peak.

    Ranges 0.4..1.6, so a rejection sampler can use 1.6 as its bound."""
    hour = (time_ms % _DAY_MS) / _HOUR_MS
    return 1.0 + 0.6 * math.cos(2 * math.pi * (hour - 13.0) / 24.0)
