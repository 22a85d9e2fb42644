"""Is the worker behind its input? The ClickHouse writer inserts in bulk while it is.

While a worker catches up (a restart, a replay, a burst above what it can process), an
event's latency is the backlog's: inserting every few tenths of a second saves nothing
and costs chDB a part per table per insert to write and merge. The runtime's tick asks
:class:`Backlog` once a second and tells the writer (``ClickHouseWriter.set_behind``).
"""

from __future__ import annotations

from dataclasses import dataclass


def input_behind(
    lag_records: int, processed_records: int, elapsed_seconds: float, horizon_seconds: float
) -> bool | None:
    """Do more records wait than the worker processes in ``horizon_seconds`` at the rate
    just seen (``processed_records`` in ``elapsed_seconds``)? Records waiting while none
    were processed count as behind (a start-up backlog, a stall); ``None`` when there is
    no rate yet (the first tick)."""
    if lag_records <= 0:
        return False
    if elapsed_seconds <= 0:
        return None
    if processed_records <= 0:
        return True
    return lag_records > processed_records / elapsed_seconds * horizon_seconds


@dataclass
class Backlog:
    """The writer's mode from one verdict a tick: behind only after ``confirm_ticks``
    verdicts in a row (a second's hiccup, such as the first fetch of a live input, is
    not worth bigger inserts and the latency they add), caught up at the first."""

    horizon_seconds: float
    confirm_ticks: int = 2
    behind: bool = False
    _streak: int = 0

    def observe(self, lag_records: int, processed_records: int, elapsed_seconds: float) -> bool:
        """Take one tick's numbers; return whether the input is behind now."""
        verdict = input_behind(
            lag_records, processed_records, elapsed_seconds, self.horizon_seconds
        )
        if verdict is None:
            return self.behind
        if not verdict:
            self._streak = 0
            self.behind = False
            return False
        self._streak += 1
        if self._streak >= self.confirm_ticks:
            self.behind = True
        return self.behind
