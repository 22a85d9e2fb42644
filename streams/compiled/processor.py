"""``CompiledProcessor``: the partition processor whose work runs in the compiled core.

It has ``PartitionProcessor``'s interface (process, tick, recover, meta_record, the
forget steps and the properties the runtime reads), and gives the same ``BatchResult``
for the same inputs: tests/native/twin.py runs both on every call of the oracle tests
and compares state bytes, rows, triggers, dead letters and stats.

The Rust ``PartitionCoreHandle`` (native/src/core.rs, pycore.rs) owns the partition's
visitor states from ``recover`` on, reading the state store once; this class turns its
outcome (plain Python values; each table's rows stay in Rust, ``rows.py``) into a
``BatchResult``. Forgetting a
person keeps its Python steps (``streams/forget.py``) and hands the rebuilt state to the
core.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from schemas.channels import ChannelRules
from schemas.codec import EventCodec
from schemas.deadletter import DeadLetter
from schemas.forget import ForgetRequest
from schemas.triggers import Trigger, TriggerItem
from streams import forget
from streams.batch import BatchResult, BatchStats
from streams.checkpoint import meta_key
from streams.compiled import config
from streams.compiled.rows import CompiledRows, table_spec
from streams.errors import CompiledCoreError
from streams.outputs import RowContext, RowKey
from streams.outputs.family import VersionClock
from streams.records import Record
from streams.state import ForgetMark, VisitorState, decode_state, encode_state
from streams.visitor import Rules
from streams.visitor_cache import StateView


def _core_module() -> Any:
    try:
        import shopfunnel_core
    except ImportError as exc:
        raise CompiledCoreError(
            "FUNNEL_CORE=compiled but the compiled core (shopfunnel_core) is not built: "
            "run `make setup` (it builds native/ with maturin), or set FUNNEL_CORE=python"
        ) from exc
    return shopfunnel_core


def compiled_core_built() -> bool:
    """Whether the crate is importable (``FUNNEL_CORE=auto`` uses it then)."""
    try:
        _core_module()
    except CompiledCoreError:
        return False
    return True


# -- the core's outcome as a BatchResult -------------------------------------------------


def _trigger(t: list[Any]) -> Trigger:
    return Trigger(
        trigger_id=t[0],
        trigger_type=t[1],
        anonymous_id=t[2],
        occurred_at_ms=t[3],
        emitted_at_ms=t[4],
        user_id=t[5],
        cart_value_minor=t[6],
        currency=t[7],
        items=tuple(TriggerItem(*item) for item in t[8]),
        channel=t[9],
        segment=t[10],
        previous_segment=t[11],
        detail=dict(t[12]),
    )


def _dead_letter(d: dict[str, Any]) -> DeadLetter:
    key = d["key"]
    return DeadLetter(
        raw=bytes.fromhex(d["raw"]),
        reason=d["reason"],
        detail=d["detail"],
        source_topic=d["source_topic"],
        source_partition=d["source_partition"],
        source_offset=d["source_offset"],
        key=None if key is None else bytes.fromhex(key),
        received_at_ms=d["received_at_ms"],
    )


def _counter(entries: list[list[Any]]) -> Counter[Any]:
    counts: Counter[Any] = Counter()
    for *key, n in entries:
        counts[key[0] if len(key) == 1 else tuple(key)] += n
    return counts


def _stats(s: dict[str, Any]) -> BatchStats:
    return BatchStats(
        ingested=_counter(s["ingested"]),
        dead_letters=_counter(s["dead_letters"]),
        late=_counter(s["late"]),
        duplicates=_counter(s["duplicates"]),
        replayed=s["replayed"],
        step_entries=_counter(s["step_entries"]),
        orders=_counter(s["orders"]),
        gmv_minor=_counter(s["gmv_minor"]),
        visitors_touched=s["visitors_touched"],
        transitions=_counter(s["transitions"]),
        expired=s["expired"],
        forgotten=s["forgotten"],
    )


def batch_result(data: dict[str, Any], writes: Sequence[tuple[bytes, bytes | None]]) -> BatchResult:
    """The core's answer (the outcome as plain Python values, each table's rows as one
    block left encoded, ``streams/compiled/rows.py``) as a ``BatchResult``."""
    result = BatchResult(
        triggers=[_trigger(t) for t in data["triggers"]],
        dead_letters=[_dead_letter(d) for d in data["dead_letters"]],
        state_writes=dict(writes),
        meta=data["meta"],
        finalized=data["finalized"],
        stats=_stats(data["stats"]),
        watermark=data["watermark"],
    )
    for name, block in data["rows"]:
        result.encoded_rows[table_spec(name)] = CompiledRows(block)
    return result


# -- the processor ----------------------------------------------------------------------------


class _NoStore:
    def get(self, key: bytes) -> bytes | None:
        return None

    def keys_in_partition(self, partition: int) -> Iterable[bytes]:
        return ()


class CompiledProcessor:
    """``PartitionProcessor`` with its work in the compiled core (module docstring)."""

    owns_state = True  # the core keeps the stored states from ``recover`` on

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
        module = _core_module()
        self.partition = partition
        self.rules = rules
        self._store = store
        self._versions = versions or VersionClock()
        self._wall_ms = wall_ms or (lambda: 0)
        try:
            self._core = module.PartitionCoreHandle(
                partition,
                orjson.dumps(config.rules_json(rules)),
                orjson.dumps(config.registry_json(decoder.registry)),
                orjson.dumps(config.bounds_json(decoder.bounds)),
                orjson.dumps(config.channels_json(channels)),
                list(topics.items()),
                cache_visitors,
            )
        except ValueError as exc:
            raise CompiledCoreError(
                f"the compiled core refused the configuration: {exc}; "
                "its JSON comes from streams/compiled/config.py"
            ) from exc
        self.recovered_version: int | None = None

    @classmethod
    def check(
        cls,
        rules: Rules,
        decoder: EventCodec,
        channels: ChannelRules,
        topics: Mapping[str, str],
    ) -> None:
        """Raise CompiledCoreError now if the core is not built or refuses this
        configuration (a worker checks at start-up, not at its first partition)."""
        cls(0, rules, decoder, channels, topics, _NoStore())

    # The runtime and the metrics read these.
    @property
    def state_keys(self) -> int:
        return int(self._core.state_keys)

    @property
    def state_bytes(self) -> int:
        return int(self._core.state_bytes)

    @property
    def thresholds(self) -> dict[str, int]:
        return dict(self._core.thresholds())

    @property
    def triggers_next_offset(self) -> int | None:
        value: int | None = self._core.triggers_next_offset
        return value

    @triggers_next_offset.setter
    def triggers_next_offset(self, value: int | None) -> None:
        self._core.triggers_next_offset = value

    def next_offset(self, stream: str) -> int | None:
        value: int | None = self._core.next_offset(stream)
        return value

    def watermark(self) -> int | None:
        value: int | None = self._core.watermark()
        return value

    def meta_record(self) -> bytes:
        raw: bytes = self._core.meta_record()
        return raw

    def held_states(self) -> list[tuple[bytes, bytes]]:
        """Every visitor's encoded state, (key, state): the last the changelog got of each.
        The store keeps no copy while the core holds them (``TableStore.own``)."""
        states: list[tuple[bytes, bytes]] = self._core.stored_states()
        return states

    def _call(self, method: str, *args: Any) -> BatchResult:
        versions = self._versions
        try:
            outcome, writes, last = getattr(self._core, method)(
                *args, versions.last, versions.now_ns(), self._wall_ms()
            )
        except ValueError as exc:
            raise CompiledCoreError(f"partition {self.partition}: {method}: {exc}") from exc
        versions.catch_up(last)
        return batch_result(outcome, writes)

    def recover(self, written_keys: Iterable[RowKey] = ()) -> BatchResult:
        """As ``PartitionProcessor.recover``; the core keeps the stored states from here."""
        meta = self._store.get(meta_key(self.partition))
        stored = []
        for key in self._store.keys_in_partition(self.partition):
            raw = self._store.get(key)
            if raw is not None:
                stored.append((key, raw))
        keys = orjson.dumps([config.key_json(k) for k in written_keys])
        result = self._call("recover", meta, stored, keys)
        self.recovered_version = self._core.recovered_version
        return result

    def process(
        self, stream: str, records: list[Record], keep_history_from: int | None = None
    ) -> BatchResult:
        if not records:
            return BatchResult()
        return self._call("process", stream, records, keep_history_from)

    def tick(
        self, caught_up: Mapping[str, int], idle: Iterable[str] = (), finished: bool = False
    ) -> BatchResult:
        return self._call("tick", list(caught_up.items()), list(idle), finished)

    # -- forgetting a person ------------------------------------------------------------------

    def _state(self, key: bytes) -> VisitorState:
        raw = self._core.stored_state(key)
        if raw is None:
            return VisitorState(self.partition, key.decode())
        return decode_state(raw, key.decode())

    def plan_forget(
        self,
        request: ForgetRequest,
        requested_at: int,
        events: list[forget.StoredEventLike],
        thresholds_then: dict[str, int],
    ) -> forget.ForgetPlan:
        """As ``PartitionProcessor.plan_forget``."""
        state = self._state(request.anonymous_id.encode())
        return forget.plan(
            request,
            requested_at,
            events,
            thresholds_then,
            self.thresholds,
            state,
            self.partition,
            self.rules,
        )

    def apply_forget(
        self,
        plan: forget.ForgetPlan,
        stored: dict[RowKey, dict[str, int]],
        version: int,
    ) -> tuple[BatchResult, int]:
        """As ``PartitionProcessor.apply_forget``: the state is rebuilt here, in Python
        (``forget.rebuilt_state``), and the core applies it."""
        ctx = RowContext(self.partition, 1, version, self.rules.steps_by_funnel)
        if plan.state_done:
            result = BatchResult()
        else:
            request = plan.request
            mark = ForgetMark(request.request_id, plan.requested_at, request.from_ms, request.to_ms)
            state = forget.rebuilt_state(
                self._state(plan.key),
                plan.kept,
                mark,
                self.watermark(),
                self.thresholds,
                self.rules,
            )
            try:
                outcome, writes, _ = self._core.forget_state(plan.key, encode_state(state), version)
            except ValueError as exc:
                raise CompiledCoreError(f"partition {self.partition}: forget: {exc}") from exc
            result = batch_result(outcome, writes)
        corrected = forget.correct_final_rows(plan, stored, ctx, result)
        result.meta = True
        return result, corrected
