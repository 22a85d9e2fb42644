"""The benchmark's input: simulator traffic, kept compact, plus the simple workload's view.

The full workload uses the simulator's records as they are (Confluent Avro on the three
input topics). The simple workload uses one flat JSON object per valid event with the
channel already resolved, so every system runs the same logic (parse, window, count)
and none pays for rules another cannot express (the ClickHouse Kafka engine cannot run
``schemas/channels.yaml``).

Generating is the slow part (~14k records/s), so a dataset is cached on disk, keyed by
its configuration and a hash of the simulator and schema sources.
"""

from __future__ import annotations

import hashlib
import pickle
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple, cast

import orjson

from schemas.channels import ChannelRules
from schemas.model import StreamKind
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.records import SimRecord

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_FORMAT = 1
WINDOW_MS = 60_000

CountKey = tuple[int, str, str]  # (window start ms, event_type, channel)


class InputRecord(NamedTuple):
    """One simulator record as sent to Kafka (without the simulator's bookkeeping)."""

    stream: str
    partition: int
    key: bytes
    value: bytes
    send_time_ms: int


class SimpleRecord(NamedTuple):
    partition: int
    key: bytes
    value: bytes  # flat JSON, see simple_value()


@dataclass(frozen=True)
class Dataset:
    config: SimConfig
    records: list[InputRecord]
    simple: list[SimpleRecord]
    expected: dict[CountKey, int]  # the simple workload's recount

    @property
    def simple_events(self) -> int:
        return len(self.simple)


def window_start(event_time_ms: int) -> int:
    return event_time_ms // WINDOW_MS * WINDOW_MS


def simple_value(record: SimRecord, channel: str) -> bytes:
    event = record.event
    assert event is not None
    return orjson.dumps(
        {
            "event_id": event.event_id,
            "event_type": event.event_type,
            "event_time": event.event_time_ms,
            "anonymous_id": event.anonymous_id,
            "session_id": event.session_id,
            "channel": channel,
        }
    )


def recount(values: Iterable[bytes]) -> dict[CountKey, int]:
    """The simple workload's answer, computed straight from the produced records."""
    counts: Counter[CountKey] = Counter()
    for raw in values:
        event = orjson.loads(raw)
        counts[(window_start(event["event_time"]), event["event_type"], event["channel"])] += 1
    return dict(counts)


def as_sim_records(records: Iterable[InputRecord]) -> Iterator[SimRecord]:
    """What ``simulator.produce.produce`` takes (it reads only the Kafka fields)."""
    for r in records:
        stream = cast(StreamKind, r.stream)
        yield SimRecord(
            stream, r.partition, r.key, r.value, r.send_time_ms, None, None, False, False
        )


def simple_as_sim_records(records: Iterable[SimpleRecord]) -> Iterator[SimRecord]:
    """Simple records go to one topic: every stream name maps to it (see simple.py)."""
    for r in records:
        yield SimRecord("clickstream", r.partition, r.key, r.value, 0, None, None, False, False)


def _sources_hash() -> str:
    digest = hashlib.sha256()
    for folder in ("simulator", "schemas"):
        for path in sorted((REPO_ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in {".py", ".yaml", ".json", ".avsc"}:
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cache_path(cache_dir: Path, config: SimConfig) -> Path:
    key = orjson.dumps(
        {"format": CACHE_FORMAT, "config": asdict(config), "sources": _sources_hash()},
        option=orjson.OPT_SORT_KEYS,
    )
    return cache_dir / f"dataset-{hashlib.sha256(key).hexdigest()[:20]}.pickle"


def build(config: SimConfig) -> Dataset:
    rules = ChannelRules.load()
    records: list[InputRecord] = []
    simple: list[SimpleRecord] = []
    for record in generate(config):
        records.append(
            InputRecord(
                record.stream, record.partition, record.key, record.value, record.send_time_ms
            )
        )
        event = record.event
        if event is not None and not record.is_duplicate:
            channel = rules.classify(event.utm_source, event.utm_medium, event.referrer)
            simple.append(SimpleRecord(record.partition, record.key, simple_value(record, channel)))
    return Dataset(config, records, simple, recount(r.value for r in simple))


def load(config: SimConfig, cache_dir: Path | None) -> tuple[Dataset, bool]:
    """The dataset for ``config`` and whether it came from the cache."""
    if cache_dir is None:
        return build(config), False
    path = _cache_path(cache_dir, config)
    if path.exists():
        with path.open("rb") as handle:
            # Our own cache file, written below; not input from anyone else.
            cached: Dataset = pickle.load(handle)
            return cached, True
    built = build(config)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        pickle.dump(built, handle, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return built, False
