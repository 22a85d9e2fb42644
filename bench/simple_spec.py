"""What every simple-workload peer shares: its job description, its result, the table.

The simple workload, identical in every system: per one-minute event-time window x
``event_type`` x ``channel``, count the events of one JSON topic into a ClickHouse
``SummingMergeTree`` (``simple_counts``); each system inserts partial counts (deltas) and
ClickHouse sums them, as the Kafka engine's materialized view does.

Each peer runs in its own process (``python -m bench.peers.<name> spec.json``), so its
peak RSS is its own, and writes a :class:`PeerResult` JSON file the harness reads. This
module uses the standard library only: the ClickHouse Kafka engine peer runs under a
different interpreter (see ``bench/chdb_env.py``).
Timing: ``first_record_at`` is when the system had its first record in hand,
``done_at`` when the last count was durable in ClickHouse.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

COUNTS_TABLE = "simple_counts"
COUNTS_COLUMNS = ("window_start", "event_type", "channel", "n")
COUNTS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {COUNTS_TABLE} (window_start Int64, "
    "event_type LowCardinality(String), channel LowCardinality(String), n UInt64) "
    "ENGINE = SummingMergeTree ORDER BY (window_start, event_type, channel)"
)
FINAL_COUNTS_SQL = (
    f"SELECT window_start, event_type, channel, sum(n) FROM {COUNTS_TABLE} "
    "GROUP BY window_start, event_type, channel"
)
DATABASE = "bench"
FLUSH_SECONDS = 1.0  # every Python peer inserts its pending deltas at least this often


@dataclass(frozen=True)
class SimpleSpec:
    name: str
    bootstrap: str
    topic: str
    partitions: int
    group_id: str
    total_events: int
    clickhouse_dir: str
    result_path: str
    options: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> SimpleSpec:
        return cls(**json.loads(path.read_text()))

    @property
    def dsn(self) -> str:
        return f"chdb:///{self.clickhouse_dir}"


@dataclass
class PeerResult:
    name: str
    events: int
    started_at: float  # after imports and ClickHouse setup, before consuming
    first_record_at: float
    done_at: float
    counts: list[tuple[int, str, str, int]]
    dropped_late: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> PeerResult:
        data = json.loads(path.read_text())
        data["counts"] = [tuple(row) for row in data["counts"]]
        return cls(**data)


def open_clickhouse(spec: SimpleSpec) -> Any:
    """A chDB client on the peer's own directory with the counts table created."""
    import clickhouse_connect

    Path(spec.clickhouse_dir).mkdir(parents=True, exist_ok=True)
    admin = clickhouse_connect.get_client(dsn=spec.dsn)
    admin.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    client = clickhouse_connect.get_client(dsn=spec.dsn, database=DATABASE)
    client.command(COUNTS_DDL)
    return client


def final_counts(client: Any) -> list[tuple[int, str, str, int]]:
    return [
        (int(w), str(t), str(c), int(n))
        for w, t, c, n in client.query(FINAL_COUNTS_SQL).result_rows
    ]


def delta_columns(deltas: dict[tuple[int, str, str], int]) -> list[list[Any]]:
    """Column-oriented insert data for ``simple_counts`` (the fast clickhouse-connect path)."""
    keys = list(deltas)
    return [
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [deltas[k] for k in keys],
    ]


def insert_deltas(client: Any, deltas: dict[tuple[int, str, str], int]) -> None:
    if deltas:
        client.insert(
            COUNTS_TABLE, delta_columns(deltas), column_names=COUNTS_COLUMNS, column_oriented=True
        )


def now() -> float:
    return time.time()
