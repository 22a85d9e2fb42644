"""An embedded store filled by the real processing core, for tests of what reads it.

Simulated records go through the real codec, channel rules and one
:class:`PartitionProcessor` per partition, as in ``tests/unit/test_core_vs_truth.py``;
every row the core emits is inserted into embedded ClickHouse migrated with the real
migrations, as the worker's writer would, plus the simulator's marketing costs as the
costs agent writes them.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from schemas.channels import ChannelRules
from schemas.codec import EventCodec
from schemas.costs import CostDay
from schemas.costs import CostRow as CostLine
from schemas.validation import ValidationBounds
from simulator.config import SimConfig
from simulator.costs import campaign_costs
from simulator.generate import generate
from simulator.records import SimRecord
from sinks.clickhouse import apply_migrations
from sinks.tables import TableSpec
from streams.checkpoint import meta_key
from streams.funnels import load_funnels
from streams.lifecycle import DAY_MS, LifecycleRules
from streams.outputs import marketing_costs
from streams.processor import PartitionProcessor
from streams.records import Record
from streams.visitor import Rules
from tests.unit.fakes import DictStore

TOPICS: Final = {"clickstream": "shop.clickstream", "cart": "shop.cart", "orders": "shop.orders"}
# Lifecycle thresholds of days, so that buyers of a simulated week move through every
# stage within it.
DAYS_LIFECYCLE: Final = LifecycleRules(
    new_ms=DAY_MS,
    dormant_ms=2 * DAY_MS,
    churn_ms=4 * DAY_MS,
    cart_abandon_ms=30 * 60_000,
    anonymous_ttl_ms=5 * DAY_MS,
    buyer_ttl_ms=12 * DAY_MS,
)


def core_rows(
    config: SimConfig,
    funnels_file: Path,
    lifecycle: LifecycleRules,
    records: Iterable[SimRecord] | None = None,
) -> dict[TableSpec, list[Any]]:
    """Every row the processing core emits for ``records`` (default: the simulation of
    ``config``), per table."""
    rules = Rules(
        load_funnels(funnels_file),
        window_ms=config.window_ms,
        session_timeout_ms=config.session_timeout_ms,
        lateness_ms=config.lateness_ms,
        lifecycle=lifecycle,
    )
    per_tp: dict[tuple[str, int], list[Record]] = defaultdict(list)
    for rec in generate(config) if records is None else records:
        queue = per_tp[(rec.stream, rec.partition)]
        queue.append(Record(len(queue), rec.key, rec.value, rec.send_time_ms))
    # The codec's stream parameter is a Literal of the three streams: a Decoder still.
    codec: Any = EventCodec(bounds=ValidationBounds(replay=True))
    channels = ChannelRules.load()
    rows: dict[TableSpec, list[Any]] = defaultdict(list)
    for partition in sorted({p for _, p in per_tp}):
        store = DictStore()
        proc = PartitionProcessor(partition, rules, codec, channels, TOPICS, store)

        def keep(result: Any, proc: PartitionProcessor = proc, store: DictStore = store) -> None:
            for key, value in result.state_writes.items():
                store.put(key, value, proc.partition)
            if result.meta:
                store.put(meta_key(proc.partition), proc.meta_record(), proc.partition)
            for spec, emitted in result.rows.items():
                rows[spec].extend(emitted)

        keep(proc.recover())
        inputs = {s: per_tp[(s, partition)] for s in TOPICS}
        position = dict.fromkeys(TOPICS, 0)
        rnd = random.Random(partition)
        while any(position[s] < len(inputs[s]) for s in TOPICS):
            stream = rnd.choice([s for s in TOPICS if position[s] < len(inputs[s])])
            chunk = inputs[stream][position[stream] : position[stream] + rnd.randint(50, 500)]
            position[stream] += len(chunk)
            keep(proc.process(stream, chunk, position[stream]))
        keep(proc.tick({s: len(inputs[s]) for s in TOPICS}, finished=True))
    return rows


def cost_rows(config: SimConfig) -> list[Any]:
    """The simulator's marketing costs, one import per day, as the costs agent writes."""
    by_day: dict[str, list[CostLine]] = defaultdict(list)
    for c in campaign_costs(config):
        by_day[c.day].append(
            CostLine(c.channel, c.utm_source, c.utm_medium, c.campaign, c.cost_minor, c.currency)
        )
    out: list[Any] = []
    for offset, (day, lines) in enumerate(sorted(by_day.items())):
        record = CostDay(day, config.end_ms, "simulator", tuple(lines))
        out.extend(marketing_costs.build_rows(record, 0, offset))
    return out


def fill_store(
    client: Any,
    config: SimConfig,
    funnels_file: Path,
    lifecycle: LifecycleRules,
    records: Iterable[SimRecord] | None = None,
) -> None:
    """Migrate the store behind ``client`` and insert the core's rows and the costs."""
    apply_migrations(client)
    for spec, rows in core_rows(config, funnels_file, lifecycle, records).items():
        client.insert(spec.name, [list(r) for r in rows], column_names=list(spec.columns))
    costs = marketing_costs.TABLE
    client.insert(
        costs.name, [list(r) for r in cost_rows(config)], column_names=list(costs.columns)
    )
