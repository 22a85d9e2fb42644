"""Retention, segment and RFM reports (reports/queries.py) on hand-inserted rows in embedded
ClickHouse migrated with the real migrations."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from funnel import cli
from reports import queries as reports
from reports.errors import ReportError
from sinks.clickhouse import (
    BACKGROUND_READ_SETTINGS,
    ClickHouseTarget,
    apply_migrations,
    open_client,
)

_numbers = itertools.count()


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb-reports")


@pytest.fixture
def client(engine_dir: Path) -> Iterator[Any]:
    """A freshly migrated database of its own for each test."""
    target = ClickHouseTarget(dsn=f"chdb:///{engine_dir}", database=f"reports_{next(_numbers)}")
    handle = open_client(target)
    apply_migrations(handle)
    try:
        yield handle
    finally:
        handle.close()


RETENTION_COLUMNS = [
    "cohort_kind", "granularity", "cohort_start", "activity", "period", "channel", "platform",
    "partition", "users", "is_final", "version",
]  # fmt: skip


def insert_retention(client: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """(kind, granularity, start, activity, period, channel, partition, users, version)."""
    client.insert(
        "retention_cohorts",
        [[k, g, s, a, n, ch, "web", p, u, 1, v] for k, g, s, a, n, ch, p, u, v in rows],
        column_names=RETENTION_COLUMNS,
    )


WEEK1, WEEK2, WEEK3 = date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16)


def test_the_triangle_sums_channels_and_partitions_and_keeps_the_latest_version(
    client: Any,
) -> None:
    fv = ("first_visit", "week")
    insert_retention(
        client,
        [
            (*fv, WEEK1, "visit", 0, "direct", 0, 60, 1),
            (*fv, WEEK1, "visit", 0, "email", 1, 40, 1),
            (*fv, WEEK1, "visit", 1, "direct", 0, 10, 1),
            (*fv, WEEK1, "visit", 1, "direct", 0, 15, 2),  # replaces the row above
            (*fv, WEEK1, "visit", 2, "email", 1, 5, 1),
            (*fv, WEEK2, "visit", 0, "direct", 2, 50, 1),
            (*fv, WEEK2, "visit", 1, "direct", 2, 20, 1),
            (*fv, WEEK3, "visit", 0, "direct", 3, 30, 1),
            (*fv, WEEK3, "purchase", 0, "direct", 3, 3, 1),  # another activity
            ("first_purchase", "week", WEEK1, "purchase", 0, "direct", 0, 9, 1),
        ],
    )
    cohorts = reports.retention_triangle(client, "first_visit", "week", "visit")
    assert [(c.cohort_start, c.cohort_size, c.users) for c in cohorts] == [
        (WEEK1, 100, (100, 15, 5)),
        (WEEK2, 50, (50, 20)),
        (WEEK3, 30, (30,)),
    ]
    assert cohorts[0].rate(1) == pytest.approx(0.15)
    assert cohorts[2].rate(1) is None  # week 1 of the latest cohort has not started
    purchases = reports.retention_triangle(client, "first_visit", "week", "purchase")
    assert [(c.cohort_start, c.cohort_size, c.users) for c in purchases] == [
        (WEEK1, 100, (0, 0, 0)),
        (WEEK2, 50, (0, 0)),
        (WEEK3, 30, (3,)),
    ]


def test_a_period_without_activity_is_zero_not_missing(client: Any) -> None:
    kind = ("first_purchase", "month")
    nov, dec, jan = date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1)
    insert_retention(
        client,
        [
            (*kind, nov, "purchase", 0, "direct", 0, 8, 1),
            (*kind, nov, "repeat_purchase", 2, "direct", 0, 2, 1),
            (*kind, jan, "purchase", 0, "direct", 0, 4, 1),
            (*kind, dec, "purchase", 0, "direct", 0, 6, 1),
        ],
    )
    (november, december, january) = reports.retention_triangle(
        client, "first_purchase", "month", "repeat_purchase"
    )
    assert (november.cohort_size, november.users) == (8, (0, 0, 2))
    assert (december.users, january.users) == ((0, 0), (0,))


def test_an_empty_database_gives_no_cohorts_and_a_bad_granularity_names_the_choices(
    client: Any,
) -> None:
    assert reports.retention_triangle(client, "first_visit", "day", "visit") == []
    with pytest.raises(ReportError, match="day, week, month"):
        reports.retention_triangle(client, "first_visit", "year", "visit")


def transition_rows(client: Any, rows: Sequence[tuple[str, datetime, str, str]]) -> None:
    client.insert(
        "segment_transitions",
        [[a, t, f, to, 0, 1] for a, t, f, to in rows],
        column_names=["anonymous_id", "at", "from_stage", "to_stage", "partition", "version"],
    )


D0 = datetime(2026, 11, 2, 12, tzinfo=UTC)


def test_segment_sizes_carry_each_stage_forward_between_days(client: Any) -> None:
    transition_rows(
        client,
        [
            ("a", D0, "prospect", "new"),
            ("b", D0 + timedelta(hours=1), "prospect", "new"),
            ("c", D0 + timedelta(days=1), "prospect", "new"),
            ("a", D0 + timedelta(days=30), "new", "active"),
            ("b", D0 + timedelta(days=30), "new", "active"),
            ("a", D0 + timedelta(days=90), "active", "dormant"),
        ],
    )
    days = reports.segment_sizes(client, days=10)
    empty = dict.fromkeys(reports.STAGE_ORDER, 0)
    assert [(d.day, d.sizes) for d in days] == [
        (date(2026, 11, 2), {**empty, "new": 2}),
        (date(2026, 11, 3), {**empty, "new": 3}),
        (date(2026, 12, 2), {**empty, "new": 1, "active": 2}),
        (date(2027, 1, 31), {**empty, "new": 1, "active": 1, "dormant": 1}),
    ]
    assert [d.day for d in reports.segment_sizes(client, days=2)] == [
        date(2026, 12, 2),
        date(2027, 1, 31),
    ]


RFM_COLUMNS = [
    "anonymous_id", "user_id", "stage", "first_purchase_at", "last_purchase_at", "frequency",
    "monetary_minor", "currency", "channel", "as_of", "partition", "version",
]  # fmt: skip


def test_rfm_summary_counts_stages_and_scores_every_buyer_once_per_axis(client: Any) -> None:
    as_of = datetime(2027, 3, 1, tzinfo=UTC)
    buyers = []
    stages = ["new"] * 4 + ["active"] * 3 + ["dormant"] * 2 + ["churned"]
    for i, stage in enumerate(stages):
        last = as_of - timedelta(days=10 * i)
        buyers.append(
            [f"b{i}", None, stage, last - timedelta(days=5), last, 1 + i % 3, 1000 * (i + 1),
             "CNY", "direct", as_of, 0, 1]
        )  # fmt: skip
    # An older version of b0 (a stage it left) must not count.
    buyers.append(["b0", None, "prospect", as_of, as_of, 1, 1, "CNY", "direct", as_of, 0, 0])
    client.insert("user_rfm", buyers, column_names=RFM_COLUMNS)
    summary = reports.rfm_summary(client)
    assert summary.buyers == 10
    assert summary.as_of is not None
    assert summary.as_of.replace(tzinfo=UTC) == as_of
    assert [(s.stage, s.buyers) for s in summary.stages] == [
        ("new", 4),
        ("active", 3),
        ("dormant", 2),
        ("churned", 1),
    ]
    assert summary.stages[0].share == pytest.approx(0.4)
    assert summary.stages[-1].avg_recency_days == pytest.approx(90)
    assert [s.score for s in summary.scores] == [5, 4, 3, 2, 1]
    for axis in ("recency", "frequency", "monetary"):
        assert sum(getattr(s, axis) for s in summary.scores) == 10
    assert summary.scores[0].recency == 2  # the two most recent buyers score 5


def test_rfm_summary_and_triggers_of_an_empty_database(client: Any) -> None:
    assert reports.rfm_summary(client) == reports.RfmSummary(0, None, [], [])
    assert reports.trigger_counts(client) == {}
    assert reports.segment_sizes(client) == []


def test_trigger_counts_per_type_without_duplicates(client: Any) -> None:
    now = datetime(2026, 11, 2, tzinfo=UTC)
    columns = ["trigger_id", "trigger_type", "anonymous_id", "occurred_at", "emitted_at",
               "currency", "channel", "segment", "previous_segment", "partition"]  # fmt: skip
    row = ["id-1", "cart_abandoned", "a", now, now, "CNY", "direct", "", "", 0]
    client.insert("triggers", [row, row], column_names=columns)  # a replayed copy
    client.insert(
        "triggers",
        [["id-2", "first_purchase", "a", now, now, "CNY", "direct", "new", "prospect", 0]],
        column_names=columns,
    )
    assert reports.trigger_counts(client) == {"cart_abandoned": 1, "first_purchase": 1}


# -- the `funnel report retention` / `funnel report segments` commands -----------------------


def run_report(client: Any, engine_dir: Path, *args: str) -> Result:
    env = {
        "FUNNEL_CLICKHOUSE_DSN": f"chdb:///{engine_dir}",
        "FUNNEL_CLICKHOUSE_DATABASE": client.query("SELECT currentDatabase()").result_rows[0][0],
        "COLUMNS": "200",  # rich's width; typer's terminal_width does not reach it
    }
    return CliRunner().invoke(cli.app, ["report", *args], env=env, terminal_width=200)


def test_report_retention_prints_the_triangle_with_blanks_for_future_periods(
    client: Any, engine_dir: Path
) -> None:
    fv = ("first_visit", "week")
    insert_retention(
        client,
        [
            (*fv, WEEK1, "visit", 0, "direct", 0, 200, 1),
            (*fv, WEEK1, "visit", 1, "direct", 0, 50, 1),
            (*fv, WEEK2, "visit", 0, "direct", 0, 80, 1),
        ],
    )
    result = run_report(client, engine_dir, "retention")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    (first,) = [line for line in lines if "2026-11-02" in line]
    (second,) = [line for line in lines if "2026-11-09" in line]
    assert "200" in first and "100.0%" in first and "25.0%" in first
    assert "80" in second and second.count("%") == 1
    empty = run_report(client, engine_dir, "retention", "--granularity", "day")
    assert empty.exit_code == 1 and "no retention rows" in empty.output


def test_report_segments_prints_stages_scores_daily_sizes_and_triggers(
    client: Any, engine_dir: Path
) -> None:
    as_of = datetime(2026, 12, 1, tzinfo=UTC)
    client.insert(
        "user_rfm",
        [["b1", None, "dormant", D0, D0, 2, 5000, "CNY", "direct", as_of, 0, 1]],
        column_names=RFM_COLUMNS,
    )
    transition_rows(client, [("b1", D0, "prospect", "new")])
    result = run_report(client, engine_dir, "segments")
    assert result.exit_code == 0, result.output
    assert "1 buyers, as of 2026-12-01" in result.output
    (dormant,) = [line for line in result.output.splitlines() if line.startswith("│ dormant")]
    assert "100.0%" in dormant and "2.00" in dormant
    assert "2026-11-02" in result.output  # the daily sizes


def test_report_kpi_scales_each_currency_by_its_iso_4217_exponent(
    client: Any, engine_dir: Path
) -> None:
    """Issue #12 bug 3: yen and won were shown divided by 100 like every currency."""
    from streams.outputs import kpi

    def row(currency: str, orders: int, gmv: int, refunded: int) -> tuple[Any, ...]:
        values = dict.fromkeys(kpi.TABLE.columns, 0)
        values.update(
            window_start=datetime(2026, 11, 2, 10, 0, tzinfo=UTC),
            channel="direct",
            campaign="",
            device="desktop",
            platform="web",
            country="JP",
            currency=currency,
            orders=orders,
            gmv_minor=gmv,
            refunded_minor=refunded,
            version=1,
        )
        return tuple(values[c] for c in kpi.TABLE.columns)

    client.insert(
        kpi.TABLE.name,
        [row("JPY", 8, 169_914, 1_000), row("USD", 2, 402_650, 0), row("KWD", 1, 1_234, 0)],
        column_names=list(kpi.TABLE.columns),
    )
    result = run_report(client, engine_dir, "kpi")
    assert result.exit_code == 0, result.output
    # The money table comes first; the order mix repeats the currency below it.
    jpy = next(line for line in result.output.splitlines() if "JPY" in line)
    assert "¥169,914" in jpy and "¥21,239" in jpy and "¥1,000" in jpy  # AOV 21,239.25
    usd = next(line for line in result.output.splitlines() if "USD" in line)
    assert "$4,026.50" in usd and "$2,013.25" in usd
    kwd = next(line for line in result.output.splitlines() if "KWD" in line)
    assert "1.234" in kwd


def test_a_background_reader_runs_on_one_thread_at_low_priority_and_spills(
    engine_dir: Path,
) -> None:
    """The monitors' client (streams/worker.py) must not take the cores from ingestion."""
    target = ClickHouseTarget(dsn=f"chdb:///{engine_dir}", database="reports_background")
    sql = (
        "SELECT toUInt64(getSetting('max_threads')), getSetting('os_thread_priority'), "
        "toUInt64(getSetting('max_bytes_before_external_group_by'))"
    )
    background = open_client(target, settings=BACKGROUND_READ_SETTINGS)
    default = open_client(target)
    try:
        # One thread, lowest priority, and GROUP BYs that spill past 32 MiB.
        assert background.query(sql).result_rows == [(1, 19, 32 << 20)]
        assert default.query(sql).result_rows[0][1:] == (0, 0)
    finally:
        background.close()
        default.close()
