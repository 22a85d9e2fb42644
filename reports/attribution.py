"""Attribution, marketing cost and ROI, read from ClickHouse (issue #15, docs/semantics.md §10).

The numbers are computed by the views of ``sinks/migrations/0011_attribution_views.sql``:
``v_attribution_daily`` (per day, model, channel, campaign, KOL and currency: attributed
orders, revenue, refunds, new customers, the day's cost, ROAS, CPA and CAC) and
``v_acquisition_ltv`` (customers by acquisition and their D7/D30 revenue). This module
holds the queries over them, each a SQL text with named parameters (``funnel report
attribution --sql`` prints them), and typed rows:

- :func:`roas_by_channel`, :func:`daily_rows`, :func:`ltv_by_channel` for the report;
- :func:`read_daily_roi` and :func:`read_ltv`: every cell as exact integers, in the shapes
  of ``simulator.truth_attribution.daily_roi()`` / ``ltv()`` (keys with ISO days);
- :func:`today` for the worker's attribution monitor (the UTC day of the newest order).

A *reader* is a clickhouse-connect client (anything with ``query(sql, parameters=...)``
returning ``result_rows``) or a function ``(sql, parameters) -> rows``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from reports.errors import ReportError
from streams.attribution import MODELS, SHARE_UNIT

__all__ = [
    "DAILY_SQL",
    "DEFAULT_MODEL",
    "LTV_SQL",
    "MODELS",
    "ROAS_SQL",
    "SHARE_UNIT",
    "UNATTRIBUTED",
    "ChannelLtv",
    "ChannelRoas",
    "DailyRow",
    "DayRange",
    "Today",
    "check_model",
    "daily_rows",
    "day_range",
    "ltv_by_channel",
    "newest_day",
    "parse_day",
    "queries",
    "read_daily_roi",
    "read_ltv",
    "roas_by_channel",
    "rows_of",
    "today",
]

DEFAULT_MODEL: Final = "last_non_direct"
UNATTRIBUTED: Final = "(unattributed)"
DEFAULT_DAYS: Final = 7

Reader = Any  # a clickhouse-connect client, or Callable[[str, Mapping[str, Any]], rows]
RoiKey = tuple[str, str, str, str, str, str]  # day, model, channel, campaign, kol, currency
LtvKey = tuple[str, str, str, str, str, str]  # cohort_day, model, channel, campaign, kol, currency


def rows_of(
    reader: Reader, sql: str, parameters: Mapping[str, Any] | None = None
) -> Sequence[Sequence[Any]]:
    """The rows of ``sql`` through a client (``.query``) or a plain function."""
    params = dict(parameters or {})
    query = getattr(reader, "query", None)
    if query is not None:
        return list(query(sql, parameters=params).result_rows)
    function: Callable[[str, dict[str, Any]], Any] = reader
    result = function(sql, params)
    rows = getattr(result, "result_rows", result)
    return list(rows)


# -- options ----------------------------------------------------------------------------------


def check_model(model: str) -> str:
    if model not in MODELS:
        raise ReportError(
            f"unknown attribution model {model!r}: use one of {', '.join(MODELS)} "
            "(docs/semantics.md section 10)"
        )
    return model


def parse_day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(
            f"{option} {text!r} is not a day: give an ISO date, YYYY-MM-DD (UTC), e.g. 2026-11-02"
        ) from None


@dataclass(frozen=True, slots=True)
class DayRange:
    """UTC days ``start`` .. ``end``, both included."""

    start: date
    end: date

    def parameters(self) -> dict[str, Any]:
        return {"from": self.start, "to": self.end}

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def day_range(
    start: str | None, end: str | None, newest: date | None, days: int = DEFAULT_DAYS
) -> DayRange | None:
    """``--from`` / ``--to`` (inclusive days). A missing end is the newest day with data
    (``newest``), a missing start ``days - 1`` days before the end. None: nothing to show
    (no dates given and no data)."""
    lo = parse_day(start, "--from") if start is not None else None
    hi = parse_day(end, "--to") if end is not None else None
    if hi is None:
        hi = newest if newest is not None and (lo is None or newest >= lo) else lo
    if hi is None:
        return None
    if lo is None:
        lo = hi - timedelta(days=days - 1)
    if hi < lo:
        raise ReportError(
            f"--to {hi.isoformat()} is before --from {lo.isoformat()}: both days are "
            "included, give a --to on or after --from"
        )
    return DayRange(lo, hi)


NEWEST_DAY_SQL: Final = "SELECT max(day), count() FROM v_attribution_daily"


def newest_day(reader: Reader) -> date | None:
    """The newest day with an order, refund or cost (None: no rows at all)."""
    ((day, count),) = rows_of(reader, NEWEST_DAY_SQL)
    return day if int(count) else None


# -- ROAS per channel under each model --------------------------------------------------------

# The campaign's cost is on each of its KOL rows: taken once per (day, model, channel,
# campaign, currency) before summing over campaigns and days.
ROAS_SQL: Final = """
SELECT model, channel, currency,
       sum(net_revenue_micro) AS net_revenue_micro,
       sum(campaign_cost_minor) AS cost_minor,
       max(campaign_has_cost) AS has_cost
FROM (
    SELECT day, model, channel, campaign, currency,
           sum(net_revenue_micro) AS net_revenue_micro,
           any(cost_minor) AS campaign_cost_minor,
           max(has_cost) AS campaign_has_cost
    FROM v_attribution_daily
    WHERE day >= {from:Date} AND day <= {to:Date}
    GROUP BY day, model, channel, campaign, currency
)
GROUP BY model, channel, currency
ORDER BY channel, currency, model
"""


@dataclass(frozen=True, slots=True)
class ChannelRoas:
    """A channel's cost in one currency over the range, and under each model its net
    attributed revenue in that currency (millionths of a minor unit) and ROAS."""

    channel: str
    currency: str
    cost_minor: int
    has_cost: bool
    net_revenue_micro: dict[str, int]

    def roas(self, model: str) -> float | None:
        if not self.has_cost or self.cost_minor == 0:
            return None
        return self.net_revenue_micro.get(model, 0) / SHARE_UNIT / self.cost_minor


def roas_by_channel(reader: Reader, days: DayRange) -> list[ChannelRoas]:
    """Every (channel, currency) with an attributed order, refund or cost in ``days``;
    the channels with a cost first (largest first), then the rest by channel."""
    cells: dict[tuple[str, str], tuple[int, bool, dict[str, int]]] = {}
    for model, channel, currency, net, cost, has_cost in rows_of(
        reader, ROAS_SQL, days.parameters()
    ):
        key = (str(channel), str(currency))
        _, _, by_model = cells.setdefault(key, (int(cost), bool(has_cost), {}))
        by_model[str(model)] = int(net)
    out = [
        ChannelRoas(channel, currency, cost, has_cost, by_model)
        for (channel, currency), (cost, has_cost, by_model) in cells.items()
    ]
    return sorted(out, key=lambda r: (not r.has_cost, -r.cost_minor, r.channel, r.currency))


# -- per day, channel, campaign and KOL under one model ---------------------------------------

DAILY_SQL: Final = """
SELECT day, channel, campaign, kol, currency,
       cost_minor, has_cost, orders_micro, revenue_micro, refunded_micro,
       first_orders_micro, roas, cpa_minor, cac_minor
FROM v_attribution_daily
WHERE model = {model:String} AND day >= {from:Date} AND day <= {to:Date}
ORDER BY day, channel, campaign, kol, currency
"""


@dataclass(frozen=True, slots=True)
class DailyRow:
    day: date
    channel: str
    campaign: str
    kol: str
    currency: str
    cost_minor: int  # the campaign's cost (on each of its KOL rows)
    has_cost: bool
    orders_micro: int
    revenue_micro: int
    refunded_micro: int
    first_orders_micro: int
    roas: float | None
    cpa_minor: float | None
    cac_minor: float | None

    @property
    def net_revenue_micro(self) -> int:
        return self.revenue_micro - self.refunded_micro


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def daily_rows(reader: Reader, model: str, days: DayRange) -> list[DailyRow]:
    rows = rows_of(reader, DAILY_SQL, {"model": check_model(model), **days.parameters()})
    return [
        DailyRow(
            day,
            str(channel),
            str(campaign),
            str(kol),
            str(currency),
            int(cost),
            bool(has_cost),
            int(orders),
            int(revenue),
            int(refunded),
            int(first),
            _float(roas),
            _float(cpa),
            _float(cac),
        )
        for (
            day,
            channel,
            campaign,
            kol,
            currency,
            cost,
            has_cost,
            orders,
            revenue,
            refunded,
            first,
            roas,
            cpa,
            cac,
        ) in rows
    ]


# -- LTV by acquisition channel ---------------------------------------------------------------

LTV_SQL: Final = """
SELECT channel, currency,
       sum(customers_micro) AS customers_micro,
       sum(revenue_d7_micro) AS revenue_d7_micro,
       sum(revenue_d30_micro) AS revenue_d30_micro
FROM v_acquisition_ltv
WHERE model = {model:String} AND cohort_day >= {from:Date} AND cohort_day <= {to:Date}
GROUP BY channel, currency
ORDER BY customers_micro DESC, channel, currency
"""


@dataclass(frozen=True, slots=True)
class ChannelLtv:
    """The customers acquired through ``channel`` (first orders in ``currency``, weighted
    by their shares) and the revenue of their orders within 7 and 30 days."""

    channel: str
    currency: str
    customers_micro: int
    revenue_d7_micro: int
    revenue_d30_micro: int

    def ltv_minor(self, days: int) -> float | None:
        """Revenue per customer within ``days`` (7 or 30), in minor units."""
        if not self.customers_micro:
            return None
        revenue = self.revenue_d7_micro if days == 7 else self.revenue_d30_micro
        return revenue / self.customers_micro


def ltv_by_channel(reader: Reader, model: str, days: DayRange) -> list[ChannelLtv]:
    rows = rows_of(reader, LTV_SQL, {"model": check_model(model), **days.parameters()})
    return [
        ChannelLtv(str(channel), str(currency), int(customers), int(d7), int(d30))
        for channel, currency, customers, d7, d30 in rows
    ]


def queries(model: str, days: DayRange | None) -> list[tuple[str, str, dict[str, Any]]]:
    """(title, SQL, parameters) of every query behind the report."""
    window: dict[str, Any] = (
        days.parameters() if days is not None else {"from": "<from>", "to": "<to>"}
    )
    return [
        ("ROAS per channel under each model", ROAS_SQL, window),
        (f"per day, channel, campaign and KOL ({model})", DAILY_SQL, {"model": model, **window}),
        (f"LTV by acquisition channel ({model})", LTV_SQL, {"model": model, **window}),
    ]


# -- exact cells, in the shapes of simulator.truth_attribution --------------------------------

DAILY_ROI_SQL: Final = """
SELECT toString(day), model, channel, campaign, kol, currency,
       orders_micro, revenue_micro, refunded_micro, first_orders_micro
FROM v_attribution_daily
WHERE orders_micro != 0 OR revenue_micro != 0 OR refunded_micro != 0
   OR first_orders_micro != 0
"""

LTV_CELLS_SQL: Final = """
SELECT toString(cohort_day), model, channel, campaign, kol, currency,
       customers_micro, revenue_d7_micro, revenue_d30_micro
FROM v_acquisition_ltv
"""


def read_daily_roi(reader: Reader) -> dict[RoiKey, tuple[int, int, int, int]]:
    """(day, model, channel, campaign, kol, currency) -> (orders_micro, revenue_micro,
    refunded_micro, first_orders_micro), every cell with a non-zero value (cost-only rows
    are left out), as ``simulator.truth_attribution.daily_roi()`` has them."""
    out: dict[RoiKey, tuple[int, int, int, int]] = {}
    for row in rows_of(reader, DAILY_ROI_SQL):
        day, model, channel, campaign, kol, currency = (str(v) for v in row[:6])
        orders, revenue, refunded, first = (int(v) for v in row[6:])
        out[(day, model, channel, campaign, kol, currency)] = (orders, revenue, refunded, first)
    return dict(sorted(out.items()))


def read_ltv(reader: Reader) -> dict[LtvKey, tuple[int, int, int]]:
    """(cohort_day, model, channel, campaign, kol, currency) -> (customers_micro,
    revenue_d7_micro, revenue_d30_micro), as ``simulator.truth_attribution.ltv()``."""
    out: dict[LtvKey, tuple[int, int, int]] = {}
    for row in rows_of(reader, LTV_CELLS_SQL):
        day, model, channel, campaign, kol, currency = (str(v) for v in row[:6])
        customers, d7, d30 = (int(v) for v in row[6:])
        out[(day, model, channel, campaign, kol, currency)] = (customers, d7, d30)
    return dict(sorted(out.items()))


# -- today, for the worker's monitor ----------------------------------------------------------

# "Today" is the UTC day of the newest attributed order: event time, so a replay of last
# year shows last year's days.
TODAY_SQL: Final = """
SELECT toDate(max(order_time)), count()
FROM order_attribution FINAL
WHERE share_micro > 0
"""

TODAY_REVENUE_SQL: Final = """
SELECT model, channel, currency, sum(net_revenue_micro) AS net_revenue_micro
FROM v_attribution_daily
WHERE day = {day:Date}
GROUP BY model, channel, currency
"""

TODAY_COST_SQL: Final = """
SELECT channel, currency, sum(cost_minor) AS cost_minor
FROM v_marketing_costs
WHERE day = {day:Date}
GROUP BY channel, currency
"""


@dataclass(frozen=True, slots=True)
class Today:
    """The newest day's net attributed revenue per (model, channel, currency) in
    millionths of a minor unit, and its cost per (channel, currency) in minor units."""

    day: date
    net_revenue_micro: dict[tuple[str, str, str], int]
    cost_minor: dict[tuple[str, str], int]


def today(reader: Reader) -> Today | None:
    """None when no order is attributed yet."""
    ((day, count),) = rows_of(reader, TODAY_SQL)
    if not int(count):
        return None
    params = {"day": day}
    revenue = {
        (str(model), str(channel), str(currency)): int(net)
        for model, channel, currency, net in rows_of(reader, TODAY_REVENUE_SQL, params)
    }
    cost = {
        (str(channel), str(currency)): int(value)
        for channel, currency, value in rows_of(reader, TODAY_COST_SQL, params)
    }
    return Today(day, revenue, cost)
