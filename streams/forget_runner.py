"""Running one forget request through the worker that owns the visitor (docs/forget.md).

The request arrives on the forget topic, co-partitioned with the visitor inputs, and is
handled under the partition's lock like any batch, so it sits in order with the
visitor's events. Its steps, each one safe to repeat after a crash:

1. **Audit ``started``** with a base version ``V0`` and the thresholds then (no personal
   data). A replayed request finds it and reuses both, so the final rows are corrected
   from their values before ``V0``: nothing is subtracted twice.
2. **Corrections:** the processor replays the person's stored events
   (``PartitionProcessor.plan_forget``); the final rows they touched are read and
   written back minus the forgotten contribution, and the visitor's state is replaced by
   the one without those events, which corrects the open rows
   (``PartitionProcessor.apply_forget``). Rows and state are made durable.
3. **Audit ``corrected``**, then the **deletes** of the person's raw events, late events,
   dead letters, lifecycle rows and per-visitor rows (``sinks/forget_store.py``).
4. **Audit ``done``** with the counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from schemas.forget import ForgetRequest
from sinks.clickhouse import ClickHouseWriter
from streams.batch import BatchResult
from streams.forget import StoredEventLike, family_of, split_by_family
from streams.outputs import RowKey, forget_audit
from streams.outputs.family import AggregateFamily, VersionClock
from streams.outputs.forget_audit import ForgetAudit
from streams.processor import Processor

log = logging.getLogger(__name__)


class ForgetStore(Protocol):
    """The ClickHouse reads and deletes a forget needs (blocking; run in a thread)."""

    def audit(self, request_id: str, partition: int) -> ForgetAudit | None: ...

    def person_events(self, anonymous_id: str) -> list[StoredEventLike]: ...

    def newest_values(
        self,
        family: AggregateFamily,
        partition: int,
        keys: Iterable[RowKey],
        before_version: int | None,
    ) -> dict[Any, dict[str, int]]: ...

    def delete_person_rows(
        self, anonymous_id: str, from_ms: int | None, to_ms: int | None, appended_until: int
    ) -> dict[str, int]: ...


@dataclasses.dataclass
class ForgetRunner:
    store: ForgetStore
    writer: ClickHouseWriter
    versions: VersionClock
    # Makes a BatchResult durable in the runtime's order (Runtime._apply).
    apply: Callable[[Processor, BatchResult], Awaitable[None]]
    # Waits until the state writes queued so far are in the changelog.
    state_delivered: Callable[[], Awaitable[None]]
    wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)

    async def run(
        self, processor: Processor, request: ForgetRequest, requested_at: int
    ) -> ForgetAudit:
        started = time.perf_counter()
        partition = processor.partition
        await self.writer.flush()  # every event applied so far is in events_raw
        audit = await asyncio.to_thread(self.store.audit, request.request_id, partition)
        if audit is not None and audit.phase == "done":
            log.info("forget %s p%d: done before, nothing to do", request.request_id, partition)
            return audit
        if audit is None:
            audit = ForgetAudit(
                request_id=request.request_id,
                partition=partition,
                phase="started",
                requested_at=requested_at,
                processed_at=self.wall_ms(),
                range_from=request.from_ms,
                range_to=request.to_ms,
                base_version=self.versions.next(),
                thresholds=dict(processor.thresholds),
                events_forgotten=0,
                rows_corrected=0,
                rows_deleted=0,
                duration_ms=0,
                version=0,
            )
            audit = await self._record(audit)
        if audit.phase == "started":
            audit = await self._correct(processor, request, requested_at, audit)
        deleted = await asyncio.to_thread(
            self.store.delete_person_rows,
            request.anonymous_id,
            request.from_ms,
            request.to_ms,
            requested_at,
        )
        audit = dataclasses.replace(
            audit,
            phase="done",
            rows_deleted=sum(deleted.values()),
            duration_ms=audit.duration_ms + int((time.perf_counter() - started) * 1000),
        )
        audit = await self._record(audit)
        log.info(
            "forget %s p%d: %d events forgotten, %d final rows corrected, %d rows deleted "
            "(%s) in %d ms",
            request.request_id,
            partition,
            audit.events_forgotten,
            audit.rows_corrected,
            audit.rows_deleted,
            ", ".join(f"{t} {n}" for t, n in sorted(deleted.items()) if n) or "none",
            audit.duration_ms,
        )
        return audit

    async def _correct(
        self,
        processor: Processor,
        request: ForgetRequest,
        requested_at: int,
        audit: ForgetAudit,
    ) -> ForgetAudit:
        started = time.perf_counter()
        events = await asyncio.to_thread(self.store.person_events, request.anonymous_id)
        plan = processor.plan_forget(request, requested_at, events, audit.thresholds)
        stored: dict[RowKey, dict[str, int]] = {}
        for rows, before in ((plan.final_then, audit.base_version), (plan.final_since, None)):
            for family, keys in split_by_family(rows, family_of).items():
                stored.update(
                    await asyncio.to_thread(
                        self.store.newest_values, family, processor.partition, keys, before
                    )
                )
        result, corrected = processor.apply_forget(plan, stored, self.versions.next())
        await self.apply(processor, result)
        await self.writer.flush()
        await self.state_delivered()
        audit = dataclasses.replace(
            audit,
            phase="corrected",
            processed_at=self.wall_ms(),
            events_forgotten=plan.events_forgotten,
            rows_corrected=corrected,
            duration_ms=int((time.perf_counter() - started) * 1000),
        )
        return await self._record(audit)

    async def _record(self, audit: ForgetAudit) -> ForgetAudit:
        audit = dataclasses.replace(audit, version=self.versions.next())
        await self.writer.submit(forget_audit.TABLE, [forget_audit.build_row(audit)])
        await self.writer.flush()
        return audit
