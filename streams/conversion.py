"""Step conversion over the last minutes of event time, for the live gauges.

Counters summed over workers give Prometheus the *global* conversion (see the recording
rules); this tracker gives each worker's own view in event time, which stays right during
a replay or a backlog, when wall-clock rates say nothing about the data's own minutes.

A ring of ``minutes`` one-minute slots per funnel: each slot remembers which minute it
holds and is reset when a newer minute reuses it, so memory is fixed whatever the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from streams.errors import StreamError

if TYPE_CHECKING:
    from sinks.metrics import PipelineMetrics

MINUTE_MS: Final = 60_000
EXPORTED_WINDOWS_MINUTES: Final = (5, 15)


class _FunnelRing:
    def __init__(self, steps: int, minutes: int) -> None:
        self.slot_minute: list[int | None] = [None] * minutes
        self.slot_counts: list[list[int]] = [[0] * steps for _ in range(minutes)]

    def add(self, minute_index: int, step_index: int, count: int) -> None:
        slot = minute_index % len(self.slot_minute)
        if self.slot_minute[slot] != minute_index:
            self.slot_minute[slot] = minute_index
            self.slot_counts[slot] = [0] * len(self.slot_counts[slot])
        self.slot_counts[slot][step_index] += count

    def totals(self, first_minute: int, last_minute: int) -> list[int]:
        totals = [0] * len(self.slot_counts[0])
        for minute, counts in zip(self.slot_minute, self.slot_counts, strict=True):
            if minute is not None and first_minute <= minute <= last_minute:
                totals = [total + n for total, n in zip(totals, counts, strict=True)]
        return totals


class ConversionTracker:
    """Event-time ring of per-minute step entries, per funnel."""

    def __init__(self, funnels: Mapping[str, Sequence[str]], minutes: int = 15) -> None:
        if minutes < 1:
            raise StreamError(f"minutes must be >= 1, got {minutes}")
        for name, steps in funnels.items():
            if len(steps) < 2:
                raise StreamError(f"funnel {name!r} needs at least two steps to have a conversion")
        self.minutes = minutes
        self._steps = {name: tuple(steps) for name, steps in funnels.items()}
        self._rings = {name: _FunnelRing(len(steps), minutes) for name, steps in funnels.items()}
        self._newest_minute: int | None = None

    def record(self, funnel: str, step_index: int, minute_ms: int, count: int = 1) -> None:
        """Add ``count`` entries (a delta, may be negative) of step ``step_index`` (0-based)
        in the minute holding ``minute_ms``."""
        ring = self._rings.get(funnel)
        if ring is None:
            raise StreamError(f"unknown funnel {funnel!r}; known funnels: {sorted(self._rings)}")
        if not 0 <= step_index < len(self._steps[funnel]):
            raise StreamError(
                f"step index {step_index} out of range for funnel {funnel!r} "
                f"with {len(self._steps[funnel])} steps"
            )
        minute = minute_ms // MINUTE_MS
        if self._newest_minute is None or minute > self._newest_minute:
            self._newest_minute = minute
        # Older than the ring: it would overwrite a newer minute's slot, and no window
        # reported from now on can include it.
        if minute <= self._newest_minute - self.minutes:
            return
        ring.add(minute, step_index, count)

    def ratios(self, window_minutes: int) -> dict[tuple[str, str], float | None]:
        """(funnel, later step) -> entries(k)/entries(k-1) over the newest ``window_minutes``.

        The window ends at the newest minute seen (any funnel). ``None`` when step k-1 had no
        entries in the window.
        """
        if not 1 <= window_minutes <= self.minutes:
            raise StreamError(
                f"window of {window_minutes} minutes is outside 1..{self.minutes}; "
                "create the tracker with more minutes"
            )
        result: dict[tuple[str, str], float | None] = {}
        for funnel, steps in self._steps.items():
            totals = self._window_totals(funnel, window_minutes)
            for k in range(1, len(steps)):
                previous = totals[k - 1]
                result[(funnel, steps[k])] = totals[k] / previous if previous else None
        return result

    def export(self, metrics: PipelineMetrics) -> None:
        """Set ``step_conversion`` for the 5 and 15 minute windows; drop undefined ratios."""
        for window in EXPORTED_WINDOWS_MINUTES:
            if window > self.minutes:
                continue
            label = f"{window}m"
            for (funnel, step), ratio in self.ratios(window).items():
                if ratio is None:
                    # No entries of the previous step: "no data" rather than a stale value
                    # (remove() ignores a series that does not exist).
                    metrics.step_conversion.remove(funnel, step, label)
                else:
                    metrics.step_conversion.labels(funnel=funnel, step=step, window=label).set(
                        ratio
                    )

    def _window_totals(self, funnel: str, window_minutes: int) -> list[int]:
        if self._newest_minute is None:
            return [0] * len(self._steps[funnel])
        first = self._newest_minute - window_minutes + 1
        return self._rings[funnel].totals(first, self._newest_minute)
