"""Both cores on one partition, compared on every call.

``TwinProcessor`` has the processor interface. Each call (recover, process, tick, the
two forget steps) runs on a ``PartitionProcessor`` and on a ``CompiledProcessor`` built
alike over the same state store, and asserts that they give the same ``BatchResult``:
the same state bytes, rows (each table's rows as a multiset: Python's order of dirty
rows comes from a set), triggers, dead letters, stats, watermark and flags; and that
afterwards the checkpoint bytes, state counters, thresholds, watermark and input
positions agree. It returns the compiled core's result, so a test that checks the
outcome against the simulator's truth checks the compiled core, and through the
comparison the Python core too.

The row versions and the wall clock are fixed during a call and move on between calls
(the Python core reads the clock at every version, the compiled core once per call; with
the clock stopped both hand out the same versions).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from unittest import mock

from schemas.channels import ChannelRules
from schemas.codec import EventCodec
from schemas.forget import ForgetRequest
from streams import forget
from streams.batch import BatchResult
from streams.compiled.processor import CompiledProcessor
from streams.outputs import RowKey
from streams.outputs import family as family_module
from streams.outputs.family import VersionClock
from streams.processor import PartitionProcessor
from streams.records import Record
from streams.state import decode_state
from streams.visitor import Rules
from streams.visitor_cache import StateView


class _StoppedTime:
    """Stands for the ``time`` module in streams.outputs.family: ``time_ns`` reads ``now``,
    which moves on only between calls, never behind the real clock nor backwards (a
    twin rebuilt after a crash goes on with newer versions, as a restarted worker does)."""

    def __init__(self) -> None:
        self.now = time.time_ns()

    def time_ns(self) -> int:
        return self.now

    def move_on(self) -> None:
        self.now = max(time.time_ns(), self.now + 1_000)


_STOPPED = _StoppedTime()


def _normal(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_normal(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _normal(v)) for k, v in value.items()))
    return value


def _state_diff(want: bytes | None, got: bytes | None) -> str:
    if want is None or got is None:
        return f"python {want!r}, compiled {got!r}"
    w, g = decode_state(want, ""), decode_state(got, "")
    fields = [f.name for f in dataclasses.fields(w) if getattr(w, f.name) != getattr(g, f.name)]
    return "; ".join(f"{f}: {getattr(w, f)!r} != {getattr(g, f)!r}" for f in fields)


def table_rows(result: BatchResult) -> dict[str, list[Any]]:
    """Each non-empty table's rows, normalised (tuples for lists) and sorted."""
    return {
        spec.name: sorted((_normal(r) for r in rows), key=repr)
        for spec, rows in result.rows.items()
        if rows
    }


def assert_same_result(python: BatchResult, compiled: BatchResult, call: str) -> None:
    assert compiled.state_writes.keys() == python.state_writes.keys(), f"{call}: state keys"
    for key, value in python.state_writes.items():
        got = compiled.state_writes[key]
        assert got == value, f"{call}: the state of {key!r} differs: {_state_diff(value, got)}"
    want, got = table_rows(python), table_rows(compiled)
    assert got.keys() == want.keys(), f"{call}: tables {sorted(got)} != {sorted(want)}"
    for table, rows in want.items():
        assert got[table] == rows, f"{call}: {table} rows differ"
    assert compiled.triggers == python.triggers, f"{call}: triggers"
    assert compiled.dead_letters == python.dead_letters, f"{call}: dead letters"
    assert compiled.stats == python.stats, f"{call}: stats"
    assert (compiled.meta, compiled.finalized, compiled.watermark) == (
        python.meta,
        python.finalized,
        python.watermark,
    ), f"{call}: meta, finalized, watermark"


class TwinProcessor:
    """The processor interface over both cores (module docstring)."""

    calls = 0  # compared calls, over all twins (tests check the comparison ran)

    def __init__(
        self,
        partition: int,
        rules: Rules,
        decoder: EventCodec,
        channels: ChannelRules,
        topics: Mapping[str, str],
        store: StateView,
        versions: VersionClock | None = None,
        wall_ms: Callable[[], int] | None = None,
        cache_visitors: int = 0,
    ) -> None:
        self._wall = 1_700_000_000_000
        self.partition = partition
        self.rules = rules
        self._topics = tuple(topics)
        # Each core has its own version clock: equal calls must give equal versions.
        self.python = PartitionProcessor(
            partition,
            rules,
            decoder,
            channels,
            topics,
            store,
            VersionClock(),
            lambda: self._wall,
            cache_visitors,
        )
        self.compiled = CompiledProcessor(
            partition,
            rules,
            decoder,
            channels,
            topics,
            store,
            VersionClock(),
            lambda: self._wall,
            cache_visitors,
        )

    def _both(self, call: str, run: Callable[[Any], Any]) -> tuple[Any, Any]:
        _STOPPED.move_on()
        self._wall += 1_000
        with mock.patch.object(family_module, "time", _STOPPED):
            python = run(self.python)
            compiled = run(self.compiled)
        TwinProcessor.calls += 1
        return python, compiled

    def _compare(self, call: str, python: BatchResult, compiled: BatchResult) -> BatchResult:
        assert not python.encoded_rows, f"{call}: the Python core encoded rows"
        # The compiled core's rows stay encoded (streams/compiled/rows.py): compared, and
        # handed on, as the Python rows they stand for. Their Native and RowBinary forms
        # are compared through ClickHouse in tests/native/test_row_binary.py.
        compiled.decode_rows()
        assert_same_result(python, compiled, call)
        p, c = self.python, self.compiled
        assert c.meta_record() == p.meta_record(), f"{call}: checkpoint"
        assert (c.state_keys, c.state_bytes) == (p.state_keys, p.state_bytes), f"{call}: sizes"
        assert c.thresholds == p.thresholds, f"{call}: thresholds"
        assert c.watermark() == p.watermark(), f"{call}: watermark"
        assert c.triggers_next_offset == p.triggers_next_offset
        for stream in self._topics:
            assert c.next_offset(stream) == p.next_offset(stream), f"{call}: {stream} offset"
        return compiled

    # -- the processor interface ------------------------------------------------------------

    @property
    def state_keys(self) -> int:
        return self.compiled.state_keys

    @property
    def state_bytes(self) -> int:
        return self.compiled.state_bytes

    @property
    def thresholds(self) -> dict[str, int]:
        return self.compiled.thresholds

    @property
    def recovered_version(self) -> int | None:
        return self.compiled.recovered_version

    @property
    def triggers_next_offset(self) -> int | None:
        return self.compiled.triggers_next_offset

    @triggers_next_offset.setter
    def triggers_next_offset(self, value: int | None) -> None:
        self.python.triggers_next_offset = value
        self.compiled.triggers_next_offset = value

    def next_offset(self, stream: str) -> int | None:
        return self.compiled.next_offset(stream)

    def watermark(self) -> int | None:
        return self.compiled.watermark()

    def meta_record(self) -> bytes:
        return self.compiled.meta_record()

    def recover(self, written_keys: Iterable[RowKey] = ()) -> BatchResult:
        keys = list(written_keys)
        python, compiled = self._both("recover", lambda p: p.recover(keys))
        assert self.compiled.recovered_version == self.python.recovered_version
        return self._compare("recover", python, compiled)

    def process(
        self, stream: str, records: list[Record], keep_history_from: int | None = None
    ) -> BatchResult:
        python, compiled = self._both(
            "process", lambda p: p.process(stream, records, keep_history_from)
        )
        first = records[0].offset if records else None
        return self._compare(f"process {stream} from {first}", python, compiled)

    def tick(
        self, caught_up: Mapping[str, int], idle: Iterable[str] = (), finished: bool = False
    ) -> BatchResult:
        idle = list(idle)
        python, compiled = self._both("tick", lambda p: p.tick(caught_up, idle, finished))
        return self._compare("tick", python, compiled)

    def plan_forget(
        self,
        request: ForgetRequest,
        requested_at: int,
        events: list[forget.StoredEventLike],
        thresholds_then: dict[str, int],
    ) -> forget.ForgetPlan:
        python, compiled = self._both(
            "plan_forget",
            lambda p: p.plan_forget(request, requested_at, events, thresholds_then),
        )
        assert compiled == python, "plan_forget differs"
        TwinProcessor.calls += 1
        return python  # type: ignore[no-any-return]

    def apply_forget(
        self, plan: forget.ForgetPlan, stored: dict[RowKey, dict[str, int]], version: int
    ) -> tuple[BatchResult, int]:
        (python, n_python), (compiled, n_compiled) = self._both(
            "apply_forget", lambda p: p.apply_forget(plan, stored, version)
        )
        assert n_compiled == n_python, "apply_forget corrected a different number of rows"
        return self._compare("apply_forget", python, compiled), n_compiled
