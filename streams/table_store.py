"""The Faust state table as the runtime's raw key/value store (``streams.runtime.TableStore``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams import faust_private
from streams.changelog import ChangelogWriter


class FaustTableStore:
    """A Faust ``Table`` used as a raw key/value store with an explicit changelog partition.

    Values are written once per visitor per batch, into the table's store and its
    changelog topic (see ``streams/changelog.py``), so recovery is Faust's own.
    """

    def __init__(self, table: Any, changelog: ChangelogWriter, on_records: Any = None) -> None:
        self._table = table
        self._changelog = changelog
        self._on_records = on_records

    @property
    def _store(self) -> Any:
        return self._table.data

    def get(self, key: bytes) -> bytes | None:
        value = self._store.data.get(key)
        return value if value is None else bytes(value)

    def keys_in_partition(self, partition: int) -> Iterable[bytes]:
        return faust_private.keys_in_partition(self._store, partition)

    async def write_many(
        self,
        partition: int,
        writes: list[tuple[bytes, bytes | None]],
        barrier: Any = None,
    ) -> None:
        faust_private.write_to_store(self._store, partition, writes)
        sent = await self._changelog.write(partition, writes, barrier)
        if self._on_records is not None:
            self._on_records(sent)

    async def wait_delivered(self) -> None:
        await self._changelog.wait_delivered()
