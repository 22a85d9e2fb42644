"""End to end on real parts: Kafka broker, `funnel worker` subprocesses, embedded ClickHouse.

Simulated traffic with duplicates, disorder, late and malformed records is produced to
fresh topics; every aggregate row the workers write must equal the simulator's
independent ground truth (docs/semantics.md), also after SIGKILLs mid-stream, on a
replay into fresh state, and across a ClickHouse outage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from funnel.settings import load_settings
from reports import exploration, queries
from schemas.model import Event
from simulator import truth_exploration as tx
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.produce import produce
from simulator.records import SimRecord
from simulator.truth import compute_truth
from simulator.truth_model import Truth, funnel_specs
from streams.app import CHANGELOG_TOPIC_CONFIGS, STATE_TABLE
from streams.funnels import load_funnels
from streams.topics import ensure_topics
from streams.worker import SHUTDOWN_HARD_MARGIN_SECONDS
from tests.integration.live_traffic import LiveTraffic
from tests.pipeline_harness import (
    PipelineEnv,
    WorkerProcess,
    assert_matches_truth,
    attempt_levels,
    clickhouse,
    differences,
    free_port,
    pipeline_tables,
    run_until_idle,
    truth_tables,
    window_funnel_levels,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

# Ten funnels: every mode and scope, filters, exclusions, per-step windows, breakdowns
# and a custom event (docs/semantics.md section 3), so each goes through the replay, kill
# and outage drills below and is compared with the truth.
MIXED_FUNNELS = Path(__file__).parents[2] / "bench" / "funnels_mixed.yaml"

CONFIG = SimConfig(
    seed=11,
    users=700,
    days=0.3,
    duplicate_pct=3,
    out_of_order_pct=8,
    late_pct=1.5,
    malformed_pct=1,
    json_pct=10,
)


@pytest.fixture(scope="module")
def simulated() -> tuple[list[SimRecord], Truth]:
    records = list(generate(CONFIG))
    truth = compute_truth(
        records,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
        window_ms=CONFIG.window_ms,
        # The workers stop with --until-idle in replay: the inputs end finished.
        inputs_finished=True,
        funnels=funnel_specs(load_funnels(MIXED_FUNNELS)),
    )
    return records, truth


def _create_topics(env: PipelineEnv) -> None:
    ensure_topics(
        load_settings(bootstrap_servers=env.bootstrap, topics=env.topics, partitions=env.partitions)
    )


def _produce(env: PipelineEnv, records: list[SimRecord], rate: float | None = None) -> None:
    asyncio.run(produce(records, env.bootstrap, env.topics, speedup=None, rate=rate))


@pytest.fixture(scope="module")
def loaded(
    kafka_bootstrap: str,
    simulated: tuple[list[SimRecord], Truth],
    tmp_path_factory: pytest.TempPathFactory,
) -> PipelineEnv:
    """The simulated run, produced once to fresh topics (workers use fresh groups)."""
    env = PipelineEnv.with_fresh_topics(
        kafka_bootstrap, tmp_path_factory.mktemp("loaded"), funnels=MIXED_FUNNELS
    )
    _create_topics(env)
    _produce(env, simulated[0])
    return env


@pytest.fixture(scope="module")
def processed(
    loaded: PipelineEnv, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PipelineEnv, WorkerProcess]:
    """One worker run over the loaded topics (fresh group and state), shared by the tests
    that only read what it wrote."""
    env = loaded.fork(tmp_path_factory.mktemp("processed"))
    return env, run_until_idle(env)


def test_worker_rows_equal_the_ground_truth(
    processed: tuple[PipelineEnv, WorkerProcess], simulated: tuple[list[SimRecord], Truth]
) -> None:
    env, worker = processed
    counts = assert_matches_truth(env, simulated[1], simulated[0])
    # 0.3 simulated days hold no repeat purchase, so no order gap; every other table has rows.
    assert all(n for table, n in counts.items() if table != "order_gaps_daily"), counts
    assert worker.log_path.exists()
    dead = clickhouse(env).query("SELECT count() FROM dead_letters FINAL").result_rows[0][0]
    assert dead == sum(1 for r in simulated[0] if r.event is None)
    # The state changelog is created with small segments, so restarts replay a bounded log.
    assert changelog_configs(env) == {**changelog_configs(env), **CHANGELOG_TOPIC_CONFIGS}
    _assert_window_funnel_agrees(env)
    _assert_report_timings_equal_the_truth(env, simulated[1])
    _assert_query_funnel_equals_the_live_user_funnels(env, simulated[0])


def _assert_query_funnel_equals_the_live_user_funnels(
    env: PipelineEnv, records: list[SimRecord]
) -> None:
    """Where the two semantics coincide, `funnel query funnel` (a person counted once in
    the range, docs/semantics.md 3a) equals the live user-scope funnels (attempt groups,
    section 3): the run spans less than a 1-day window, so each person has one group."""
    times = [r.event.event_time_ms for r in records if r.event is not None]
    assert max(times) - min(times) < 86_400_000
    client = clickhouse(env)
    live_timings = queries.step_timings(client)
    compared = 0
    for funnel in load_funnels(MIXED_FUNNELS):
        if funnel.scope != "user" or funnel.window_ms != 86_400_000 or not funnel.plain:
            continue
        query = exploration.FunnelQuery(
            steps=funnel.steps,
            from_ms=min(times),
            to_ms=max(times) + 1,
            window_ms=funnel.window_ms,
            mode=funnel.mode,
        )
        got = {r.step: r for r in exploration.run_funnel(client, query)}
        levels = attempt_levels(client, funnel.name)
        for k in range(1, len(funnel.steps) + 1):
            live_people = sum(1 for level in levels.values() if level >= k)
            assert got[k].people == live_people, (funnel.name, k)
            timing = live_timings.get((funnel.name, k))
            if k > 1 and timing is not None:
                assert got[k].avg_s == pytest.approx(timing.avg_s, abs=1e-6), (funnel.name, k)
                assert got[k].median_s == pytest.approx(timing.median_s, abs=1e-6)
        assert got[1].people > 20, funnel.name
        compared += 1
        people = [got[k].people for k in sorted(got)]
        print(f"\nquery funnel = live {funnel.name} ({funnel.mode}): people per step {people}")
    assert compared == 3  # ordered, strict and unordered user funnels
    client.close()


def _assert_report_timings_equal_the_truth(env: PipelineEnv, truth: Truth) -> None:
    """`funnel report funnel`'s time between steps and time to convert (mean and median,
    from funnel_attempts) equal the same statistics over the truth's attempts; and the
    command prints each funnel's own breakdown with them."""
    client = clickhouse(env)
    between: dict[tuple[str, int], list[int]] = defaultdict(list)
    to_convert: dict[tuple[str, tuple[str, ...]], list[int]] = defaultdict(list)
    for row in truth.funnel_attempts:
        times = row.step_times_ms
        for k in range(2, len(times) + 1):
            between[(row.funnel, k)].append(times[k - 1] - times[k - 2])
        if row.outcome == "converted":
            to_convert[(row.funnel, row.breakdown)].append(times[-1] - times[0])
    for got, want in (
        (queries.step_timings(client), between),
        (queries.time_to_convert(client), to_convert),
    ):
        assert set(got) == set(want)
        for key, values in want.items():
            timing = got[key]  # type: ignore[index]
            assert timing.entities == len(values), key
            assert timing.avg_s == pytest.approx(statistics.fmean(values) / 1000, abs=1e-9)
            assert timing.median_s == pytest.approx(statistics.median(values) / 1000, abs=1e-9)
    client.close()
    shown = subprocess.run(
        [sys.executable, "-m", "funnel.cli", "report", "funnel", "--funnels", str(MIXED_FUNNELS)],
        env={**env.env(free_port()), "COLUMNS": "250"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "Time to convert" in shown and "avg time from previous" in shown
    assert "cart_no_removal by channel, experiment:checkout_button" in shown, shown
    assert "size_guide by properties.membership_tier" in shown, shown


def _assert_window_funnel_agrees(env: PipelineEnv) -> None:
    """Second oracle: ClickHouse windowFunnel over events_raw gives each session segment
    the level the worker credited, for the ordered and strict ('strict_order') funnels
    with distinct, unfiltered steps."""
    client = clickhouse(env)
    for funnel in load_funnels(MIXED_FUNNELS):
        plain = all(not s.filters and s.within_ms is None for s in funnel.step_defs)
        if not (
            funnel.mode in ("ordered", "strict")
            and funnel.scope == "session"
            and plain
            and not funnel.exclusions
            and len(set(funnel.steps)) == len(funnel.steps)
        ):
            continue
        want, tied = window_funnel_levels(
            client,
            funnel.steps,
            funnel.window_ms,
            CONFIG.session_timeout_ms,
            strict=funnel.mode == "strict",
        )
        got = attempt_levels(client, funnel.name)
        compared = {key: got.get(key) for key in want}
        assert compared == want, funnel.name
        # The worker's other entities are the segments left out for ties, no more.
        assert len(set(got) - set(want)) <= tied, funnel.name
        assert len(want) > 50, f"{funnel.name}: too few segments to compare ({len(want)})"
        print(
            f"\nwindowFunnel {funnel.name}: {len(want)} segments equal, {tied} left out "
            "(tied times; strict: also several step-1 events)"
        )
    client.close()


# -- `funnel query paths | retention` against the truth (docs/semantics.md 3a) ----------

# Paths cases: (anchor, direction, depth).
PATH_CASES = (
    ("add_to_cart", "after", 3),
    ("view_item", "after", 5),
    ("custom:size_guide_opened", "after", 2),
    ("purchase", "before", 3),
    ("begin_checkout", "before", 6),
    ("session_start", "after", 1),
    # Anchors that recur in a session: --after from the first, --before to the last.
    ("view_item", "before", 3),
    ("page_view", "before", 2),
    ("page_view", "after", 4),
)
# Retention cases: (start, return).
RETENTION_CASES = (
    ("session_start", "purchase"),
    ("view_item", "add_to_cart"),
    ("page_view", "page_view"),
    # Returns that often come before the start event: period 0 counts only those at or
    # after the person's first start event.
    ("add_to_cart", "view_item"),
    ("purchase", "page_view"),
)
DAY_MS = 86_400_000


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def _exploration_ranges(records: list[SimRecord]) -> list[tuple[int, int]]:
    """The whole run, and the two sides of a cut 1 ms after the winning copy of a
    purchase re-sent with a new event_id later: on the right side that later copy is in
    the range, yet must not count (its transaction's winner is before --from)."""
    copies: dict[tuple[str, str], set[tuple[int, str]]] = defaultdict(set)
    for r in records:
        if r.event is not None and r.event.event_type == "purchase":
            copies[(r.event.anonymous_id, r.event.transaction_id or "")].add(
                (r.event.event_time_ms, r.event.event_id)
            )
    resent = sorted(
        sorted(c) for c in copies.values() if len({t for t, _ in c}) > 1
    )  # re-sent later in time, not just byte copies
    assert resent, "the run should re-send a purchase later with a new event_id"
    cut = resent[0][0][0] + 1
    times = [r.event.event_time_ms for r in records if r.event is not None]
    lo, hi = min(times), max(times) + 1
    assert lo < cut < hi
    return [(lo, hi), (cut, hi), (lo, cut)]


def _naive_events(records: list[SimRecord]) -> list[Event]:
    """Every decoded event, late copies, duplicates and re-sent purchases included: what
    the query would see if it ignored section 1 (the tests show this differs)."""
    return [r.event for r in records if r.event is not None]


def test_query_paths_equal_the_truth(
    processed: tuple[PipelineEnv, WorkerProcess], simulated: tuple[list[SimRecord], Truth]
) -> None:
    """`funnel query paths --after/--before` over the worker's events_raw equals the
    plain-Python paths over the simulator's counted events: every (step, source, target,
    sessions) row, in order; all links (limit 10000) and the top 2 of each step."""
    env, _ = processed
    records = simulated[0]
    counted = tx.counted_events(records, CONFIG.lateness_ms)
    naive = _naive_events(records)
    client = clickhouse(env)
    rows = differing = 0
    for from_ms, to_ms in _exploration_ranges(records):
        for anchor, direction, depth in PATH_CASES:
            for limit in (10_000, 2):
                got = exploration.run_paths(
                    client, anchor, direction, from_ms, to_ms, depth=depth, limit=limit
                )
                want = tx.paths(counted, anchor, direction, from_ms, to_ms, depth, limit)
                got_rows = [(e.step, e.source, e.target, e.count) for e in got]
                assert got_rows == [tuple(w) for w in want], (anchor, direction, from_ms, to_ms)
                rows += len(got_rows)
                if limit == 10_000:
                    assert {w.step for w in want} == set(range(1, depth + 1)), (anchor, depth)
                    wrong = tx.paths(naive, anchor, direction, from_ms, to_ms, depth, limit)
                    differing += wrong != want
    client.close()
    # Section 1 matters here: ignoring it would change some of these results.
    assert differing > 0
    assert rows > 500, rows
    print(f"\nquery paths = truth: {rows} rows; {differing} results differ without section 1")


def test_query_retention_equals_the_truth(
    processed: tuple[PipelineEnv, WorkerProcess], simulated: tuple[list[SimRecord], Truth]
) -> None:
    """`funnel query retention` by day, week and month over the worker's events_raw
    equals the truth's cohorts: sizes and returned people per period, a period starting
    at or after --to blank. The run lies within Sunday 2026-11-01 (its week began on
    Monday 2026-10-26), so only period 0 has people; --to at midnight two days later
    makes day periods 1 (0 people) and 2 (blank, starts exactly at --to) differ."""
    env, _ = processed
    records = simulated[0]
    counted = tx.counted_events(records, CONFIG.lateness_ms)
    naive = _naive_events(records)
    ranges = _exploration_ranges(records)
    ranges[0] = (ranges[0][0], _ms("2026-11-03T00:00:00"))
    client = clickhouse(env)
    cohorts = differing = returned_first = 0
    for from_ms, to_ms in ranges:
        for period in ("day", "week", "month"):
            for start, back in RETENTION_CASES:
                got = exploration.run_retention(client, start, back, period, 3, from_ms, to_ms)
                want = tx.retention(counted, start, back, period, 3, from_ms, to_ms)
                got_rows = [(c.cohort, c.size, c.returned) for c in got]
                assert got_rows == [tuple(w) for w in want], (start, back, period, from_ms, to_ms)
                cohorts += len(want)
                returned_first += want[0].returned[0] or 0
                differing += tx.retention(naive, start, back, period, 3, from_ms, to_ms) != want
    client.close()
    assert differing > 0 and returned_first > 0
    print(
        f"\nquery retention = truth: {cohorts} cohorts, {returned_first} returns in period 0; "
        f"{differing} differ without section 1"
    )


# Five hours around a Sunday midnight that is also a month's end (2026-05-31 -> 06-01):
# returns one day, one ISO week and one month later.
MIDNIGHT = dataclasses.replace(CONFIG, start_ms=_ms("2026-05-31T20:00:00"))


@pytest.fixture(scope="module")
def across_midnight(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[PipelineEnv, list[SimRecord]]:
    records = list(generate(MIDNIGHT))
    env = PipelineEnv.with_fresh_topics(kafka_bootstrap, tmp_path_factory.mktemp("midnight"))
    _create_topics(env)
    _produce(env, records)
    run_until_idle(env)
    return env, records


def test_query_retention_across_day_week_and_month_boundaries_equals_the_truth(
    across_midnight: tuple[PipelineEnv, list[SimRecord]],
) -> None:
    env, records = across_midnight
    counted = tx.counted_events(records, MIDNIGHT.lateness_ms)
    lo = min(r.event.event_time_ms for r in records if r.event is not None)
    midnight = _ms("2026-06-01T00:00:00")
    ranges = [
        (lo, midnight + 40 * DAY_MS),  # period 2 of the June cohort by month is blank
        (lo, midnight),  # every period after 0 is blank: it starts at --to
        (midnight - 2 * 3_600_000, midnight + 2 * 3_600_000 + 1),
    ]
    client = clickhouse(env)
    cohorts = 0
    returned_later: Counter[str] = Counter()
    for from_ms, to_ms in ranges:
        for period in ("day", "week", "month"):
            for start, back in RETENTION_CASES:
                got = exploration.run_retention(client, start, back, period, 3, from_ms, to_ms)
                want = tx.retention(counted, start, back, period, 3, from_ms, to_ms)
                got_rows = [(c.cohort, c.size, c.returned) for c in got]
                assert got_rows == [tuple(w) for w in want], (start, back, period, from_ms, to_ms)
                cohorts += len(want)
                returned_later[period] += sum(w.returned[1] or 0 for w in want)
    # More periods than one ClickHouse retention() call takes (31), some blank.
    for start, back in RETENTION_CASES:
        got = exploration.run_retention(client, start, back, "day", 40, lo, midnight + 35 * DAY_MS)
        want = tx.retention(counted, start, back, "day", 40, lo, midnight + 35 * DAY_MS)
        assert [(c.cohort, c.size, c.returned) for c in got] == [tuple(w) for w in want], start
        assert want and all(w.returned[34] == 0 and w.returned[36] is None for w in want)
        cohorts += len(want)
    client.close()
    # Some people return the next day, ISO week and month (all cross the same midnight).
    assert all(returned_later[p] for p in ("day", "week", "month")), returned_later
    print(
        f"\nquery retention across midnight = truth: {cohorts} cohorts; returns in period 1: "
        f"{dict(returned_later)}"
    )


def changelog_configs(env: PipelineEnv) -> dict[str, str]:
    admin = KafkaAdminClient(bootstrap_servers=env.bootstrap.split(","))
    try:
        topic = f"{env.app_id}-{STATE_TABLE}-changelog"
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        admin.close()
    # kafka-python 3: {resource type: {name: {config key: {"value": ...}}}}; only the
    # configs that differ from the broker's defaults.
    return {key: str(data["value"]) for key, data in described["topic"][topic].items()}


def test_replay_from_offset_zero_into_fresh_state_gives_identical_rows(
    loaded: PipelineEnv, simulated: tuple[list[SimRecord], Truth], tmp_path: Path
) -> None:
    first, second = loaded.fork(tmp_path / "a"), loaded.fork(tmp_path / "b")
    run_until_idle(first)
    run_until_idle(second)
    rows_a, rows_b = pipeline_tables(clickhouse(first)), pipeline_tables(clickhouse(second))
    assert rows_a == rows_b
    assert not differences(rows_b, truth_tables(simulated[1]))


def test_sigkill_at_random_points_leaves_every_aggregate_exact(
    kafka_bootstrap: str, simulated: tuple[list[SimRecord], Truth], tmp_path: Path
) -> None:
    """Traffic is produced live while the worker is SIGKILLed three times mid-stream."""
    records, truth = simulated
    env = PipelineEnv.with_fresh_topics(kafka_bootstrap, tmp_path, funnels=MIXED_FUNNELS)
    _create_topics(env)
    # Slow enough that input is still arriving when the last worker is killed; the rest
    # goes out at once after that kill (the final worker starts once it is all in).
    traffic = LiveTraffic(records, env.bootstrap, env.topics, rate=len(records) / 60.0).start()
    rnd = random.Random(20261124)
    recoveries: list[float] = []
    ingested_at_kill = 0.0
    for _ in range(3):
        worker = WorkerProcess(env, until_idle=None, name="killed")
        started = time.monotonic()
        worker.wait_for_metric("shopfunnel_events_ingested_total", 1, timeout=120)
        recoveries.append(time.monotonic() - started)
        time.sleep(rnd.uniform(0.5, 3.0))
        ingested_at_kill = worker.metric("shopfunnel_events_ingested_total") or 0.0
        worker.kill()
    sent_at_last_kill = traffic.hurry()
    traffic.join(120)
    # Everything is in the topics before it starts: a second of idleness means read to the end.
    final = run_until_idle(env, name="final", until_idle=1.0)
    assert ingested_at_kill < len(records), "the kills must happen before the input is consumed"
    assert sent_at_last_kill < len(records), "input must still be arriving at the last kill"
    counts = assert_matches_truth(env, truth, records)
    _assert_window_funnel_agrees(env)  # the second oracle, after the kills too
    print(
        f"\nkill test: 3 SIGKILLs, restart-to-first-batch {[round(r, 1) for r in recoveries]} s, "
        f"rows compared {counts}; final log tail:\n{final.log_tail(5)}"
    )


@pytest.fixture
def failing_clickhouse_module(tmp_path: Path) -> Iterator[str]:
    yield "tests.integration.flaky_clickhouse_worker"


def test_clickhouse_outage_loses_nothing(
    loaded: PipelineEnv,
    simulated: tuple[list[SimRecord], Truth],
    tmp_path: Path,
    failing_clickhouse_module: str,
) -> None:
    """Inserts fail for the first seconds of the run; the sink retries and catches up."""
    env = loaded.fork(tmp_path)
    env.extra["FLAKY_CLICKHOUSE_SECONDS"] = "8"
    worker = run_until_idle(env, module=failing_clickhouse_module)
    assert "insert into" in worker.log_path.read_text() and "failed" in worker.log_path.read_text()
    assert_matches_truth(env, simulated[1], simulated[0])


def test_sigterm_while_clickhouse_is_down_stops_within_the_bound_and_commits_nothing(
    loaded: PipelineEnv, tmp_path: Path, failing_clickhouse_module: str
) -> None:
    """The drills' worker ignored SIGTERM for 90 s while its writer retried. Now the writer
    gives up after the grace period and the worker exits within the bound; no Kafka offset
    passes the rows it could not write (ClickHouse was down all along, so none at all),
    so the next worker reads them again."""
    env = loaded.fork(tmp_path)
    grace = 3.0
    env.extra["FUNNEL_SHUTDOWN_GRACE_SECONDS"] = str(grace)
    env.extra["FLAKY_CLICKHOUSE_SECONDS"] = "100000"  # down for the whole run
    worker = WorkerProcess(env, until_idle=None, module=failing_clickhouse_module)
    # One batch is enough, and may be all there is: the next partition's recovery waits
    # for the writer (it reads back what was written), which cannot flush while
    # ClickHouse is down. Waiting for 100 events failed whenever the first batch was
    # smaller (seen at 17).
    worker.wait_for_metric("shopfunnel_events_ingested_total", 1, timeout=120)
    worker.wait_for_metric("shopfunnel_sink_failures_total", 3, timeout=120)
    stopped_at = time.monotonic()
    worker.terminate()
    bound = grace + SHUTDOWN_HARD_MARGIN_SECONDS
    code = worker.wait(bound + 15)  # raises if the worker is still running
    took = time.monotonic() - stopped_at
    assert "giving up on" in worker.log_path.read_text(), worker.log_tail()
    assert committed_offsets(env) == {}, "an offset was committed past unwritten rows"
    print(f"\nSIGTERM with ClickHouse down: exited with {code} after {took:.1f}s (bound {bound}s)")


def committed_offsets(env: PipelineEnv) -> dict[tuple[str, int], int]:
    """The worker group's committed offsets on the input topics (none: an empty dict)."""
    admin = KafkaAdminClient(bootstrap_servers=env.bootstrap.split(","))
    try:
        offsets = admin.list_group_offsets({env.app_id: None}).get(env.app_id, {})
    finally:
        admin.close()
    inputs = {env.topics.clickstream, env.topics.cart, env.topics.orders}
    return {
        (tp.topic, tp.partition): meta.offset
        for tp, meta in offsets.items()
        if tp.topic in inputs and meta.offset >= 0
    }
