"""Forgetting people end to end (issue #17, docs/forget.md): broker, worker, chDB, CLI.

A day of simulated traffic (duplicates, disorder, late and malformed records) is
produced; then `funnel forget` sends requests for two buyers, before any worker ran, so
each request meets some of the person's events already processed and others still in
the topics. The first worker SIGKILLs itself inside the first forget (after its
corrections are written, before the deletes); a second one finishes the inputs. Then:

- every table equals the simulator's truth over the records without the two people's
  (aggregates, lifecycle rows, triggers, raw, late events and dead letters);
- a search of every column of every table for either id finds nothing;
- the audit has one `done` row per request, with no personal data;
- `funnel forget --user` resolves a user id to its visitor ids (dry run).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from funnel.settings import load_settings
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.produce import produce
from simulator.records import SimRecord
from simulator.truth import compute_truth
from simulator.truth_model import Truth
from sinks.forget_store import find_person
from streams.topics import ensure_topics
from tests.pipeline_harness import (
    REPO_ROOT,
    PipelineEnv,
    WorkerProcess,
    assert_matches_truth,
    clickhouse,
    free_port,
    run_until_idle,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CONFIG = SimConfig(
    seed=33,
    users=300,
    days=1,
    duplicate_pct=3,
    out_of_order_pct=8,
    late_pct=1.5,
    malformed_pct=2,
    json_pct=10,
)


def _truth(records: list[SimRecord]) -> Truth:
    return compute_truth(
        records,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
        window_ms=CONFIG.window_ms,
        inputs_finished=True,
    )


def _two_buyers(records: list[SimRecord]) -> tuple[list[str], list[SimRecord], Truth]:
    """Two buyers whose records decide no one else's lateness (tests/unit/test_forget_core.py
    explains why the truth without them is comparable only then), with a malformed record."""
    truth = _truth(records)
    malformed = {r.key for r in records if r.event is None}
    buyers = sorted(
        {
            r.key
            for r in records
            if r.event is not None and r.event.event_type == "purchase" and r.key in malformed
        }
        | {r.key for r in records if r.event is not None and r.event.event_type == "purchase"}
    )
    rnd = random.Random(3)
    for _ in range(10):
        people = rnd.sample(buyers, 2)
        kept = [r for r in records if r.key not in people]
        without = _truth(kept)
        gone = {r.event.event_id for r in records if r.event is not None and r.key in people}
        if set(without.late_event_ids) == set(truth.late_event_ids) - gone:
            return [p.decode() for p in people], kept, without
    raise AssertionError("no pair of buyers leaves everyone else's lateness alone")


def _cli(env: PipelineEnv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "funnel.cli", *args],
        env={**env.env(free_port()), "COLUMNS": "200"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_forgotten_people_leave_no_trace_and_every_table_equals_the_truth_without_them(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    import asyncio

    records = list(generate(CONFIG))
    people, kept, without = _two_buyers(records)
    env = PipelineEnv.with_fresh_topics(
        kafka_bootstrap, tmp_path / "pipeline", partitions=CONFIG.partitions
    )
    ensure_topics(
        load_settings(bootstrap_servers=env.bootstrap, topics=env.topics, partitions=env.partitions)
    )
    asyncio.run(produce(records, env.bootstrap, env.topics, speedup=None, rate=None))
    for n, person in enumerate(people):
        sent = _cli(env, "forget", "--anonymous-id", person, "--request-id", f"drill-{n}")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert f"drill-{n}" in sent.stdout

    marker = tmp_path / "crashed"
    env.extra.update(FORGET_CRASH_AT="corrected", FORGET_CRASH_MARKER=str(marker))
    started = time.monotonic()
    crashing = WorkerProcess(
        env, until_idle=3.0, module="tests.integration.forget_crash_worker", name="crash"
    )
    code = crashing.wait(240)
    assert code == -9, f"the drill worker should have SIGKILLed itself; log:\n{crashing.log_tail()}"
    assert marker.read_text().split()[1] == "corrected"
    # Everything is in the topics before it starts: a second of idleness means read to the end.
    run_until_idle(env, name="after-kill", until_idle=1.0)
    elapsed = time.monotonic() - started

    assert_matches_truth(env, without, kept)
    client = clickhouse(env)
    try:
        for person in people:
            left = {table: n for table, n in find_person(client, person).items() if n}
            assert not left, f"{person} is still in {left}"
        audit = client.query(
            "SELECT request_id, phase, events_forgotten, rows_corrected, rows_deleted, "
            "duration_ms FROM forget_audit FINAL ORDER BY request_id"
        ).result_rows
        assert [(r[0], r[1]) for r in audit] == [("drill-0", "done"), ("drill-1", "done")]
        text = repr(audit)
        assert not any(person in text for person in people)
        user = next(
            r.event.user_id for r in kept if r.event is not None and r.event.user_id is not None
        )
        print(f"forget drill: {audit} in {elapsed:.1f} s (both workers)")
    finally:
        client.close()
    resolved = _cli(env, "forget", "--user", user, "--dry-run")
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    owners = {r.key.decode() for r in kept if r.event is not None and r.event.user_id == user}
    assert owners and all(o in resolved.stdout for o in owners), resolved.stdout
