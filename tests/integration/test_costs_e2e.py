"""Marketing costs end to end (docs/semantics.md section 10, "Marketing cost").

A live worker reads the costs topic while `funnel costs import` sends the simulator's
costs.csv twice: v_marketing_costs (read through the worker's SQL endpoint) holds exactly
the file's rows, whose totals per day and currency are the file's. Then two malformed
records are produced raw to the costs topic (bytes that are not Avro, and a framed record
with an unknown channel): both land in the dead-letter topic and in dead_letters with
their reasons, and the worker goes on to apply a third import that drops a row of one day
and clears another (--clear-day). After the worker stops, the embedded store agrees.

Needs the wiring of issue #15: `attach_costs_agent` in streams/app.py, the costs topic in
streams/topics.py and `costs_app` in funnel/cli.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import clickhouse_connect
import pytest
from aiokafka import AIOKafkaProducer

from funnel.settings import TopicNames, load_settings
from schemas.codec import EventCodec
from schemas.costs import CostCodec, CostDay, CostRow
from simulator.config import SimConfig
from simulator.costs import CostRow as SimCostRow
from simulator.costs import campaign_costs, write_costs
from streams.topics import ensure_topics
from tests.pipeline_harness import (
    REPO_ROOT,
    PipelineEnv,
    WorkerProcess,
    clickhouse,
    free_port,
    read_topic,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CONFIG = SimConfig(seed=15, days=3)
WAIT_SECONDS = 180.0
T = TypeVar("T")

Rows = Counter[tuple[str, str, str, str, str, str, int]]


def fresh_topics() -> TopicNames:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    return TopicNames(
        clickstream=f"{prefix}.clickstream",
        cart=f"{prefix}.cart",
        orders=f"{prefix}.orders",
        dlq=f"{prefix}.dlq",
        triggers=f"{prefix}.triggers",
        marketing_costs=f"{prefix}.marketing_costs",
        forget=f"{prefix}.forget",
    )


def file_rows(rows: list[SimCostRow]) -> Rows:
    return Counter(
        (r.day, r.channel, r.utm_source, r.utm_medium, r.campaign, r.currency, r.cost_minor)
        for r in rows
    )


def totals(rows: Rows) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for (day, *_, currency, cost), n in rows.items():
        out[(day, currency)] = out.get((day, currency), 0) + cost * n
    return out


def view_rows(client: Any) -> Rows:
    return Counter(
        (str(day), channel, source, medium, campaign, currency, int(cost))
        for day, channel, source, medium, campaign, currency, cost in client.query(
            "SELECT day, channel, utm_source, utm_medium, campaign, currency, cost_minor "
            "FROM v_marketing_costs"
        ).result_rows
    )


def view_totals(client: Any) -> dict[tuple[str, str], int]:
    return {
        (str(day), currency): int(total)
        for day, currency, total in client.query(
            "SELECT day, currency, sum(cost_minor) FROM v_marketing_costs GROUP BY ALL"
        ).result_rows
    }


def cost_dead_letters(client: Any, topic: str) -> dict[int, str]:
    return {
        int(offset): str(reason)
        for offset, reason in client.query(
            "SELECT source_offset, reason FROM dead_letters FINAL WHERE source_topic = {t:String}",
            parameters={"t": topic},
        ).result_rows
    }


def imports_of(client: Any) -> int:
    return int(client.command("SELECT uniqExact(imported_at) FROM marketing_costs"))


def wait_for(
    what: str, read: Callable[[], T], done: Callable[[T], bool], worker: WorkerProcess
) -> T:
    deadline = time.monotonic() + WAIT_SECONDS
    last: object = None
    while True:
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited early; log:\n{worker.log_tail()}")
        try:
            value = read()
        except Exception as exc:  # the endpoint or the view is not there yet
            last = exc
        else:
            if done(value):
                return value
            last = value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: not reached in {WAIT_SECONDS:.0f} s (last: {last!r}); "
                f"log:\n{worker.log_tail()}"
            )
        time.sleep(0.5)


def endpoint_client(port: int, worker: WorkerProcess) -> Any:
    return wait_for(
        "the worker's SQL endpoint",
        lambda: clickhouse_connect.get_client(host="127.0.0.1", port=port, database="shop"),
        lambda client: client is not None,
        worker,
    )


def import_costs(env: PipelineEnv, path: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "funnel.cli", "costs", "import", str(path), *args],
        env={**env.env(free_port()), "COLUMNS": "200"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def produce_raw(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        offsets = []
        for key, value in records:
            meta = await producer.send_and_wait(topic, value, key=key, partition=0)
            offsets.append(meta.offset)
        return offsets
    finally:
        await producer.stop()


def test_costs_import_reaches_the_view_and_bad_records_the_dead_letters(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topics = fresh_topics()
    sql_port = free_port()
    env = PipelineEnv(
        kafka_bootstrap,
        topics,
        tmp_path / "worker",
        partitions=2,
        extra={
            "FUNNEL_SQL_PORT": str(sql_port),
            "FUNNEL_TOPICS__MARKETING_COSTS": topics.marketing_costs,
        },
    )
    counts = ensure_topics(
        load_settings(bootstrap_servers=env.bootstrap, topics=topics, partitions=env.partitions)
    )
    assert topics.marketing_costs in counts, "streams/topics.py must create the costs topic"
    sim_rows = campaign_costs(CONFIG)
    days = sorted({r.day for r in sim_rows})
    assert len(days) == 3 and all(sum(r.day == d for r in sim_rows) > 1 for d in days)
    path = tmp_path / "costs.csv"
    write_costs(sim_rows, path)
    want = file_rows(sim_rows)

    worker = WorkerProcess(env, until_idle=None, name="costs")
    try:
        client = endpoint_client(sql_port, worker)
        first = import_costs(env, path)
        assert f"sent {len(days)} day record(s), {len(sim_rows)} row(s)" in first
        import_costs(env, path)  # the same file again: nothing changes
        wait_for(
            "both imports applied",
            lambda: (imports_of(client), view_rows(client)),
            lambda got: got == (2, want),
            worker,
        )
        assert view_totals(client) == totals(want)

        # Malformed records, produced raw; a later import shows the worker kept going.
        bad_channel = CostCodec().encode(
            CostDay(
                days[0], int(time.time() * 1000), "tv-ads", (CostRow("tv", "", "", "", 1, "CNY"),)
            )
        )
        offsets = asyncio.run(
            produce_raw(
                env.bootstrap,
                topics.marketing_costs,
                [(days[0].encode(), b"day,cost\n2026-11-01,5\n"), (days[0].encode(), bad_channel)],
            )
        )
        fewer = [r for r in sim_rows if r.day != days[2]]
        dropped = next(r for r in fewer if r.day == days[0])
        fewer.remove(dropped)
        fewer_path = tmp_path / "fewer.csv"
        write_costs(fewer, fewer_path)
        import_costs(env, fewer_path, "--clear-day", days[2])
        want_after = file_rows(fewer)
        wait_for(
            "the third import applied",
            lambda: view_rows(client),
            lambda got: got == want_after,
            worker,
        )
        expected_letters = {offsets[0]: "undecodable", offsets[1]: "invalid_cost_record"}
        wait_for(
            "dead letters written",
            lambda: cost_dead_letters(client, topics.marketing_costs),
            lambda got: got == expected_letters,
            worker,
        )
        assert view_totals(client) == totals(want_after)
        assert days[2] not in {d for d, _ in view_totals(client)}
    finally:
        worker.terminate()
        code = worker.wait(120)
    assert code == 0, worker.log_tail()

    letters = [EventCodec().decode_dead_letter(v) for v in read_topic(env.bootstrap, topics.dlq)]
    by_offset = {
        letter.source_offset: letter
        for letter in letters
        if letter.source_topic == topics.marketing_costs
    }
    assert {o: letter.reason for o, letter in by_offset.items()} == expected_letters
    assert by_offset[offsets[0]].raw == b"day,cost\n2026-11-01,5\n"
    assert "rows[0].channel 'tv' is not a known channel" in by_offset[offsets[1]].detail
    assert by_offset[offsets[1]].key == days[0].encode()

    store = clickhouse(env)
    try:
        assert view_rows(store) == want_after
        assert imports_of(store) == 3
    finally:
        store.close()
