"""How much room ClickHouse has left on its disks, read for the ``ClickHouseDiskLow`` alert.

The store grows with every event, and the monitors' reads write to the same disk: an
experiment readout's GROUP BYs spill past 32 MiB (``BACKGROUND_READ_SETTINGS``), about
450 MB of temporary files per experiment on a 4.4 M-event store (docs/semantics.md).
When the disk fills, inserts fail, the worker applies backpressure and stops committing,
and the readouts fail too. An operator should hear of it before that, so the worker
reads ``system.disks`` on a timer and exports each disk's free and total bytes.

The same query serves the embedded engine (its one ``default`` disk is the store's
directory) and a server (its configured disks); the ``disk`` label is a disk's name from
the engine's configuration, a bounded set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sinks.kept_client import KeptClient

# How often a worker reads them (seconds): a disk fills over minutes, not seconds.
READ_SECONDS: Final = 30.0

DISKS_SQL: Final = "SELECT name, free_space, total_space FROM system.disks ORDER BY name"


@dataclass(frozen=True, slots=True)
class DiskSpace:
    """One disk of the engine, in bytes. ``total`` 0 means the engine does not know it
    (an object-storage disk), and such a disk is not exported."""

    name: str
    free: int
    total: int


def disk_space(client: Any) -> list[DiskSpace]:
    """Every local disk the engine reports, by name."""
    rows = client.query(DISKS_SQL).result_rows
    disks = [DiskSpace(str(name), int(free), int(total)) for name, free, total in rows]
    return [disk for disk in disks if disk.total > 0]


class DiskReadings:
    """:func:`disk_space` on a timer (``sinks/kept_client.py``: the client is kept, a
    failure is logged once). A failed reading is empty: the gauges keep their last value,
    and the alert's ``for`` keeps counting."""

    def __init__(self, open_client: Callable[[], Any]) -> None:
        self._engine = KeptClient(open_client, "ClickHouse's free disk space (system.disks)")

    def read(self) -> list[DiskSpace]:
        return self._engine.read(disk_space) or []
