"""The producer the command-line tools send to Kafka with (`funnel costs import`,
`funnel forget`): idempotent, every replica acknowledging, records up to a bound."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer


def idempotent_producer(bootstrap: str, client_id: str, max_record_bytes: int) -> Any:
    """A producer that sends each record once and in order, acknowledged by all replicas;
    requests may carry two records of ``max_record_bytes``."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        max_request_size=2 * max_record_bytes,
        request_timeout_ms=30_000,
    )
