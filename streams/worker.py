"""Running a worker process: topics, ClickHouse, metrics endpoint, then the Faust worker."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, start_http_server

from funnel.log_throttle import install_log_throttle
from funnel.settings import Settings
from sinks import forget_store
from sinks.clickhouse import (
    ClickHouseTarget,
    ClickHouseWriter,
    apply_migrations,
    embedded_directory,
    open_background_reader,
    open_client,
    open_rows,
)
from sinks.errors import ClickHouseUnavailableError
from sinks.metrics import PipelineMetrics
from sinks.sql_endpoint import (
    EndpointConfigError,
    EndpointLimits,
    SqlEndpoint,
    check_endpoint_config,
)
from streams.app import build_worker
from streams.diagnostics import install_stack_dumps
from streams.errors import WorkerStartError
from streams.experiments import ExperimentDef, load_experiments
from streams.faust_private import StopSignalWorker
from streams.forget import StoredEventLike
from streams.funnels import FunnelDef, load_funnels
from streams.garbage import tune_garbage_collector
from streams.outputs import AGGREGATES, RowKey, dead_letters
from streams.outputs.family import AggregateFamily
from streams.outputs.forget_audit import ForgetAudit
from streams.topics import TopicSetupError, ensure_topics

log = logging.getLogger(__name__)


class WriterMetrics:
    """Adapts the writer's callbacks to the Prometheus metrics."""

    def __init__(self, metrics: PipelineMetrics) -> None:
        self._metrics = metrics

    def observe_insert(self, table: str, rows: int, seconds: float) -> None:
        self._metrics.sink_batch.labels(table).observe(seconds)
        self._metrics.sink_rows.labels(table).inc(rows)

    def insert_failed(self, table: str) -> None:
        self._metrics.sink_failures.labels(table).inc()

    def queue_rows(self, rows: int) -> None:
        self._metrics.sink_queue_rows.set(rows)

    def rows_rejected(self, table: str, rows: int) -> None:
        self._metrics.sink_rows_rejected.labels(table).inc(rows)


def clickhouse_target(settings: Settings) -> ClickHouseTarget:
    return ClickHouseTarget(
        dsn=settings.effective_clickhouse_dsn,
        database=settings.clickhouse_database,
        username=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        endpoint_host=_reachable(settings.sql_host),
        endpoint_port=settings.sql_port,
        endpoint_username=settings.sql_user,
        endpoint_password=settings.sql_password.get_secret_value(),
    )


def _reachable(host: str) -> str:
    """Where a local reader finds an endpoint bound to ``host`` (any address: loopback)."""
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host


def start_sql_endpoint(settings: Settings, target: ClickHouseTarget) -> SqlEndpoint | None:
    """The read-only SQL endpoint on the embedded store this worker holds (or None: off,
    or the store is a ClickHouse server, which readers reach directly)."""
    directory = embedded_directory(target) if target.is_embedded else None
    if directory is None or not settings.sql_port:
        return None
    endpoint = SqlEndpoint(
        os.path.realpath(directory),
        host=settings.sql_host,
        port=settings.sql_port,
        username=settings.sql_user,
        password=settings.sql_password.get_secret_value(),
        database=target.database,
        limits=EndpointLimits(
            max_execution_time=settings.sql_max_execution_seconds,
            max_result_rows=settings.sql_max_result_rows,
            max_result_bytes=settings.sql_max_result_bytes,
            max_threads=settings.sql_max_threads,
            max_rows_per_second=settings.sql_max_rows_per_second,
        ),
    )
    try:
        endpoint.start()
    except OSError as exc:  # ingestion matters more than the endpoint: go on without it
        log.warning(
            "the read-only SQL endpoint cannot listen on %s:%d (%s); the worker runs "
            "without it: choose a free FUNNEL_SQL_PORT (0 turns it off)",
            settings.sql_host,
            settings.sql_port,
            exc,
        )
        return None
    return endpoint


def kafka_leftovers(settings: Settings) -> list[str]:
    """What an earlier run with ``settings.app_id`` left in Kafka: its consumer group's
    committed offsets and its internal (state changelog) topics. A worker that finds
    them resumes where that run stopped instead of reading the inputs from the start."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers.split(","),
            client_id="shop-funnel-admin",
            request_timeout_ms=15000,
        )
        try:
            offsets = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id, {})
            topics = sorted(t for t in admin.list_topics() if t.startswith(f"{settings.app_id}-"))
        finally:
            admin.close()
    except KafkaError as exc:
        raise TopicSetupError(
            f"cannot reach Kafka at {settings.bootstrap_servers} ({exc}); start the local "
            "broker with `funnel broker start` or set KAFKA_BOOTSTRAP_SERVERS"
        ) from exc
    found = []
    committed = sorted({tp.topic for tp, meta in offsets.items() if meta.offset >= 0})
    if committed:
        found.append(
            f"consumer group {settings.app_id} has committed offsets on {', '.join(committed)}"
        )
    found.extend(f"state topic {topic} exists" for topic in topics)
    return found


def connect_clickhouse(target: ClickHouseTarget, wait_seconds: float) -> Any:
    """Open ClickHouse, waiting up to ``wait_seconds`` for it to come up."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.5
    while True:
        try:
            return open_client(target)
        except ClickHouseUnavailableError as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s; retrying in %.1fs", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


# After the grace period, the rest of Faust's shutdown (commit, changelog, leaving the
# group) gets this long before the process exits anyway.
SHUTDOWN_HARD_MARGIN_SECONDS = 10.0


class BoundedShutdownWorker(StopSignalWorker):
    """Faust's worker, telling us when SIGTERM/SIGINT starts the shutdown."""

    def __init__(self, *args: Any, on_stop_signal: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop_callback = on_stop_signal

    def on_stop_signal(self) -> None:
        self._stop_callback()


def bound_shutdown(writer: ClickHouseWriter, grace_seconds: float) -> None:
    """Stop within ``grace_seconds`` + the margin, even while ClickHouse is down.

    The writer keeps retrying for the grace period, then gives up: the commit barrier
    then fails, so no offset passes rows that were not written, and the next worker reads
    them again. If Faust's own shutdown still hangs, the process exits at the hard bound,
    which is no worse than a SIGKILL (the pipeline is exact under SIGKILL).
    """
    writer.begin_shutdown(grace_seconds)
    hard_bound = grace_seconds + SHUTDOWN_HARD_MARGIN_SECONDS

    def exit_now() -> None:
        log.critical("shutdown did not finish within %.0fs: exiting now", hard_bound)
        logging.shutdown()
        os._exit(EXIT_SHUTDOWN_TIMEOUT)

    timer = threading.Timer(hard_bound, exit_now)
    timer.daemon = True
    timer.start()


EXIT_SHUTDOWN_TIMEOUT = 75


def _within(budget: float | None, what: str, where: str, step: Callable[[], object]) -> None:
    """Run ``step``; with a ``budget`` (seconds), give up on it when the budget is spent."""
    if budget is None:
        step()
        return
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            step()
            outcome.append(None)
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=run, name=f"start-up: {what}", daemon=True)
    thread.start()
    thread.join(budget)
    if not outcome:
        raise WorkerStartError(
            f"could not {what} at {where} within --duration {budget:g}s; stopping as asked "
            "(start the broker, or check FUNNEL_BOOTSTRAP_SERVERS)"
        )
    if outcome[0] is not None:
        raise outcome[0]


def worker_experiments(
    experiments_file: Path | None, funnels_file: Path | None, funnels: tuple[FunnelDef, ...]
) -> tuple[ExperimentDef, ...]:
    """The experiments a worker runs with, validated against its funnels at start-up
    (ExperimentConfigError names the experiment, the field and the fix).

    Without an experiment file the packaged one applies to the packaged funnels only:
    its primary metrics are steps of those funnels, so with another funnel file there
    are no experiments until FUNNEL_EXPERIMENTS_FILE names some.
    """
    if experiments_file is None and funnels_file is not None:
        log.info("funnel file %s and no FUNNEL_EXPERIMENTS_FILE: no experiments", funnels_file)
        return ()
    return load_experiments(experiments_file, funnels)


class ClickHouseForgetStore:
    """streams.forget_runner.ForgetStore over the worker's ClickHouse (sinks/forget_store.py).

    Its own client, opened on first use: the calls run in a thread, beside the writer's.
    """

    def __init__(self, open_reader: Callable[[], Any], cluster: str | None) -> None:
        self._open = open_reader
        self._client: Any = None
        self._cluster = cluster
        self._lock = threading.Lock()

    def _reader(self) -> Any:
        if self._client is None:
            self._client = self._open()
        return self._client

    def audit(self, request_id: str, partition: int) -> ForgetAudit | None:
        with self._lock:
            return forget_store.read_audit(self._reader(), request_id, partition)

    def person_events(self, anonymous_id: str) -> list[StoredEventLike]:
        with self._lock:
            return list(forget_store.read_person_events(self._reader(), anonymous_id))

    def newest_values(
        self, family: AggregateFamily, partition: int, keys: Any, before_version: int | None
    ) -> dict[Any, dict[str, int]]:
        with self._lock:
            return forget_store.newest_values(
                self._reader(), family, partition, keys, before_version
            )

    def delete_person_rows(
        self, anonymous_id: str, from_ms: int | None, to_ms: int | None, appended_until: int
    ) -> dict[str, int]:
        with self._lock:
            return forget_store.delete_person_rows(
                self._reader(),
                anonymous_id,
                from_ms,
                to_ms,
                appended_until=appended_until,
                cluster=self._cluster,
            )


def _stop_after(seconds: float) -> None:
    timer = threading.Timer(seconds, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.daemon = True
    timer.start()


def run_worker(
    settings: Settings,
    *,
    duration_seconds: float | None = None,
    stop_when_idle_seconds: float | None = None,
    finish_inputs: bool | None = None,
    funnels_file: Path | None = None,
    experiments_file: Path | None = None,
    loglevel: str = "warning",
    on_idle_stop: Callable[[], None] | None = None,
) -> None:
    """Blocks until the worker stops (SIGTERM/SIGINT, or after ``duration_seconds``).

    With ``stop_when_idle_seconds``, ``finish_inputs`` (default: ``settings.replay``)
    declares the inputs finished before the idle stop, so the last allowed-lateness
    interval of a replay is applied (docs/semantics.md section 1). ``on_idle_stop`` is
    called when that idle stop begins (not on SIGTERM/SIGINT): a caller can tell a run
    that read its inputs to the end from an interrupted one.
    """
    install_log_throttle()  # a broker outage must not flood the log (aiokafka retries)
    install_stack_dumps()  # kill -USR1 / -USR2: where a worker that makes no progress waits
    started = time.monotonic()
    funnels = load_funnels(funnels_file or settings.funnels_file)
    experiments = worker_experiments(
        experiments_file or settings.experiments_file,
        funnels_file or settings.funnels_file,
        funnels,
    )
    if experiments:
        log.info("experiments: %s", ", ".join(e.name for e in experiments))
    if settings.sql_port and clickhouse_target(settings).is_embedded:
        try:  # refused before anything is opened
            check_endpoint_config(settings.sql_host, settings.sql_password.get_secret_value())
        except EndpointConfigError as exc:
            raise WorkerStartError(str(exc)) from exc
    # --duration bounds the start-up too: an unreachable Kafka or ClickHouse must not
    # keep a 10-second run alive for the clients' own timeouts (30 s, 60 s).
    budget = None if not duration_seconds else max(0.0, duration_seconds)
    _within(budget, "reach Kafka", settings.bootstrap_servers, lambda: ensure_topics(settings))
    wait = settings.clickhouse_wait_seconds
    if budget is not None:
        wait = min(wait, max(0.0, budget - (time.monotonic() - started)))
    client = connect_clickhouse(clickhouse_target(settings), wait)
    if budget is not None:
        duration_seconds = max(0.1, budget - (time.monotonic() - started))
    applied = apply_migrations(client, cluster=settings.clickhouse_cluster or None)
    if applied:
        log.info("applied ClickHouse migrations: %s", ", ".join(applied))
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    metrics.set_worker_info(f"{settings.app_id}@{os.getpid()}", "0.1.0")
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    writer = ClickHouseWriter(
        lambda: client,
        batch_rows=settings.sink_batch_rows,
        flush_seconds=settings.sink_flush_seconds,
        min_flush_seconds=settings.sink_flush_min_seconds,
        behind_flush_seconds=settings.sink_behind_flush_seconds,
        busy_ratio=settings.sink_busy_ratio,
        max_queue_rows=settings.sink_queue_rows,
        metrics=WriterMetrics(metrics),
        rejected_rows_to=dead_letters.REJECTED_ROWS,
    )
    writer.start()
    reader = open_client(clickhouse_target(settings))
    endpoint = start_sql_endpoint(settings, clickhouse_target(settings))

    def written_keys(partition: int) -> list[RowKey]:
        keys: list[RowKey] = []
        for family in AGGREGATES:
            rows = open_rows(
                reader, family.table, family.key_columns, family.value_columns, partition
            )
            keys.extend(family.read_key(row) for row in rows)
        return keys

    worker = build_worker(
        settings,
        funnels,
        writer,
        registry,
        metrics,
        written_keys,
        experiments=experiments,
        experiment_reader=lambda: open_background_reader(clickhouse_target(settings)),
        attribution_reader=lambda: open_background_reader(clickhouse_target(settings)),
        # The engine's memory accounting is only this process's when it is embedded.
        memory_reader=(
            (lambda: open_client(clickhouse_target(settings)))
            if clickhouse_target(settings).is_embedded
            else None
        ),
        # The disk filling up fails inserts and readouts alike: embedded or a server.
        disk_reader=lambda: open_client(clickhouse_target(settings)),
        forget_store=ClickHouseForgetStore(
            lambda: open_client(clickhouse_target(settings)),
            settings.clickhouse_cluster or None,
        ),
    )
    faust_worker = BoundedShutdownWorker(
        worker.app,
        on_stop_signal=lambda: bound_shutdown(writer, settings.shutdown_grace_seconds),
        loglevel=loglevel,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    tune_garbage_collector()
    if duration_seconds:
        _stop_after(duration_seconds)
    if stop_when_idle_seconds is not None:
        worker.runtime.stop_when_idle_seconds = stop_when_idle_seconds
        store = worker.runtime.store
        stopping: list[asyncio.Future[None]] = []  # a reference, so the task is not collected

        async def stop_once_state_is_written() -> None:
            # The last tick's state records (with finish_inputs: every session and group
            # it closed) are still being sent; a SIGTERM now would close the producer
            # under them, and a restarted worker would find those sessions open again.
            try:
                await asyncio.wait_for(
                    store.wait_delivered(),  # type: ignore[attr-defined]
                    settings.shutdown_grace_seconds,
                )
            except Exception as exc:  # nothing is lost: the next worker closes them again
                log.warning("state records before the idle stop not acknowledged: %r", exc)
            finally:
                try:
                    if worker.final_readout is not None:
                        await worker.final_readout()  # the readout of everything consumed
                except Exception as exc:  # the stop goes on; the next worker reads out again
                    log.warning("final experiment readout before the idle stop failed: %r", exc)
                os.kill(os.getpid(), signal.SIGTERM)

        def idle_stop() -> None:
            if on_idle_stop is not None:
                on_idle_stop()
            stopping.append(asyncio.ensure_future(stop_once_state_is_written()))

        worker.runtime.on_idle_stop = idle_stop
        finish = settings.replay if finish_inputs is None else finish_inputs
        worker.runtime.finish_inputs_when_idle = finish
    try:
        faust_worker.execute_from_commandline()
    finally:
        if endpoint is not None:
            endpoint.stop()
        writer.stop(settings.shutdown_grace_seconds)
