"""The Faust application: one agent over the three input topics, one state table.

Where things happen, in one look:
- an event is decoded and validated in ``schemas/codec.py`` (called by the processor);
- a funnel step is counted in ``streams/funnel_eval.py`` via ``streams/visitor.py``;
- a row is written to ClickHouse by ``sinks/clickhouse.py`` (each table's rows are built
  in its family module under ``streams/outputs/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka.errors import IllegalStateError
from faust.types import TP
from prometheus_client import CollectorRegistry

from funnel.settings import Settings
from schemas.channels import ChannelRules
from schemas.codec import EventCodec
from schemas.deadletter import DeadLetter
from schemas.validation import ValidationBounds
from sinks.clickhouse import ClickHouseWriter
from sinks.disk import READ_SECONDS as DISK_READ_SECONDS
from sinks.disk import DiskReadings
from sinks.memory import READ_SECONDS as MEMORY_READ_SECONDS
from sinks.memory import MemoryReadings
from sinks.metrics import PipelineMetrics
from streams import faust_private, transport
from streams.attribution import AttributionRules
from streams.attribution_monitor import AttributionMonitor
from streams.changelog import ChangelogWriter
from streams.compiled.processor import CompiledProcessor, compiled_core_built
from streams.conversion import ConversionTracker
from streams.costs_agent import attach_costs_agent, cost_codec
from streams.errors import CompiledCoreError
from streams.experiment_monitor import ExperimentMonitor
from streams.experiments import ExperimentDef
from streams.forget_runner import ForgetStore
from streams.funnels import FunnelDef
from streams.garbage import collect_full
from streams.lifecycle import LifecycleRules
from streams.loop_watchdog import LoopWatchdog, log_stall
from streams.outputs import RowKey
from streams.processor import PartitionProcessor, ProcessorFactory
from streams.runtime import Runtime
from streams.table_store import FaustTableStore
from streams.transport import RecordBatch
from streams.triggers_out import TriggerPublisher
from streams.visitor import Rules

log = logging.getLogger(__name__)

STATE_TABLE = "visitors"
# The changelog is compacted, but Kafka compacts only closed segments, and by default a
# segment closes at 1 GiB or after 7 days: a restart then replays every state write of
# the run so far (issue #19 measured 0.7 s growing to 7.8 s over nine restarts). Small,
# time-bounded segments and an eager cleaner bound the replay to about the live
# visitors plus one segment (docs/semantics.md, "Restart time").
CHANGELOG_TOPIC_CONFIGS = {
    "segment.bytes": str(16 * 1024 * 1024),
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
}


class PassThroughSchema(faust.Schema):  # type: ignore[type-arg]
    """The batch consumer already built the value (a RecordBatch): pass it through."""

    def loads_key(self, app: Any, message: Any, **_: Any) -> Any:
        return message.key

    def loads_value(self, app: Any, message: Any, **_: Any) -> Any:
        return message.value


class FaustDeadLetters:
    def __init__(self, topic: Any, codec: EventCodec) -> None:
        self._topic = topic
        self._codec = codec

    async def send(self, letter: DeadLetter) -> None:
        await self._topic.send(key=letter.key, value=self._codec.encode_dead_letter(letter))


@dataclass
class Worker:
    app: faust.App
    runtime: Runtime
    registry: CollectorRegistry
    # Reads the experiments out once more now, after a flush (an idle stop ends a replay
    # with its final readout); a no-op without experiments or partition 0.
    final_readout: Callable[[], Awaitable[None]] | None = None


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [
        f"{transport.SCHEME}://{server.strip()}"
        for server in bootstrap_servers.split(",")
        if server.strip()
    ]


def resolve_core(core: str) -> str:
    """``FUNNEL_CORE`` as the core that will run: ``auto`` is ``compiled`` where the crate
    is built, else ``python`` (with a warning that says how to build it)."""
    if core != "auto":
        return core
    if compiled_core_built():
        return "compiled"
    log.warning(
        "the compiled core (native/) is not built: partitions run on the Python core, "
        "about a third fewer events per CPU-second; `make setup` builds it "
        "(FUNNEL_CORE=python silences this)"
    )
    return "python"


def resolve_fetch_reader(reader: str) -> str:
    """``FUNNEL_FETCH_READER`` as the reader that will run: ``auto`` is ``compiled`` where
    the crate is built (resolve_core warns when it is not), else ``aiokafka``."""
    built = compiled_core_built()
    if reader == "compiled" and not built:
        raise CompiledCoreError(
            "FUNNEL_FETCH_READER=compiled but the compiled core (shopfunnel_core) is not"
            " built: run `make setup` (it builds native/ with maturin), or set"
            " FUNNEL_FETCH_READER=aiokafka"
        )
    if reader == "auto":
        return "compiled" if built else "aiokafka"
    return reader


def processor_factory(core: str) -> ProcessorFactory:
    """The partition processor of ``core`` (``python`` or ``compiled``)."""
    return CompiledProcessor if core == "compiled" else PartitionProcessor


def _faust_datadir(settings: Settings) -> str:
    # Faust formats the path with its settings (``{conf.name}`` is the app id), and makes
    # only the last directory.
    parent = settings.data_dir.resolve() / "faust"
    parent.mkdir(parents=True, exist_ok=True)
    escaped = str(parent).replace("{", "{{").replace("}", "}}")
    return escaped + "/{conf.name}"


def build_app(settings: Settings) -> faust.App:
    transport.register()
    return faust.App(
        settings.app_id,
        broker=broker_urls(settings.bootstrap_servers),
        store="memory://",
        # Faust makes this directory even with the memory store: under the data
        # directory, not as "<app id>-data" wherever the worker was started.
        datadir=_faust_datadir(settings),
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        web_enabled=False,
        processing_guarantee="at_least_once",
        broker_commit_interval=settings.commit_interval_seconds,
        broker_session_timeout=settings.consumer_session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.consumer_session_timeout_seconds / 3),
        broker_max_poll_records=settings.batch_max_events,
        consumer_max_fetch_size=settings.consumer_fetch_bytes,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=8,
        stream_wait_empty=True,
        producer_linger_ms=20,
        producer_max_request_size=4 * 1024 * 1024,
    )


def build_worker(
    settings: Settings,
    funnels: tuple[FunnelDef, ...],
    writer: ClickHouseWriter,
    registry: CollectorRegistry,
    metrics: PipelineMetrics,
    written_keys: Callable[[int], list[RowKey]] | None = None,
    experiments: tuple[ExperimentDef, ...] = (),
    experiment_reader: Callable[[], Any] | None = None,
    attribution_reader: Callable[[], Any] | None = None,
    memory_reader: Callable[[], Any] | None = None,
    disk_reader: Callable[[], Any] | None = None,
    forget_store: ForgetStore | None = None,
) -> Worker:
    """The Faust app with its agent, table, timer and rebalance hook, wired to the sinks."""
    app = build_app(settings)
    topics = settings.topics
    streams_to_topics = {
        "clickstream": topics.clickstream,
        "cart": topics.cart,
        "orders": topics.orders,
    }
    # The forget topic is an input of the same agent: co-partitioned, so a request is
    # handled by the worker holding the visitor, in order with its events.
    agent_topics = (
        (*topics.inputs(), topics.forget) if forget_store is not None else topics.inputs()
    )
    inputs = app.topic(*agent_topics, schema=PassThroughSchema(), acks=True)
    dlq = app.topic(topics.dlq, key_serializer="raw", value_serializer="raw")
    table = app.Table(
        STATE_TABLE,
        partitions=settings.partitions,
        key_type=bytes,  # raw bytes both ways: the value is streams.state's own encoding
        value_type=bytes,
        help="per-visitor state (sessions, orders, funnel credits); see streams/state.py",
        extra_topic_configs=CHANGELOG_TOPIC_CONFIGS,
    )
    codec = EventCodec(bounds=ValidationBounds.from_settings(settings))
    rules = Rules(
        funnels=funnels,
        window_ms=settings.window_ms,
        session_timeout_ms=settings.session_timeout_ms,
        lateness_ms=settings.allowed_lateness_ms,
        lifecycle=LifecycleRules(**settings.lifecycle_ms()),
        attribution=AttributionRules(**settings.attribution_ms()),
    )
    channels = ChannelRules.load()
    core = resolve_core(settings.core)
    if core == "compiled":
        # Fails now, naming the problem, if the crate is missing or refuses the rules.
        CompiledProcessor.check(rules, codec, channels, streams_to_topics)
    log.info("partitions are processed by the %s core (FUNNEL_CORE=%s)", core, settings.core)
    runtime = Runtime(
        rules=rules,
        decoder=codec,
        channels=channels,
        topics_by_stream=streams_to_topics,
        store=FaustTableStore(table, ChangelogWriter(app, table), metrics.changelog_records.inc),
        writer=writer,
        metrics=metrics,
        conversion=ConversionTracker({f.name: f.steps for f in funnels}),
        dead_letters=FaustDeadLetters(dlq, codec),
        idle_input_seconds=settings.idle_input_seconds,
        input_stall_seconds=settings.input_stall_seconds,
        cache_visitors=settings.state_cache_visitors,
        new_processor=processor_factory(core),
        written_keys=written_keys,
        triggers=TriggerPublisher(app, topics.triggers, codec, settings.bootstrap_servers),
    )

    if forget_store is not None:
        runtime.attach_forgets(topics.forget, forget_store)

    async def flush_before_commit(offsets: Any) -> None:
        await writer.settled()  # at the writer's own pace while the input is behind
        await runtime.store.wait_delivered()  # type: ignore[attr-defined]

    transport.attach_commit_barrier(app, flush_before_commit)
    transport.batch_topics(app, frozenset(agent_topics))
    transport.fetch_max_wait(app, settings.consumer_fetch_wait_ms)
    fetch_reader = resolve_fetch_reader(settings.fetch_reader)
    if fetch_reader == "compiled":
        transport.compiled_fetch_reader(app)
    log.info(
        "fetched input records are read by %s (FUNNEL_FETCH_READER=%s)",
        fetch_reader,
        settings.fetch_reader,
    )
    attach_costs_agent(
        app, settings, cost_codec(settings), writer, FaustDeadLetters(dlq, codec), metrics
    )

    def committed_offset(topic: str, partition: int) -> int | None:
        return faust_private.committed_offset(app.consumer, TP(topic, partition))

    @app.agent(inputs, name="funnel-processor", concurrency=1)
    async def process(stream: Any) -> None:
        async for event in stream.events():
            batch: RecordBatch = event.value
            await app.consumer.batch_received(batch)  # type: ignore[attr-defined]  # ours
            read_again_from = runtime.gap_before(batch)
            if read_again_from is not None:
                await reread(batch, read_again_from)
                continue  # not applied: the consumer commits nothing from it
            await runtime.handle_batch(batch, committed_offset(batch.topic, batch.partition))
            app.consumer.batch_processed(batch)  # type: ignore[attr-defined]  # ours

    async def reread(batch: RecordBatch, offset: int) -> None:
        log.warning(
            "%s[%d]: batch %d-%d arrived but records from %d never did: reading again from %d",
            batch.topic,
            batch.partition,
            batch.covers_from,
            batch.last_offset,
            offset,
            offset,
        )
        with contextlib.suppress(IllegalStateError):  # revoked meanwhile
            await app.consumer.seek(TP(batch.topic, batch.partition), offset)

    async def read_stalled_input_again(stream: str, partition: int, offset: int) -> None:
        tp = TP(runtime.observed.topics_by_stream[stream], partition)
        await app.consumer.read_again(tp, offset)  # type: ignore[attr-defined]  # ours

    runtime.on_input_stall = read_stalled_input_again
    runtime.inputs_flowing = lambda: (
        not app.rebalancing and not app.in_recovery and app.flow_control.is_active()
    )

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def advance_watermarks() -> None:
        offsets: dict[tuple[str, int], tuple[int | None, int | None]] = {}
        for tp in app.consumer.assignment():
            stream = runtime.stream_by_topic.get(tp.topic)
            if stream is None:
                continue
            committed = faust_private.committed_offset(app.consumer, tp)
            offsets[(stream, tp.partition)] = (committed, app.consumer.highwater(tp))
        await runtime.tick(offsets)

    @app.timer(interval=settings.gc_interval_seconds)  # type: ignore[untyped-decorator]
    async def collect_garbage() -> None:
        collect_full(metrics)

    watchdog = LoopWatchdog(log_stall(metrics.event_loop_blocked_seconds.observe))

    @app.task  # type: ignore[untyped-decorator]
    async def watch_the_loop() -> None:
        watchdog.start(asyncio.get_running_loop())

    memory = MemoryReadings(memory_reader)

    @app.timer(interval=MEMORY_READ_SECONDS)  # type: ignore[untyped-decorator]
    async def read_memory() -> None:
        metrics.set_memory(await asyncio.to_thread(memory.read))

    if disk_reader is not None:
        disks = DiskReadings(disk_reader)

        @app.timer(interval=DISK_READ_SECONDS)  # type: ignore[untyped-decorator]
        async def read_disks() -> None:
            metrics.set_disks(await asyncio.to_thread(disks.read))

    # Faust's recovery has read the changelogs it had to (sent after every rebalance).
    async def on_rebalance_complete(
        sender: Any, *args: Any, signal: Any = None, **kwargs: Any
    ) -> None:
        runtime.rebalance_completed()

    app.on_rebalance_complete.connect(on_rebalance_complete)  # type: ignore[arg-type]  # as below

    async def on_revoked(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        revoked: set[TP] = set(args[0] if args else kwargs.get("revoked", ()))
        runtime.forget_partitions({tp.partition for tp in revoked if tp.topic in agent_topics})
        # The commit at hand-over (streams/transport.py) follows: the group waits for it.
        runtime.leave_bulk_mode("a rebalance")

    if experiments and experiment_reader is not None:
        monitor = ExperimentMonitor(
            experiments,
            experiment_reader,
            writer,
            metrics,
            codec,
            topics.triggers,
            settings.bootstrap_servers,
            producer=lambda: app.producer,
        )
        leader = TP(topics.clickstream, 0)

        @app.timer(interval=settings.experiment_eval_seconds)  # type: ignore[untyped-decorator]
        async def read_experiments_out() -> None:
            # One worker of the group evaluates: the one holding clickstream partition 0.
            if leader in app.consumer.assignment() and not app.rebalancing and monitor.due():
                await monitor.evaluate()

        async def final_readout() -> None:
            if leader in app.consumer.assignment():
                await writer.flush()
                await monitor.evaluate()
                await writer.flush()

        worker_final_readout: Callable[[], Awaitable[None]] | None = final_readout
    else:
        worker_final_readout = None

    if attribution_reader is not None:
        attribution = AttributionMonitor.from_factory(attribution_reader, metrics)
        roas_leader = TP(topics.clickstream, 0)

        @app.timer(interval=settings.attribution_eval_seconds)  # type: ignore[untyped-decorator]
        async def read_roas_today() -> None:
            # Like the experiments: the worker holding clickstream partition 0 reads the
            # views; the SQL blocks, so it runs in a thread.
            if (
                roas_leader in app.consumer.assignment()
                and not app.rebalancing
                and attribution.due()
            ):
                await asyncio.to_thread(attribution.evaluate)

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]  # mode types the kwarg strictly

    return Worker(app=app, runtime=runtime, registry=registry, final_readout=worker_final_readout)
