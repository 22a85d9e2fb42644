"""partition_for matches Kafka's Java client (Utils.murmur2 + toPositive % partitions).

The expected values were printed by kafka-clients 4.1.1's
``org.apache.kafka.common.utils.Utils.murmur2`` for these UTF-8 keys.
"""

from __future__ import annotations

import pytest
from kafka.partitioner.default import murmur2

from simulator.partitioner import partition_for

JAVA = [
    # key, Utils.murmur2 (signed int), partition of 4, partition of 7
    ("21", -973932308, 0, 3),
    ("foobar", -790332482, 2, 0),
    ("a-little-bit-long-string", -985981536, 0, 1),
    ("abc", 479470107, 3, 4),
    ("a-0123456789abcdef", 412606769, 1, 1),
    ("", 275646681, 1, 2),
    ("x", 2121525046, 2, 4),
    ("xy", -1884506471, 1, 1),
    ("xyz", -2021271510, 2, 3),
    ("a-9f8e7d6c5b4a39281706f5e4d3c2b1a0", -492775520, 0, 3),
]


@pytest.mark.parametrize(("key", "java_hash", "of4", "of7"), JAVA)
def test_partition_matches_the_java_client(key: str, java_hash: int, of4: int, of7: int) -> None:
    unsigned = java_hash & 0xFFFFFFFF
    assert murmur2(key.encode()) == unsigned
    assert partition_for(key.encode(), 4) == of4
    assert partition_for(key.encode(), 7) == of7
