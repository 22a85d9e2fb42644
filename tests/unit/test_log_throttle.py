"""A broker outage writes a bounded log: repeated client lines are summarised.

Issue 19 §5: aiokafka wrote 87,392 "Unable connect" lines (17.7 MB) in 32 s while the
broker was down.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from funnel.log_throttle import RepeatFilter, attach

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFIX = "throttletest"  # a logger tree of its own: the real client loggers stay untouched
UNABLE = 'Unable connect to "%s:%s": %s'
REFUSED = "[Errno 111] Connect call failed"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Sink:
    """A logger tree under PREFIX writing plain messages to a buffer, with the filter."""

    def __init__(self, clock: Clock, window_seconds: float = 10.0) -> None:
        self.buffer = io.StringIO()
        self.handler = logging.StreamHandler(self.buffer)
        self.handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.root = logging.getLogger(PREFIX)
        self.root.addHandler(self.handler)
        self.root.setLevel(logging.DEBUG)
        self.root.propagate = False
        self.client = logging.getLogger(f"{PREFIX}.client")  # exists before attach()
        self.throttle = RepeatFilter((PREFIX,), window_seconds=window_seconds, clock=clock)
        attach(self.throttle, [self.handler])

    @property
    def lines(self) -> list[str]:
        return self.buffer.getvalue().splitlines()

    def close(self) -> None:
        for name in [PREFIX, *logging.Logger.manager.loggerDict]:
            if name == PREFIX or name.startswith(PREFIX + "."):
                logging.getLogger(name).removeFilter(self.throttle)
        self.root.removeHandler(self.handler)
        self.root.propagate = True


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sink(clock: Clock) -> Iterator[Sink]:
    made = Sink(clock)
    yield made
    made.close()


def test_ten_thousand_identical_lines_in_a_second_write_one(sink: Sink, clock: Clock) -> None:
    for _ in range(10_000):
        sink.client.error(UNABLE, "127.0.0.1", 19092, REFUSED)
        clock.now += 0.0001
    assert sink.lines == [f'{PREFIX}.client ERROR Unable connect to "127.0.0.1:19092": {REFUSED}']


def test_the_next_line_after_the_window_reports_the_count(sink: Sink, clock: Clock) -> None:
    for _ in range(10_000):
        sink.client.error(UNABLE, "127.0.0.1", 19092, REFUSED)
        clock.now += 0.0001
    clock.now = 12.0
    sink.client.error(UNABLE, "127.0.0.1", 19092, REFUSED)
    line = f'{PREFIX}.client ERROR Unable connect to "127.0.0.1:19092": {REFUSED}'
    assert sink.lines == [
        line,
        f"{PREFIX}.client ERROR 9999 similar messages suppressed in the last 12s: "
        f'Unable connect to "127.0.0.1:19092": {REFUSED}',
        line,  # opens the next window
    ]


def test_a_32_second_outage_writes_a_few_lines_per_distinct_message(
    sink: Sink, clock: Clock
) -> None:
    """The drill's rate (87,392 lines in 32 s), from two hosts and two loggers."""
    other = logging.getLogger(f"{PREFIX}.conn")  # created after attach(): the handler sees it
    for i in range(87_392):
        clock.now = i * 32 / 87_392
        host = ("10.0.0.1", "10.0.0.2")[i % 2]
        sink.client.error(UNABLE, host, 9092, REFUSED)
        if i % 100 < 2:
            other.warning("Connection at %s:%s closed", host, 9092)
    lines = sink.lines
    # Four distinct messages; per 10 s window each writes its first occurrence and at
    # most one summary of its repeats.
    assert len(lines) <= 4 * 4 * 2
    for host in ("10.0.0.1", "10.0.0.2"):  # hosts are never merged
        ours = [line for line in lines if f'"{host}:9092"' in line]
        assert ours[0].endswith(f'Unable connect to "{host}:9092": {REFUSED}')
        assert "similar messages suppressed" in ours[1]
        assert any(f"Connection at {host}:9092 closed" in line for line in lines)
    # Every record is accounted for: shown, or counted in a summary.
    sink.throttle.flush()
    shown = suppressed = 0
    for line in sink.lines:
        if "similar messages suppressed" in line and "Unable connect" in line:
            suppressed += int(line.split(" ERROR ")[1].split()[0])
        elif "Unable connect" in line:
            shown += 1
    assert shown + suppressed == 87_392


def test_repeats_that_stop_are_reported_by_a_later_line_or_at_flush(
    sink: Sink, clock: Clock
) -> None:
    for _ in range(50):
        sink.client.error(UNABLE, "127.0.0.1", 19092, REFUSED)
    for _ in range(3):
        sink.client.error(UNABLE, "127.0.0.1", 19093, REFUSED)
    clock.now = 11.0
    logging.getLogger(f"{PREFIX}.other").info("broker back")  # any line, any level
    assert sink.lines[2:] == [
        f"{PREFIX}.client ERROR 49 similar messages suppressed in the last 11s: "
        f'Unable connect to "127.0.0.1:19092": {REFUSED}',
        f"{PREFIX}.client ERROR 2 similar messages suppressed in the last 11s: "
        f'Unable connect to "127.0.0.1:19093": {REFUSED}',
        f"{PREFIX}.other INFO broker back",
    ]
    sink.client.error(UNABLE, "127.0.0.1", 19092, REFUSED)  # a new window starts
    sink.client.error(UNABLE, "127.0.0.1", 19092, REFUSED)
    clock.now = 12.0
    sink.throttle.flush()
    assert sink.lines[5:] == [
        f'{PREFIX}.client ERROR Unable connect to "127.0.0.1:19092": {REFUSED}',
        f"{PREFIX}.client ERROR 1 similar messages suppressed in the last 1s: "
        f'Unable connect to "127.0.0.1:19092": {REFUSED}',
    ]


def test_debug_info_and_other_loggers_pass_untouched(sink: Sink, clock: Clock) -> None:
    for _ in range(100):
        sink.client.debug("Sending request %s", "Metadata")
        sink.client.info("Joined group")
    outside = RepeatFilter((PREFIX,), clock=clock)
    record = logging.makeLogRecord({"name": "streams.runtime", "levelno": logging.ERROR})
    assert all(outside.filter(record) for _ in range(100))
    assert len(sink.lines) == 200


def test_a_record_seen_on_its_logger_and_its_handler_counts_once(sink: Sink, clock: Clock) -> None:
    """The filter sits on the client logger and on the handler it propagates to."""
    assert sink.throttle in sink.client.filters
    assert sink.throttle in sink.handler.filters
    sink.client.error(UNABLE, "127.0.0.1", 19092, REFUSED)
    clock.now = 11.0
    sink.client.error(UNABLE, "127.0.0.1", 19092, REFUSED)
    assert len(sink.lines) == 2
    assert "suppressed" not in sink.lines[1]


FLOOD = """
import asyncio, logging, socket, sys, time
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
from funnel.log_throttle import install_log_throttle
install_log_throttle()
install_log_throttle()  # idempotent
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]  # bound, never listening: every connection is refused

async def main() -> None:
    attempts = 0
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        consumer = AIOKafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}")
        try:
            await consumer.start()
        except KafkaConnectionError:
            attempts += 1
        finally:
            await consumer.stop()
    print(attempts)

asyncio.run(main())
"""


def test_a_real_client_at_a_closed_port_writes_a_bounded_log() -> None:
    """aiokafka's own "Unable connect" lines, through the real install, for 2 seconds."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FLOOD), "2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    attempts = int(result.stdout.strip())
    lines = result.stderr.splitlines()
    assert attempts > 100, "the client did not retry fast enough to flood"
    assert len(lines) <= 3, result.stderr[:2000]
    assert lines[0].startswith('ERROR aiokafka: Unable connect to "127.0.0.1:')
    assert lines[-1].startswith(f"ERROR aiokafka: {attempts - 1} similar messages suppressed")
