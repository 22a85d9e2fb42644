"""The commit at hand-over: a revoked partition's applied batches are committed before
its next owner starts from the commits (without a broker).

Faust's own revocation steps run for real (``Consumer.on_partitions_revoked``: it forgets
the partition's acks and committed offset, then calls the app's revocation, which stops
the flow and waits for the agent). The app side and Faust's final commit call are
recorded stand-ins.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from faust.utils.tracing import noop_span

from streams import faust_private, transport
from streams.transport import attach_commit_barrier
from tests.unit.test_transport import CART, CLICKS, ProbeConsumer, fetched


class HandOverProbe(ProbeConsumer):
    """A batch consumer whose revocation runs Faust's steps over recorded app hooks."""

    def __init__(self, fetch: dict[TP, Any]) -> None:
        super().__init__(fetch, None)
        self.events: list[str] = []
        self.commits: list[dict[TP, int]] = []
        self.fail_commit: BaseException | None = None
        self.barrier_seconds = 0.0
        self.diag = SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None)
        self._active_partitions: set[TP] | None = None
        self._paused_partitions: set[TP] = set()
        self._gap: defaultdict[TP, list[int]] = defaultdict(list)
        self._commit_fut: asyncio.Future[None] | None = None
        self.app.should_stop = False
        self.app._start_span_from_rebalancing = lambda name: noop_span()

        async def app_revoked(revoked: set[TP]) -> None:
            # Faust's app: flow stopped, the agent's batch in hand finished.
            self.events.append("app revoked")

        self._on_partitions_revoked = app_revoked

        async def barrier(offsets: Mapping[TP, int]) -> None:
            self.events.append("barrier")
            await asyncio.sleep(self.barrier_seconds)
            if self.fail_commit is not None:
                raise self.fail_commit

        attach_commit_barrier(self.app, barrier)

    async def faust_commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        self.events.append("commit")
        self.commits.append(dict(offsets))
        self._committed_offset.update(offsets)  # as Faust's _commit_offsets does
        return True

    def apply_all(self) -> list[Any]:
        """Deliver the scripted fetch and mark every batch applied; the batches."""
        batches = [message.value for _, message in self.delivered()]
        for batch in batches:
            self.batch_processed(batch)
        return batches

    def revoke(self, tps: set[TP]) -> None:
        asyncio.run(self.on_partitions_revoked(tps))


def test_applied_batches_of_a_revoked_partition_are_committed_before_it_is_handed_over() -> None:
    consumer = HandOverProbe({CLICKS: fetched(0, 9), CART: fetched(0, 4)})
    consumer.apply_all()
    consumer._fetch = {CLICKS: fetched(10, 14)}
    consumer.delivered()  # delivered, never applied: its records are the next owner's
    consumer.revoke({CLICKS})
    # After the agent stopped (Faust's app revocation), through the barrier.
    assert consumer.events == ["app revoked", "barrier", "commit"]
    assert consumer.commits == [{CLICKS: 10}]
    # Only the revoked partition; and nothing is left of it in this consumer.
    assert CLICKS not in consumer._accounts() and CART in consumer._accounts()
    assert faust_private.committed_offset(consumer, CLICKS) is None


def test_a_partition_with_nothing_applied_since_its_last_commit_is_not_committed_again() -> None:
    consumer = HandOverProbe({CLICKS: fetched(0, 9)})
    consumer.apply_all()
    asyncio.run(consumer.commit_offsets({CLICKS: 10}))  # a timer commit
    consumer.events.clear()
    consumer.revoke({CLICKS})
    assert consumer.events == ["app revoked"]
    assert consumer.commits == [{CLICKS: 10}]


def test_a_commit_under_way_lands_first_and_the_hand_over_continues_from_it() -> None:
    consumer = HandOverProbe({CLICKS: fetched(0, 9)})
    consumer.apply_all()
    consumer._fetch = {CLICKS: fetched(10, 19)}
    consumer.apply_all()

    async def scenario() -> None:
        # A timer commit of 0-9 is in its barrier when the rebalance starts.
        loop = asyncio.get_running_loop()
        consumer._commit_fut = loop.create_future()

        async def timer_commit() -> None:
            await asyncio.sleep(0.05)
            await consumer.commit_offsets({CLICKS: 10})
            future, consumer._commit_fut = consumer._commit_fut, None
            assert future is not None
            future.set_result(None)

        timer = asyncio.create_task(timer_commit())
        await consumer.on_partitions_revoked({CLICKS})
        await timer

    asyncio.run(scenario())
    # Faust's committed offset was gone (revoked) when the timer's commit landed; the
    # hand-over still starts after it, not from the run's start.
    assert consumer.commits == [{CLICKS: 10}, {CLICKS: 20}]


def test_a_failed_hand_over_commit_is_logged_and_the_revocation_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = HandOverProbe({CLICKS: fetched(0, 9)})
    consumer.apply_all()
    consumer.fail_commit = RuntimeError("ClickHouse is down")
    with caplog.at_level(logging.WARNING):
        consumer.revoke({CLICKS})
    assert consumer.commits == []
    assert CLICKS not in consumer._accounts()
    assert "not committed at hand-over" in caplog.text and "ClickHouse is down" in caplog.text


def test_a_stopping_worker_commits_nothing_at_revocation() -> None:
    # Its shutdown commits; Faust's revocation while stopping only closes the consumer.
    consumer = HandOverProbe({CLICKS: fetched(0, 9)})
    consumer.apply_all()
    consumer.app.should_stop = True
    consumer.revoke({CLICKS})
    assert consumer.commits == []
    assert CLICKS not in consumer._accounts()


def test_a_slow_hand_over_commit_is_given_up_on_and_still_lands_by_itself(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(transport, "HAND_OVER_COMMIT_SECONDS", 0.05)
    consumer = HandOverProbe({CLICKS: fetched(0, 9)})
    consumer.apply_all()
    consumer.barrier_seconds = 0.3  # e.g. ClickHouse slow to take the flush

    async def scenario() -> float:
        started = asyncio.get_running_loop().time()
        with caplog.at_level(logging.INFO):
            await consumer.on_partitions_revoked({CLICKS})
            given_up_after = asyncio.get_running_loop().time() - started
            assert consumer.commits == []  # the group was not held for it
            await asyncio.sleep(0.5)
        return given_up_after

    given_up_after = asyncio.run(scenario())
    assert given_up_after < 0.3
    assert "not committed within" in caplog.text
    # Not cancelled half-way through its barrier: it went on and landed.
    assert consumer.commits == [{CLICKS: 10}]
    assert "committed at hand-over" in caplog.text


def test_a_late_hand_over_commit_leaves_a_partition_assigned_back_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Faust revokes every partition and assigns most of them back; a commit landing after
    # that must not drop the committed offset Faust read for the new assignment.
    monkeypatch.setattr(transport, "HAND_OVER_COMMIT_SECONDS", 0.05)
    consumer = HandOverProbe({CLICKS: fetched(0, 9)})
    consumer.apply_all()
    consumer.barrier_seconds = 0.3

    async def scenario() -> None:
        await consumer.on_partitions_revoked({CLICKS})
        consumer._committed_offset[CLICKS] = 4  # assigned back: Faust's seek read it
        await asyncio.sleep(0.5)

    asyncio.run(scenario())
    assert consumer.commits == [{CLICKS: 10}]
    assert faust_private.committed_offset(consumer, CLICKS) == 10  # as Faust's commit sets
