"""Changing funnels.yaml, end to end (docs/semantics.md section 3, "Changing funnels.yaml").

Funnels A are the two default funnels; B is A plus ``browse_to_cart``. A worker with A
consumes part 1 of the simulated traffic until idle; part 2, starting hours after part 1
ended (more than the session timeout plus the lateness, so no session spans the
restart), is consumed by the worker restarted with B. Every run stops with
``--until-idle`` in replay (FUNNEL_REPLAY=true), so its inputs end finished: the
watermark moves to just after the last event (docs/semantics.md section 1) and the
truth is computed with ``inputs_finished=True``. That closes the sessions that ended
more than the session timeout before the end of part 1, not the last ones: those are
still open at the restart.

- The new funnel counts from the restart on: the sessions closed before it are not
  re-evaluated, the ones still open are (section 3). Its rows equal the truth of B over
  part 2 plus the part-1 sessions still open at the restart.
- The old funnels' rows over all traffic equal the truth of A over all events.
- ``funnel backfill --funnels B --database shop_backfill`` replays the topics into a new
  database in which every table (all three funnels, KPIs, lifecycle) equals the truth
  of B over all events, while the live database keeps its rows and the live triggers
  topic gets no record from the backfill.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from kafka import KafkaConsumer, TopicPartition

from funnel.settings import load_settings
from schemas.model import Event
from simulator.config import SimConfig
from simulator.generate import SimRecord, generate
from simulator.produce import produce
from simulator.truth import compute_truth
from simulator.truth_model import Truth, funnel_specs
from streams.funnels import DEFAULT_FUNNELS, load_funnels
from streams.topics import ensure_topics
from tests.pipeline_harness import (
    REPO_ROOT,
    PipelineEnv,
    Table,
    clickhouse,
    differences,
    free_port,
    pipeline_tables,
    truth_tables,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

HOUR_MS = 3_600_000
START = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp() * 1000)
NEW_FUNNEL = {
    "name": "browse_to_cart",
    "steps": ["view_item", "add_to_cart"],
    "scope": "session",
    "window": "30m",
}
OLD = ("shop", "checkout")
NEW = ("browse_to_cart",)
BACKFILL_DB = "shop_backfill"
IDLE = "3"


def part_config(seed: int, start_ms: int) -> SimConfig:
    return SimConfig(
        seed=seed,
        users=150,
        days=3 / 24,
        start_ms=start_ms,
        duplicate_pct=2,
        out_of_order_pct=5,
        malformed_pct=0.5,
    )


def run_cli(env: PipelineEnv, name: str, *args: str, timeout: float = 180.0) -> str:
    """``python -m funnel.cli ARGS`` with the pipeline's environment; its output."""
    env.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = env.data_dir / f"{name}.log"
    with log_path.open("wb") as log:
        result = subprocess.run(
            [sys.executable, "-m", "funnel.cli", *args],
            env=env.env(free_port()),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            timeout=timeout,
            check=False,
        )
    output = log_path.read_text(errors="replace")
    assert result.returncode == 0, f"{name} exited with {result.returncode}:\n{output[-8000:]}"
    return output


def only(tables: dict[str, Table], funnels: tuple[str, ...]) -> dict[str, Table]:
    """The funnel tables' rows of ``funnels`` (``funnel_*``; key[0] is the funnel name)."""
    return {
        name: {k: v for k, v in rows.items() if k[0] in funnels}
        for name, rows in tables.items()
        if name.startswith("funnel_")
    }


def end_offsets(bootstrap: str, topic: str) -> int:
    """Records ever appended to ``topic`` (sum of its partitions' end offsets)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","))
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    finally:
        consumer.close()
    return sum(ends.values())


@dataclass
class Scenario:
    env: PipelineEnv
    part1: list[SimRecord]
    part2: list[SimRecord]
    funnels_a: Path
    funnels_b: Path
    live: dict[str, Table]
    backfill: dict[str, Table]
    live_triggers_before: int
    live_triggers_after: int
    backfill_triggers: int
    backfill_output: str

    def truth(self, funnels: Path, records: list[SimRecord]) -> Truth:
        config = part_config(0, START)
        return compute_truth(
            records,
            lateness_ms=config.lateness_ms,
            session_timeout_ms=config.session_timeout_ms,
            window_ms=config.window_ms,
            funnels=funnel_specs(load_funnels(funnels)),
            # Every run stops with --until-idle in replay: the inputs end finished.
            inputs_finished=True,
        )


def event_times(records: list[SimRecord]) -> list[int]:
    return [r.event.event_time_ms for r in records if r.event is not None]


@pytest.fixture(scope="module")
def scenario(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("funnel_change")
    funnels_a = root / "funnels_a.yaml"
    funnels_a.write_text(DEFAULT_FUNNELS.read_text("utf-8"))
    document = yaml.safe_load(funnels_a.read_text())
    document["funnels"].append(NEW_FUNNEL)
    funnels_b = root / "funnels_b.yaml"
    funnels_b.write_text(yaml.safe_dump(document, sort_keys=False))

    part1 = list(generate(part_config(61, START)))
    config = part_config(0, START)
    # Hours after the last event of part 1: no session, window or lateness interval spans it.
    gap_ms = 2 * HOUR_MS
    assert gap_ms > config.session_timeout_ms + config.lateness_ms
    part2 = list(generate(part_config(62, max(event_times(part1)) + gap_ms)))

    env = PipelineEnv.with_fresh_topics(kafka_bootstrap, root / "data")
    ensure_topics(load_settings(bootstrap_servers=env.bootstrap, topics=env.topics, partitions=4))
    asyncio.run(produce(part1, env.bootstrap, env.topics, speedup=None, rate=None))
    run_cli(env, "worker-a", "worker", "--funnels", str(funnels_a), "--until-idle", IDLE)
    asyncio.run(produce(part2, env.bootstrap, env.topics, speedup=None, rate=None))
    run_cli(env, "worker-b", "worker", "--funnels", str(funnels_b), "--until-idle", IDLE)
    live_triggers_before = end_offsets(env.bootstrap, env.topics.triggers)
    # The live worker is stopped: the embedded ClickHouse directory is free (one process).
    output = run_cli(
        env,
        "backfill",
        "backfill",
        "--funnels",
        str(funnels_b),
        "--database",
        BACKFILL_DB,
        "--until-idle",
        IDLE,
    )
    # Read only now: the test process holds the chDB directory once it opens it.
    live = pipeline_tables(clickhouse(env))
    backfill = pipeline_tables(clickhouse(env, database=BACKFILL_DB))
    return Scenario(
        env=env,
        part1=part1,
        part2=part2,
        funnels_a=funnels_a,
        funnels_b=funnels_b,
        live=live,
        backfill=backfill,
        live_triggers_before=live_triggers_before,
        live_triggers_after=end_offsets(env.bootstrap, env.topics.triggers),
        backfill_triggers=end_offsets(
            env.bootstrap, f"{env.topics.triggers}.backfill-{BACKFILL_DB}"
        ),
        backfill_output=output,
    )


def open_at_restart(records: list[SimRecord], watermarks: dict[int, int]) -> list[SimRecord]:
    """The records of the session segments still open when the first worker stopped: a
    segment closes once its partition's watermark passes its last event time plus the
    session timeout (docs/semantics.md section 2)."""
    timeout_ms = part_config(0, START).session_timeout_ms
    sessions: dict[tuple[str, str], dict[str, Event]] = defaultdict(dict)
    partition: dict[str, int] = {}
    for record in records:
        event = record.event
        if event is not None and not record.is_duplicate and not record.intended_late:
            sessions[(event.anonymous_id, event.session_id)][event.event_id] = event
            partition[event.anonymous_id] = record.partition
    still_open: set[tuple[str, str]] = set()
    for (anonymous_id, _session), by_id in sessions.items():
        events = sorted(by_id.values(), key=lambda e: (e.event_time_ms, e.event_id))
        segment_start = 0
        for i in range(1, len(events) + 1):
            ends = i == len(events) or (
                events[i].event_time_ms - events[i - 1].event_time_ms > timeout_ms
            )
            if not ends:
                continue
            if events[i - 1].event_time_ms + timeout_ms >= watermarks[partition[anonymous_id]]:
                still_open.update((anonymous_id, e.event_id) for e in events[segment_start:i])
            segment_start = i
    return [
        r
        for r in records
        if r.event is not None and (r.event.anonymous_id, r.event.event_id) in still_open
    ]


def entities_before(tables: dict[str, Table], funnel: str, before_s: int) -> int:
    """Entities of ``funnel`` credited in windows before ``before_s``."""
    outcomes = tables["funnel_outcomes_minute"]
    return sum(v[0] for k, v in outcomes.items() if k[0] == funnel and k[1] < before_s)


def test_a_new_funnel_counts_from_the_restart_on(scenario: Scenario) -> None:
    got = only(scenario.live, NEW)
    assert got["funnel_steps_minute"], "the new funnel wrote no rows"
    watermarks = scenario.truth(scenario.funnels_a, scenario.part1).final_watermarks
    still_open = open_at_restart(scenario.part1, watermarks)
    want = only(truth_tables(scenario.truth(scenario.funnels_b, still_open + scenario.part2)), NEW)
    assert not differences(got, want), differences(got, want)
    # Part 1 counts only through the sessions open at the restart, not the closed ones.
    part2_start_s = min(event_times(scenario.part2)) // 1000
    live = entities_before(scenario.live, NEW[0], part2_start_s)
    replayed = entities_before(scenario.backfill, NEW[0], part2_start_s)
    assert 0 < live < replayed, (live, replayed)
    print(
        f"\nnew funnel: {sum(len(r) for r in got.values())} rows = truth of B over part 2 and "
        f"the {len({r.event.session_id for r in still_open if r.event})} sessions open at the "
        f"restart ({live} of part 1's {replayed} entities)"
    )


def test_the_old_funnels_count_all_traffic(scenario: Scenario) -> None:
    got = only(scenario.live, OLD)
    every = scenario.part1 + scenario.part2
    want = only(truth_tables(scenario.truth(scenario.funnels_a, every)), OLD)
    assert all(want.values()), {name: len(rows) for name, rows in want.items()}
    assert not differences(got, want), differences(got, want)
    print(f"\nold funnels over both parts: {sum(len(r) for r in got.values())} rows = truth")


def test_a_backfill_recomputes_all_history_for_the_new_definitions(scenario: Scenario) -> None:
    every = scenario.part1 + scenario.part2
    got = scenario.backfill
    # Every table, not only the funnels: a backfill is a replay into fresh state.
    want = truth_tables(scenario.truth(scenario.funnels_b, every))
    assert {key[0] for key in got["funnel_steps_minute"]} == set(OLD + NEW)
    assert not differences(got, want), differences(got, want)
    # The new funnel now has history from part 1, which the live database lacks.
    part2_start_s = min(event_times(scenario.part2)) // 1000
    assert any(k[1] < part2_start_s for k in only(got, NEW)["funnel_steps_minute"])
    # The live database is untouched; its old funnels equal the backfill's.
    assert only(scenario.live, OLD) == only(got, OLD)
    # Triggers went to the backfill's own topic, none to the live consumers.
    assert scenario.live_triggers_after == scenario.live_triggers_before
    assert scenario.backfill_triggers > 0
    assert f"FUNNEL_CLICKHOUSE_DATABASE={BACKFILL_DB}" in scenario.backfill_output
    print(
        f"\nbackfill: {sum(len(r) for r in got.values())} rows = truth of B over all events; "
        f"{scenario.backfill_triggers} triggers on its own topic"
    )
