"""Simulated traffic produced live while a test disrupts the pipeline, then the rest at once.

The kill, churn and outage tests need input to be still arriving while they kill, stop or
restart things. Once the last disruption is done, nothing they check depends on the pace
any more: the workers that follow start (or keep running) with the rest of the records in
the topics either way. Waiting out a fixed production window after that only costs time,
so :class:`LiveTraffic` sends at ``rate`` until :meth:`LiveTraffic.hurry`, then the rest as
fast as the broker takes them, in the same order (``simulator.produce`` keeps each
partition's send order; the second part starts after the first is acknowledged).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence

from funnel.settings import TopicNames
from simulator.produce import produce
from simulator.records import SimRecord


class LiveTraffic:
    """Produces ``records`` from a background thread: paced, then hurried."""

    def __init__(
        self,
        records: Sequence[SimRecord],
        bootstrap: str,
        topics: TopicNames,
        *,
        rate: float,
    ) -> None:
        self.records = records
        self._bootstrap = bootstrap
        self._topics = topics
        self._rate = rate
        self._hurry = threading.Event()
        self._lock = threading.Lock()
        self._handed_out = 0  # records the paced part gave the producer so far
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-traffic", daemon=True)

    def start(self) -> LiveTraffic:
        self._thread.start()
        return self

    def hurry(self) -> int:
        """Send the rest without pacing; returns how many records the paced part had sent."""
        with self._lock:
            self._hurry.set()
            return self._handed_out

    def join(self, timeout: float) -> None:
        """Wait until every record is acknowledged; raise what the producer raised."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the producer did not finish within {timeout} s"
        if self._error is not None:
            raise AssertionError(f"producing failed: {self._error!r}") from self._error

    def _paced(self) -> Iterator[SimRecord]:
        for record in self.records:
            with self._lock:
                if self._hurry.is_set():
                    return
                self._handed_out += 1
            yield record

    def _run(self) -> None:
        try:
            asyncio.run(self._send())
        except BaseException as exc:
            self._error = exc

    async def _send(self) -> None:
        await produce(
            self._paced(),
            self._bootstrap,
            self._topics,
            speedup=None,
            rate=self._rate,
        )
        rest = self.records[self._handed_out :]
        if rest:
            await produce(rest, self._bootstrap, self._topics, speedup=None, rate=None)
