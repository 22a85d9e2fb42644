"""Exit 0 if a Kafka broker answers a Metadata request, else 1.

Usage: kafka_ready.py HOST:PORT[,HOST:PORT...] [TIMEOUT_SECONDS]

Standard library only on purpose: kafka.sh runs it with whatever ``python3`` is on the
machine, which need not have kafka-python or aiokafka installed. Speaks the wire protocol
directly: one Metadata v4 request (the oldest version Kafka 4.x still accepts, KIP-896)
asking for no topics, so the answer is small and creates nothing. A listening socket is
not enough: the broker only lists itself in the answer once it has registered with the
controller and is unfenced, which is when clients can use it.
"""

from __future__ import annotations

import socket
import struct
import sys

METADATA_API_KEY = 3
METADATA_VERSION = 4
CORRELATION_ID = 1
CLIENT_ID = b"shop-funnel-ready-check"


def metadata_request() -> bytes:
    header = struct.pack(
        ">hhih", METADATA_API_KEY, METADATA_VERSION, CORRELATION_ID, len(CLIENT_ID)
    )
    # topics: empty array (not null, which would mean "all topics");
    # allow_auto_topic_creation: false.
    body = struct.pack(">ib", 0, 0)
    payload = header + CLIENT_ID + body
    return struct.pack(">i", len(payload)) + payload


def read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection mid-response")
        chunks.extend(chunk)
    return bytes(chunks)


def broker_count(host: str, port: int, timeout: float) -> int:
    """Number of live brokers the broker at host:port reports in its metadata."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(metadata_request())
        (size,) = struct.unpack(">i", read_exactly(sock, 4))
        response = read_exactly(sock, size)
    # correlation_id (int32), throttle_time_ms (int32), brokers array length (int32).
    correlation_id, _throttle_ms, brokers = struct.unpack_from(">iii", response, 0)
    if correlation_id != CORRELATION_ID:
        raise ConnectionError(f"unexpected correlation id {correlation_id}")
    return int(brokers)


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def any_broker_ready(bootstrap: str, timeout: float) -> bool:
    for address in bootstrap.split(","):
        host, port = parse_address(address)
        try:
            if broker_count(host, port, timeout) > 0:
                return True
        except (OSError, struct.error):
            continue
    return False


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    timeout = float(argv[2]) if len(argv) == 3 else 2.0
    return 0 if any_broker_ready(argv[1], timeout) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
