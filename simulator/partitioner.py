"""Kafka's default partitioner for keyed records, so the simulator can choose partitions itself.

Java's ``BuiltInPartitioner.partitionForKey``: ``toPositive(murmur2(key)) % partitions``,
where ``toPositive`` masks the sign bit. kafka-python's ``murmur2`` is checked against the
Java client's values in ``tests/unit/test_simulator_partitioner.py``.
"""

from __future__ import annotations

from kafka.partitioner.default import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner would pick for ``key``."""
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions
