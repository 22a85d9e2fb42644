"""Three workers over 12 partitions under churn (issue #18, item 1).

Traffic is produced live while the consumer group changes three times:
1. a fourth worker joins;
2. one worker leaves cleanly (SIGTERM);
3. one worker is SIGKILLed and comes back on its own data directory.

Each worker owns its embedded ClickHouse, as today. The newest version of every row
across the stores is what one shared ClickHouse server would hold
(``tests.multi_worker.newest_rows``). With a shared server the same
test needs no merging: point every worker at it with FUNNEL_CLICKHOUSE_DSN and read the
tables once.

Then:
- the funnel, KPI and attribution tables equal the simulator's truth;
- no partition is left behind: the group has committed every input record, and every
  partition was rebuilt by some worker;
- every trigger was published exactly once;
- each rebalance's time, from the change to the first batch processed on every moved
  partition, is printed (each worker logs when it takes a partition, with a timestamp
  in the row version).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest
from prometheus_client.parser import text_string_to_metric_families

from funnel.settings import load_settings
from schemas.codec import EventCodec
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.truth import compute_truth
from streams.topics import ensure_topics
from tests import multi_worker
from tests.integration.live_traffic import LiveTraffic
from tests.multi_worker import NEWEST, committed_lag, newest_rows, recoveries
from tests.pipeline_harness import PipelineEnv, WorkerProcess, differences, read_topic, truth_tables

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PARTITIONS = 12
CONFIG = SimConfig(
    seed=23,
    users=900,
    days=0.25,
    partitions=PARTITIONS,
    duplicate_pct=2,
    out_of_order_pct=5,
    late_pct=1,
    malformed_pct=0.5,
)
# The produce pace. The churn takes about 60 s here; the records not sent by the end of
# it go out at once then (LiveTraffic), so a pace longer than the churn costs nothing and
# keeps the traffic live through the last change on a slower machine too.
SEND_SECONDS = 90.0


def taken_since(workers: list[WorkerProcess], since_ns: int) -> dict[int, int]:
    """Per partition: when (ns) a worker first took it after ``since_ns``."""
    out: dict[int, int] = {}
    for partition, versions in recoveries(workers).items():
        later = [v for v in versions if v > since_ns]
        if later:
            out[partition] = min(later)
    return out


def wait_for_rebalance(
    workers: list[WorkerProcess], since_ns: int, timeout: float = 180.0
) -> float:
    """Seconds from ``since_ns`` until every partition moved by the change was taken: the
    partitions taken since, once that set has not grown for 4 s."""
    deadline = time.monotonic() + timeout
    seen: dict[int, int] = {}
    settled_at = time.monotonic()
    while time.monotonic() < deadline:
        taken = taken_since(workers, since_ns)
        if len(taken) != len(seen):
            seen, settled_at = taken, time.monotonic()
        elif seen and time.monotonic() - settled_at >= 4:
            return (max(seen.values()) - since_ns) / 1e9
        time.sleep(0.5)
    raise AssertionError(f"no partition was taken again within {timeout:.0f} s: {seen}")


def settled(workers: list[WorkerProcess], final_watermarks: dict[int, int]) -> bool:
    """Has every partition's watermark, on the worker that holds it, reached the truth's
    final one (``shopfunnel_watermark_timestamp_seconds``), with no rows left waiting in
    any worker's sink queue (``shopfunnel_sink_queue_rows``)?"""
    marks: dict[int, set[int]] = {}
    for worker in workers:
        try:
            with urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return False
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "shopfunnel_watermark_timestamp_seconds":
                    partition = int(sample.labels["partition"])
                    marks.setdefault(partition, set()).add(round(sample.value * 1000))
                elif sample.name == "shopfunnel_sink_queue_rows" and sample.value:
                    return False
    return marks == {p: {w} for p, w in final_watermarks.items()}


def prefetch_newest_sources(envs: list[PipelineEnv], monkeypatch: pytest.MonkeyPatch) -> None:
    """Read the rows ``newest_rows`` asks each store for in one child process per store,
    the stores side by side, instead of one child per table and store (each child pays
    Python's and chDB's start). ``tests.multi_worker.rows_of`` then answers from what was
    read; anything else it is asked still goes to a child of its own."""
    sqls = [
        f"SELECT {keys}, {values}, is_final, version FROM {table} FINAL"
        for table, (keys, values) in NEWEST.items()
    ]
    script = (
        "import json, sys, clickhouse_connect\n"
        "c = clickhouse_connect.get_client(dsn=sys.argv[1], database='shop')\n"
        "print(json.dumps([c.query(q).result_rows for q in json.load(sys.stdin)], default=str))\n"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, f"chdb://{env.data_dir.resolve() / 'clickhouse'}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for env in envs
    ]
    read: dict[tuple[Path, str], list[list[Any]]] = {}
    for env, child in zip(envs, children, strict=True):
        out, _ = child.communicate(json.dumps(sqls), timeout=300)
        assert child.returncode == 0, f"reading {env.data_dir} failed ({child.returncode})"
        for sql, rows in zip(sqls, json.loads(out), strict=True):
            read[(env.data_dir.resolve(), sql)] = rows
    one_by_one = multi_worker.rows_of

    def rows_of(env: PipelineEnv, sql: str) -> list[list[Any]]:
        rows = read.get((env.data_dir.resolve(), sql))
        return list(rows) if rows is not None else one_by_one(env, sql)

    monkeypatch.setattr(multi_worker, "rows_of", rows_of)


def test_workers_join_leave_and_die_and_every_row_still_equals_the_truth(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert set(NEWEST)
    records = list(generate(CONFIG))
    truth = compute_truth(
        records,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
        window_ms=CONFIG.window_ms,
    )
    # The group notices a killed worker after the consumer session timeout (default 10 s).
    fast = {"FUNNEL_CONSUMER_SESSION_TIMEOUT_SECONDS": "6"}
    first = PipelineEnv.with_fresh_topics(
        kafka_bootstrap, tmp_path / "w0", partitions=PARTITIONS, extra=dict(fast)
    )
    envs = [first] + [
        PipelineEnv(
            first.bootstrap,
            first.topics,
            tmp_path / f"w{n}",
            app_id=first.app_id,
            partitions=PARTITIONS,
            extra=dict(fast),
        )
        for n in range(1, 4)
    ]
    ensure_topics(
        load_settings(bootstrap_servers=first.bootstrap, topics=first.topics, partitions=PARTITIONS)
    )
    # Paced so the traffic is live through every change; the rest at once after the last.
    traffic = LiveTraffic(
        records, first.bootstrap, first.topics, rate=len(records) / SEND_SECONDS
    ).start()
    everyone: list[WorkerProcess] = []
    workers = [WorkerProcess(envs[n], until_idle=None, name=f"w{n}") for n in range(3)]
    everyone += workers
    for worker in workers:
        worker.wait_for_metric("shopfunnel_events_ingested_total", 1, timeout=180)
    times: dict[str, float] = {}

    # 1. A fourth worker joins.
    since = time.time_ns()
    joined = WorkerProcess(envs[3], until_idle=None, name="w3")
    everyone.append(joined)
    joined.wait_for_metric("shopfunnel_events_ingested_total", 1, timeout=180)
    times["join"] = wait_for_rebalance(everyone, since)

    # 2. One leaves cleanly.
    leaving = workers[1]
    since = time.time_ns()
    leaving.terminate()
    assert leaving.wait(60) == 0, leaving.log_tail()
    times["leave"] = wait_for_rebalance(everyone, since)

    # 3. One is SIGKILLed and comes back on its own store.
    since = time.time_ns()
    workers[2].kill()
    workers[2].wait(30)
    times["kill"] = wait_for_rebalance(everyone, since)
    since = time.time_ns()
    back = WorkerProcess(envs[2], until_idle=None, name="w2-back")
    everyone.append(back)
    back.wait_for_metric("shopfunnel_events_ingested_total", 1, timeout=180)
    times["come back"] = wait_for_rebalance(everyone, since)

    sent_during_churn = traffic.hurry()
    assert sent_during_churn < len(records), "input must still be arriving through the churn"
    traffic.join(300)
    lag = None
    for _ in range(480):
        lag = committed_lag(first)
        if lag == 0:
            break
        time.sleep(0.5)
    assert lag == 0, f"partitions left behind: {lag} records not committed by the group"
    alive = [w for w in everyone if w.process.poll() is None]
    assert len(alive) == 3, [w.log_path.name for w in alive]
    # Let every worker reach its final watermark and flush its rows.
    deadline = time.monotonic() + 120
    while not settled(alive, truth.final_watermarks):
        assert time.monotonic() < deadline, "the workers' watermarks never reached the truth's"
        time.sleep(0.5)
    for worker in alive:
        worker.terminate()
        assert worker.wait(60) == 0, worker.log_tail()

    recovered = recoveries(everyone)
    assert set(recovered) == set(range(PARTITIONS)), recovered
    prefetch_newest_sources(envs, monkeypatch)
    got = newest_rows(envs, recovered)
    want = {table: rows for table, rows in truth_tables(truth).items() if table in NEWEST}
    diff = differences(got, want)
    assert not diff, diff

    published = Counter(
        EventCodec().decode_trigger(v).trigger_id
        for v in read_topic(first.bootstrap, first.topics.triggers)
    )
    assert published, "the scenario must publish triggers"
    assert not {t: n for t, n in published.items() if n > 1}, "a trigger published twice"
    # Each one is a trigger of the truth (the workers stopped without declaring the inputs
    # finished, so the last lateness interval's triggers may not be due yet).
    want_triggers = {t.trigger_id for t in truth.triggers}
    assert set(published) <= want_triggers, set(published) - want_triggers
    print(f"triggers: {len(published)} published once each of {len(want_triggers)} in the truth")
    print("rebalance seconds (change to every moved partition processed):", times)
