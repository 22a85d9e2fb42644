"""`funnel report --html FILE`: every report as one self-contained HTML page (issue #17).

``funnel/cli.py`` registers :func:`report_callback` as the report group's callback
(``report_app.callback(invoke_without_command=True)(report_callback)``), in place of
its ``--data-dir`` callback, whose option it keeps: ``funnel report --data-dir D kpi``
works as before, and ``funnel report --html report.html`` (with no command) writes the
page. The store is found as by every report (``--data-dir``, ``FUNNEL_CLICKHOUSE_*``),
through the running worker's live SQL endpoint when a worker holds the embedded store
(``sinks/clickhouse.py`` ``open_client``).

:func:`report_html` does the work for any client, so tests and scripts call it directly.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from funnel.consoles import console_on_use
from funnel.errors import FunnelError

console = console_on_use()
err_console = console_on_use(stderr=True)

COHORT_KINDS = ("first_visit", "first_purchase")
GRANULARITIES = ("day", "week", "month")
ACTIVITIES = ("visit", "purchase", "repeat_purchase")


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
    raise typer.Exit(2)


def _choice(value: str | None, allowed: tuple[str, ...], option: str) -> None:
    if value is not None and value not in allowed:
        raise FunnelError(f"{option} {value!r}: use one of {', '.join(allowed)}")


def report_html(
    file: Path,
    client: Any,
    *,
    source: str,
    locale: str = "en_US",
    funnels_file: Path | None = None,
    experiments_file: Path | None = None,
    model: str = "last_non_direct",
    cohort: str = "first_visit",
    granularity: str | None = None,
    activity: str | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """Read every report through ``client`` and write the page to ``file`` (replaced
    whole: written beside it, then renamed). Returns the sections that could not be read,
    with the reason (the page says so in their place). FunnelError: a bad option or
    definition file."""
    from reports.html.data import collect
    from reports.html.fmt import NumberFormat
    from reports.html.page import render
    from streams.funnels import load_funnels
    from streams.worker import worker_experiments

    fmt = NumberFormat(locale)
    _choice(cohort, COHORT_KINDS, "--cohort")
    _choice(granularity, GRANULARITIES, "--granularity")
    _choice(activity, ACTIVITIES, "--activity")
    definitions = load_funnels(funnels_file)
    breakdowns = {f.name: f.breakdown for f in definitions if f.breakdown is not None}
    experiments = worker_experiments(experiments_file, funnels_file, definitions)
    data = collect(
        client,
        source=source,
        breakdowns=breakdowns,
        experiments=experiments,
        model=model,
        cohort_kind=cohort,
        granularity=granularity,
        activity=activity,
        now=now,
    )
    page = render(data, fmt)
    target = file.expanduser()
    folder = target.resolve().parent
    if not folder.is_dir():
        raise FunnelError(f"cannot write {file}: the folder {folder} does not exist")
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(page)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as open() would create it, not mkstemp's 0600
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return dict(data.problems)


def describe_source(client: Any, settings: Any) -> str:
    """Where the numbers come from, for the page's header."""
    from sinks.clickhouse import ClickHouseTarget
    from streams.worker import clickhouse_target

    target: ClickHouseTarget = clickhouse_target(settings)
    database = settings.clickhouse_database
    if not target.is_embedded:
        return f"ClickHouse {target.describe()}, database {database}"
    if type(client).__name__ == "ChdbClient":
        return f"embedded store {settings.data_dir / 'clickhouse'}, database {database}"
    return (
        f"the running worker's live SQL endpoint at http://{target.endpoint_host}:"
        f"{target.endpoint_port} (embedded store {settings.data_dir / 'clickhouse'})"
    )


DataDirOption = Annotated[
    Path | None,
    typer.Option(
        help="Read the embedded ClickHouse under this data directory (default: "
        "FUNNEL_DATA_DIR, .data; `make demo` writes to .data/demo)."
    ),
]


def report_callback(
    ctx: typer.Context,
    data_dir: DataDirOption = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            dir_okay=False,
            help="Write every report as one self-contained HTML page (SVG charts, no "
            "script, opens offline) to this file, instead of running a report command.",
        ),
    ] = None,
    locale: Annotated[
        str,
        typer.Option(
            envvar="FUNNEL_LOCALE",
            help="With --html: the CLDR locale of numbers, money and dates (en_US, de_DE, "
            "ja_JP...).",
        ),
    ] = "en_US",
    funnels: Annotated[
        Path | None,
        typer.Option(
            help="With --html: the worker's funnel definitions, to name breakdowns "
            "(default: FUNNEL_FUNNELS_FILE, else the packaged ones)."
        ),
    ] = None,
    experiments: Annotated[
        Path | None,
        typer.Option(
            help="With --html: the experiment file (default: FUNNEL_EXPERIMENTS_FILE, "
            "else the packaged one with the packaged funnels)."
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            help="With --html: the attribution model of the revenue per channel "
            "(ROAS is drawn under every model)."
        ),
    ] = "last_non_direct",
    cohort: Annotated[
        str, typer.Option(help="With --html: retention cohorts, first_visit or first_purchase.")
    ] = "first_visit",
    granularity: Annotated[
        str | None,
        typer.Option(
            help="With --html: retention period, day, week or month (default: day up to "
            "14 daily cohorts, else week)."
        ),
    ] = None,
) -> None:
    """Where the reports read from; --html FILE writes them all as one HTML page."""
    ctx.obj = data_dir
    if html is None:
        if ctx.invoked_subcommand is None:
            _fail(
                FunnelError(
                    "give a report command (`funnel report --help` lists them), or "
                    "--html FILE for every report as one HTML page"
                )
            )
        return
    if ctx.invoked_subcommand is not None:
        _fail(
            FunnelError(
                f"--html writes every report as one page: leave out the command "
                f"{ctx.invoked_subcommand!r}, or --html"
            )
        )
    from funnel.cli import _report_client, _settings
    from reports.attribution import check_model
    from reports.html.fmt import parse_locale

    try:  # every option checked before the store is opened
        parse_locale(locale)
        check_model(model)
        _choice(cohort, COHORT_KINDS, "--cohort")
        _choice(granularity, GRANULARITIES, "--granularity")
    except FunnelError as exc:
        _fail(exc)
    settings = _settings()
    client = _report_client(ctx)
    if isinstance(data_dir, Path):
        settings = settings.model_copy(update={"data_dir": data_dir})
    try:
        problems = report_html(
            html,
            client,
            source=describe_source(client, settings),
            locale=locale,
            funnels_file=funnels or settings.funnels_file,
            experiments_file=experiments or settings.experiments_file,
            model=model,
            cohort=cohort,
            granularity=granularity,
        )
    except FunnelError as exc:
        _fail(exc)
        raise  # unreachable: _fail exits
    for section, reason in problems.items():
        err_console.print(f"[yellow]warning:[/] {escape(section)}: {escape(reason)}")
    console.print(f"wrote {escape(str(html))}")
