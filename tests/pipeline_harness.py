"""Running real `funnel worker` processes against the test broker, and reading their output.

The worker is a subprocess (``python -m funnel.cli worker``) configured only through
``FUNNEL_*`` environment variables, exactly as an operator would run it. ClickHouse is
the embedded engine in the worker's data directory; it is read after the worker exits
(chDB locks its directory per process).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import clickhouse_connect
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from funnel.settings import TopicNames
from simulator.records import SimRecord
from simulator.truth_model import Truth

REPO_ROOT = Path(__file__).resolve().parents[1]

Table = dict[tuple[Any, ...], tuple[int, ...]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PipelineEnv:
    """One isolated pipeline: its own topics, consumer group, state and ClickHouse."""

    bootstrap: str
    topics: TopicNames
    data_dir: Path
    app_id: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:10]}")
    partitions: int = 4
    extra: dict[str, str] = field(default_factory=dict)
    funnels: Path | None = None  # funnel definitions (None: the packaged default)

    @classmethod
    def with_fresh_topics(cls, bootstrap: str, data_dir: Path, **kw: Any) -> PipelineEnv:
        prefix = f"t{uuid.uuid4().hex[:8]}"
        topics = TopicNames(
            clickstream=f"{prefix}.clickstream",
            cart=f"{prefix}.cart",
            orders=f"{prefix}.orders",
            dlq=f"{prefix}.dlq",
            triggers=f"{prefix}.triggers",
            marketing_costs=f"{prefix}.marketing_costs",
            forget=f"{prefix}.forget",
        )
        return cls(bootstrap=bootstrap, topics=topics, data_dir=data_dir, **kw)

    def fork(self, data_dir: Path) -> PipelineEnv:
        """Same topics, fresh consumer group and state."""
        return PipelineEnv(
            self.bootstrap,
            self.topics,
            data_dir,
            partitions=self.partitions,
            extra=dict(self.extra),
            funnels=self.funnels,
        )

    def env(self, metrics_port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FUNNEL_", "KAFKA_"))}
        env.update(
            FUNNEL_BOOTSTRAP_SERVERS=self.bootstrap,
            FUNNEL_TOPICS__CLICKSTREAM=self.topics.clickstream,
            FUNNEL_TOPICS__CART=self.topics.cart,
            FUNNEL_TOPICS__ORDERS=self.topics.orders,
            FUNNEL_TOPICS__DLQ=self.topics.dlq,
            FUNNEL_TOPICS__TRIGGERS=self.topics.triggers,
            FUNNEL_TOPICS__MARKETING_COSTS=self.topics.marketing_costs,
            FUNNEL_TOPICS__FORGET=self.topics.forget,
            FUNNEL_APP_ID=self.app_id,
            FUNNEL_DATA_DIR=str(self.data_dir),
            FUNNEL_PARTITIONS=str(self.partitions),
            FUNNEL_METRICS_PORT=str(metrics_port),
            FUNNEL_REPLAY="true",  # simulated data lies in the past
            PYTHONUNBUFFERED="1",
        )
        # SHOPFUNNEL_TEST_CORE=compiled|python runs every worker of the tests on that core
        # (FUNNEL_CORE); unset, the setting's default.
        core = os.environ.get("SHOPFUNNEL_TEST_CORE")
        if core:
            env["FUNNEL_CORE"] = core
        env.update(self.extra)
        return env


class WorkerProcess:
    """A `funnel worker` subprocess with its log and /metrics endpoint."""

    def __init__(
        self,
        env: PipelineEnv,
        *,
        until_idle: float | None = 3.0,
        module: str = "funnel.cli",
        name: str = "worker",
    ) -> None:
        self.metrics_port = free_port()
        self.log_path = env.data_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        env.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", module, "worker", "--loglevel", "info"]
        if until_idle is not None:
            args += ["--until-idle", str(until_idle)]
        if env.funnels is not None:
            args += ["--funnels", str(env.funnels)]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            args,
            env=env.env(self.metrics_port),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            dumps = self.stack_dumps()
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(
                f"worker did not stop within {timeout}s; log:\n{self.log_tail()}\n"
                f"stacks on request (streams/diagnostics.py):\n{dumps}"
            ) from None
        finally:
            self._log.close()

    def stack_dumps(self) -> str:
        """Ask the live worker for its thread and task stacks; return what it logged."""
        self._log.flush()
        start = self.log_path.stat().st_size
        for sig in (signal.SIGUSR1, signal.SIGUSR2):
            self.process.send_signal(sig)
            time.sleep(2)
        return self.log_path.read_bytes()[start:].decode(errors="replace")[-30000:]

    def terminate(self) -> None:
        """SIGTERM: the operator's stop (the worker's shutdown is bounded)."""
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit, no flush."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._log.close()

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def metric(self, name: str) -> float | None:
        """Sum of all samples of ``name`` on /metrics, or None if not reachable."""
        try:
            with urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    total += sample.value
        return total

    def wait_for_metric(self, name: str, at_least: float, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited early; log:\n{self.log_tail()}")
            value = self.metric(name)
            if value is not None and value >= at_least:
                return value
            time.sleep(0.2)
        raise AssertionError(
            f"{name} did not reach {at_least} in {timeout}s; log:\n{self.log_tail()}"
        )


def run_until_idle(env: PipelineEnv, timeout: float = 240.0, **kw: Any) -> WorkerProcess:
    worker = WorkerProcess(env, **kw)
    code = worker.wait(timeout)
    assert code == 0, f"worker exited with {code}; log:\n{worker.log_tail()}"
    return worker


# Weak: a client the test dropped is closed (and the directory freed) at once.
_open_clients: weakref.WeakSet[Any] = weakref.WeakSet()


def clickhouse(env: PipelineEnv, database: str = "shop") -> Any:
    """A client of the run's embedded ClickHouse, closed after the test (conftest)."""
    client = clickhouse_connect.get_client(
        dsn=f"chdb://{env.data_dir.resolve() / 'clickhouse'}", database=database
    )
    _open_clients.add(client)
    return client


def close_clickhouse_clients() -> None:
    """chDB opens one directory per process, until every handle on it is closed. A failed
    test's traceback keeps its client alive, so without this every later test that opens
    another directory fails with it."""
    for client in list(_open_clients):
        client.close()
    _open_clients.clear()


DIMS = "channel, campaign, device, platform, country"
AGG_QUERIES = {
    "funnel_steps_minute": f"""
        SELECT funnel, toUnixTimestamp(window_start), {DIMS}, breakdown, step, step_name,
               sum(entered) AS v
        FROM funnel_steps_minute FINAL GROUP BY ALL HAVING v != 0""",
    "funnel_outcomes_minute": f"""
        SELECT funnel, toUnixTimestamp(window_start), {DIMS}, breakdown, outcome,
               sum(entities) AS v
        FROM funnel_outcomes_minute FINAL GROUP BY ALL HAVING v != 0""",
    "funnel_ttc_minute": f"""
        SELECT funnel, toUnixTimestamp(window_start), {DIMS}, breakdown, le_seconds,
               sum(converted) AS v
        FROM funnel_ttc_minute FINAL GROUP BY ALL HAVING v != 0""",
    "funnel_attempts": f"""
        SELECT funnel, toUnixTimestamp(window_start), {DIMS}, breakdown, anonymous_id, entity,
               start_event_id, outcome, level,
               arrayMap(t -> toUnixTimestamp64Milli(t), step_times), sum(attempts) AS v
        FROM funnel_attempts FINAL GROUP BY ALL HAVING v != 0""",
    "kpi_minute": f"""
        SELECT toUnixTimestamp(window_start), {DIMS}, currency,
               sum(orders), sum(gmv_minor), sum(items), sum(coupon_orders), sum(discount_minor),
               sum(first_orders), sum(repeat_orders), sum(refunds), sum(refunded_minor),
               sum(payment_failures), sum(cancellations)
        FROM kpi_minute FINAL GROUP BY ALL""",
    "order_attribution": """
        SELECT toUnixTimestamp(window_start), anonymous_id, transaction_id, model, channel,
               source, medium, campaign, kol, toUnixTimestamp64Milli(order_time), currency,
               value_minor, is_first, sum(share_micro) AS v
        FROM order_attribution FINAL GROUP BY ALL HAVING v != 0""",
}


def _day(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _lifecycle_tables(client: Any) -> dict[str, Table]:
    """The tables of docs/semantics.md 6-8, keyed as the truth keys them."""
    retention: Table = {
        (kind, gran, _day(start), activity, int(n), channel, platform): (int(users),)
        for kind, gran, start, activity, n, channel, platform, users in client.query(
            "SELECT cohort_kind, granularity, cohort_start, activity, period, channel, platform, "
            "sum(users) AS u FROM retention_cohorts FINAL GROUP BY ALL HAVING u != 0"
        ).result_rows
    }
    gaps: Table = {
        (_day(day), channel, float(le)): (int(n),)
        for day, channel, le, n in client.query(
            "SELECT day, channel, le_days, sum(orders) AS n FROM order_gaps_daily FINAL "
            "GROUP BY ALL HAVING n != 0"
        ).result_rows
    }
    rfm: Table = {
        (a, stage, cur, ch): (_ms(first), _ms(last), int(f), int(m))
        for a, stage, first, last, f, m, cur, ch in client.query(
            "SELECT anonymous_id, stage, first_purchase_at, last_purchase_at, frequency, "
            "monetary_minor, currency, channel FROM user_rfm FINAL"
        ).result_rows
    }
    transitions: Table = {
        (a, _ms(at), f, t): (1,)
        for a, at, f, t in client.query(
            "SELECT anonymous_id, at, from_stage, to_stage FROM segment_transitions FINAL"
        ).result_rows
    }
    triggers: Table = {
        (trigger_id, kind, a, _ms(at)): (-1 if value is None else int(value),)
        for trigger_id, kind, a, at, value in client.query(
            "SELECT trigger_id, trigger_type, anonymous_id, occurred_at, cart_value_minor "
            "FROM triggers FINAL"
        ).result_rows
    }
    return {
        "retention_cohorts": retention,
        "order_gaps_daily": gaps,
        "user_rfm": rfm,
        "segment_transitions": transitions,
        "triggers": triggers,
    }


def pipeline_tables(client: Any) -> dict[str, Table]:
    """Every aggregate and lifecycle table the pipeline writes, as comparable dicts."""
    out: dict[str, Table] = {}
    for table, sql in AGG_QUERIES.items():
        rows = client.query(sql).result_rows
        width = 7 if table == "kpi_minute" else None
        parsed: Table = {}
        for row in rows:
            if width is None:
                key = tuple(tuple(v) if isinstance(v, list) else v for v in row[:-1])
                parsed[key] = (int(row[-1]),)
            else:
                values = tuple(int(v) for v in row[width:])
                if any(values):
                    parsed[tuple(row[:width])] = values
        out[table] = parsed
    out.update(_lifecycle_tables(client))
    return out


def attribution_table(truth: Truth) -> Table:
    """The truth's order_attribution rows keyed like the table's key columns."""
    return {
        (
            r.window_start_ms // 1000,
            r.anonymous_id,
            r.transaction_id,
            r.model,
            r.channel,
            r.source,
            r.medium,
            r.campaign,
            r.kol,
            r.order_time_ms,
            r.currency,
            r.value_minor,
            r.is_first,
        ): (r.share_micro,)
        for r in truth.order_attribution
    }


def truth_tables(truth: Truth) -> dict[str, Table]:
    def dims(r: Any) -> tuple[Any, ...]:
        return (r.channel, r.campaign, r.device, r.platform, r.country)

    return {
        "funnel_steps_minute": {
            (r.funnel, r.window_start_ms // 1000, *dims(r), r.breakdown, r.step, r.step_name): (
                r.entered,
            )
            for r in truth.funnel_steps
        },
        "funnel_outcomes_minute": {
            (r.funnel, r.window_start_ms // 1000, *dims(r), r.breakdown, r.outcome): (r.entities,)
            for r in truth.funnel_outcomes
        },
        "funnel_ttc_minute": {
            (r.funnel, r.window_start_ms // 1000, *dims(r), r.breakdown, r.le_seconds): (
                r.converted,
            )
            for r in truth.funnel_ttc
        },
        "funnel_attempts": {
            (
                r.funnel,
                r.window_start_ms // 1000,
                *dims(r),
                r.breakdown,
                r.anonymous_id,
                r.entity,
                r.start_event_id,
                r.outcome,
                r.level,
                r.step_times_ms,
            ): (1,)
            for r in truth.funnel_attempts
        },
        "kpi_minute": {
            (r.window_start_ms // 1000, *dims(r), r.currency): tuple(int(v) for v in r[7:])
            for r in truth.kpi
        },
        "order_attribution": attribution_table(truth),
        "retention_cohorts": {
            (
                r.cohort_kind,
                r.granularity,
                r.cohort_start,
                r.activity,
                r.period,
                r.channel,
                r.platform,
            ): (r.users,)
            for r in truth.retention
        },
        "order_gaps_daily": {(r.day, r.channel, r.le_days): (r.orders,) for r in truth.order_gaps},
        "user_rfm": {
            (r.anonymous_id, r.stage, r.currency, r.channel): (
                r.first_purchase_ms,
                r.last_purchase_ms,
                r.frequency,
                r.monetary_minor,
            )
            for r in truth.rfm
        },
        "segment_transitions": {
            (r.anonymous_id, r.at_ms, r.from_stage, r.to_stage): (1,) for r in truth.transitions
        },
        "triggers": {
            (t.trigger_id, t.trigger_type, t.anonymous_id, t.occurred_at_ms): (
                -1 if t.cart_value_minor is None else t.cart_value_minor,
            )
            for t in truth.triggers
        },
    }


def differences(got: Mapping[str, Table], want: Mapping[str, Table]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for table, rows in want.items():
        keys = set(rows) | set(got.get(table, {}))
        bad = [
            (k, rows.get(k), got.get(table, {}).get(k))
            for k in keys
            if rows.get(k) != got.get(table, {}).get(k)
        ]
        if bad:
            out[table] = [*sorted(bad, key=repr)[:5], f"... {len(bad)} rows differ"]
    return out


def row_counts(tables: Mapping[str, Table]) -> dict[str, int]:
    return {name: len(rows) for name, rows in tables.items()}


def ids(client: Any, sql: str) -> set[str]:
    return {str(row[0]) for row in client.query(sql).result_rows}


def non_empty(values: Iterable[object]) -> bool:
    return any(True for _ in values)


def assert_matches_truth(
    env: PipelineEnv, truth: Truth, records: list[SimRecord]
) -> dict[str, int]:
    """Every table the pipeline writes equals the truth: aggregates, lifecycle rows and
    triggers (``pipeline_tables``), raw events, late events and dead letters."""
    client = clickhouse(env)
    got = pipeline_tables(client)
    diff = differences(got, truth_tables(truth))
    assert not diff, f"rows differ from the ground truth: {diff}"
    late = ids(client, "SELECT event_id FROM late_events FINAL")
    want_late = set(truth.late_event_ids)
    assert late == want_late, f"late_events: extra {late - want_late}, missing {want_late - late}"
    dead = Counter(
        {
            (topic, reason): int(n)
            for topic, reason, n in client.query(
                "SELECT source_topic, reason, count() FROM dead_letters FINAL GROUP BY ALL"
            ).result_rows
        }
    )
    names = {
        "clickstream": env.topics.clickstream,
        "cart": env.topics.cart,
        "orders": env.topics.orders,
    }
    want_dead = Counter({(names[r.stream], r.reason): r.records for r in truth.dead_letters})
    assert dead == want_dead, f"dead letters: extra {dead - want_dead}, missing {want_dead - dead}"
    # Every distinct valid event once (duplicates collapse, late ones included and flagged).
    distinct = {(r.event.anonymous_id, r.event.event_id) for r in records if r.event is not None}
    raw = client.query("SELECT count() FROM events_raw FINAL").result_rows[0][0]
    assert raw == len(distinct), f"events_raw holds {raw} events, the truth {len(distinct)}"
    # events_raw keeps one row per event, an on-time copy over a late one; the truth's late
    # ids are the events with a late copy (late_events). They agree on every event sent
    # once; a duplicated event with a late and an on-time copy is flagged on time.
    late_flagged = ids(client, "SELECT event_id FROM events_raw FINAL WHERE is_late = 1")
    copies = Counter(r.event.event_id for r in records if r.event is not None)
    unflagged_duplicates = {e for e in want_late - late_flagged if copies[e] > 1}
    assert late_flagged == want_late - unflagged_duplicates, (
        f"events_raw.is_late: extra {late_flagged - want_late}, "
        f"missing {want_late - late_flagged - unflagged_duplicates}"
    )
    client.close()
    return row_counts(got)


def read_topic(bootstrap: str, topic: str) -> list[bytes]:
    """Every committed record value of ``topic``, from the start (DLQ, triggers)."""

    async def read() -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        values: list[bytes] = []
        try:
            while batch := await consumer.getmany(timeout_ms=3000):
                values.extend(r.value for records in batch.values() for r in records)
        finally:
            await consumer.stop()
        return values

    return asyncio.run(read())


def window_funnel_levels(
    client: Any, steps: Sequence[str], window_ms: int, timeout_ms: int, strict: bool = False
) -> tuple[dict[tuple[str, str], int], int]:
    """ClickHouse's own ``windowFunnel`` over ``events_raw``, the second funnel oracle.

    Per session segment (docs/semantics.md section 2, computed here in SQL: a gap of more
    than the timeout starts a new one, ``session_id@<first event time>``), the furthest
    step of an ordered funnel with distinct steps, over the counted events: on time, and
    a purchase only in its earliest copy per transaction. windowFunnel orders events by
    time alone, so segments where two step events share a millisecond are left out (the
    worker orders those by event id): returns the levels of the rest and how many were
    left out. ``strict``: windowFunnel's 'strict_order' (no other event between two
    steps) for strict mode, which stops at the first other event after the first step-1
    event (no retry), so only segments with one step-1 event and no tied events count.
    """
    mode = ", 'strict_order'" if strict else ""
    conditions = ", ".join(f"event_type = '{step}'" for step in steps)
    in_steps = ", ".join(f"'{step}'" for step in steps)
    rows = client.query(
        f"""
        WITH counted AS (
            SELECT anonymous_id, session_id, event_id, event_type,
                   toUnixTimestamp64Milli(event_time) AS t
            FROM events_raw FINAL
            WHERE is_late = 0 AND (event_type != 'purchase' OR (anonymous_id, event_id) IN (
                SELECT anonymous_id, argMin(event_id, (event_time, event_id))
                FROM events_raw FINAL
                WHERE is_late = 0 AND event_type = 'purchase'
                GROUP BY anonymous_id, transaction_id))
        ),
        gaps AS (
            SELECT *, if(t - lagInFrame(t, 1, t) OVER (
                        PARTITION BY anonymous_id, session_id ORDER BY t, event_id
                        ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) > {timeout_ms}, 1, 0) AS gap
            FROM counted
        ),
        segments AS (
            SELECT *, 1 + sum(gap) OVER (
                        PARTITION BY anonymous_id, session_id ORDER BY t, event_id
                        ROWS UNBOUNDED PRECEDING) AS n
            FROM gaps
        )
        SELECT anonymous_id,
               concat(session_id, '@', toString(min(t))) AS segment,
               windowFunnel({window_ms}{mode})(toUInt64(t), {conditions}) AS level,
               if({int(strict)},
                  count() = uniqExact(t) AND countIf(event_type = '{steps[0]}') = 1,
                  countIf(event_type IN ({in_steps})) = uniqExactIf(t, event_type IN ({in_steps})))
                   AS no_ties
        FROM segments
        GROUP BY anonymous_id, session_id, n
        HAVING level > 0
        """
    ).result_rows
    levels = {(str(a), str(s)): int(level) for a, s, level, no_ties in rows if no_ties}
    return levels, sum(1 for *_, no_ties in rows if not no_ties)


def attempt_levels(client: Any, funnel: str) -> dict[tuple[str, str], int]:
    """The worker's credited level per (anonymous_id, entity) of ``funnel``."""
    return {
        (str(a), str(entity)): int(level)
        for a, entity, level in client.query(
            "SELECT anonymous_id, entity, level FROM funnel_attempts FINAL "
            "WHERE attempts > 0 AND funnel = {funnel:String}",
            parameters={"funnel": funnel},
        ).result_rows
    }
