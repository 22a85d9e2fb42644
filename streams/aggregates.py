"""A partition's non-final aggregate totals, kept as sums of visitor contributions."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import cast

from streams.lifecycle import DAY_MS
from streams.retention import GAPS_FAMILY, RETENTION_FAMILY, current_period_ms
from streams.visitor import KPI_FAMILY, Contributions, Key, Rules, Thresholds, funnel_family


def family_of(key: Key) -> str | None:
    kind = key[0]
    if kind == "kpi":
        return KPI_FAMILY
    if kind in ("fs", "fo", "ft"):
        return funnel_family(str(key[1]))
    if kind == "ret":
        return RETENTION_FAMILY[str(key[2])]
    if kind == "gap":
        return GAPS_FAMILY
    return None  # "open" refcounts are bookkeeping, not rows


def row_key(key: Key) -> Key:
    """The output row a contribution key belongs to (KPI keys carry a metric index)."""
    return key[:-1] if key[0] == "kpi" else key


def window_of_key(key: Key) -> int:
    """The time that decides when the row is final (its window or activity period)."""
    kind = key[0]
    if kind in ("kpi", "gap"):
        return cast(int, key[1])
    if kind == "ret":
        return cast(int, key[6])
    return cast(int, key[2])


@dataclass
class PartitionAggregates:
    rules: Rules
    totals: dict[Key, int] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=dict)
    dirty: set[Key] = field(default_factory=set)
    _open: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    _rows_by_window: dict[tuple[str, int], set[Key]] = field(
        default_factory=lambda: defaultdict(set)
    )

    def apply(self, delta: Contributions) -> None:
        totals = self.totals
        for key, change in delta.items():
            if key[0] == "open":
                refs = self._open[str(key[1])]
                window = int(key[2])  # type: ignore[call-overload]
                count = refs.get(window, 0) + change
                if count:
                    refs[window] = count
                else:
                    refs.pop(window, None)
                continue
            totals[key] = totals.get(key, 0) + change
            row = row_key(key)
            self.dirty.add(row)
            family = family_of(key)
            assert family is not None
            self._rows_by_window[(family, window_of_key(key))].add(row)

    def value(self, key: Key) -> int:
        return self.totals.get(key, 0)

    def _candidate_thresholds(self, watermark: int) -> Thresholds:
        candidates: Thresholds = {KPI_FAMILY: self.rules.window_of(watermark)}
        for granularity, family in RETENTION_FAMILY.items():
            candidates[family] = current_period_ms(watermark, granularity)
        candidates[GAPS_FAMILY] = watermark - watermark % DAY_MS
        for funnel in self.rules.funnels:
            family = funnel_family(funnel.name)
            limit = self.rules.window_of(watermark - funnel.window_ms)
            refs = self._open.get(funnel.name)
            if refs:
                limit = min(limit, min(refs))
            candidates[family] = limit
        return candidates

    def finalize(self, watermark: int | None) -> list[Key]:
        """Advance thresholds for ``watermark``; return the row keys that became final.

        The caller writes those rows with ``is_final = 1`` and then forgets them with
        :meth:`forget`.
        """
        if watermark is None:
            return []
        final_rows: list[Key] = []
        for family, limit in self._candidate_thresholds(watermark).items():
            previous = self.thresholds.get(family)
            if previous is not None and limit <= previous:
                continue
            self.thresholds[family] = limit
            for fam, window in [k for k in self._rows_by_window if k[0] == family and k[1] < limit]:
                final_rows.extend(self._rows_by_window[(fam, window)])
        return final_rows

    def forget(self, rows: list[Key]) -> None:
        for row in rows:
            self.dirty.discard(row)
            family = family_of(row)
            assert family is not None
            self._rows_by_window.pop((family, window_of_key(row)), None)
            if row[0] == "kpi":
                for metric in range(11):
                    self.totals.pop((*row, metric), None)
            else:
                self.totals.pop(row, None)

    def live_rows(self) -> list[Key]:
        return [row for rows in self._rows_by_window.values() for row in rows]

    def take_dirty(self) -> list[Key]:
        rows = list(self.dirty)
        self.dirty.clear()
        return rows
