"""Shared pytest fixtures."""

from tests.kafka_fixture import kafka_bootstrap  # noqa: F401
