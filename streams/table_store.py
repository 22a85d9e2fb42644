"""The Faust state table as the runtime's raw key/value store (``streams.runtime.TableStore``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams import faust_private
from streams.changelog import ChangelogWriter
from streams.checkpoint import meta_key


class FaustTableStore:
    """A Faust ``Table`` used as a raw key/value store with an explicit changelog partition.

    Values are written once per visitor per batch, into the table's store and its
    changelog topic (see ``streams/changelog.py``), so recovery is Faust's own.

    A partition whose processor holds its visitors' states itself (the compiled core reads
    the store once, when it recovers) is *owned*: while it is, the store keeps no copy of
    its visitor states, and their writes go to the changelog only. Without this every
    state was held twice, once in the core and once in Faust's dict, and the copy grew
    with the visitors (issue #16, flat memory). The partition's checkpoint (``meta_key``)
    is still kept: it is one small record.

    Faust's recovery assumes the store holds what it wrote. A rebalance revokes every
    partition of this worker (aiokafka's eager protocol), and Faust reads again only the
    changelog's tail of a partition the worker keeps; the runtime then rebuilds its
    processor from the store. So a partition is disowned when it is revoked, with the
    states its processor held written back (:meth:`disown`), and the store is as if it
    had kept every write. :meth:`release_owned` drops whatever Faust's recovery puts back
    for a partition that is still owned (not revoked) when a rebalance completes.
    """

    def __init__(self, table: Any, changelog: ChangelogWriter, on_records: Any = None) -> None:
        self._table = table
        self._changelog = changelog
        self._on_records = on_records
        self._owned: set[int] = set()

    @property
    def _store(self) -> Any:
        return self._table.data

    def get(self, key: bytes) -> bytes | None:
        value = self._store.data.get(key)
        return value if value is None else bytes(value)

    def keys_in_partition(self, partition: int) -> Iterable[bytes]:
        return faust_private.keys_in_partition(self._store, partition)

    def own(self, partition: int) -> int:
        """``partition``'s processor holds its states from now on: drop the store's copies
        and keep none of its later writes. Returns how many keys were dropped."""
        self._owned.add(partition)
        return self._drop({partition})

    def disown(self, partition: int, held: Iterable[tuple[bytes, bytes]]) -> None:
        """``partition``'s processor is gone: ``held``, the states it held, go back into
        the store, and its writes are kept from now on, until it is owned again."""
        if partition in self._owned:
            self._owned.discard(partition)
            faust_private.write_to_store(self._store, partition, held)

    def release_owned(self) -> int:
        """Drop what Faust's recovery put back for the partitions still owned. Returns how
        many keys were dropped."""
        return self._drop(self._owned)

    def _drop(self, partitions: set[int]) -> int:
        keep = {meta_key(partition) for partition in partitions}
        return faust_private.drop_partitions(self._store, partitions, keep)

    async def write_many(
        self,
        partition: int,
        writes: list[tuple[bytes, bytes | None]],
        barrier: Any = None,
    ) -> None:
        if partition not in self._owned:
            faust_private.write_to_store(self._store, partition, writes)
        else:
            meta = meta_key(partition)
            kept = [(key, value) for key, value in writes if key == meta]
            if kept:
                faust_private.write_to_store(self._store, partition, kept)
        sent = await self._changelog.write(partition, writes, barrier)
        if self._on_records is not None:
            self._on_records(sent)

    async def wait_delivered(self) -> None:
        await self._changelog.wait_delivered()
