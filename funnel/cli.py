"""The `funnel` command line. Settings are built here, once, and passed down."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from funnel.cli_attribution import report_attribution
from funnel.cli_html import report_callback
from funnel.cli_promotions import report_promotions, report_tiers
from funnel.consoles import console_on_use
from funnel.errors import FunnelError
from funnel.settings import DEFAULT_DATA_DIR, Settings, load_settings

# The local broker script is part of a checkout, not of the installed package: in a
# non-editable install it is absent and `funnel broker` says so (_kafka_script).
REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_SCRIPT = REPO_ROOT / "deploy" / "local" / "kafka.sh"


app = typer.Typer(
    help="Real-time e-commerce funnels, KPIs and alerts (Kafka, Faust, ClickHouse, Prometheus).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
report_app = typer.Typer(help="Print reports from ClickHouse.", no_args_is_help=True)
broker_app = typer.Typer(help="The local Kafka broker (no Docker needed).", no_args_is_help=True)
query_app = typer.Typer(
    help="Explore raw events (events_raw) at query time: funnels, paths, retention.",
    no_args_is_help=True,
)
app.add_typer(report_app, name="report")
app.add_typer(broker_app, name="broker")
app.add_typer(query_app, name="query")
experiments_app = typer.Typer(
    help="Experiment definitions (experiments.yaml).", no_args_is_help=True
)
app.add_typer(experiments_app, name="experiments")

console = console_on_use()
err_console = console_on_use(stderr=True)


def _fail(exc: Exception) -> None:
    # Escaped: a message may quote [brackets] (a TOML table, a list) that are not markup.
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
    raise typer.Exit(2)


def _settings() -> Settings:
    try:
        return load_settings()
    except FunnelError as exc:
        _fail(exc)
        raise  # unreachable


def _mount_optional_commands() -> None:
    from funnel.cli_costs import costs_app
    from funnel.cli_forget import forget
    from schemas.cli import app as schemas_app
    from simulator.cli import simulate

    app.add_typer(schemas_app, name="schemas", help="Check the Avro contract.")
    app.command("simulate")(simulate)
    app.add_typer(costs_app, name="costs")
    app.command("forget")(forget)


@app.command()
def worker(
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")
    ] = None,
    until_idle: Annotated[
        float | None,
        typer.Option(help="Stop once every input has been fully consumed for this many seconds."),
    ] = None,
    finish_inputs: Annotated[
        bool | None,
        typer.Option(
            "--finish-inputs/--no-finish-inputs",
            help="With --until-idle: declare the inputs finished before stopping, so the "
            "watermark passes the last event and the last allowed-lateness interval is "
            "applied (the end of a replay; later records older than it count as late). "
            "Default: on with FUNNEL_REPLAY=true, else off.",
        ),
    ] = None,
    funnels: Annotated[
        Path | None, typer.Option(help="Funnel definitions YAML (default: streams/funnels.yaml).")
    ] = None,
    experiments: Annotated[
        Path | None,
        typer.Option(
            help="Experiment definitions YAML (default: FUNNEL_EXPERIMENTS_FILE, else "
            "streams/experiments.yaml with the default funnels); validated at start-up."
        ),
    ] = None,
    loglevel: Annotated[
        str, typer.Option(help="Log level: debug, info, warning, error.")
    ] = "warning",
) -> None:
    """Run a stream worker: consume the inputs, keep state, write ClickHouse, serve /metrics."""
    from streams.worker import run_worker

    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = _settings()
    console.print(
        f"worker: kafka={settings.bootstrap_servers} "
        f"clickhouse={settings.effective_clickhouse_dsn} "
        f"metrics=http://{settings.metrics_host}:{settings.metrics_port}/metrics"
    )
    if finish_inputs and until_idle is None:
        _fail(
            FunnelError("--finish-inputs needs --until-idle: inputs are finished at the idle stop")
        )
    try:
        run_worker(
            settings,
            duration_seconds=duration,
            stop_when_idle_seconds=until_idle,
            finish_inputs=finish_inputs,
            funnels_file=funnels,
            experiments_file=experiments,
            loglevel=loglevel,
        )
    except FunnelError as exc:
        _fail(exc)


# A backfill database name goes into SQL unquoted (CREATE DATABASE) and into Kafka names.
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_BUILTIN_DATABASES = {"default", "system", "information_schema"}
_APP_ID = re.compile(r"[A-Za-z0-9._-]{1,180}")


def _backfill_settings(
    settings: Settings, database: str, app_id: str | None, metrics_port: int
) -> Settings:
    """The live settings turned into a backfill's, or FunnelError naming the fix."""
    if not _DATABASE_NAME.fullmatch(database):
        raise FunnelError(
            f"--database {database!r} is not a valid database name: use letters, digits and "
            "underscores, not starting with a digit, at most 63 characters (e.g. shop_backfill)"
        )
    if database.lower() in _BUILTIN_DATABASES:
        raise FunnelError(
            f"--database {database} is a ClickHouse built-in database: choose a new name "
            "(e.g. shop_backfill)"
        )
    if database == settings.clickhouse_database:
        raise FunnelError(
            f"--database {database} is the live database (FUNNEL_CLICKHOUSE_DATABASE): a "
            "backfill writes a fresh database next to it; choose a new name "
            f"(e.g. --database {settings.clickhouse_database}_backfill)"
        )
    group = app_id or f"{settings.app_id}-backfill-{database}"
    if not _APP_ID.fullmatch(group):
        raise FunnelError(
            f"--app-id {group!r} is not a valid Kafka consumer group and topic prefix: use "
            "letters, digits, '.', '_' and '-', at most 180 characters"
        )
    if group == settings.app_id:
        raise FunnelError(
            f"--app-id {group} is the live worker's app id (FUNNEL_APP_ID): the backfill would "
            "join its consumer group and state; leave --app-id out, or choose a new one"
        )
    topics = settings.topics
    suffix = f".backfill-{database}"
    return settings.model_copy(
        update={
            "replay": True,
            "clickhouse_database": database,
            "app_id": group,
            "metrics_port": metrics_port,
            # A backfill's triggers and dead letters must not reach the live consumers again.
            "topics": topics.model_copy(
                update={"triggers": topics.triggers + suffix, "dlq": topics.dlq + suffix}
            ),
        }
    )


def _rows_in(settings: Settings) -> dict[str, int]:
    """Rows per table already in the backfill's database (created if missing)."""
    from sinks.clickhouse import open_client
    from sinks.errors import ClickHouseUnavailableError
    from streams.worker import clickhouse_target

    target = clickhouse_target(settings)
    try:
        client = open_client(target)
    except ClickHouseUnavailableError as exc:
        if not target.is_embedded:
            raise
        raise FunnelError(
            f"{exc}. The embedded ClickHouse belongs to one process: stop the live worker "
            "for the backfill, or run the backfill with FUNNEL_DATA_DIR set to another "
            "directory (and read its reports with the same FUNNEL_DATA_DIR)"
        ) from exc
    rows = client.query(
        "SELECT name, total_rows FROM system.tables WHERE database = currentDatabase() "
        "AND name != 'schema_migrations' AND total_rows > 0 ORDER BY name"
    ).result_rows
    return {str(name): int(count) for name, count in rows}


@app.command()
def backfill(
    funnels: Annotated[
        Path, typer.Option(help="The funnel definitions YAML to recompute history for.")
    ],
    database: Annotated[
        str,
        typer.Option(help="A new ClickHouse database to fill (not the live one, and empty)."),
    ],
    until_idle: Annotated[
        float,
        typer.Option(
            min=0.5, help="Stop once every input has been read to the end for this many seconds."
        ),
    ] = 15.0,
    app_id: Annotated[
        str | None,
        typer.Option(
            help="Consumer group and state topic prefix of the backfill; it must be new "
            "(default: <FUNNEL_APP_ID>-backfill-<DATABASE>)."
        ),
    ] = None,
    metrics_port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65535,
            help="Serve /metrics on this port (default 0: none; the live worker holds "
            "FUNNEL_METRICS_PORT).",
        ),
    ] = 0,
    loglevel: Annotated[
        str, typer.Option(help="Log level: debug, info, warning, error.")
    ] = "warning",
) -> None:
    """Recompute history for new funnel definitions: replay the input topics from the
    beginning into a fresh ClickHouse database, then stop.

    The replay runs as a worker with FUNNEL_REPLAY=true, a new consumer group and state
    (--app-id) and the inputs declared finished at the end (docs/semantics.md section 1).
    Its triggers and dead letters go to <topic>.backfill-<DATABASE>, not the live topics.
    The live database is never touched. With the embedded ClickHouse (the default, no
    FUNNEL_CLICKHOUSE_DSN) only one process may open the data directory: stop the live
    worker first, or set FUNNEL_DATA_DIR to another directory for the backfill.
    """
    from streams.funnels import load_funnels
    from streams.worker import kafka_leftovers, run_worker

    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    live = _settings()
    try:
        settings = _backfill_settings(live, database, app_id, metrics_port)
        definitions = load_funnels(funnels)
        existing = _rows_in(settings)
        if existing:
            held = ", ".join(f"{name}: {count:,} rows" for name, count in existing.items())
            raise FunnelError(
                f"database {database} already holds rows ({held}); a backfill fills an empty "
                f"database: choose a new --database, or drop it (DROP DATABASE {database})"
            )
        leftovers = kafka_leftovers(settings)
        if leftovers:
            raise FunnelError(
                f"an earlier run with app id {settings.app_id} left state in Kafka "
                f"({'; '.join(leftovers)}), so a worker would resume it instead of reading "
                "the inputs from the beginning: pass a new --app-id, or delete that consumer "
                f"group and the {settings.app_id}-* topics"
            )
    except FunnelError as exc:
        _fail(exc)
        raise  # unreachable: _fail exits
    names = ", ".join(f.name for f in definitions)
    console.print(
        f"backfill: funnels {escape(names)} from {escape(str(funnels))}; "
        f"inputs {', '.join(settings.topics.inputs())} from the beginning "
        f"(app id {settings.app_id}) into {settings.effective_clickhouse_dsn} "
        f"database {database}"
    )
    finished = threading.Event()
    code: int | str | None = 0
    try:
        run_worker(
            settings,
            stop_when_idle_seconds=until_idle,
            finish_inputs=True,
            funnels_file=funnels,
            loglevel=loglevel,
            on_idle_stop=finished.set,
        )
    except FunnelError as exc:
        _fail(exc)
        raise  # unreachable: _fail exits
    except SystemExit as exc:  # the Faust worker always ends with SystemExit
        code = exc.code
    if code not in (0, None) or not finished.is_set():
        err_console.print(
            f"[bold red]error:[/] the backfill stopped before reading its inputs to the end "
            f"(exit code {code}); database {database} holds part of the history. To start "
            f"over: DROP DATABASE {database}, and run again with a new --app-id (the group "
            f"{settings.app_id} has committed offsets)"
        )
        raise typer.Exit(1)
    # The embedded store lives in the data directory: reports must read the same one.
    data_dir = (
        f"FUNNEL_DATA_DIR={escape(str(settings.data_dir))} "
        if not settings.clickhouse_dsn and settings.data_dir != DEFAULT_DATA_DIR
        else ""
    )
    console.print(
        f"backfill done: database {database} holds the history for {escape(names)}.\n"
        f"Point reports at it: {data_dir}FUNNEL_CLICKHOUSE_DATABASE={database} "
        f"funnel report funnel --funnels {escape(str(funnels))}"
    )


@app.command()
def migrate(
    print_ddl: Annotated[
        bool,
        typer.Option(
            "--print", help="Print the DDL the migrations amount to and exit (no ClickHouse)."
        ),
    ] = False,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Cluster form on this cluster (default: FUNNEL_CLICKHOUSE_CLUSTER; "
            "docs/clickhouse-cluster.md)."
        ),
    ] = None,
) -> None:
    """Apply pending ClickHouse migrations (the worker also does this at start)."""
    from sinks.clickhouse import apply_migrations, open_client
    from sinks.cluster_ddl import render_schema
    from streams.worker import clickhouse_target

    settings = _settings()
    on_cluster = (settings.clickhouse_cluster if cluster is None else cluster) or None
    try:
        if print_ddl:
            typer.echo(render_schema(on_cluster), nl=False)
            return
        applied = apply_migrations(open_client(clickhouse_target(settings)), cluster=on_cluster)
    except FunnelError as exc:
        _fail(exc)
    console.print(f"applied: {', '.join(applied) if applied else 'nothing (up to date)'}")


@app.command()
def topics(
    recreate: Annotated[
        bool,
        typer.Option(help="Delete the topics and this app's state topics first (loses data)."),
    ] = False,
) -> None:
    """Create the Kafka topics if missing and show their partition counts."""
    from streams.topics import delete_pipeline_topics, ensure_topics

    settings = _settings()
    try:
        if recreate:
            deleted = delete_pipeline_topics(settings)
            console.print(f"deleted: {', '.join(deleted) if deleted else 'nothing'}")
        counts = ensure_topics(settings)
    except FunnelError as exc:
        _fail(exc)
    table = Table("topic", "partitions")
    for name, count in sorted(counts.items()):
        table.add_row(name, str(count))
    console.print(table)


# `funnel report --data-dir D ...` and `funnel query --data-dir D ...`: the group's option.
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        help="Read the embedded ClickHouse under this data directory (default: "
        "FUNNEL_DATA_DIR, .data; `make demo` writes to .data/demo)."
    ),
]


def _report_client(ctx: typer.Context) -> object:
    from sinks.clickhouse import open_client
    from streams.worker import clickhouse_target

    settings = _settings()
    data_dir = ctx.obj  # `funnel report --data-dir D ...` (the group's option)
    if isinstance(data_dir, Path):
        settings = settings.model_copy(update={"data_dir": data_dir})
    try:
        return open_client(clickhouse_target(settings), create_database=False)
    except FunnelError as exc:
        _fail(exc)
        raise


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _duration(seconds: float | None) -> str:
    """A time to convert as people read it: 42.5s, 3m 20s, 2h 05m, 1d 03h."""
    from reports.durations import duration_text

    return duration_text(seconds)


def _breakdowns(funnels_file: Path | None) -> dict[str, Breakdown]:
    """Each funnel's breakdown (dimension names, attribution), from the definitions the
    worker runs: the rows hold only the values."""
    from streams.funnels import load_funnels

    try:
        funnels = load_funnels(funnels_file)
    except FunnelError as exc:
        _fail(exc)
        raise
    return {f.name: f.breakdown for f in funnels if f.breakdown is not None}


if TYPE_CHECKING:
    from streams.funnels import Breakdown


@report_app.command("funnel")
def report_funnel(
    ctx: typer.Context,
    funnel: Annotated[str | None, typer.Option(help="Only this funnel (default: all).")] = None,
    by_channel: Annotated[bool, typer.Option(help="Also break the funnel down by channel.")] = True,
    funnels: Annotated[
        Path | None,
        typer.Option(help="The worker's funnel definitions, to name breakdown columns."),
    ] = None,
) -> None:
    """Entities entering each funnel step, step conversion, time between steps, time to
    convert (mean and median, exact), and each funnel's own breakdown."""
    from reports import queries as reports

    client = _report_client(ctx)
    rows = reports.funnel_steps(client, funnel)
    if not rows:
        err_console.print("no funnel rows yet: run `funnel worker` and `funnel simulate` first")
        raise typer.Exit(1)
    timings = reports.step_timings(client, funnel)
    table = Table(
        "funnel",
        "step",
        "event",
        "entered",
        "from previous",
        "from first",
        "avg time from previous",
        "median",
        title="Funnels",
    )
    for row in rows:
        timing = timings.get((row.funnel, row.step))
        table.add_row(
            row.funnel,
            str(row.step),
            row.step_name,
            f"{row.entered:,}",
            _pct(row.conversion_from_previous),
            _pct(row.conversion_from_first),
            _duration(timing.avg_s if timing else None),
            _duration(timing.median_s if timing else None),
        )
    console.print(table)
    to_convert = reports.time_to_convert(client, funnel)
    overall = Table("funnel", "converted", "avg time to convert", "median", title="Time to convert")
    names = sorted({row.funnel for row in rows})
    for name in names:
        total = reports.time_to_convert_overall(client, name)
        overall.add_row(
            name, f"{total.entities:,}", _duration(total.avg_s), _duration(total.median_s)
        )
    console.print(overall)
    breakdowns = _breakdowns(funnels)
    for name in names:
        steps = [r.step_name for r in rows if r.funnel == name]
        values = reports.funnel_by_breakdown(client, name)
        if values:
            known = breakdowns.get(name)
            header = known.dimensions if known else ("breakdown",)
            labels = header if len(header) == len(values[0][0]) else ("breakdown",)
            # Empty values: the attributed event had none (step:N: step N not reached).
            caption = f"attribution: {known.attribution}; (none): no value" if known else None
            breakdown_table = Table(
                *labels,
                *steps,
                "conversion",
                "avg time to convert",
                "median",
                title=f"{name} by {', '.join(labels)}",
                caption=caption,
            )
            for value, counts in values:
                counts = counts + [0] * (len(steps) - len(counts))
                rate = counts[-1] / counts[0] if counts[0] else None
                timing = to_convert.get((name, value))
                cells = value if len(labels) == len(value) else (" / ".join(value),)
                breakdown_table.add_row(
                    *(c or "(none)" for c in cells),
                    *(f"{c:,}" for c in counts),
                    _pct(rate),
                    _duration(timing.avg_s if timing else None),
                    _duration(timing.median_s if timing else None),
                )
            console.print(breakdown_table)
        if by_channel:
            channel_table = Table("channel", *steps, "conversion", title=f"{name} by channel")
            for channel, counts in reports.funnel_by_channel(client, name):
                counts = counts + [0] * (len(steps) - len(counts))
                rate = counts[-1] / counts[0] if counts[0] else None
                channel_table.add_row(channel, *(f"{c:,}" for c in counts), _pct(rate))
            console.print(channel_table)


@report_app.command("kpi")
def report_kpi(ctx: typer.Context) -> None:
    """Orders, GMV, AOV, refunds and coupon use per currency, plus pipeline counts."""
    from reports import queries as reports
    from reports.money import format_money

    client = _report_client(ctx)
    # Money in each currency's own units (ISO 4217 exponent); amounts never wrap or end in
    # "…" (a cut number misleads), so the order mix gets a table of its own.
    money = Table(
        "currency",
        "orders",
        Column("GMV", justify="right", no_wrap=True),
        Column("AOV", justify="right", no_wrap=True),
        "refunds",
        Column("refunded", justify="right", no_wrap=True),
        title="KPIs",
    )
    mix = Table(
        "currency", "coupon orders", "first / repeat", "payment failures", title="Order mix"
    )
    for k in reports.kpis(client):
        money.add_row(
            k.currency,
            f"{k.orders:,}",
            format_money(k.gmv_minor, k.currency),
            "-" if k.aov_minor is None else format_money(k.aov_minor, k.currency),
            f"{k.refunds:,}",
            format_money(k.refunded_minor, k.currency),
        )
        mix.add_row(
            k.currency,
            f"{k.coupon_orders:,}",
            f"{k.first_orders:,} / {k.repeat_orders:,}",
            f"{k.payment_failures:,}",
        )
    console.print(money)
    console.print(mix)
    counts = Table("pipeline", "rows", title="Pipeline")
    for label, value in reports.pipeline_counts(client).items():
        counts.add_row(label, f"{value:,}")
    console.print(counts)


class CohortKind(StrEnum):
    first_visit = "first_visit"
    first_purchase = "first_purchase"


class Granularity(StrEnum):
    day = "day"
    week = "week"
    month = "month"


class Activity(StrEnum):
    visit = "visit"
    purchase = "purchase"
    repeat_purchase = "repeat_purchase"


@report_app.command("retention")
def report_retention(
    ctx: typer.Context,
    cohort: Annotated[
        CohortKind, typer.Option(help="Cohorts by first visit or by first purchase.")
    ] = CohortKind.first_visit,
    granularity: Annotated[
        Granularity, typer.Option(help="Cohort and period length (UTC; weeks start Monday).")
    ] = Granularity.week,
    activity: Annotated[
        Activity | None,
        typer.Option(
            help="What counts as active (default: visit for first_visit cohorts, "
            "purchase for first_purchase cohorts)."
        ),
    ] = None,
    cohorts: Annotated[int, typer.Option(min=1, help="Show the latest this many cohorts.")] = 12,
    periods: Annotated[int, typer.Option(min=1, help="Show periods 0 .. this many - 1.")] = 13,
) -> None:
    """The retention triangle: share of each cohort active N periods later."""
    from reports import queries as reports

    chosen = activity or (Activity.visit if cohort == CohortKind.first_visit else Activity.purchase)
    client = _report_client(ctx)
    rows = reports.retention_triangle(client, cohort.value, granularity.value, chosen.value)
    if not rows:
        err_console.print(
            "no retention rows yet: run `funnel worker` and `funnel simulate --days 30` first"
        )
        raise typer.Exit(1)
    rows = rows[-cohorts:]
    width = min(periods, max(len(r.users) for r in rows))
    unit = granularity.value[0].upper()
    table = Table(
        "cohort",
        "size",
        *(f"{unit}{n}" for n in range(width)),
        title=f"Retention: {cohort.value} cohorts by {granularity.value}, "
        f"share with a {chosen.value} in period N",
        caption="blank: the period has not started yet for that cohort",
    )
    for row in rows:
        cells = [_pct(row.rate(n)) if n < len(row.users) else "" for n in range(width)]
        table.add_row(str(row.cohort_start), f"{row.cohort_size:,}", *cells)
    console.print(table)


@report_app.command("segments")
def report_segments(
    ctx: typer.Context,
    days: Annotated[int, typer.Option(min=1, help="Daily sizes for this many days.")] = 7,
) -> None:
    """Lifecycle stages (new/active/dormant/churned), RFM scores and triggers."""
    from reports import queries as reports

    client = _report_client(ctx)
    summary = reports.rfm_summary(client)
    if not summary.buyers:
        err_console.print("no buyers yet: run `funnel worker` and `funnel simulate` first")
        raise typer.Exit(1)
    stages = Table(
        "stage",
        "buyers",
        "share",
        "avg orders",
        "avg days since last order",
        title=f"Lifecycle stages ({summary.buyers:,} buyers, as of {summary.as_of:%Y-%m-%d %H:%M})",
    )
    for stage in summary.stages:
        stages.add_row(
            stage.stage,
            f"{stage.buyers:,}",
            _pct(stage.share),
            f"{stage.avg_frequency:.2f}",
            f"{stage.avg_recency_days:.1f}",
        )
    console.print(stages)
    scores = Table(
        "score", "recency", "frequency", "monetary", title="RFM quintile scores (5 = best)"
    )
    for score in summary.scores:
        scores.add_row(
            str(score.score), f"{score.recency:,}", f"{score.frequency:,}", f"{score.monetary:,}"
        )
    console.print(scores)
    daily = reports.segment_sizes(client, days)
    sizes = Table("day", *reports.STAGE_ORDER, title="Buyers per stage at the end of the day")
    for day in daily:
        sizes.add_row(str(day.day), *(f"{day.sizes[s]:,}" for s in reports.STAGE_ORDER))
    console.print(sizes)
    triggers = Table("trigger", "count", title="Marketing triggers sent")
    for kind, count in reports.trigger_counts(client).items():
        triggers.add_row(kind, f"{count:,}")
    console.print(triggers)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class FunnelMode(StrEnum):
    ordered = "ordered"
    strict = "strict"
    unordered = "unordered"


FromOption = Annotated[
    str, typer.Option("--from", help="Start of the range, inclusive: ISO date or datetime (UTC).")
]
ToOption = Annotated[
    str, typer.Option("--to", help="End of the range, exclusive: ISO date or datetime (UTC).")
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", help="table (rich), csv or json.")]


@query_app.callback()
def query_options(
    ctx: typer.Context,
    data_dir: DataDirOption = None,
) -> None:
    """Where the queries read from."""
    ctx.obj = data_dir


def _emit(
    title: str, header: list[str], rows: list[list[object]], fmt: OutputFormat, caption: str = ""
) -> None:
    """Rows as a rich table, CSV or JSON (a list of objects) on stdout."""
    import csv
    import json

    if fmt == OutputFormat.json:
        sys.stdout.write(json.dumps([dict(zip(header, row, strict=True)) for row in rows]) + "\n")
    elif fmt == OutputFormat.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    else:
        # Folded, never cut with "…": a cut event name or number misleads.
        columns = [Column(h, overflow="fold") for h in header]
        table = Table(*columns, title=title, caption=caption or None)
        for row in rows:
            table.add_row(*("-" if v is None else escape(str(v)) for v in row))
        console.print(table)


def _range(start: str, end: str) -> tuple[int, int]:
    from reports.exploration import time_range

    try:
        return time_range(start, end)
    except FunnelError as exc:
        _fail(exc)
        raise


@query_app.command("funnel")
def query_funnel(
    ctx: typer.Context,
    steps: Annotated[
        str, typer.Option(help="Event types, comma separated (custom:<name> for custom events).")
    ],
    start: FromOption,
    end: ToOption,
    mode: Annotated[FunnelMode, typer.Option(help="Step order.")] = FunnelMode.ordered,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="EVENT:FROM:TO: drop people with EVENT between steps FROM and TO."),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(help="PROPERTY=VALUE: step events must have it (repeatable; all hold)."),
    ] = None,
    window: Annotated[
        str, typer.Option(help="Conversion window from step 1 (30m, 2h, 1d).")
    ] = "1d",
    by: Annotated[
        str | None,
        typer.Option(
            help="Break down by channel, device, platform, country, campaign, "
            "experiment:<name> or properties.<key>."
        ),
    ] = None,
    attribution: Annotated[
        str, typer.Option(help="Which step's event gives --by: first_touch, last_touch, step:N.")
    ] = "first_touch",
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """People (each counted once in the range) reaching each step, conversion, and the
    average and median time between steps (docs/semantics.md section 3a)."""
    from reports import exploration as x

    from_ms, to_ms = _range(start, end)
    try:
        names = x.parse_steps(steps)
        query = x.FunnelQuery(
            steps=names,
            from_ms=from_ms,
            to_ms=to_ms,
            window_ms=x.parse_window(window),
            mode=mode.value,
            exclusions=tuple(x.parse_exclusion(e, len(names)) for e in exclude or []),
            where=tuple(where or []),
            by=by,
            attribution=attribution,
        )
        x.funnel_sql(query)  # validates every option before opening the store
    except FunnelError as exc:
        _fail(exc)
        raise
    rows = x.run_funnel(_report_client(ctx), query)
    header = ["step", "event", "people", "from previous", "from first", "avg time", "median time"]
    if by:
        header.insert(0, by)
    table_rows: list[list[object]] = []
    for r in rows:
        if fmt == OutputFormat.table:
            cells: list[object] = [
                r.step, r.event, f"{r.people:,}", _pct(r.from_previous), _pct(r.from_first),
                _duration(r.avg_s), _duration(r.median_s),
            ]  # fmt: skip
        else:
            cells = [r.step, r.event, r.people, r.from_previous, r.from_first, r.avg_s, r.median_s]
        if by:
            cells.insert(0, r.breakdown or ("(none)" if fmt == OutputFormat.table else ""))
        table_rows.append(cells)
    _emit(
        f"Funnel ({mode.value}, window {window}), people counted once",
        header,
        table_rows,
        fmt,
        caption=f"attribution: {attribution}; times from the previous step" if by else "",
    )


@query_app.command("paths")
def query_paths(
    ctx: typer.Context,
    start: FromOption,
    end: ToOption,
    after: Annotated[
        str | None, typer.Option("--after", "--from-event", help="Paths after this event.")
    ] = None,
    before: Annotated[
        str | None, typer.Option("--before", "--to-event", help="Paths before this event.")
    ] = None,
    depth: Annotated[int, typer.Option(help="How many events along the path (1-20).")] = 3,
    limit: Annotated[int, typer.Option(help="The most common pairs per step (1-10000).")] = 20,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """The most common next (--after) or previous (--before) events within a session,
    as (step, source, target, sessions) rows ready for a Sankey chart."""
    from reports import exploration as x

    from_ms, to_ms = _range(start, end)
    try:
        if (after is None) == (before is None):
            raise FunnelError(
                "give exactly one of --after EVENT (paths after it) or --before EVENT "
                "(paths leading to it)"
            )
        anchor = x.parse_event(after or before or "", "--after" if after else "--before")
        direction = "after" if after else "before"
        x.paths_sql(anchor, direction, from_ms, to_ms, depth, limit)
    except FunnelError as exc:
        _fail(exc)
        raise
    edges = x.run_paths(_report_client(ctx), anchor, direction, from_ms, to_ms, depth, limit)
    _emit(
        f"Paths {direction} {anchor} (sessions)",
        ["step", "source", "target", "sessions"],
        [[e.step, e.source, e.target, e.count] for e in edges],
        fmt,
    )


@query_app.command("retention")
def query_retention(
    ctx: typer.Context,
    start_event: Annotated[
        str, typer.Option("--start", help="The event that puts a person in a cohort.")
    ],
    return_event: Annotated[
        str, typer.Option("--return", help="The event that counts as returning.")
    ],
    start: FromOption,
    end: ToOption,
    period: Annotated[Granularity, typer.Option(help="Cohort and period length (UTC).")] = (
        Granularity.week
    ),
    periods: Annotated[int, typer.Option(help="Periods 0 .. this many - 1 (1-120).")] = 8,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Cohorts by the period of each person's first --start event in the range; the share
    with a --return event in each later period."""
    from reports import exploration as x

    from_ms, to_ms = _range(start, end)
    try:
        first = x.parse_event(start_event, "--start")
        back = x.parse_event(return_event, "--return")
        x.retention_sql(first, back, period.value, periods, from_ms, to_ms)
    except FunnelError as exc:
        _fail(exc)
        raise
    cohorts = x.run_retention(
        _report_client(ctx), first, back, period.value, periods, from_ms, to_ms
    )
    unit = period.value[0].upper()
    header = ["cohort", "size", *(f"{unit}{k}" for k in range(periods))]
    rows: list[list[object]] = []
    for c in cohorts:
        if fmt == OutputFormat.table:
            cells: list[object] = [
                _pct(c.rate(k)) if c.returned[k] is not None else "" for k in range(periods)
            ]
        else:
            cells = list(c.returned)
        rows.append([c.cohort.isoformat(), c.size, *cells])
    _emit(
        f"Retention: first {first} by {period.value}, share with {back} in period N",
        header,
        rows,
        fmt,
        caption="blank: the period starts at or after --to",
    )


def _kafka_script(command: str) -> None:
    if not KAFKA_SCRIPT.is_file():
        _fail(
            FunnelError(
                f"`funnel broker {command}` needs deploy/local/kafka.sh from a checkout of "
                f"the repository, and this installation has none ({KAFKA_SCRIPT} is missing); "
                f"run it from a checkout: bash deploy/local/kafka.sh {command}, "
                "or set KAFKA_BOOTSTRAP_SERVERS to your Kafka and skip the local broker"
            )
        )
    settings = _settings()
    env = dict(os.environ)
    env.setdefault("KAFKA_DATA_DIR", str((settings.data_dir / "kafka").resolve()))
    env.setdefault("PYTHON", sys.executable)
    result = subprocess.run(["bash", str(KAFKA_SCRIPT), command], env=env, check=False)
    if result.returncode:
        raise typer.Exit(result.returncode)


@broker_app.command("start")
def broker_start() -> None:
    """Fetch the Kafka jars (once), format storage (once) and start the broker on 127.0.0.1."""
    _kafka_script("start")


@broker_app.command("stop")
def broker_stop() -> None:
    """Stop the local broker."""
    _kafka_script("stop")


@broker_app.command("status")
def broker_status() -> None:
    """Is the local broker running?"""
    _kafka_script("status")


def _metric_text(metric: object) -> str:
    from streams.experiments import FunnelStepMetric

    if isinstance(metric, FunnelStepMetric):
        return f"{metric.funnel}: step {metric.step} ({metric.label})"
    currency = getattr(metric, "currency", None)
    return f"revenue per user ({currency})" if currency else "revenue per user (each currency)"


@report_app.command("experiments")
def report_experiments(
    ctx: typer.Context,
    experiments: Annotated[
        Path | None,
        typer.Option(
            "--experiments",
            help="Experiment file (default: FUNNEL_EXPERIMENTS_FILE, else the packaged one).",
        ),
    ] = None,
    funnels: Annotated[
        Path | None,
        typer.Option(help="The funnel file the workers run with (default: FUNNEL_FUNNELS_FILE)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--experiment", help="Only this experiment.")] = None,
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the queries behind the numbers and stop.")
    ] = False,
) -> None:
    """Live experiment readouts: exposure, lift with always-valid intervals and p-values
    beside the fixed-horizon test, guardrails, sample-ratio checks and the decision."""
    from reports.experiment_readout import experiment_sums, parameters, queries, readout
    from streams.funnels import load_funnels
    from streams.worker import worker_experiments

    settings = _settings()
    funnels_file = funnels or settings.funnels_file
    try:
        definitions = worker_experiments(
            experiments or settings.experiments_file, funnels_file, load_funnels(funnels_file)
        )
    except FunnelError as exc:
        _fail(exc)
        raise
    if name is not None:
        definitions = tuple(e for e in definitions if e.name == name)
        if not definitions:
            _fail(
                FunnelError(
                    f"no experiment {name!r} in the experiment file; "
                    "`funnel experiments check` lists them"
                )
            )
    if not definitions:
        console.print("no experiments configured (`funnel experiments check` says why)")
        return
    if sql:
        for exp in definitions:
            for part, text in queries(exp).items():
                sys.stdout.write(f"-- {exp.name}: {part}; parameters {parameters(exp)}\n")
                sys.stdout.write(text.strip() + ";\n\n")
        return
    client = _report_client(ctx)
    for exp in definitions:
        try:
            result = readout(exp, experiment_sums(client, exp))
        except Exception as exc:  # a store without the tables yet, or an engine error
            _fail(FunnelError(f"cannot read experiment {exp.name}: {exc}; run a worker first"))
            raise
        _print_experiment(result, _live_status(client, exp.name))


def _live_status(client: Any, experiment: str) -> tuple[str, str, str] | None:
    """The worker monitor's newest (evaluated_at, verdict, reason), if it ran."""
    try:
        rows = client.query(
            "SELECT toString(evaluated_at), verdict, reason FROM experiment_status "
            "WHERE experiment = {e:String} ORDER BY evaluated_at DESC LIMIT 1",
            parameters={"e": experiment},
        ).result_rows
    except Exception:  # before migration 0008: no monitor output
        return None
    return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None


def _interval_text(low: float, high: float) -> str:
    def one(x: float) -> str:
        return "-inf" if x == float("-inf") else "+inf" if x == float("inf") else f"{x:+.1%}"

    return f"[{one(low)}, {one(high)}]"


def _print_variants(r: Any) -> None:
    """What each variant's exposed visitors did: the primary funnel's steps reached,
    orders, rates, and per currency revenue per user and AOV."""
    from reports.money import format_money

    exp, sums = r.exp, r.sums
    table = Table(
        Column("variant", overflow="fold"),
        Column("exposed", justify="right", overflow="fold"),
        Column(
            "funnel steps reached" if exp.primary.kind == "funnel_step" else "", overflow="fold"
        ),
        Column("orders", justify="right", overflow="fold"),
        *(Column(g.metric, justify="right", overflow="fold") for g in exp.rates),
        title=f"{exp.name}: exposed visitors, from their exposure on",
    )
    for name, v in sums.variants.items():
        table.add_row(
            name,
            f"{v.exposed:,}",
            " > ".join(f"{n:,}" for n in v.reached) or "-",
            f"{v.orders:,}",
            *(_rate_text(v.guardrails[g.metric]) for g in exp.rates),
        )
    console.print(table)
    money = Table(
        "variant",
        "currency",
        Column("orders", justify="right"),
        Column("revenue / exposed visitor", justify="right", overflow="fold"),
        Column("AOV", justify="right", overflow="fold"),
        title=f"{exp.name}: revenue per currency",
    )
    for name, v in sums.variants.items():
        for currency, rev in v.revenue.items():
            money.add_row(
                name,
                currency,
                f"{rev.orders:,}",
                format_money(rev.total / rev.n if rev.n else 0, currency),
                "-" if rev.aov is None else format_money(rev.aov, currency),
            )
    if money.row_count:
        console.print(money)


def _rate_text(r: Any) -> str:
    return "-" if not r.denominator else f"{r.numerator / r.denominator:.2%} of {r.denominator:,}"


def _print_experiment(r: Any, live: tuple[str, str, str] | None) -> None:
    from reports.money import format_money

    exp, sums = r.exp, r.sums
    counts = sums.counts()
    split = ", ".join(
        f"{v}: {counts[v]:,} ({float(exp.weight_of(v)):.0%} planned)" for v in exp.variant_names
    )
    console.print(f"[bold]{exp.name}[/bold]  {exp.description}")
    console.print(
        f"exposed {split}; mixed (excluded) {sums.mixed:,}; unknown variant {sums.unknown:,}"
    )
    console.print(
        f"sample ratio: chi-square p={r.srm_chi_square.p_value:.3g}, "
        f"sequential p={r.srm_sequential.p_value:.3g}"
    )
    _print_variants(r)
    # Numbers fold onto a second line in a narrow terminal, never end in "…".
    table = Table(
        Column("variant", overflow="fold"),
        Column("metric", overflow="fold"),
        Column(exp.control, justify="right", overflow="fold"),
        Column("variant", justify="right", overflow="fold"),
        Column("lift", justify="right", overflow="fold"),
        Column(f"{1 - float(exp.alpha):.0%} CI (AV)", justify="right", overflow="fold"),
        Column("p AV", justify="right", overflow="fold"),
        Column("p fixed", justify="right", overflow="fold"),
        title=f"{exp.name}: each variant against {exp.control}",
        caption="AV: always valid (mSPRT, safe to watch); fixed: one look at a planned size",
    )
    for variant, metrics in r.metrics.items():
        for m in metrics:
            av = m.always_valid
            cuped = " (CUPED)" if m.metric.endswith("_cuped") else ""
            if m.metric.startswith("revenue_per_user"):
                label = f"revenue/user {m.currency}{cuped}"
                control = format_money(av.control_mean, m.currency)
                value = format_money(av.treatment_mean, m.currency)
            else:
                label = m.metric
                if m.metric.startswith("primary"):
                    label = f"{exp.primary.funnel}: {exp.primary.label}{cuped}"
                control, value = f"{av.control_mean:.2%}", f"{av.treatment_mean:.2%}"
            ci = av.relative_ci
            table.add_row(
                variant,
                label,
                control,
                value,
                "-" if av.relative_lift is None else f"{av.relative_lift:+.1%}",
                "-" if ci is None else _interval_text(ci.low, ci.high),
                f"{av.p_value:.3g}",
                f"{m.fixed_horizon.p_value:.3g}",
            )
    console.print(table)
    d = r.decision
    console.print(f"decision now: [bold]{d.verdict.value}[/bold] ({d.reason})")
    if live is not None:
        console.print(
            f"worker's live readout at {live[0]} UTC: {live[1]} ({live[2]}); its p-values "
            "and intervals run over every evaluation"
        )
    console.print()


@experiments_app.command("check")
def experiments_check(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="Experiment file (default: FUNNEL_EXPERIMENTS_FILE, else the packaged one)."
        ),
    ] = None,
    funnels: Annotated[
        Path | None,
        typer.Option(help="The funnel file the workers run with (default: FUNNEL_FUNNELS_FILE)."),
    ] = None,
    dump: Annotated[
        bool, typer.Option("--dump", help="Print the file with every default written out.")
    ] = False,
) -> None:
    """Validate experiment definitions against the funnels, as a worker does at start-up."""
    from streams.experiments import dump_experiments
    from streams.funnels import load_funnels
    from streams.worker import worker_experiments

    settings = _settings()
    funnels_file = funnels or settings.funnels_file
    try:
        # The worker's own rule: which file applies with which funnels.
        definitions = worker_experiments(
            file or settings.experiments_file, funnels_file, load_funnels(funnels_file)
        )
    except FunnelError as exc:
        _fail(exc)
        raise  # unreachable: _fail exits
    if dump:
        sys.stdout.write(dump_experiments(definitions))
        return
    table = Table("variants (split)", "control", "primary", "guardrails", "alpha")
    table.columns.insert(0, Column("experiment", no_wrap=True))  # the name, never cut
    for e in definitions:
        split = ", ".join(f"{v.name} {float(v.weight):.0%}" for v in e.variants)
        table.add_row(
            e.name,
            split,
            e.control,
            _metric_text(e.primary),
            ", ".join(g.metric for g in e.guardrails) or "-",
            f"{float(e.alpha):g}",
        )
    console.print(table)
    console.print(f"{len(definitions)} experiment(s) valid")
    if not definitions and (file or settings.experiments_file) is None:
        console.print(
            "(the packaged experiments measure steps of the packaged funnels: with another "
            "funnel file, name an experiment file, e.g. FUNNEL_EXPERIMENTS_FILE)"
        )


# Commands whose code lives in their own modules (they import this one lazily).
report_app.callback(invoke_without_command=True)(report_callback)  # --data-dir, --html
report_app.command("attribution")(report_attribution)
report_app.command("promotions")(report_promotions)
report_app.command("tiers")(report_tiers)


def main() -> None:
    _mount_optional_commands()
    app()


if __name__ == "__main__":
    main()
