"""A ClickHouse client for periodic readings: opened on first use and kept.

The worker's timers read the engine's memory (``sinks/memory.py``) and its free disk
space (``sinks/disk.py``). A reading must never stop the worker: if the client cannot be
opened or a query fails, the reading gives nothing, the failure is logged once (not every
few seconds), and the next reading opens a new client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class KeptClient:
    def __init__(self, open_client: Callable[[], Any], what: str) -> None:
        self._open = open_client
        self._what = what  # what is read, for the warning
        self._client: Any | None = None
        self._warned = False

    def read(self, reading: Callable[[Any], T]) -> T | None:
        """``reading(client)``, or None if the client could not be opened or it failed."""
        try:
            if self._client is None:
                self._client = self._open()
            return reading(self._client)
        except Exception as exc:  # a reading must never stop the worker
            self._client = None
            if not self._warned:
                self._warned = True
                log.warning("cannot read %s: %s", self._what, exc)
            return None
