"""The worker's Kafka consumer fetches with the configured wait, not Faust's 1500 ms
(streams/faust_private.py: FetchWaitConsumerThread; why: BENCHMARKS.md, latency)."""

from __future__ import annotations

import asyncio

import pytest

from funnel.errors import ConfigError
from funnel.settings import load_settings
from streams import transport
from streams.app import build_app
from streams.faust_private import FetchWaitConsumerThread


def _fetch_wait_of_a_new_worker_consumer(wait_ms: int | None) -> int:
    async def build() -> int:
        app = build_app(load_settings())
        if wait_ms is not None:
            transport.fetch_max_wait(app, wait_ms)
        thread = app.consumer._thread
        assert isinstance(thread, FetchWaitConsumerThread)
        consumer = thread._create_worker_consumer(app.transport)  # not started: no broker
        return int(consumer._fetch_max_wait_ms)

    return asyncio.run(build())


def test_the_worker_consumer_waits_as_configured() -> None:
    assert _fetch_wait_of_a_new_worker_consumer(75) == 75


def test_without_the_setting_it_is_fausts_own() -> None:
    assert _fetch_wait_of_a_new_worker_consumer(None) == 1500


def test_the_default_setting_is_a_tenth_of_a_second() -> None:
    assert load_settings().consumer_fetch_wait_ms == 100


@pytest.mark.parametrize("value", [0, 1501])
def test_a_wait_out_of_range_names_the_setting(value: int) -> None:
    with pytest.raises(ConfigError, match="consumer_fetch_wait_ms"):
        load_settings(consumer_fetch_wait_ms=value)
