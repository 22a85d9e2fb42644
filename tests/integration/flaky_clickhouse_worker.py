"""`funnel worker` whose ClickHouse inserts fail for FLAKY_CLICKHOUSE_SECONDS from the first.

Run as ``python -m tests.integration.flaky_clickhouse_worker worker ...``: the real CLI
and worker, with the client wrapped so inserts raise like an unreachable server would.
"""

from __future__ import annotations

import os
import time
from typing import Any

import streams.worker
from funnel.cli import main


class FlakyClient:
    def __init__(self, client: Any, fail_for_seconds: float) -> None:
        self._client = client
        self._fail_for = fail_for_seconds
        # The outage starts at the first insert of rows, not at start-up: a slow start
        # (a loaded machine) must not let it pass before anything was written.
        self._until: float | None = None

    def _outage(self, table: str | None) -> None:
        if table != "schema_migrations":
            if self._until is None:
                self._until = time.monotonic() + self._fail_for
            if time.monotonic() < self._until:
                raise ConnectionError("simulated outage: ClickHouse is unreachable")

    def insert(self, table: str | None = None, *args: Any, **kwargs: Any) -> Any:
        context = kwargs.get("context")
        self._outage(table if context is None else context.table)
        return self._client.insert(table, *args, **kwargs)

    def raw_insert(self, table: str, *args: Any, **kwargs: Any) -> Any:
        """The compiled core's rows arrive here (Native blocks, sinks/clickhouse.py)."""
        self._outage(table)
        return self._client.raw_insert(table, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _flaky_open_client(*args: Any, **kwargs: Any) -> Any:
    client = _real_open_client(*args, **kwargs)
    return FlakyClient(client, float(os.environ.get("FLAKY_CLICKHOUSE_SECONDS", "5")))


_real_open_client = streams.worker.open_client
streams.worker.open_client = _flaky_open_client

if __name__ == "__main__":
    main()
