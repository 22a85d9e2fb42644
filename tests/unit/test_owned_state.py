"""A partition whose processor holds its states is owned: the Faust store keeps no copy.

``streams/table_store.py`` on a real Faust memory store (the app is never started), and
the runtime's calls into it: which processors own their partitions, and when a partition
is given up (revoked) or its copies are dropped again (after a rebalance).
"""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import create_autospec

import faust
import pytest
from prometheus_client import CollectorRegistry

from sinks.clickhouse import ClickHouseWriter
from sinks.metrics import PipelineMetrics
from streams import faust_private
from streams.checkpoint import meta_key
from streams.compiled.processor import CompiledProcessor
from streams.conversion import ConversionTracker
from streams.processor import BatchResult, PartitionProcessor
from streams.runtime import Runtime, TableStore
from streams.table_store import FaustTableStore
from streams.visitor import Rules

TOPICS = {"clickstream": "shop.clickstream", "cart": "shop.cart", "orders": "shop.orders"}


class _Changelog:
    def __init__(self) -> None:
        self.sent: list[tuple[int, list[tuple[bytes, bytes | None]]]] = []

    async def write(
        self, partition: int, writes: list[tuple[bytes, bytes | None]], barrier: Any = None
    ) -> int:
        self.sent.append((partition, list(writes)))
        return len(writes)


@pytest.fixture
def table() -> Any:
    app = faust.App(
        "owned-state-test",
        broker="kafka://127.0.0.1:1",
        store="memory://",
        autodiscover=False,
        web_enabled=False,
    )
    return app.Table("owned-state-probe", key_type=bytes, value_type=bytes)


def _write(store: FaustTableStore, partition: int, *keys: bytes) -> None:
    writes: list[tuple[bytes, bytes | None]] = [(k, b"state-of-" + k) for k in keys]
    asyncio.run(store.write_many(partition, writes))


def test_an_owned_partition_keeps_no_copies_and_its_writes_still_reach_the_changelog(
    table: Any,
) -> None:
    changelog = _Changelog()
    store = FaustTableStore(table, changelog)  # type: ignore[arg-type]
    _write(store, 0, b"a", b"b", meta_key(0))
    _write(store, 1, b"c")
    assert sorted(store.keys_in_partition(0)) == sorted([b"a", b"b", meta_key(0)])
    assert store.get(b"a") == b"state-of-a"

    assert store.own(0) == 2
    # The checkpoint stays: one small record, and Faust's recovery of it is kept whole.
    assert list(store.keys_in_partition(0)) == [meta_key(0)] and store.get(b"a") is None
    assert store.get(b"c") == b"state-of-c"  # the other partition keeps its copies
    _write(store, 0, b"d", meta_key(0))
    _write(store, 1, b"e")
    assert store.get(b"d") is None and store.get(b"e") == b"state-of-e"
    assert store.get(meta_key(0)) == b"state-of-" + meta_key(0)
    # Every write went to the changelog, owned or not: Faust recovers from it.
    assert [(p, [k for k, _ in w]) for p, w in changelog.sent] == [
        (0, [b"a", b"b", meta_key(0)]),
        (1, [b"c"]),
        (0, [b"d", meta_key(0)]),
        (1, [b"e"]),
    ]
    # Faust's memory store's own index is kept in step: its recovery drops by it.
    assert set(table.data._key_partition) == {b"c", b"e", meta_key(0)}


def test_a_partition_given_up_gets_its_states_back_and_copies_put_back_are_dropped(
    table: Any,
) -> None:
    store = FaustTableStore(table, _Changelog())  # type: ignore[arg-type]
    store.own(0)
    store.own(2)
    # A rebalance that kept 0 and 2 without revoking them would make Faust re-read their
    # changelog's tail into the store (apply_changelog_batch keeps the same index).
    for partition, key in ((0, b"a"), (2, b"b"), (1, b"c"), (2, meta_key(2))):
        faust_private.write_to_store(table.data, partition, [(key, b"x")])
    assert store.release_owned() == 2
    assert store.get(b"a") is None and store.get(b"b") is None
    assert store.get(b"c") == b"x" and store.get(meta_key(2)) == b"x"
    # Partition 2 is revoked: the states its processor held go back into the store,
    # where Faust's recovery and the next processor expect them, and later writes stay.
    store.disown(2, [(b"f", b"held-f"), (b"g", b"held-g")])
    _write(store, 2, b"h")
    assert store.release_owned() == 0
    assert store.get(b"f") == b"held-f" and store.get(b"h") == b"state-of-h"
    assert sorted(store.keys_in_partition(2)) == [meta_key(2), b"f", b"g", b"h"]
    # A partition not owned has nothing to give back: what the store has is kept.
    store.disown(1, [(b"c", b"stale")])
    assert store.get(b"c") == b"x"


def _runtime(store: Any, processor: Any) -> Runtime:
    return Runtime(
        rules=create_autospec(Rules, instance=True),
        decoder=None,
        channels=None,
        topics_by_stream=TOPICS,
        store=store,
        writer=create_autospec(ClickHouseWriter, instance=True),
        metrics=PipelineMetrics(CollectorRegistry()),
        conversion=create_autospec(ConversionTracker, instance=True),
        dead_letters=None,
        new_processor=lambda *args, **kwargs: processor,
    )


@pytest.mark.parametrize("kind", [CompiledProcessor, PartitionProcessor])
def test_the_runtime_gives_the_store_up_only_for_processors_that_hold_their_states(
    kind: type,
) -> None:
    store = create_autospec(TableStore, instance=True)
    processor = create_autospec(kind, instance=True)
    processor.owns_state = kind.owns_state
    processor.recover.return_value = BatchResult()
    processor.state_keys = processor.state_bytes = processor.recovered_version = 0
    rt = _runtime(store, processor)

    assert asyncio.run(rt._processor(3)) is processor
    processor.recover.assert_called_once()
    if kind is CompiledProcessor:
        store.own.assert_called_once_with(3)
    else:
        store.own.assert_not_called()
    processor.held_states.return_value = [(b"k", b"v")]
    rt.forget_partitions(iter([3, 5]))  # 5 has no processor here
    if kind is CompiledProcessor:
        store.disown.assert_called_once_with(3, [(b"k", b"v")])
    else:
        store.disown.assert_not_called()
    assert rt.processors == {}
    rt.rebalance_completed()
    store.release_owned.assert_called_once_with()


def test_the_compiled_core_holds_its_states_and_the_python_core_reads_the_store() -> None:
    assert CompiledProcessor.owns_state is True
    assert PartitionProcessor.owns_state is False
