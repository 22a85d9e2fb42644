"""The one place that touches private (underscore) parts of Faust, mode and aiokafka.

The worker goes below Faust's public API in a few places, each for a measured reason:
batch delivery with exact offsets (``streams/transport.py``), writing the state table
as whole Kafka batches (``streams/changelog.py``, ``streams/table_store.py``), the
committed offsets that drive replay protection and lag (``streams/app.py``). Private
names change without notice in a minor release, so every read, write, call or override
of one lives in this module, behind a small named function or hook, and is declared in
:data:`CONTRACT`.

``tests/unit/test_faust_private_contract.py`` checks each declared use against the
installed packages (the attribute exists, is a method or an attribute as expected,
methods keep their parameter names) and names the package version on failure; it also
fails when a declared name, or another private name of these packages, shows up in
``streams/``, ``sinks/`` or ``funnel/`` outside this module. To use a new private name:
add a function or hook here, declare it in :data:`CONTRACT`, and call the function.

The project's own settings for an app (which topics come as batches, the commit
barrier) are kept in a registry here (:func:`app_hooks`) rather than as extra
attributes on the ``faust.App`` object.
"""

from __future__ import annotations

import importlib.metadata
import signal
import types
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, MutableMapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Literal

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.consumer.fetcher import Fetcher
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

from streams.diagnostics import install_thread_dumps, log_tasks
from streams.errors import WorkerStartError

# --- the contract ---------------------------------------------------------------------

Kind = Literal["attribute", "method", "coroutine method"]


@dataclass(frozen=True, slots=True)
class PrivateUse:
    """One private attribute or method of a dependency that this module relies on."""

    package: str  # the distribution that provides it (importlib.metadata name)
    owner: str  # "module:Class" it is looked up on
    name: str
    kind: Kind
    how: str  # read, write, call, override (+ super() call)
    why: str  # what breaks without it
    # Methods: the parameter names after ``self``, as we call or override them.
    params: tuple[str, ...] = ()
    # Attributes: the type of the value (None is also accepted if the owner's annotation
    # allows it, e.g. a producer before it starts).
    holds: type | None = None

    @property
    def where(self) -> str:
        return f"{self.owner.rpartition(':')[2]}.{self.name}"


_FAUST = "faust-streaming"
_MODE = "mode-streaming"
_AIOKAFKA = "aiokafka"
_CONSUMER = "faust.transport.drivers.aiokafka:Consumer"
_CONSUMER_THREAD = "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread"
_AIOKAFKA_CONSUMER = "aiokafka.consumer.consumer:AIOKafkaConsumer"
_PRODUCER = "faust.transport.drivers.aiokafka:Producer"
_MEMORY_STORE = "faust.stores.memory:Store"
_WORKER = "faust.worker:Worker"

CONTRACT: tuple[PrivateUse, ...] = (
    PrivateUse(
        _FAUST,
        _CONSUMER,
        "_new_offset",
        "method",
        "override + super() call",
        "Faust's commit asks it for each partition's offset to commit; batch-delivered"
        " partitions answer from the batch consumer's own account (OffsetHookConsumer)",
        params=("tp",),
    ),
    PrivateUse(
        _FAUST,
        _CONSUMER,
        "_commit_offsets",
        "coroutine method",
        "override + super() call",
        "the commit barrier (ClickHouse flush, changelog delivered) runs before every"
        " commit, and committed batches leave the account after it (OffsetHookConsumer)",
        params=("offsets", "start_new_transaction"),
    ),
    PrivateUse(
        _FAUST,
        _CONSUMER,
        "_acked",
        "attribute",
        "write (cleared)",
        "Faust's acked offsets of a batch-delivered partition are never used: cleared so"
        " they do not grow (forget_acked)",
        holds=MutableMapping,
    ),
    PrivateUse(
        _FAUST,
        _CONSUMER,
        "_acked_index",
        "attribute",
        "write (cleared)",
        "as _acked (forget_acked)",
        holds=MutableMapping,
    ),
    PrivateUse(
        _FAUST,
        _CONSUMER,
        "_committed_offset",
        "attribute",
        "read, delete entries",
        "the committed offset per partition: where commits continue, the replay bound"
        " handed to the processor, lag before the first batch (committed_offset); a"
        " commit at revocation leaves no entry for a partition no longer ours"
        " (forget_committed)",
        holds=MutableMapping,
    ),
    PrivateUse(
        _FAUST,
        _CONSUMER,
        "_read_offset",
        "attribute",
        "read + write",
        "after perform_seek it holds the committed offset sought to, where a partition's"
        " delivery restarts (read_offset); Faust's fetch loop drops a message below it,"
        " and a batch read again after a seek back must pass (forget_read_offset)",
        holds=MutableMapping,
    ),
    PrivateUse(
        _FAUST,
        _CONSUMER,
        "_buffered_partitions",
        "attribute",
        "read + write",
        "partitions with buffered records are delivered even when not active"
        " (buffered_partitions), as in Faust's own getmany; a stalled partition is"
        " taken out of it when it is made active again (reactivate)",
        holds=AbstractSet,
    ),
    PrivateUse(
        _FAUST,
        _CONSUMER,
        "_active_partitions",
        "attribute",
        "read",
        "the partitions Faust's fetch asks aiokafka for; reported when a partition"
        " stalls (flow_state)",
        holds=AbstractSet,
    ),
    PrivateUse(
        _FAUST,
        _CONSUMER,
        "_paused_partitions",
        "attribute",
        "read",
        "the partitions Faust paused (recovery, rebalance); reported when a partition"
        " stalls (flow_state)",
        holds=AbstractSet,
    ),
    PrivateUse(
        _FAUST,
        _CONSUMER,
        "_wait_next_records",
        "coroutine method",
        "call",
        "the batch consumer's getmany fetches through it, as Faust's own getmany does"
        " (wait_next_records)",
        params=("timeout",),
    ),
    PrivateUse(
        _FAUST,
        _CONSUMER,
        "_to_message",
        "method",
        "call",
        "records of non-batch topics (changelogs) still become Faust's per-record"
        " messages (to_message)",
        params=("tp", "record"),
    ),
    PrivateUse(
        _FAUST,
        _CONSUMER,
        "_new_consumer_thread",
        "method",
        "override",
        "the consumer's thread is FetchWaitConsumerThread, which sets the fetch wait"
        " (OffsetHookConsumer)",
    ),
    PrivateUse(
        _FAUST,
        _CONSUMER_THREAD,
        "_create_worker_consumer",
        "method",
        "override + super() call",
        "Faust builds the worker's aiokafka consumer with fetch_max_wait_ms=1500 and no"
        " setting for it (FetchWaitConsumerThread)",
        params=("transport",),
    ),
    PrivateUse(
        _AIOKAFKA,
        _AIOKAFKA_CONSUMER,
        "_fetch_max_wait_ms",
        "attribute",
        "write (before start)",
        "aiokafka keeps one fetch in flight per broker: one that holds only idle"
        " partitions waits this long at the broker while records of the others pile up"
        " (FetchWaitConsumerThread)",
        holds=int,
    ),
    PrivateUse(
        _FAUST,
        _CONSUMER_THREAD,
        "_consumer",
        "attribute",
        "read (after start)",
        "the thread's aiokafka consumer, whose fetcher gets the compiled fetch reader"
        " (FetchWaitConsumerThread.on_start)",
        holds=AIOKafkaConsumer,
    ),
    PrivateUse(
        _AIOKAFKA,
        _AIOKAFKA_CONSUMER,
        "_fetcher",
        "attribute",
        "read (after start)",
        "the consumer's fetcher, which gets the compiled fetch reader (install_fetch_reader)",
    ),
    PrivateUse(
        _AIOKAFKA,
        "aiokafka.consumer.fetcher:Fetcher",
        "_proc_fetch_request",
        "coroutine method",
        "copied per fetcher with its MemoryRecords and PartitionRecords names replaced",
        "fetched input partitions are read by the compiled core into Records, not by"
        " aiokafka into a ConsumerRecord each (install_fetch_reader,"
        " streams/fetch_reader.py)",
        params=("assignment", "node_id", "request"),
    ),
    PrivateUse(
        _FAUST,
        _PRODUCER,
        "_producer",
        "attribute",
        "read",
        "state and trigger records are sent as whole aiokafka batches through the app's"
        " own producer (underlying_producer)",
        holds=AIOKafkaProducer,
    ),
    PrivateUse(
        _FAUST,
        _MEMORY_STORE,
        "_key_partition",
        "attribute",
        "read + write",
        "the memory store's key -> partition index: which keys a partition holds, kept"
        " in step with direct writes so Faust drops the right keys on revoke"
        " (keys_in_partition, write_to_store, drop_partitions)",
        holds=MutableMapping,
    ),
    PrivateUse(
        _MODE,
        _WORKER,
        "_on_sigterm",
        "method",
        "override + super() call",
        "mode's SIGTERM handler: the bounded shutdown starts its clock there (StopSignalWorker)",
    ),
    PrivateUse(
        _MODE,
        _WORKER,
        "_on_sigint",
        "method",
        "override + super() call",
        "mode's SIGINT handler, as _on_sigterm (StopSignalWorker)",
    ),
    PrivateUse(
        _MODE,
        _WORKER,
        "_on_sigusr2",
        "method",
        "override (replaces it)",
        "mode's SIGUSR2 handler starts pdb; the worker logs its asyncio tasks instead"
        " (StopSignalWorker, streams/diagnostics.py)",
    ),
)

# Extra attributes once set on the faust.App object, replaced by app_hooks(): they must
# not come back (the contract test scans for them).
RETIRED_APP_ATTRIBUTES = ("funnel_before_commit", "funnel_batch_topics")

# --- the project's settings for an app -------------------------------------------------

CommitBarrier = Callable[[Mapping[TP, int]], Awaitable[None]]


@dataclass(slots=True)
class AppHooks:
    """What the batch consumer needs to know about its app, set while wiring it."""

    # Topics delivered as one RecordBatch message per fetched partition; all others
    # record by record (changelogs: table recovery reads them record by record).
    batch_topics: frozenset[str] = frozenset()
    # Awaited with the offsets before every commit (the ClickHouse flush).
    before_commit: CommitBarrier | None = None
    # How long the broker may hold a fetch with no new records (aiokafka's
    # fetch_max_wait_ms); None: Faust's 1500 ms.
    fetch_max_wait_ms: int | None = None
    # Builds what a fetched partition's records are read with, in place of aiokafka's
    # PartitionRecords (streams/fetch_reader.py); None: aiokafka's own.
    partition_records: Callable[..., Any] | None = None
    # Stands in for aiokafka's MemoryRecords where the fetcher wraps a partition's bytes.
    memory_records: Callable[[bytes], Any] | None = None


_APP_HOOKS: weakref.WeakKeyDictionary[object, AppHooks] = weakref.WeakKeyDictionary()


def app_hooks(app: object) -> AppHooks:
    """The hooks set for ``app`` (defaults, not stored, if none were set)."""
    hooks = _APP_HOOKS.get(app)
    return hooks if hooks is not None else AppHooks()


def _set_hooks(app: object) -> AppHooks:
    hooks = _APP_HOOKS.get(app)
    if hooks is None:
        hooks = _APP_HOOKS[app] = AppHooks()
    return hooks


def set_batch_topics(app: object, topics: frozenset[str]) -> None:
    _set_hooks(app).batch_topics = topics


def set_commit_barrier(app: object, barrier: CommitBarrier) -> None:
    _set_hooks(app).before_commit = barrier


def set_fetch_reader(
    app: object, memory_records: Callable[[bytes], Any], partition_records: Callable[..., Any]
) -> None:
    hooks = _set_hooks(app)
    hooks.memory_records = memory_records
    hooks.partition_records = partition_records


def set_fetch_max_wait(app: object, milliseconds: int) -> None:
    _set_hooks(app).fetch_max_wait_ms = milliseconds


# --- consumer ---------------------------------------------------------------------------

RecordMap = Mapping[TP, list[Any]]


def committed_offset(consumer: object, tp: TP) -> int | None:
    """The offset last committed for ``tp`` by this consumer (or read at assignment)."""
    committed: Mapping[TP, int | None] = getattr(consumer, "_committed_offset", {})
    value = committed.get(tp)  # not [tp]: Faust's defaultdict would grow
    return int(value) if value is not None else None


def forget_committed(consumer: object, tps: Iterable[TP]) -> None:
    """Drop Faust's committed offsets of ``tps``, as its revocation does: a commit made
    after it (the hand-over commit) would put them back for partitions no longer ours."""
    committed: MutableMapping[TP, int | None] = getattr(consumer, "_committed_offset", {})
    for tp in tps:
        committed.pop(tp, None)


def forget_acked(consumer: FaustConsumer, tp: TP) -> None:
    """Drop Faust's acked offsets of ``tp`` (they would grow, unused, forever)."""
    consumer._acked[tp].clear()
    consumer._acked_index[tp].clear()


def read_offset(consumer: FaustConsumer, tp: TP) -> int | None:
    """Where Faust's fetch loop reads ``tp`` from: after ``perform_seek``, the committed
    offset it sought to (None: nothing committed), after ``seek``, that offset."""
    return consumer._read_offset.get(tp)  # not [tp]: Faust's defaultdict would grow


def forget_read_offset(consumer: FaustConsumer, tp: TP) -> None:
    """Let Faust's fetch loop pass any offset of ``tp`` next.

    It drops a message below the last offset it passed on, which would drop a batch
    read again after a seek back; the batch consumer's own account decides instead.
    """
    consumer._read_offset[tp] = None


def buffered_partitions(consumer: FaustConsumer) -> AbstractSet[TP]:
    """Partitions whose records Faust buffered: delivered even when not active."""
    return consumer._buffered_partitions


def flow_state(consumer: FaustConsumer, tp: TP) -> str:
    """Faust's view of ``tp``'s fetching: is it asked for, paused, held as buffered."""
    active = consumer._active_partitions
    return (
        f"active={active is None or tp in active}, paused={tp in consumer._paused_partitions}, "
        f"buffered={tp in consumer._buffered_partitions}"
    )


def reactivate(consumer: FaustConsumer, tp: TP) -> None:
    """Make Faust's fetch ask for ``tp`` again, as its own buffer-drop callback would."""
    consumer._buffered_partitions.discard(tp)
    consumer.resume_partitions({tp})


async def wait_next_records(
    consumer: FaustConsumer, timeout: float
) -> tuple[RecordMap | None, AbstractSet[TP] | None]:
    """Fetch as Faust's getmany does: (records by partition, active partitions or None)."""
    records, active = await consumer._wait_next_records(timeout)
    return records, active


def to_message(consumer: FaustConsumer, tp: TP, record: Any) -> Message:
    """Faust's own per-record message for an aiokafka record."""
    message: Message = consumer._to_message(tp, record)
    return message


class FetchWaitConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with the fetch wait of the app's hooks.

    aiokafka keeps at most one fetch request in flight per broker, and leaves out of it
    the partitions that still have fetched records buffered. So a request sent while
    the busy partitions were buffered holds only idle ones (a quiet topic, an input at
    its end), and the broker holds it for the whole fetch wait; the busy partitions are
    not fetched meanwhile. With Faust's 1500 ms that is a 1.5-s stall of live input.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait = app_hooks(self.app).fetch_max_wait_ms
        if wait is not None:
            consumer._fetch_max_wait_ms = wait  # read by its fetcher when it starts
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        hooks = app_hooks(self.app)
        consumer = self._consumer
        if hooks.partition_records is not None and hooks.memory_records is not None:
            # The fetcher exists once the consumer started; it fetches only after the
            # group's first assignment, which comes later.
            assert consumer is not None
            install_fetch_reader(consumer._fetcher, hooks.memory_records, hooks.partition_records)


def install_fetch_reader(
    fetcher: Fetcher,
    memory_records: Callable[[bytes], Any],
    partition_records: Callable[..., Any],
) -> None:
    """Make this one fetcher read each fetched partition with ``partition_records``.

    aiokafka's ``Fetcher._proc_fetch_request`` wraps a partition's bytes in
    ``MemoryRecords`` and builds ``PartitionRecords`` over it, by their module-level
    names, and offers no setting for either. This fetcher gets its own copy of that
    method whose two names resolve to ``memory_records`` and ``partition_records``; the
    code, the module and every other consumer in the process stay as they are.
    """
    method = type(fetcher)._proc_fetch_request
    names = set(method.__code__.co_names)
    missing = {"MemoryRecords", "PartitionRecords"} - names
    if missing:
        raise WorkerStartError(
            f"aiokafka {importlib.metadata.version('aiokafka')}: Fetcher._proc_fetch_request"
            f" no longer uses {sorted(missing)}, so the compiled fetch reader cannot be"
            " installed; set FUNNEL_FETCH_READER=aiokafka"
        )
    scope = dict(method.__globals__)
    scope["MemoryRecords"] = memory_records
    scope["PartitionRecords"] = partition_records
    copy = types.FunctionType(
        method.__code__, scope, method.__name__, method.__defaults__, method.__closure__
    )
    copy.__kwdefaults__ = method.__kwdefaults__
    fetcher._proc_fetch_request = types.MethodType(copy, fetcher)


class OffsetHookConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with its private commit steps as named hooks.

    Faust's commit asks ``_new_offset`` for each partition's offset to commit, then
    commits them with ``_commit_offsets``. Subclasses override :meth:`offset_to_commit`
    and :meth:`commit_offsets` instead, and reach Faust's own behaviour through
    :meth:`faust_offset_to_commit` and :meth:`faust_commit_offsets`.
    """

    def offset_to_commit(self, tp: TP) -> int | None:
        """The offset to commit for ``tp`` now, or None. Default: Faust's own."""
        return self.faust_offset_to_commit(tp)

    async def commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        """Commit ``offsets``; True if committed. Default: Faust's own."""
        return await self.faust_commit_offsets(offsets, start_new_transaction)

    def faust_offset_to_commit(self, tp: TP) -> int | None:
        """Faust's answer: from the acked offsets (and gaps) of ``tp``."""
        offset: int | None = super()._new_offset(tp)
        return offset

    async def faust_commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        return bool(await super()._commit_offsets(offsets, start_new_transaction))

    def _new_offset(self, tp: TP) -> int | None:
        return self.offset_to_commit(tp)

    def _new_consumer_thread(self) -> FetchWaitConsumerThread:
        return FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        return await self.commit_offsets(offsets, start_new_transaction)


# --- producer ---------------------------------------------------------------------------


def underlying_producer(producer: object) -> AIOKafkaProducer | None:
    """The aiokafka producer behind a Faust producer; None before it starts, or if the
    transport is not Faust's aiokafka driver."""
    aiokafka_producer: AIOKafkaProducer | None = getattr(producer, "_producer", None)
    return aiokafka_producer


# --- table store ------------------------------------------------------------------------


def keys_in_partition(store: object, partition: int) -> list[bytes]:
    """The keys a Faust memory store holds for ``partition``."""
    key_partition: Mapping[bytes, int] = getattr(store, "_key_partition", {})
    return [k for k, p in list(key_partition.items()) if p == partition]


def write_to_store(
    store: Any, partition: int, writes: Iterable[tuple[bytes, bytes | None]]
) -> None:
    """Apply ``writes`` (None deletes) to a Faust memory store's data, keeping its key ->
    partition index in step, as its changelog recovery does."""
    data = store.data
    key_partition: MutableMapping[bytes, int] | None = getattr(store, "_key_partition", None)
    for key, value in writes:
        if value is None:
            data.pop(key, None)
            if key_partition is not None:
                key_partition.pop(key, None)
        else:
            data[key] = value
            if key_partition is not None:
                key_partition[key] = partition


def drop_partitions(store: Any, partitions: Collection[int], keep: Collection[bytes] = ()) -> int:
    """Remove every key of ``partitions`` but ``keep`` from a Faust memory store (its data
    and its key -> partition index), as its own recovery does for the partitions it lost;
    returns how many keys went. A store without the index keeps everything."""
    key_partition: MutableMapping[bytes, int] | None = getattr(store, "_key_partition", None)
    if key_partition is None or not partitions:
        return 0
    data = store.data
    gone = [
        key
        for key, partition in key_partition.items()
        if partition in partitions and key not in keep
    ]
    for key in gone:
        data.pop(key, None)
        del key_partition[key]
    return len(gone)


# --- worker -----------------------------------------------------------------------------


class StopSignalWorker(faust.Worker):
    """Faust's worker, calling :meth:`on_stop_signal` when SIGTERM/SIGINT starts the
    shutdown (mode's private signal handlers), before Faust's own handling."""

    def on_stop_signal(self) -> None:
        """Called first when SIGTERM or SIGINT starts the shutdown."""

    def _on_sigterm(self) -> None:
        self.on_stop_signal()
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self.on_stop_signal()
        super()._on_sigint()

    # mode's worker sets its own SIGUSR1 (a task listing) and SIGUSR2 (pdb, which has no
    # terminal in a worker) handlers when it starts, over the stack dumps the worker
    # installed (streams/diagnostics.py): put those back.
    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        install_thread_dumps()  # C-level: mode's SIGUSR1 handler no longer runs

    def _on_sigusr2(self) -> None:
        log_tasks(signal.SIGUSR2)
