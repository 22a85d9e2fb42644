"""Shared pytest fixtures."""

from collections.abc import Iterator

import pytest

from tests.kafka_fixture import kafka_bootstrap  # noqa: F401
from tests.pipeline_harness import close_clickhouse_clients


@pytest.fixture(autouse=True)
def _close_clickhouse_clients() -> Iterator[None]:
    yield
    close_clickhouse_clients()
