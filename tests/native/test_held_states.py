"""What the compiled core gives back when its partition leaves it (``held_states``).

While the core holds a partition, the Faust store keeps no copy of its visitor states
(``streams/table_store.py``, owned partitions). When the partition is revoked, the
runtime writes the core's states back into the store, and the next processor of the
partition recovers from them. So:

- they must be exactly the last state written to the changelog for every visitor (a
  deleted visitor has none);
- a processor recovered from them (with the checkpoint) must carry on as the first one
  would have: the same states and checkpoint after the rest of the traffic.
"""

from __future__ import annotations

import functools
from collections import defaultdict

from schemas.channels import ChannelRules
from schemas.codec import EventCodec
from schemas.validation import ValidationBounds
from simulator.config import SimConfig
from simulator.generate import generate
from streams.attribution import AttributionRules
from streams.batch import BatchResult
from streams.checkpoint import META_PREFIX, meta_key
from streams.compiled.processor import CompiledProcessor
from streams.funnels import load_funnels
from streams.lifecycle import DAY_MS
from streams.records import Record
from streams.visitor import Rules
from tests.native.test_lifecycle_rows import SHORT
from tests.unit.fakes import DictStore
from tests.unit.test_core_vs_truth import MIXED_FUNNELS, TOPICS

BATCH = 300


@functools.cache
def _batches() -> list[tuple[str, list[Record]]]:
    """Simulated traffic over 60 days, cut into batches per stream, in send order."""
    config = SimConfig(seed=11, users=300, days=60, partitions=1, duplicate_pct=2)
    offsets: dict[str, int] = defaultdict(int)
    batches: list[tuple[str, list[Record]]] = []
    for rec in generate(config):
        record = Record(offsets[rec.stream], rec.key, rec.value, rec.send_time_ms)
        offsets[rec.stream] += 1
        if batches and batches[-1][0] == rec.stream and len(batches[-1][1]) < BATCH:
            batches[-1][1].append(record)
        else:
            batches.append((rec.stream, [record]))
    return batches


class _Partition:
    """One compiled processor over a store that gets every write, as the changelog does."""

    def __init__(self, store: DictStore) -> None:
        rules = Rules(
            load_funnels(MIXED_FUNNELS),
            lifecycle=SHORT,
            attribution=AttributionRules(lookback_ms=DAY_MS),
        )
        self.store = store
        self.proc = CompiledProcessor(
            0,
            rules,
            EventCodec(bounds=ValidationBounds(replay=True)),
            ChannelRules.load(),
            TOPICS,
            store,
        )
        self.deleted = 0
        self.position: dict[str, int] = {}
        self.keep(self.proc.recover())

    def keep(self, result: BatchResult) -> None:
        for key, value in result.state_writes.items():
            self.store.put(key, value, 0)
            self.deleted += value is None
        if result.meta:
            self.store.put(meta_key(0), self.proc.meta_record(), 0)

    def run(self, batches: list[tuple[str, list[Record]]]) -> None:
        # Records arrive in send order, so after each batch every input is caught up to
        # what it has sent: the ticks advance the clocks, and lives expire.
        for stream, records in batches:
            self.keep(self.proc.process(stream, records))
            self.position[stream] = records[-1].offset + 1
            self.keep(self.proc.tick(self.position))


def _visitor_states(store: DictStore) -> dict[bytes, bytes]:
    return {k: v for k, v in store.data.items() if not k.startswith(META_PREFIX)}


def test_the_held_states_are_the_last_written_and_a_new_processor_carries_on_from_them() -> None:
    batches = _batches()
    half = len(batches) * 3 // 4  # lives start expiring after about half of them
    first = _Partition(DictStore())
    first.run(batches[:half])
    held = dict(first.proc.held_states())
    assert len(held) > 50
    assert held == _visitor_states(first.store)
    assert first.deleted > 0, "no visitor state was deleted: the comparison misses deletions"

    # The partition leaves and comes back: the store holds the held states and the
    # checkpoint only (the store's own copies were dropped while the core held them).
    handed_back = DictStore()
    for key, value in held.items():
        handed_back.put(key, value, 0)
    handed_back.put(meta_key(0), first.store.data[meta_key(0)], 0)
    second = _Partition(handed_back)
    assert dict(second.proc.held_states()) == held

    first.run(batches[half:])
    second.run(batches[half:])
    assert dict(second.proc.held_states()) == dict(first.proc.held_states())
    assert dict(first.proc.held_states()) == _visitor_states(first.store)
    assert second.proc.meta_record() == first.proc.meta_record()
