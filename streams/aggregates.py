"""A partition's non-final aggregate totals, kept as sums of visitor contributions."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from streams.lifecycle import DAY_MS
from streams.outputs import Key, RowKey
from streams.outputs.family import KPI_THRESHOLD, funnel_threshold
from streams.outputs.funnel_outcomes import OpenAttemptKey
from streams.outputs.kpi import KpiCellKey, KpiKey
from streams.retention import GAPS_FAMILY, RETENTION_FAMILY, current_period_ms
from streams.visitor import Contributions, Rules, Thresholds


def row_of(key: Key) -> RowKey:
    """The output row a contribution key belongs to (a KPI row has one cell per metric)."""
    if isinstance(key, KpiCellKey):
        return key.row
    assert not isinstance(key, OpenAttemptKey)
    return key


@dataclass
class PartitionAggregates:
    rules: Rules
    totals: dict[Key, int] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=dict)
    dirty: set[RowKey] = field(default_factory=set)
    # Open attempts per funnel and window: they hold the funnel's threshold back.
    _open: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    # (finality group, window) -> rows; a group's rows turn final together.
    _rows_by_window: dict[tuple[str, int], set[RowKey]] = field(
        default_factory=lambda: defaultdict(set)
    )

    def apply(self, delta: Contributions) -> None:
        totals = self.totals
        mark_dirty = self.dirty.add
        rows_by_window = self._rows_by_window
        for key, change in delta.items():
            if isinstance(key, OpenAttemptKey):
                refs = self._open[key.funnel]
                count = refs.get(key.window, 0) + change
                if count:
                    refs[key.window] = count
                else:
                    refs.pop(key.window, None)
                continue
            totals[key] = totals.get(key, 0) + change
            row = key.row if isinstance(key, KpiCellKey) else key  # row_of(key)
            mark_dirty(row)
            rows_by_window[(key.threshold, key.final_at)].add(row)

    def value(self, key: Key) -> int:
        return self.totals.get(key, 0)

    def _candidate_thresholds(self, watermark: int) -> Thresholds:
        candidates: Thresholds = {KPI_THRESHOLD: self.rules.window_of(watermark)}
        for granularity, family in RETENTION_FAMILY.items():
            candidates[family] = current_period_ms(watermark, granularity)
        candidates[GAPS_FAMILY] = watermark - watermark % DAY_MS
        for funnel in self.rules.funnels:
            family = funnel_threshold(funnel.name)
            limit = self.rules.window_of(watermark - funnel.window_ms)
            refs = self._open.get(funnel.name)
            if refs:
                limit = min(limit, min(refs))
            candidates[family] = limit
        return candidates

    def finalize(self, watermark: int | None) -> list[RowKey]:
        """Advance thresholds for ``watermark``; return the row keys that became final.

        The caller writes those rows with ``is_final = 1`` and then forgets them with
        :meth:`forget`.
        """
        if watermark is None:
            return []
        final_rows: list[RowKey] = []
        for family, limit in self._candidate_thresholds(watermark).items():
            previous = self.thresholds.get(family)
            if previous is not None and limit <= previous:
                continue
            self.thresholds[family] = limit
            for fam, window in [k for k in self._rows_by_window if k[0] == family and k[1] < limit]:
                final_rows.extend(self._rows_by_window[(fam, window)])
        return final_rows

    def forget(self, rows: list[RowKey]) -> None:
        for row in rows:
            self.dirty.discard(row)
            self._rows_by_window.pop((row.threshold, row.final_at), None)
            if isinstance(row, KpiKey):
                for cell in row.cells():
                    self.totals.pop(cell, None)
            else:
                self.totals.pop(row, None)

    def live_rows(self) -> list[RowKey]:
        return [row for rows in self._rows_by_window.values() for row in rows]

    def take_dirty(self) -> list[RowKey]:
        rows = list(self.dirty)
        self.dirty.clear()
        return rows
