"""``install_fetch_reader`` swaps the two names for one fetcher only, and refuses, naming
the setting, an aiokafka whose fetch method no longer uses them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.errors import WorkerStartError
from streams.faust_private import install_fetch_reader


class MemoryRecords:  # what the stand-in's method finds by name, as aiokafka's does
    def __init__(self, raw: bytes) -> None:
        self.raw = raw


def PartitionRecords(tp: str, records: Any) -> tuple[str, str, Any]:
    return ("aiokafka's", tp, records.raw)


class StandInFetcher:
    """Shaped as aiokafka's Fetcher where it matters: the method and its two names."""

    def __init__(self) -> None:
        self.made: list[Any] = []

    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: bytes) -> bool:
        self.made.append(PartitionRecords(assignment, MemoryRecords(request)))
        return True


class Kept:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw


def ours(tp: str, records: Kept) -> tuple[str, str, bytes]:
    return ("ours", tp, records.raw)


def test_only_the_fetcher_it_is_installed_on_reads_with_the_replacements() -> None:
    mine, other = StandInFetcher(), StandInFetcher()
    install_fetch_reader(mine, Kept, ours)  # type: ignore[arg-type]

    async def fetch() -> None:
        assert await mine._proc_fetch_request("t-0", 1, b"abc")
        assert await other._proc_fetch_request("t-0", 1, b"abc")

    asyncio.run(fetch())
    assert mine.made == [("ours", "t-0", b"abc")]
    assert other.made == [("aiokafka's", "t-0", b"abc")]  # the class and module untouched


def test_a_fetch_method_without_the_names_is_refused_with_the_setting_named() -> None:
    class Reshaped:
        async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
            return bool(MemoryRecords(request))

    with pytest.raises(WorkerStartError, match=r"\['PartitionRecords'\].*FUNNEL_FETCH_READER"):
        install_fetch_reader(Reshaped(), Kept, ours)  # type: ignore[arg-type]
