"""`funnel worker` whose ClickHouse inserts fail for FLAKY_CLICKHOUSE_SECONDS after start.

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
        self._until = time.monotonic() + fail_for_seconds

    def insert(self, table: str | None = None, *args: Any, **kwargs: Any) -> Any:
        context = kwargs.get("context")
        name = table if context is None else context.table
        if name != "schema_migrations" and time.monotonic() < self._until:
            raise ConnectionError("simulated outage: ClickHouse is unreachable")
        return self._client.insert(table, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _flaky_open_client(*args: Any, **kwargs: Any) -> Any:
    client = _real_open_client(*args, **kwargs)
    return FlakyClient(client, float(os.environ.get("FLAKY_CLICKHOUSE_SECONDS", "5")))


_real_open_client = streams.worker.open_client
streams.worker.open_client = _flaky_open_client

if __name__ == "__main__":
    main()
