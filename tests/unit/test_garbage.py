"""The worker's scheduled full collection finds cycles the tuned thresholds leave behind."""

from __future__ import annotations

import gc

from streams.garbage import collect_full


class Recorded:
    def __init__(self) -> None:
        self.calls: list[tuple[float, int]] = []

    def observe_full_collection(self, seconds: float, collected: int) -> None:
        self.calls.append((seconds, collected))


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_a_full_collection_frees_cycles_and_reports_its_cost() -> None:
    gc.collect()
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)  # the worker's tuning: full passes almost never run
    try:
        for _ in range(1_000):
            Node()
        metrics = Recorded()
        found = collect_full(metrics)
    finally:
        gc.set_threshold(*thresholds)
    assert found >= 1_000  # each Node and its __dict__
    ((seconds, collected),) = metrics.calls
    assert collected == found and seconds >= 0
