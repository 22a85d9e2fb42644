"""The ground truth equals a recount in ClickHouse SQL over the raw events table.

A generated run (duplicates, out-of-order, late, malformed and JSON records on) is loaded
into embedded ClickHouse (chDB) with the project's real migrations, the way the pipeline
would fill ``events_raw``: every valid record, with its topic, partition and offset.
Lateness, dedup, sessions, funnels, KPIs and retention are then recounted in SQL
(``FINAL``, window functions, ``windowFunnel``) and compared with the truth row by row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest

from schemas.channels import ChannelRules
from simulator.config import SimConfig
from simulator.generate import SimRecord, generate
from simulator.truth import compute_truth
from simulator.truth_model import Truth, funnel_specs

DEFAULT_FUNNELS = funnel_specs()

MIGRATIONS = Path(__file__).resolve().parents[2] / "sinks" / "migrations"
CONFIG = SimConfig(
    users=1200,
    days=0.3,
    duplicate_pct=5,
    out_of_order_pct=8,
    late_pct=3,
    malformed_pct=2,
    json_pct=15,
)
TOPICS = {"clickstream": "shop.clickstream", "cart": "shop.cart", "orders": "shop.orders"}
COLUMNS = (
    "event_id", "event_type", "stream", "event_time", "sent_time", "anonymous_id", "user_id",
    "session_id", "platform", "device", "country", "channel", "utm_source", "utm_medium",
    "utm_campaign", "utm_content", "utm_term", "referrer", "page_url", "referral_code",
    "experiments", "item_ids", "item_prices_minor", "item_quantities", "cart_id",
    "transaction_id", "currency", "value_minor", "tax_minor", "shipping_minor",
    "discount_minor", "coupon", "payment_type", "refund_reason", "payment_error_code",
    "is_late", "source_topic", "source_partition", "source_offset", "ingested_at", "version",
)  # fmt: skip


def run_migrations(client: Any) -> None:
    """The migration files in order, split on ';', with '--' comment lines skipped."""
    for path in sorted(MIGRATIONS.glob("*.sql")):
        lines = [
            line for line in path.read_text().splitlines() if not line.strip().startswith("--")
        ]
        for statement in "\n".join(lines).split(";"):
            if statement.strip():
                client.command(statement)


def as_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def raw_rows(records: list[SimRecord]) -> Iterator[list[Any]]:
    """One events_raw row per valid record; offsets count every record of the partition.
    is_late/version are placeholders: SQL decides lateness below."""
    channels = ChannelRules.load()
    offsets: Counter[tuple[str, int]] = Counter()
    for record in records:
        offset = offsets[(record.stream, record.partition)]
        offsets[(record.stream, record.partition)] += 1
        e = record.event
        if e is None:
            continue  # a dead letter: not in events_raw
        yield [
            e.event_id, e.event_type, e.stream, as_time(e.event_time_ms), as_time(e.sent_time_ms),
            e.anonymous_id, e.user_id, e.session_id, e.platform, e.device, e.country,
            channels.classify(e.utm_source, e.utm_medium, e.referrer), e.utm_source or "",
            e.utm_medium or "", e.utm_campaign or "", e.utm_content or "", e.utm_term or "",
            e.referrer or "", e.page_url or "", e.referral_code or "", dict(e.experiments),
            [i.item_id for i in e.items], [i.price_minor for i in e.items],
            [i.quantity for i in e.items], e.cart_id or "", e.transaction_id or "",
            e.currency or "", e.value_minor, e.tax_minor, e.shipping_minor, e.discount_minor,
            e.coupon or "", e.payment_type or "", e.refund_reason or "",
            e.payment_error_code or "", 0, TOPICS[record.stream], record.partition, offset,
            as_time(record.send_time_ms), 1,
        ]  # fmt: skip


def load_events_raw(client: Any, records: list[SimRecord], lateness_ms: int) -> None:
    """Migrate, then fill events_raw with every valid record, lateness decided in SQL
    (table ``classified`` keeps the classification)."""
    run_migrations(client)
    client.command(
        "CREATE TABLE staging AS events_raw "
        "ENGINE = MergeTree ORDER BY (source_topic, source_partition, source_offset)"
    )
    client.insert("staging", list(raw_rows(records)), column_names=list(COLUMNS))
    # §1.2 in SQL: late = below (max event_time of the earlier records of the same
    # topic-partition) - lateness.
    client.command(
        f"""
        CREATE TABLE classified ENGINE = Memory AS
        SELECT * EXCEPT (ms, prior) REPLACE (
                   toUInt8(ms < prior - {lateness_ms}) AS is_late,
                   toUInt8(ms >= prior - {lateness_ms}) AS version)
        FROM (
            SELECT *, toUnixTimestamp64Milli(event_time) AS ms,
                   max(toUnixTimestamp64Milli(event_time)) OVER (
                       PARTITION BY source_topic, source_partition ORDER BY source_offset
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prior
            FROM staging)
        """
    )
    client.command("INSERT INTO events_raw SELECT * FROM classified")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Truth]:
    records = list(generate(CONFIG))
    truth = compute_truth(
        records,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
        window_ms=CONFIG.window_ms,
    )
    client = clickhouse_connect.get_client(dsn=f"chdb:///{tmp_path_factory.mktemp('chdb')}")
    load_events_raw(client, records, CONFIG.lateness_ms)
    return client, truth


COUNTED = """
WITH base AS (SELECT * FROM events_raw FINAL WHERE is_late = 0),
counted AS (
    SELECT * FROM base WHERE event_type != 'purchase'
    UNION ALL
    SELECT * EXCEPT (rn) FROM (
        SELECT *, row_number() OVER (
            PARTITION BY anonymous_id, transaction_id ORDER BY event_time, event_id) AS rn
        FROM base WHERE event_type = 'purchase')
    WHERE rn = 1
)
"""


def query(client: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in client.query(COUNTED + sql).result_rows]


def test_the_run_exercises_every_rule(loaded: tuple[Any, Truth]) -> None:
    _, truth = loaded
    stats = truth.stats
    for key in ("late", "duplicates_dropped", "purchase_duplicates_dropped", "malformed"):
        assert stats.get(key, 0) > 0, key
    assert stats["session_segments"] > stats["sessions"]


def test_late_records_match_the_sql_watermark_rule(loaded: tuple[Any, Truth]) -> None:
    client, truth = loaded
    rows = client.query("SELECT DISTINCT event_id FROM classified WHERE is_late").result_rows
    assert {r[0] for r in rows} == truth.late_event_ids


def test_orders_gmv_and_kpis_per_window_and_dimensions(loaded: tuple[Any, Truth]) -> None:
    client, truth = loaded
    sql = """
    SELECT intDiv(toUnixTimestamp64Milli(event_time), 60000) * 60000 AS w, channel,
           utm_campaign, device, platform, country, currency,
           countIf(event_type = 'purchase'),
           sumIf(ifNull(value_minor, 0), event_type = 'purchase'),
           sumIf(arraySum(item_quantities), event_type = 'purchase'),
           countIf(event_type = 'purchase' AND nth = 1),
           countIf(event_type = 'purchase' AND nth > 1),
           countIf(event_type = 'refund'),
           sumIf(ifNull(value_minor, 0), event_type = 'refund'),
           countIf(event_type = 'payment_failed'),
           countIf(event_type = 'order_cancelled')
    FROM (SELECT *, row_number() OVER (
              PARTITION BY anonymous_id, event_type ORDER BY event_time, transaction_id) AS nth
          FROM counted)
    WHERE event_type IN ('purchase', 'refund', 'payment_failed', 'order_cancelled')
    GROUP BY w, channel, utm_campaign, device, platform, country, currency
    """
    expected = {
        (
            r.window_start_ms, r.channel, r.campaign, r.device, r.platform, r.country,
            r.currency, r.orders, r.gmv_minor, r.items, r.first_orders, r.repeat_orders,
            r.refunds, r.refunded_minor, r.payment_failures, r.cancellations,
        )
        for r in truth.kpi
    }  # fmt: skip
    got = set(query(client, sql))
    assert len(expected) > 40
    assert got == expected


def test_orders_and_gmv_per_window_and_channel(loaded: tuple[Any, Truth]) -> None:
    client, truth = loaded
    sql = """
    SELECT intDiv(toUnixTimestamp64Milli(event_time), 60000) * 60000 AS w, channel, currency,
           count(), sum(ifNull(value_minor, 0))
    FROM counted WHERE event_type = 'purchase' GROUP BY w, channel, currency
    """
    expected: Counter[tuple[int, str, str]] = Counter()
    gmv: Counter[tuple[int, str, str]] = Counter()
    for r in truth.kpi:
        if r.orders:
            expected[(r.window_start_ms, r.channel, r.currency)] += r.orders
            gmv[(r.window_start_ms, r.channel, r.currency)] += r.gmv_minor
    assert {(w, c, cur, n, g) for w, c, cur, n, g in query(client, sql)} == {
        (*key, n, gmv[key]) for key, n in expected.items()
    }


SEGMENTED = """,
segmented AS (
    SELECT *, sum(new_segment) OVER (
        PARTITION BY anonymous_id, session_id ORDER BY event_time, event_id
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS segment
    FROM (
        SELECT *, toUnixTimestamp64Milli(event_time) AS ms,
               ms - lagInFrame(ms, 1, ms) OVER (
                   PARTITION BY anonymous_id, session_id ORDER BY event_time, event_id
                   ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) > {timeout} AS new_segment
        FROM counted)
)
"""


@pytest.mark.parametrize("funnel", DEFAULT_FUNNELS, ids=lambda f: f.name)
def test_funnel_steps_match_window_funnel(loaded: tuple[Any, Truth], funnel: Any) -> None:
    client, truth = loaded
    conditions = ", ".join(f"event_type = '{step}'" for step in funnel.steps)
    first = funnel.steps[0]
    # windowFunnel gives the furthest level; with one step-1 event per segment (checked
    # below) the credited attempt is that event's, so its minute and dimensions apply.
    sql = (
        SEGMENTED.format(timeout=CONFIG.session_timeout_ms)
        + f"""
    SELECT intDiv(t1, 60000) * 60000, channel, campaign, device, platform, country, step,
           count()
    FROM (
        SELECT windowFunnel({funnel.window_ms})(toUInt64(ms), {conditions}) AS level,
               minIf(ms, event_type = '{first}') AS t1,
               argMinIf(channel, (ms, event_id), event_type = '{first}') AS channel,
               argMinIf(utm_campaign, (ms, event_id), event_type = '{first}') AS campaign,
               argMinIf(device, (ms, event_id), event_type = '{first}') AS device,
               argMinIf(platform, (ms, event_id), event_type = '{first}') AS platform,
               argMinIf(country, (ms, event_id), event_type = '{first}') AS country,
               countIf(event_type = '{first}') AS starts
        FROM segmented GROUP BY anonymous_id, session_id, segment
        HAVING starts > 0)
    ARRAY JOIN range(1, level + 1) AS step
    GROUP BY 1, channel, campaign, device, platform, country, step
    """
    )
    multi_start = (
        SEGMENTED.format(timeout=CONFIG.session_timeout_ms)
        + f"""
    SELECT count() FROM (
        SELECT countIf(event_type = '{first}') AS starts FROM segmented
        GROUP BY anonymous_id, session_id, segment HAVING starts > 1)
    """
    )
    assert query(client, multi_start) == [(0,)]
    expected = {
        (
            r.window_start_ms,
            r.channel,
            r.campaign,
            r.device,
            r.platform,
            r.country,
            r.step,
            r.entered,
        )
        for r in truth.funnel_steps
        if r.funnel == funnel.name
    }
    assert len(expected) > 20
    assert set(query(client, sql)) == expected


def test_retention_by_cohort_and_first_touch_channel(loaded: tuple[Any, Truth]) -> None:
    # Daily visit retention only; tests/unit/test_simulator_retention_vs_clickhouse.py
    # recounts every cohort kind, granularity and activity over a multi-day run.
    client, truth = loaded
    sql = """
    SELECT toString(cohort), first_channel, first_platform,
           dateDiff('day', cohort, day) AS offset, count()
    FROM (
        SELECT anonymous_id, argMin(channel, (event_time, event_id)) AS first_channel,
               argMin(platform, (event_time, event_id)) AS first_platform,
               toDate(min(event_time)) AS cohort, groupUniqArray(toDate(event_time)) AS days
        FROM counted GROUP BY anonymous_id)
    ARRAY JOIN days AS day
    WHERE offset BETWEEN 0 AND 30
    GROUP BY cohort, first_channel, first_platform, offset
    """
    expected = {
        (r.cohort_start, r.channel, r.platform, r.period, r.users)
        for r in truth.retention
        if (r.cohort_kind, r.granularity, r.activity) == ("first_visit", "day", "visit")
    }
    assert len(expected) > 20
    assert set(query(client, sql)) == expected
