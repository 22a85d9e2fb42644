"""Visitor states of one partition: read from the state table, decoded, and what each
contributes now, with the most recently touched ones kept decoded.

The table store holds the encoded bytes; the cache saves decoding a visitor and
recomputing its contributions on every batch that touches it again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from streams.lifecycle import LifecycleRules
from streams.state import VisitorState, decode_state
from streams.visitor import (
    Contributions,
    RetentionInputs,
    Rules,
    Thresholds,
    contributions,
    inputs_signature,
    live_only,
    retention_contributions,
)


class StateView(Protocol):
    """Read access to the table store (writes come back in ``BatchResult.state_writes``)."""

    def get(self, key: bytes) -> bytes | None: ...

    def keys_in_partition(self, partition: int) -> Iterable[bytes]: ...


@dataclass(slots=True)
class CachedVisitor:
    state: VisitorState
    size: int  # encoded bytes in the store (0: not stored yet)
    contributions: Contributions  # funnels and KPIs, non-final windows
    # What the retention cells and order gaps are computed from (a snapshot: ``state``
    # changes in place), and its signature; the cells themselves only when first needed
    # (most updates leave the retention inputs as they were).
    retention_inputs: RetentionInputs
    retention_signature: tuple[object, ...]
    computed_retention: Contributions | None = None
    # The thresholds ``contributions`` were computed under (evaluate), if known: under
    # the same thresholds, live_only would keep every one of them.
    computed_under: Thresholds | None = None

    def retention(self, thresholds: Thresholds, lifecycle: LifecycleRules) -> Contributions:
        """Retention cells and order gaps of non-final windows under ``thresholds``.

        Thresholds only rise, and the contributions are filtered by them exactly as
        :func:`live_only` filters, so computing them late equals computing them early and
        filtering now.
        """
        computed = self.computed_retention
        if computed is None:
            computed = retention_contributions(self.retention_inputs, thresholds, lifecycle)
            self.computed_retention = computed
            return computed
        return live_only(computed, thresholds)


class VisitorCache:
    def __init__(self, partition: int, rules: Rules, store: StateView, capacity: int) -> None:
        self._partition = partition
        self._rules = rules
        self._store = store
        self._entries: OrderedDict[bytes, CachedVisitor] = OrderedDict()
        self.capacity = capacity
        # Visitors and bytes in the store for this partition (exported as gauges).
        self.state_keys = 0
        self.state_bytes = 0

    def load(self, key: bytes, thresholds: Thresholds) -> CachedVisitor:
        """The visitor's state and current contributions: from the cache, else decoded."""
        cached = self._entries.pop(key, None)
        if cached is not None:
            self._entries[key] = cached  # most recently used
            return cached
        raw = self._store.get(key)
        if raw is None:
            self.state_keys += 1
            state, size = VisitorState(self._partition, key.decode()), 0
        else:
            state, size = decode_state(raw, key.decode()), len(raw)
        return self.evaluate(state, size, thresholds)

    def stored(self) -> Iterable[tuple[bytes, bytes]]:
        """Every stored (key, encoded state) of this partition, for recovery."""
        for key in self._store.keys_in_partition(self._partition):
            raw = self._store.get(key)
            if raw is not None:
                yield key, raw

    def evaluate(self, state: VisitorState, size: int, thresholds: Thresholds) -> CachedVisitor:
        inputs = RetentionInputs.of(state)
        return CachedVisitor(
            state,
            size,
            contributions(state, self._rules, thresholds),
            inputs,
            inputs_signature(inputs),
            computed_under=dict(thresholds),
        )

    def remember(self, key: bytes, cached: CachedVisitor) -> None:
        self._entries[key] = cached
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def resized(self, key: bytes, old_size: int, new_size: int) -> None:
        self.state_bytes += new_size - old_size

    def dropped(self, key: bytes, old_size: int) -> None:
        """The visitor was deleted from the store."""
        self.state_bytes -= old_size
        self.state_keys -= 1
        self._entries.pop(key, None)
