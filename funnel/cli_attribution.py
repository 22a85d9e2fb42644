"""`funnel report attribution`: ROAS, CPA, CAC and LTV by channel (issue #15).

Registered on the report group by ``funnel/cli.py``
(``report_app.command("attribution")(report_attribution)``); reads where the other
reports read (``funnel report --data-dir``, ``FUNNEL_CLICKHOUSE_*``, the worker's live
endpoint). The numbers are the views' (``reports/attribution.py``); ``--sql`` prints the
queries behind them.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from funnel.consoles import console_on_use
from funnel.errors import FunnelError

console = console_on_use()
err_console = console_on_use(stderr=True)


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
    raise typer.Exit(2)


def _client(ctx: typer.Context) -> Any:
    # The report group's own client (funnel.cli), imported here: funnel.cli imports this.
    from funnel.cli import _report_client

    return _report_client(ctx)


def _money_micro(amount_micro: int, currency: str) -> str:
    from reports.money import format_money

    return format_money(Decimal(amount_micro).scaleb(-6), currency)


def _money(amount_minor: float | int | None, currency: str) -> str:
    from reports.money import format_money

    if amount_minor is None:
        return "-"
    return format_money(amount_minor, currency)


def _count_micro(amount_micro: int) -> str:
    return f"{amount_micro / 1_000_000:,.2f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _num(header: str) -> Column:
    # Numbers fold onto a second line in a narrow terminal, never end in "…".
    return Column(header, justify="right", overflow="fold")


def _text(header: str) -> Column:
    return Column(header, overflow="fold")


def report_attribution(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Option(
            help="Attribution model of the daily and LTV tables: first_touch, last_touch, "
            "last_non_direct, linear, position_based or time_decay."
        ),
    ] = "last_non_direct",
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="First UTC day, YYYY-MM-DD (default: 6 days before --to).",
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Last UTC day, YYYY-MM-DD, included (default: the newest day with data).",
        ),
    ] = None,
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the queries behind the numbers and stop.")
    ] = False,
) -> None:
    """ROAS per channel under every model; cost, attributed orders and revenue, refunds,
    ROAS, CPA, new customers and CAC per day, channel, campaign and KOL; LTV (D7, D30)
    by acquisition channel."""
    from reports import attribution as attr

    try:
        attr.check_model(model)
        if sql:
            lo = attr.parse_day(start, "--from").isoformat() if start else "<--to - 6 days>"
            hi = attr.parse_day(end, "--to").isoformat() if end else "<the newest day>"
            for title, text, params in attr.queries(model, None):
                shown = {**params, "from": lo, "to": hi}
                sys.stdout.write(f"-- {title}; parameters {shown}\n{text.strip()};\n\n")
            return
        client = _client(ctx)
        try:
            newest = attr.newest_day(client)
        except Exception as exc:  # a store without the views yet, or an engine error
            raise FunnelError(
                f"cannot read the attribution views: {str(exc).splitlines()[0][:300]}; "
                "run `funnel migrate` and a worker first"
            ) from exc
        days = attr.day_range(start, end, newest)
        if days is None:
            err_console.print(
                "no attributed orders, refunds or costs yet: run `funnel worker` and "
                "`funnel simulate`, and import costs with `funnel costs import FILE.csv`"
            )
            raise typer.Exit(1)
        roas = attr.roas_by_channel(client, days)
        daily = attr.daily_rows(client, model, days)
        ltv = attr.ltv_by_channel(client, model, days)
    except FunnelError as exc:
        _fail(exc)
        raise  # unreachable: _fail exits
    span = f"{days.start.isoformat()} .. {days.end.isoformat()} (UTC)"
    if not roas and not daily and not ltv:
        console.print(f"nothing attributed and no cost in {span}")
        return
    _print_roas(roas, attr.MODELS, span)
    _print_daily(daily, model, span)
    _print_ltv(ltv, model, span, newest)


def _print_roas(rows: list[Any], models: tuple[str, ...], span: str) -> None:
    costed = [r for r in rows if r.has_cost]
    table = Table(
        _text("channel"),
        _text("currency"),
        _num("cost"),
        *(_num(m) for m in models),
        title=f"ROAS per channel and model, {span}",
        caption="net attributed revenue (revenue - refunds) / cost, in the cost's currency"
        + (
            f"; {len(rows) - len(costed)} channel x currency pairs without a cost are left "
            "out (their revenue is in the table below)"
            if len(costed) < len(rows)
            else ""
        ),
    )
    for r in costed:
        table.add_row(
            escape(r.channel),
            r.currency or "-",
            _money(r.cost_minor, r.currency) if r.has_cost else "-",
            *(_ratio(r.roas(m)) for m in models),
        )
    console.print(table)


def _print_daily(rows: list[Any], model: str, span: str) -> None:
    table = Table(
        _text("day"),
        _text("channel"),
        _text("campaign"),
        _text("KOL"),
        _num("cost"),
        _num("orders"),
        _num("revenue"),
        _num("refunded"),
        _num("ROAS"),
        _num("CPA"),
        _num("new cust."),
        _num("CAC"),
        title=f"Per day, channel, campaign and KOL ({model}), {span}",
        caption="orders and new customers are attributed (shares of orders); a campaign's "
        "cost is on each of its KOL rows; money in each row's currency",
    )
    for r in rows:
        table.add_row(
            r.day.isoformat(),
            escape(r.channel),
            escape(r.campaign) or "-",
            escape(r.kol) or "-",
            _money(r.cost_minor, r.currency) if r.has_cost else "-",
            _count_micro(r.orders_micro),
            _money_micro(r.revenue_micro, r.currency),
            _money_micro(r.refunded_micro, r.currency),
            _ratio(r.roas),
            _money(r.cpa_minor, r.currency),
            _count_micro(r.first_orders_micro),
            _money(r.cac_minor, r.currency),
        )
    console.print(table)


def _print_ltv(rows: list[Any], model: str, span: str, newest: Any) -> None:
    table = Table(
        _text("channel"),
        _text("currency"),
        _num("customers"),
        _num("revenue D7"),
        _num("revenue D30"),
        _num("LTV D7"),
        _num("LTV D30"),
        title=f"LTV by acquisition channel ({model}), first orders {span}",
        caption="revenue of the customers' orders within 7 / 30 days of their first order, "
        "weighted by the first order's shares; LTV per customer"
        + (
            f"; cohorts less than 30 days before {newest.isoformat()} are still growing"
            if newest is not None
            else ""
        ),
    )
    for r in rows:
        table.add_row(
            escape(r.channel),
            r.currency or "-",
            _count_micro(r.customers_micro),
            _money_micro(r.revenue_d7_micro, r.currency),
            _money_micro(r.revenue_d30_micro, r.currency),
            _money(r.ltv_minor(7), r.currency),
            _money(r.ltv_minor(30), r.currency),
        )
    console.print(table)
