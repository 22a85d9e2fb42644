"""`funnel report promotions` and `funnel report tiers` (docs/semantics.md section 10a).

Registered on the report group by ``funnel/cli.py``; they read the store the group's
``--data-dir`` names (``funnel.cli._report_client``, looked up at call time).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from reports.promotions import Repeat, TierCohortRow, TierKpiRow

__all__ = ["Part", "ReportFormat", "report_promotions", "report_tiers"]


class ReportFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class Part(StrEnum):
    all = "all"
    kpis = "kpis"
    retention = "retention"


FromOption = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Start of the range, inclusive: ISO date or datetime (UTC). Default: all data.",
    ),
]
ToOption = Annotated[
    str | None,
    typer.Option(
        "--to",
        help="End of the range, exclusive: ISO date or datetime (UTC). Default: 1 ms after "
        "the latest on-time event. Repeat orders count up to here.",
    ),
]
CurrencyOption = Annotated[
    str | None, typer.Option(help="Only orders in this currency (ISO 4217, e.g. CNY).")
]
FormatOption = Annotated[ReportFormat, typer.Option("--format", help="table (rich), csv or json.")]
SqlOption = Annotated[
    bool, typer.Option("--sql", help="Print the queries and their parameters and stop.")
]
_DATA_END = "<1 ms after the latest on-time event>"
_T = TypeVar("_T")


def _range(start: str | None, end: str | None) -> tuple[int, int | None]:
    """(from_ms, to_ms or None for the end of the data); exits 2 on a bad value."""
    from funnel.cli import _fail
    from funnel.errors import FunnelError
    from reports.exploration import parse_time
    from reports.promotions import PromotionError

    try:
        from_ms = 0 if start is None else int(parse_time(start, "--from").timestamp() * 1000)
        to_ms = None if end is None else int(parse_time(end, "--to").timestamp() * 1000)
        if to_ms is not None and to_ms <= from_ms:
            raise PromotionError(
                f"--to {end!r} is not after --from {start or '(all data)'!r}: the range is "
                "[from, to), give a later --to"
            )
    except FunnelError as exc:
        _fail(exc)
        raise
    return from_ms, to_ms


def _print_sql(queries: list[tuple[str, str, dict[str, Any]]], to_given: bool) -> None:
    from reports.promotions import data_end_sql

    if not to_given:
        sys.stdout.write(f"-- the default --to: {_DATA_END}\n{data_end_sql()};\n\n")
    for name, sql, params in queries:
        shown = dict(params) if to_given else {**params, "to_ms": _DATA_END}
        sys.stdout.write(f"-- {name}; parameters {json.dumps(shown)}\n{sql.strip()};\n\n")


def _read(run: Callable[..., _T], *args: Any) -> _T:
    """``run(*args)``; a store that cannot answer (no events_raw, or one without the
    columns of migration 0012) exits 2 with the fix."""
    from funnel.cli import _fail
    from funnel.errors import FunnelError

    try:
        return run(*args)
    except FunnelError as exc:
        _fail(exc)
        raise
    except Exception as exc:  # the engine's error: a store without the tables or columns
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
        _fail_with(
            f"cannot read events_raw ({first}); run `funnel migrate` (migration "
            "0012_promotions adds the item coupon columns) and a worker first"
        )
        raise


def _resolve_end(client: Any, start: str | None, from_ms: int, to_ms: int | None) -> int:
    """--to, or 1 ms after the latest on-time event; exits when there is nothing to read."""
    from funnel.cli import err_console
    from reports.promotions import data_end

    if to_ms is not None:
        return to_ms
    end = _read(data_end, client)
    if end is None:
        err_console.print("no events yet: run `funnel worker` and `funnel simulate` first")
        raise typer.Exit(1)
    if end <= from_ms:
        _fail_with(
            f"--from {start!r} is after the latest on-time event ({_span(None, 0, end)}): "
            "give an earlier --from, or a --to"
        )
    return end


def _span(start: str | None, from_ms: int, to_ms: int) -> str:
    """``[from, to)`` as people read it; "all data" when --from was left out."""
    from datetime import UTC, datetime

    def moment(ms: int) -> str:
        text = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return (text + f".{ms % 1000:03d}" if ms % 1000 else text) + " UTC"

    first = "all data" if start is None else f"from {moment(from_ms)}"
    return f"{first} to {moment(to_ms)} (exclusive)"


def _money(amount: float | None, currency: str) -> str:
    from reports.money import format_money

    return "-" if amount is None else format_money(amount, currency)


def _repeat_cells(repeat: Repeat, horizons: tuple[int, ...], table: bool) -> list[object]:
    if table:
        return [_pct(repeat.rate), *(_pct(repeat.rate_within(k)) for k in range(len(horizons)))]
    cells: list[object] = [repeat.repeat_buyers, repeat.rate]
    for k in range(len(horizons)):
        cells += [repeat.mature[k], repeat.within[k], repeat.rate_within(k)]
    return cells


def _repeat_header(horizons: tuple[int, ...], table: bool) -> list[str]:
    if table:
        return ["repeat", *(f"repeat <{d}d" for d in horizons)]
    header = ["repeat_buyers", "repeat_rate"]
    for d in horizons:
        header += [f"mature_{d}d", f"repeat_{d}d", f"repeat_rate_{d}d"]
    return header


_REPEAT_CAPTION = (
    "repeat: share of the {who} who ordered again before --to; <Nd: again within N days, "
    "over those whose first order is at least N days before --to ('-': none yet)"
)


def _emit(
    title: str,
    header: list[str],
    rows: list[list[object]],
    fmt: ReportFormat,
    caption: str = "",
) -> None:
    from funnel.cli import OutputFormat
    from funnel.cli import _emit as emit

    emit(title, header, rows, OutputFormat(fmt.value), caption)


def _fail_with(message: str) -> None:
    from funnel.cli import _fail
    from reports.promotions import PromotionError

    _fail(PromotionError(message))


def report_promotions(
    ctx: typer.Context,
    start: FromOption = None,
    end: ToOption = None,
    currency: CurrencyOption = None,
    repeat_within: Annotated[
        str,
        typer.Option(
            help="Also the repeat rate within these many days of the first order "
            "(comma separated, 1-366, at most 4)."
        ),
    ] = "30",
    fmt: FormatOption = ReportFormat.table,
    sql: SqlOption = False,
) -> None:
    """Per coupon code and currency: orders, discount, AOV with the code against orders
    without any coupon, the share of first orders, and the repeat rate of the buyers the
    code acquired (docs/semantics.md section 10a)."""
    from funnel.cli import _fail, _report_client
    from funnel.errors import FunnelError
    from reports import promotions as p

    from_ms, to_ms = _range(start, end)
    try:
        horizons = p.parse_horizons(repeat_within)
        code = p.parse_currency(currency)
        upper = to_ms if to_ms is not None else from_ms + 1
        query = p.promotions_sql(from_ms, upper, horizons, code)
    except FunnelError as exc:
        _fail(exc)
        raise
    if sql:
        _print_sql([("promotions", *query)], to_ms is not None)
        return
    client = _report_client(ctx)
    to_ms = _resolve_end(client, start, from_ms, to_ms)
    rows = _read(p.run_promotions, client, from_ms, to_ms, horizons, code)
    table = fmt == ReportFormat.table
    baseline = {r.currency: r.aov_minor for r in rows if r.kind == "none"}
    header = [
        "currency", "kind", "coupon", "orders", "coupon_orders", "gmv_minor", "aov_minor",
        "aov_no_coupon_minor", "discount_minor", "first_orders", "first_share",
    ]  # fmt: skip
    if table:
        header = [
            "currency", "coupon", "orders", "coupon orders", "GMV", "AOV", "AOV no coupon",
            "discount", "first orders", "first share",
        ]  # fmt: skip
    header += _repeat_header(horizons, table)
    out: list[list[object]] = []
    for r in rows:
        without = baseline.get(r.currency)
        if table:
            label = {"none": "(no coupon)", "all": "(all orders)"}.get(r.kind, r.coupon)
            cells: list[object] = [
                r.currency or "(none)", label, f"{r.orders:,}", f"{r.coupon_orders:,}",
                _money(r.gmv_minor, r.currency), _money(r.aov_minor, r.currency),
                _money(without, r.currency), _money(r.discount_minor, r.currency),
                f"{r.first_orders:,}", _pct(r.first_share),
            ]  # fmt: skip
        else:
            cells = [
                r.currency, r.kind, r.coupon, r.orders, r.coupon_orders, r.gmv_minor,
                r.aov_minor, without, r.discount_minor, r.first_orders, r.first_share,
            ]  # fmt: skip
        out.append(cells + _repeat_cells(r.repeat, horizons, table))
    _emit(
        f"Promotions, {_span(start, from_ms, to_ms)}",
        header,
        out,
        fmt,
        caption="coupon: order- or item-level code (discount: the code's own); "
        "(no coupon): orders without any; (all orders): the KPI sums. "
        + _REPEAT_CAPTION.format(who="buyers the row acquired (its first orders)"),
    )


def _pct(value: float | None) -> str:
    from funnel.cli import _pct as pct

    return pct(value)


def _tier_rows(rows: list[TierKpiRow], table: bool) -> tuple[list[str], list[list[object]]]:
    if table:
        header = ["tier", "currency", "orders", "buyers", "GMV", "AOV", "first / repeat"]
    else:
        header = ["tier", "currency", "orders", "buyers", "gmv_minor", "aov_minor",
                  "first_orders", "repeat_orders"]  # fmt: skip
    out: list[list[object]] = []
    for r in rows:
        if table:
            out.append([
                r.tier or "(unknown)", r.currency or "(none)", f"{r.orders:,}", f"{r.buyers:,}",
                _money(r.gmv_minor, r.currency), _money(r.aov_minor, r.currency),
                f"{r.first_orders:,} / {r.repeat_orders:,}",
            ])  # fmt: skip
        else:
            out.append([r.tier, r.currency, r.orders, r.buyers, r.gmv_minor, r.aov_minor,
                        r.first_orders, r.repeat_orders])  # fmt: skip
    return header, out


def _cohort_rows(
    rows: list[TierCohortRow], horizons: tuple[int, ...], table: bool
) -> tuple[list[str], list[list[object]]]:
    header = ["tier", "new buyers" if table else "new_buyers", *_repeat_header(horizons, table)]
    out: list[list[object]] = []
    for r in rows:
        count: object = f"{r.repeat.acquired:,}" if table else r.repeat.acquired
        tier = (r.tier or "(unknown)") if table else r.tier
        out.append([tier, count, *_repeat_cells(r.repeat, horizons, table)])
    return header, out


def report_tiers(
    ctx: typer.Context,
    start: FromOption = None,
    end: ToOption = None,
    currency: CurrencyOption = None,
    tier_property: Annotated[
        str,
        typer.Option("--property", help="The event property that holds the tier."),
    ] = "membership_tier",
    repeat_within: Annotated[
        str,
        typer.Option(
            help="Repeat rates within these many days of the first order "
            "(comma separated, 1-366, at most 4)."
        ),
    ] = "7,30",
    part: Annotated[
        Part, typer.Option(help="kpis (orders by tier), retention (new buyers' repeat) or all.")
    ] = Part.all,
    fmt: FormatOption = ReportFormat.table,
    sql: SqlOption = False,
) -> None:
    """Orders, buyers, GMV, AOV and first/repeat orders per membership tier and currency,
    and the repeat purchase of each tier's new buyers (docs/semantics.md section 10a)."""
    from funnel.cli import _fail, _report_client
    from funnel.errors import FunnelError
    from reports import promotions as p

    from_ms, to_ms = _range(start, end)
    if fmt == ReportFormat.csv and part == Part.all:
        _fail_with(
            "--format csv writes one table: add --part kpis (orders by tier) or "
            "--part retention (new buyers' repeat purchase)"
        )
    try:
        horizons = p.parse_horizons(repeat_within)
        code = p.parse_currency(currency)
        key = p.parse_property(tier_property)
        upper = to_ms if to_ms is not None else from_ms + 1
        queries = [
            ("tier KPIs", *p.tier_kpis_sql(from_ms, upper, key, code)),
            ("tier retention", *p.tier_retention_sql(from_ms, upper, horizons, key, code)),
        ]
    except FunnelError as exc:
        _fail(exc)
        raise
    if sql:
        wanted = {Part.all: queries, Part.kpis: queries[:1], Part.retention: queries[1:]}
        _print_sql(wanted[part], to_ms is not None)
        return
    client = _report_client(ctx)
    to_ms = _resolve_end(client, start, from_ms, to_ms)
    table = fmt == ReportFormat.table
    span = _span(start, from_ms, to_ms)
    parts: dict[str, tuple[list[str], list[list[object]]]] = {}
    if part in (Part.all, Part.kpis):
        kpis = _read(p.run_tier_kpis, client, from_ms, to_ms, key, code)
        parts["kpis"] = _tier_rows(kpis, table)
    if part in (Part.all, Part.retention):
        cohorts = _read(p.run_tier_retention, client, from_ms, to_ms, horizons, key, code)
        parts["retention"] = _cohort_rows(cohorts, horizons, table)
    if fmt == ReportFormat.json and part == Part.all:
        document = {
            name: [dict(zip(header, row, strict=True)) for row in rows]
            for name, (header, rows) in parts.items()
        }
        sys.stdout.write(json.dumps(document) + "\n")
        return
    caption = f"tier: properties.{key} at the purchase; (unknown): none seen by then"
    if "kpis" in parts:
        _emit(f"Orders by {key}, {span}", *parts["kpis"], fmt, caption=caption)
    if "retention" in parts:
        _emit(
            f"Repeat purchase of new buyers by {key} of their first order, {span}",
            *parts["retention"],
            fmt,
            caption=_REPEAT_CAPTION.format(who="new buyers (first order in the range)"),
        )
