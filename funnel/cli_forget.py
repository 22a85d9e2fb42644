"""``funnel forget``: forget a person on request (GDPR/PIPL erasure, issue 17; docs/forget.md).

``funnel forget (--user ID | --anonymous-id ID) [--from T] [--to T] [--request-id R]
[--wait SECONDS] [--dry-run]``

- ``--user``: the person's ``user_id``; its anonymous ids (every visitor id that carried
  it) are read from the ClickHouse store (``sinks.forget_store.person_ids_of_user``),
  through a running worker's SQL endpoint when it holds the embedded store.
  ``--anonymous-id``: one visitor id, forgotten directly.
- ``--from``/``--to``: event time, ``[from, to)``, as an ISO date (2026-11-03) or datetime
  (2026-11-03T12:00:00Z, an offset, or none: UTC). Without them, the whole life.
- One :class:`~schemas.forget.ForgetRequest` per anonymous id goes to the forget topic,
  keyed by the anonymous id and sent to the partition Kafka's default partitioner gives
  that key (``simulator/partitioner.py``), the partition of the visitor's events. Its
  request id is ``--request-id`` (default: a fresh uuid4 hex), or ``R.1``, ``R.2``, ...
  with several anonymous ids.
- ``--wait``: poll the ``forget_audit`` table until every request is ``done`` and print
  what each removed and corrected.

Exit codes: 0 sent (or resolved, with ``--dry-run``; or done, with ``--wait``), 2 bad
options or settings, 1 nothing to forget, Kafka or ClickHouse failed, or ``--wait`` ran
out (sending again with the same ``--request-id`` is harmless).

Mounted by ``funnel/cli.py`` as ``app.command("forget")(forget)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Protocol

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from funnel.errors import ConfigError, FunnelError
from funnel.kafka_out import idempotent_producer
from funnel.settings import Settings, TopicNames, load_settings
from schemas.forget import (
    MAX_FORGET_RECORD_BYTES,
    MAX_REQUEST_ID_CHARS,
    ForgetRequest,
    anonymous_id_problem,
    encode_forget,
    request_id_problem,
    time_problem,
)
from simulator.partitioner import partition_for

EXIT_BAD_INPUT: Final = 2
EXIT_FAILED: Final = 1
CONNECT_TIMEOUT_S: Final = 15.0
METADATA_TIMEOUT_S: Final = 30.0
DELIVERY_TIMEOUT_S: Final = 60.0
POLL_INTERVAL_S: Final = 1.0
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_AUDIT_SQL: Final = (
    "SELECT request_id, `partition`, phase, events_forgotten, rows_corrected, rows_deleted, "
    "duration_ms FROM forget_audit FINAL WHERE has({ids:Array(String)}, request_id)"
)


class ForgetOptionError(ConfigError):
    """An option of ``funnel forget`` is invalid; the message names it and the fix."""


class NothingToForgetError(FunnelError):
    """``--user`` matches no event in the store."""


class ForgetSendError(FunnelError):
    """Kafka did not take the requests; the message says which were sent and the fix."""


class ForgetWaitError(FunnelError):
    """``--wait`` ran out (or cannot succeed) before every request was done."""


# -- options ----------------------------------------------------------------------------------


def parse_time_ms(text: str, option: str) -> int:
    """``--from``/``--to``: an ISO date or datetime (naive: UTC) as epoch milliseconds."""
    example = "e.g. 2026-11-03 or 2026-11-03T12:00:00Z (UTC unless an offset is given)"
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ForgetOptionError(
            f"{option} {text!r} is not an ISO date or datetime: {example}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    t_ms = (parsed - _EPOCH) // timedelta(milliseconds=1)
    problem = time_problem(t_ms)
    if problem is not None:
        raise ForgetOptionError(f"{option} {text!r} is outside 1970-01-01..2100-01-01: {example}")
    return t_ms


def parse_range(from_text: str | None, to_text: str | None) -> tuple[int | None, int | None]:
    """``[from, to)`` in epoch milliseconds; None is open."""
    lo = None if from_text is None else parse_time_ms(from_text, "--from")
    hi = None if to_text is None else parse_time_ms(to_text, "--to")
    if lo is not None and hi is not None and hi <= lo:
        raise ForgetOptionError(
            f"--to {to_text!r} is not after --from {from_text!r}: the range is [from, to) "
            "(--from 2026-11-03 --to 2026-11-04 is the UTC day of 3 November); give a later --to"
        )
    return lo, hi


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_ids(base: str, count: int) -> list[str]:
    """``base`` for one visitor; ``base.1``, ``base.2``, ... for several."""
    if count == 1:
        return [base]
    return [f"{base}.{n}" for n in range(1, count + 1)]


def check_request_id(base: str, count: int) -> None:
    """``--request-id`` is valid, and so is each id derived from it."""
    problem = request_id_problem(base)
    if problem is not None:
        raise ForgetOptionError(f"--request-id {problem}")
    longest = request_ids(base, count)[-1]
    if len(longest) > MAX_REQUEST_ID_CHARS:
        raise ForgetOptionError(
            f"--request-id {base!r} is too long for {count} anonymous ids: their request ids "
            f"({longest!r}) would be {len(longest)} characters, at most {MAX_REQUEST_ID_CHARS}; "
            f"give one of at most {MAX_REQUEST_ID_CHARS - len(longest) + len(base)} characters"
        )


def build_requests(
    base_id: str, anonymous_ids: Sequence[str], from_ms: int | None, to_ms: int | None
) -> list[ForgetRequest]:
    """One request per anonymous id (in the given order), numbered as :func:`request_ids`."""
    check_request_id(base_id, len(anonymous_ids))
    return [
        ForgetRequest(rid, anonymous_id, from_ms, to_ms)
        for rid, anonymous_id in zip(
            request_ids(base_id, len(anonymous_ids)), anonymous_ids, strict=True
        )
    ]


def distinct(ids: Iterable[str]) -> list[str]:
    """``ids`` without repeats, in their first order."""
    return list(dict.fromkeys(ids))


# -- the store --------------------------------------------------------------------------------


def store_client(settings: Settings) -> Any:
    """A client on the ClickHouse store (a running worker's endpoint when it holds the
    embedded store), opened as ``funnel report`` opens it."""
    from sinks.clickhouse import open_client
    from streams.worker import clickhouse_target

    return open_client(clickhouse_target(settings), create_database=False)


def _embedded_directory(settings: Settings) -> Path | None:
    from sinks.clickhouse import embedded_directory
    from streams.worker import clickhouse_target

    target = clickhouse_target(settings)
    return embedded_directory(target) if target.is_embedded else None


def worker_absent(settings: Settings) -> str | None:
    """Why no worker can be processing requests on the embedded store, or None (a worker
    holds it, or the store is a ClickHouse server, where this cannot be told)."""
    from sinks.clickhouse import embedded_holder

    directory = _embedded_directory(settings)
    if directory is None or embedded_holder(directory):
        return None
    return f"no worker holds the embedded store at {directory}"


def _store_text(settings: Settings) -> str:
    from streams.worker import clickhouse_target

    target = clickhouse_target(settings)
    return f"{target.describe()}, database {target.database}"


def resolve_user(client: Any, user_id: str) -> list[str]:
    """The anonymous ids that carried ``user_id`` (``sinks.forget_store``), without repeats."""
    from sinks.forget_store import person_ids_of_user

    return distinct(person_ids_of_user(client, user_id))


@dataclass(frozen=True, slots=True)
class AuditTotals:
    """What the worker recorded for one request, summed over its audit rows."""

    request_id: str
    phase: str = ""  # "": no audit row yet; "done" when every row is; else the earliest
    events_forgotten: int = 0
    rows_corrected: int = 0
    rows_deleted: int = 0
    duration_ms: int = 0

    @property
    def done(self) -> bool:
        return self.phase == "done"


_PHASES: Final = ("started", "corrected", "done")


def audit_totals(rows: Iterable[Sequence[Any]], ids: Sequence[str]) -> dict[str, AuditTotals]:
    """Each request id's totals from ``forget_audit`` rows (request_id, partition, phase,
    events_forgotten, rows_corrected, rows_deleted, duration_ms); a request is done when it
    has rows and all are ``done``."""
    by_id: dict[str, list[Sequence[Any]]] = {}
    for row in rows:
        by_id.setdefault(str(row[0]), []).append(row)
    out = {}
    for rid in ids:
        found = by_id.get(rid, [])
        phases = [str(r[2]) for r in found]
        out[rid] = AuditTotals(
            request_id=rid,
            phase=min(phases, key=lambda p: _PHASES.index(p) if p in _PHASES else -1, default=""),
            events_forgotten=sum(int(r[3]) for r in found),
            rows_corrected=sum(int(r[4]) for r in found),
            rows_deleted=sum(int(r[5]) for r in found),
            duration_ms=max((int(r[6]) for r in found), default=0),
        )
    return out


def wait_until_done(
    poll: Callable[[], Iterable[Sequence[Any]]],
    ids: Sequence[str],
    timeout_s: float,
    *,
    absent: Callable[[], str | None] = lambda: None,
    interval_s: float = POLL_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, AuditTotals]:
    """Poll until every request id is done; raise :class:`ForgetWaitError` on timeout.

    ``poll`` returns the audit rows of ``ids``; a failing poll (the table not there yet, an
    endpoint restarting) counts as nothing done. ``absent`` says why no worker can be
    processing (then polling is skipped).
    """
    deadline = clock() + timeout_s
    why_not = ""
    while True:
        reason = absent()
        if reason is not None:
            why_not = reason
            totals: dict[str, AuditTotals] = {}
        else:
            try:
                totals = audit_totals(poll(), ids)
                why_not = ""
            except FunnelError as exc:
                totals, why_not = {}, str(exc)
            except Exception as exc:  # clickhouse-connect's errors: keep polling, report them
                totals, why_not = {}, f"{type(exc).__name__}: {exc}"
            if totals and all(t.done for t in totals.values()):
                return totals
        if clock() >= deadline:
            raise ForgetWaitError(_wait_message(ids, totals, why_not))
        sleep(max(0.0, min(interval_s, deadline - clock())))


def _wait_message(ids: Sequence[str], totals: dict[str, AuditTotals], why_not: str) -> str:
    pending = [rid for rid in ids if rid not in totals or not totals[rid].done]
    started = [
        f"{rid} ({totals[rid].phase})" for rid in pending if rid in totals and totals[rid].phase
    ]
    text = f"not done yet: {', '.join(pending)} ({len(pending)} of {len(ids)} request(s))"
    if started:
        text += f"; in progress: {', '.join(started)}"
    if why_not:
        text += f"; {why_not}"
    return (
        f"{text}. The requests are on the forget topic and a worker applies them when it "
        "reads the visitor's partition: is the worker running (`funnel worker`) and "
        "caught up? Sending them again with the same --request-id is harmless "
        "(add --wait SECONDS to wait longer)"
    )


# -- sending ----------------------------------------------------------------------------------


class ProducerLike(Protocol):
    """What the command uses of :class:`aiokafka.AIOKafkaProducer` (tests fake it)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def partitions_for(self, topic: str) -> set[int]: ...

    async def send(
        self, topic: str, value: bytes, *, key: bytes, partition: int
    ) -> asyncio.Future[Any]: ...


@dataclass(frozen=True, slots=True)
class Sent:
    request_id: str
    anonymous_id: str
    partition: int
    offset: int


def new_producer(bootstrap: str) -> ProducerLike:
    producer: ProducerLike = idempotent_producer(
        bootstrap, "funnel-forget", MAX_FORGET_RECORD_BYTES
    )
    return producer


def kafka_hint(bootstrap: str) -> str:
    return (
        f"check that a Kafka broker listens on {bootstrap} (`funnel broker start` for the "
        "local one) or set FUNNEL_BOOTSTRAP_SERVERS (or KAFKA_BOOTSTRAP_SERVERS)"
    )


async def send_requests(
    requests: Sequence[ForgetRequest],
    bootstrap: str,
    topics: TopicNames,
    producer_factory: Callable[[str], ProducerLike] | None = None,
) -> list[Sent]:
    """Produce each request keyed by its anonymous id, on the partition of the visitor's
    events; wait for the acknowledgements; return where each landed.

    Refuses (nothing sent) when the forget topic is missing or not co-partitioned with
    the clickstream topic: the request would not meet the visitor's events.
    """
    values = [encode_forget(r) for r in requests]
    producer = (producer_factory or new_producer)(bootstrap)
    try:
        await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT_S)
    except (TimeoutError, KafkaError) as exc:
        with contextlib.suppress(Exception):
            await producer.stop()
        raise ForgetSendError(
            f"cannot connect to Kafka at {bootstrap}: {exc or 'timed out'}; nothing was "
            f"sent; {kafka_hint(bootstrap)}"
        ) from exc
    sent: list[Sent] = []
    try:
        partitions = await _co_partitioned(producer, topics, bootstrap)
        futures = []
        for request, value in zip(requests, values, strict=True):
            key = request.anonymous_id.encode()
            partition = partition_for(key, partitions)
            future = await producer.send(topics.forget, value, key=key, partition=partition)
            futures.append((request, future))
        for request, future in futures:
            metadata = await asyncio.wait_for(future, DELIVERY_TIMEOUT_S)
            sent.append(
                Sent(request.request_id, request.anonymous_id, metadata.partition, metadata.offset)
            )
    except (TimeoutError, KafkaError) as exc:
        done = ", ".join(s.request_id for s in sent) or "none"
        raise ForgetSendError(
            f"Kafka did not take the forget requests: {type(exc).__name__}: {exc}; "
            f"acknowledged: {done}. Sending them again with the same --request-id is "
            f"harmless; {kafka_hint(bootstrap)}"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), CONNECT_TIMEOUT_S)
    return sent


async def _co_partitioned(producer: ProducerLike, topics: TopicNames, bootstrap: str) -> int:
    """The forget topic's partition count, checked equal to the clickstream topic's."""
    counts = {}
    for topic in (topics.forget, topics.clickstream):
        try:
            counts[topic] = len(
                await asyncio.wait_for(producer.partitions_for(topic), METADATA_TIMEOUT_S)
            )
        except (TimeoutError, KafkaError) as exc:
            raise ForgetSendError(
                f"the topic {topic} was not found at {bootstrap} ({type(exc).__name__}); "
                "nothing was sent; create the topics with `funnel topics` (a starting "
                f"worker does it too), or {kafka_hint(bootstrap)}"
            ) from exc
    forget, inputs = counts[topics.forget], counts[topics.clickstream]
    if forget != inputs:
        raise ForgetSendError(
            f"the forget topic {topics.forget} has {forget} partitions but "
            f"{topics.clickstream} has {inputs}: a request would not land on the partition "
            "of the visitor's events; nothing was sent. `funnel topics` says how to "
            "recreate it (docs/forget.md)"
        )
    return forget


# -- the command ------------------------------------------------------------------------------


def requests_table(
    requests: Sequence[ForgetRequest], sent: Sequence[Sent] | None, partitions: int
) -> Table:
    where = {s.request_id: s for s in sent or ()}
    last = "partition@offset" if sent is not None else "partition"
    # Folded, never cut with "...": a cut id or time misleads.
    table = Table(
        *(Column(h, overflow="fold") for h in ("request_id", "anonymous_id", "from", "to", last))
    )
    for r in requests:
        if sent is not None:
            s = where.get(r.request_id)
            place = f"{s.partition}@{s.offset}" if s else "-"
        else:
            place = str(partition_for(r.anonymous_id.encode(), partitions))
        table.add_row(
            escape(r.request_id),
            escape(r.anonymous_id),
            _utc(r.from_ms),
            _utc(r.to_ms),
            place,
        )
    return table


def audit_table(totals: Iterable[AuditTotals]) -> Table:
    table = Table("request_id", "events forgotten", "rows corrected", "rows deleted", "took (s)")
    for t in totals:
        table.add_row(
            escape(t.request_id),
            f"{t.events_forgotten:,}",
            f"{t.rows_corrected:,}",
            f"{t.rows_deleted:,}",
            f"{t.duration_ms / 1000:.3f}",
        )
    return table


def forget(
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            help="The person's user_id: every anonymous id that carried it is forgotten "
            "(read from the ClickHouse store).",
            show_default=False,
        ),
    ] = None,
    anonymous_id: Annotated[
        str | None,
        typer.Option("--anonymous-id", help="One visitor id to forget.", show_default=False),
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Forget events from this time on (inclusive): 2026-11-03 or "
            "2026-11-03T12:00:00Z; UTC unless an offset is given. Default: the beginning.",
            show_default=False,
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Forget events before this time (exclusive), same format. Default: no end.",
            show_default=False,
        ),
    ] = None,
    request_id: Annotated[
        str | None,
        typer.Option(
            "--request-id",
            help="Your reference, kept in the audit (1-64 of A-Z a-z 0-9 . _ : -; no personal "
            "data). Several anonymous ids get R.1, R.2, ... Default: a fresh uuid4 hex.",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0.0,
            help="Wait up to this many seconds for the worker to finish and print what "
            "was removed (0: do not wait).",
        ),
    ] = 0.0,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="The embedded ClickHouse's data directory for --user and --wait (default: "
            "FUNNEL_DATA_DIR, .data).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Resolve and show the requests; send nothing.")
    ] = False,
) -> None:
    """Forget a person: their events, state and rows, and every aggregate corrected.

    Sends one request per anonymous id to the forget topic; a running worker applies it in
    order with the visitor's events (docs/forget.md). Running it twice is harmless.
    """
    console = Console(soft_wrap=True, highlight=False)
    err = Console(stderr=True, soft_wrap=True, highlight=False)

    def fail(exc: Exception, code: int) -> None:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code)

    try:
        settings = load_settings()
        if data_dir is not None:
            settings = settings.model_copy(update={"data_dir": data_dir})
        if (user is None) == (anonymous_id is None):
            raise ForgetOptionError(
                "give exactly one of --user ID (the person's user_id: all of their anonymous "
                "ids) and --anonymous-id ID (one visitor)"
            )
        if dry_run and wait:
            raise ForgetOptionError("--dry-run sends nothing, so there is nothing to --wait for")
        if user is not None and not user.strip():
            raise ForgetOptionError("--user is empty; give the person's user_id")
        if anonymous_id is not None:
            problem = anonymous_id_problem(anonymous_id)
            if problem is not None:
                raise ForgetOptionError(f"--anonymous-id {problem}")
        from_ms, to_ms = parse_range(from_, to)
        base = new_request_id() if request_id is None else request_id
        check_request_id(base, 1)
        if user is not None and wait and worker_absent(settings) is not None:
            raise ForgetOptionError(
                f"--wait with --user needs a running worker: {worker_absent(settings)}, so "
                "this command would open it itself to read the person's anonymous ids, and "
                "no worker could open it before the command exits; start `funnel worker` "
                "first, or drop --wait"
            )
    except FunnelError as exc:
        fail(exc, EXIT_BAD_INPUT)
        raise  # unreachable: fail exits

    client: Any = None
    if user is not None:
        try:
            client = store_client(settings)
            ids = resolve_user(client, user)
        except FunnelError as exc:
            fail(exc, EXIT_FAILED)
            raise  # unreachable: fail exits
        if not ids:
            fail(
                NothingToForgetError(
                    f"no event of user_id {user!r} is in the store ({_store_text(settings)}): "
                    "nothing sent. Check the id (user ids are case-sensitive), the store "
                    "(--data-dir, FUNNEL_DATA_DIR, FUNNEL_CLICKHOUSE_DSN) and that the "
                    "worker has processed the person's events, or forget a visitor with "
                    "--anonymous-id"
                ),
                EXIT_FAILED,
            )
    else:
        assert anonymous_id is not None
        ids = [anonymous_id]
    try:
        requests = build_requests(base, ids, from_ms, to_ms)
    except FunnelError as exc:
        fail(exc, EXIT_BAD_INPUT)
        raise  # unreachable: fail exits

    topic = settings.topics.forget
    span = _span_text(from_ms, to_ms)
    if dry_run:
        console.print(requests_table(requests, None, settings.partitions))
        console.print(
            f"dry run: {len(requests)} forget request(s) ({span}); partitions as for "
            f"{settings.partitions} (FUNNEL_PARTITIONS); nothing sent to {escape(topic)}"
        )
        return
    try:
        sent = asyncio.run(send_requests(requests, settings.bootstrap_servers, settings.topics))
    except FunnelError as exc:
        fail(exc, EXIT_FAILED)
        raise  # unreachable: fail exits
    console.print(requests_table(requests, sent, settings.partitions))
    console.print(
        f"sent {len(sent)} forget request(s) ({span}) to {escape(topic)} at "
        f"{escape(settings.bootstrap_servers)}: "
        + ", ".join(f"{escape(s.request_id)} -> partition {s.partition}" for s in sent)
    )
    if not wait:
        return
    ids_sent = [s.request_id for s in sent]
    console.print(f"waiting up to {wait:g} s for the worker ...")

    def poll() -> Iterable[Sequence[Any]]:
        nonlocal client
        if client is None:
            client = store_client(settings)
        rows: Iterable[Sequence[Any]] = client.query(
            _AUDIT_SQL, parameters={"ids": ids_sent}
        ).result_rows
        return rows

    try:
        totals = wait_until_done(poll, ids_sent, wait, absent=lambda: worker_absent(settings))
    except ForgetWaitError as exc:
        fail(exc, EXIT_FAILED)
        raise  # unreachable: fail exits
    console.print(audit_table(totals[rid] for rid in ids_sent))
    console.print(f"done: {len(ids_sent)} request(s); the audit is in the forget_audit table")


def _span_text(from_ms: int | None, to_ms: int | None) -> str:
    if from_ms is None and to_ms is None:
        return "whole life"
    if to_ms is None:
        return f"event time from {_utc(from_ms)} on"
    if from_ms is None:
        return f"event time before {_utc(to_ms)}"
    return f"event time in [{_utc(from_ms)}, {_utc(to_ms)})"


def _utc(t_ms: int | None) -> str:
    """``t_ms`` as a short ISO UTC time (milliseconds only when there are any)."""
    if t_ms is None:
        return "-"
    when = datetime.fromtimestamp(t_ms / 1000, UTC)
    spec = "milliseconds" if t_ms % 1000 else "seconds"
    return when.replace(tzinfo=None).isoformat(timespec=spec) + "Z"
