"""Promotions and membership tier at query time (docs/semantics.md section 10a).

`funnel report promotions` and `funnel report tiers`: exact numbers computed by
ClickHouse SQL over ``events_raw`` for a range ``[from, to)``, like the exploration
commands (``reports/exploration.py``). Every builder is a pure function returning
``(sql, parameters)``; user values travel as query parameters, never as SQL text.

*Orders* are the counted purchases (section 1): ``events_raw FINAL``, ``is_late = 0``,
one per (``anonymous_id``, ``transaction_id``), its earliest (``event_time``,
``event_id``) copy, chosen over all stored time. A visitor's orders are numbered by
(``event_time``, ``transaction_id``) over all stored time: number 1 is its *first order*
(KPI ``first_orders``, section 4), the others are repeat orders. An order's *coupon
codes* are its order-level ``coupon`` and its items' coupons (``item_coupons``,
migration 0012); it is a coupon order (KPI ``coupon_orders``) when it has one. Its
discount is the order discount plus the item discounts x quantity (KPI
``discount_minor``).

A row's *acquired buyers* are the buyers whose first order is one of the row's orders
in the range; they *repeat* when their second order is before ``to``, and *repeat
within D days* when it is less than D days after the first, counted only over the
buyers whose first order is at least D days before ``to`` (so that every one of them
had the whole D days to come back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from reports.errors import ReportError
from schemas.custom import PROPERTY_KEY
from schemas.iso4217 import MINOR_UNIT_EXPONENT

DAY_MS: Final = 86_400_000
MAX_HORIZON_DAYS: Final = 366
MAX_HORIZONS: Final = 4
DEFAULT_TIER_PROPERTY: Final = "membership_tier"
# The row kinds of the promotions report, in the order rows are shown.
KINDS: Final = ("code", "none", "all")


class PromotionError(ReportError):
    """A `funnel report promotions|tiers` option is invalid; the message says the fix."""


# -- input parsing ----------------------------------------------------------------------


def parse_horizons(value: str) -> tuple[int, ...]:
    """``"7,30"`` -> ``(7, 30)``: distinct whole days, 1 to 366, at most 4, ascending."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if (
        not parts
        or len(parts) > MAX_HORIZONS
        or not all(p.isdigit() and 1 <= int(p) <= MAX_HORIZON_DAYS for p in parts)
    ):
        raise PromotionError(
            f"--repeat-within {value!r} is not a list of days: give 1 to {MAX_HORIZONS} "
            f"whole numbers of days from 1 to {MAX_HORIZON_DAYS}, separated by commas "
            "(e.g. --repeat-within 7,30)"
        )
    return tuple(sorted({int(p) for p in parts}))


def parse_currency(value: str | None) -> str:
    """An ISO 4217 code (upper case) or ``""`` for every currency."""
    if value is None or value == "":
        return ""
    code = value.strip().upper()
    if code not in MINOR_UNIT_EXPONENT:
        raise PromotionError(
            f"--currency {value!r} is not an ISO 4217 currency code: e.g. --currency CNY "
            "or --currency USD (leave it out for every currency)"
        )
    return code


def parse_property(value: str) -> str:
    """The property key that holds the tier (``membership_tier`` by default)."""
    if not PROPERTY_KEY.fullmatch(value):
        raise PromotionError(
            f"--property {value!r} is not a property key: a letter, then at most 39 "
            "letters, digits or underscores (e.g. --property membership_tier)"
        )
    return value


def _check_range(from_ms: int, to_ms: int) -> None:
    if to_ms <= from_ms:
        raise PromotionError("--to is not after --from: the range is [from, to), give a later --to")


# -- SQL --------------------------------------------------------------------------------

# Counted purchases over all stored time, numbered per visitor by (event_time,
# transaction_id); next_t: the time of the visitor's next order (valid when nth < n_orders).
_ORDERS: Final = """
orders AS (
    SELECT *,
           row_number() OVER (PARTITION BY anonymous_id ORDER BY t, transaction_id) AS nth,
           count() OVER (PARTITION BY anonymous_id) AS n_orders,
           leadInFrame(t) OVER (PARTITION BY anonymous_id ORDER BY t, transaction_id
                                ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS next_t,
           order_discount + arraySum(arrayMap(
               i -> item_discounts_minor[i] * toInt64(item_quantities[i]),
               arrayEnumerate(item_discounts_minor))) AS discount,
           arrayDistinct(arrayFilter(c -> c != '', arrayPushFront(item_coupons, coupon)))
               AS codes
    FROM (
        SELECT anonymous_id, transaction_id, event_id,
               toUnixTimestamp64Milli(event_time) AS t, toString(currency) AS currency,
               ifNull(value_minor, 0) AS value, coupon, item_coupons, item_discounts_minor,
               item_quantities, ifNull(discount_minor, 0) AS order_discount,
               properties[{key:String}] AS own_tier
        FROM events_raw FINAL
        WHERE is_late = 0 AND event_type = 'purchase'
        ORDER BY anonymous_id, transaction_id, event_time, event_id
        LIMIT 1 BY anonymous_id, transaction_id
    )
)"""

_IN_RANGE: Final = (
    "t >= {from_ms:Int64} AND t < {to_ms:Int64} "
    "AND ({currency:String} = '' OR currency = {currency:String})"
)


def _repeat_columns(horizons: tuple[int, ...], params: dict[str, Any]) -> str:
    """Acquired buyers (first orders), repeaters before ``to``, and per horizon the
    mature buyers and those of them who came back within it."""
    columns = [
        "countIf(nth = 1) AS first_orders",
        "countIf(nth = 1 AND n_orders > 1 AND next_t < {to_ms:Int64}) AS repeat_buyers",
    ]
    for k, days in enumerate(horizons):
        params[f"h{k}"] = days * DAY_MS
        mature = f"nth = 1 AND t + {{h{k}:Int64}} <= {{to_ms:Int64}}"
        columns.append(f"countIf({mature}) AS mature{k}")
        columns.append(
            f"countIf({mature} AND n_orders > 1 AND next_t < t + {{h{k}:Int64}}) AS within{k}"
        )
    return ",\n       ".join(columns)


def _params(from_ms: int, to_ms: int, currency: str, key: str) -> dict[str, Any]:
    _check_range(from_ms, to_ms)
    return {
        "from_ms": from_ms,
        "to_ms": to_ms,
        "currency": parse_currency(currency),
        "key": parse_property(key),
    }


def promotions_sql(
    from_ms: int, to_ms: int, horizons: tuple[int, ...] = (30,), currency: str = ""
) -> tuple[str, dict[str, Any]]:
    """Per (currency, kind, coupon code) over the orders in the range: kind ``code`` (the
    orders carrying the code, at order or item level; discount: the code's own), ``none``
    (the orders without any coupon) and ``all`` (every order: the KPI sums)."""
    params = _params(from_ms, to_ms, currency, DEFAULT_TIER_PROPERTY)
    repeat = _repeat_columns(horizons, params)
    sql = f"""
WITH {_ORDERS.strip()},
rows AS (
    SELECT *, arrayConcat(
               arrayMap(c -> ('code', c), codes),
               if(empty(codes), [('none', '')], []),
               [('all', '')]) AS keys
    FROM orders
    WHERE {_IN_RANGE}
)
SELECT currency, k.1 AS kind, k.2 AS code,
       count() AS orders,
       countIf(notEmpty(codes)) AS coupon_orders,
       sum(value) AS gmv_minor,
       sum(if(kind = 'code',
              if(coupon = code, order_discount, 0) + arraySum(arrayMap(
                  i -> if(item_coupons[i] = code,
                          item_discounts_minor[i] * toInt64(item_quantities[i]), 0),
                  arrayEnumerate(item_coupons))),
              discount)) AS discount_minor,
       {repeat}
FROM rows
ARRAY JOIN keys AS k
GROUP BY currency, kind, code
ORDER BY currency, kind, code
"""
    return sql, params


# The tier of each order in the range: the purchase's own property, else the latest
# (event_time, event_id) counted event of the visitor at or before the purchase's
# event_time that carries it; '' when none does.
_TIERED: Final = """
seen AS (
    SELECT anonymous_id, arraySort(x -> (x.1, x.2), groupArray((t, event_id, tier))) AS tiers
    FROM (
        SELECT anonymous_id, toUnixTimestamp64Milli(event_time) AS t, event_id,
               properties[{key:String}] AS tier
        FROM events_raw FINAL
        WHERE is_late = 0 AND event_type != 'purchase' AND tier != ''
        UNION ALL
        SELECT anonymous_id, t, event_id, own_tier FROM orders WHERE own_tier != ''
    )
    GROUP BY anonymous_id
),
tiered AS (
    SELECT o.*, if(o.own_tier != '', o.own_tier, arrayLast(x -> x.1 <= o.t, s.tiers).3) AS tier
    FROM orders AS o LEFT JOIN seen AS s ON s.anonymous_id = o.anonymous_id
    WHERE o.t >= {from_ms:Int64} AND o.t < {to_ms:Int64}
      AND ({currency:String} = '' OR o.currency = {currency:String})
)"""


def tier_kpis_sql(
    from_ms: int, to_ms: int, key: str = DEFAULT_TIER_PROPERTY, currency: str = ""
) -> tuple[str, dict[str, Any]]:
    """Per (tier, currency) over the orders in the range: orders, buyers, GMV, first and
    repeat orders."""
    params = _params(from_ms, to_ms, currency, key)
    sql = f"""
WITH {_ORDERS.strip()},
{_TIERED.strip()}
SELECT tier, currency, count() AS orders, uniqExact(anonymous_id) AS buyers,
       sum(value) AS gmv_minor, countIf(nth = 1) AS first_orders,
       countIf(nth > 1) AS repeat_orders
FROM tiered
GROUP BY tier, currency
ORDER BY tier, currency
"""
    return sql, params


def tier_retention_sql(
    from_ms: int,
    to_ms: int,
    horizons: tuple[int, ...] = (7, 30),
    key: str = DEFAULT_TIER_PROPERTY,
    currency: str = "",
) -> tuple[str, dict[str, Any]]:
    """Per tier of the first order: the buyers whose first order is in the range and
    how many of them ordered again (before ``to``; within each horizon)."""
    params = _params(from_ms, to_ms, currency, key)
    repeat = _repeat_columns(horizons, params)
    sql = f"""
WITH {_ORDERS.strip()},
{_TIERED.strip()}
SELECT tier, {repeat}
FROM tiered
WHERE nth = 1
GROUP BY tier
ORDER BY tier
"""
    return sql, params


def data_end_sql() -> str:
    """1 ms after the latest on-time event (the default ``to``); NULL when none."""
    return (
        "SELECT toUnixTimestamp64Milli(max(event_time)) + 1, count() "
        "FROM events_raw FINAL WHERE is_late = 0"
    )


# -- results ----------------------------------------------------------------------------


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class Repeat:
    """A cohort of acquired buyers (the first orders of a row) and their return."""

    acquired: int
    repeat_buyers: int  # second order before ``to``
    mature: tuple[int, ...]  # per horizon: first order at least D days before ``to``
    within: tuple[int, ...]  # per horizon: of the mature, second order < D days after

    @property
    def rate(self) -> float | None:
        return _share(self.repeat_buyers, self.acquired)

    def rate_within(self, k: int) -> float | None:
        return _share(self.within[k], self.mature[k])


@dataclass(frozen=True, slots=True)
class PromotionRow:
    currency: str
    kind: str  # "code": orders with the code; "none": orders without any coupon; "all"
    coupon: str  # the code ("" for none and all)
    orders: int
    coupon_orders: int
    gmv_minor: int
    discount_minor: int  # code: the code's own discount; none/all: the orders' discounts
    repeat: Repeat  # acquired = the row's first orders

    @property
    def first_orders(self) -> int:
        return self.repeat.acquired

    @property
    def aov_minor(self) -> float | None:
        return self.gmv_minor / self.orders if self.orders else None

    @property
    def first_share(self) -> float | None:
        return _share(self.first_orders, self.orders)


@dataclass(frozen=True, slots=True)
class TierKpiRow:
    tier: str  # "" when no event of the visitor carried one by the purchase
    currency: str
    orders: int
    buyers: int
    gmv_minor: int
    first_orders: int
    repeat_orders: int

    @property
    def aov_minor(self) -> float | None:
        return self.gmv_minor / self.orders if self.orders else None


@dataclass(frozen=True, slots=True)
class TierCohortRow:
    tier: str
    repeat: Repeat  # acquired = buyers whose first order (in the range) had this tier


def _repeat(values: list[Any], horizons: int) -> Repeat:
    acquired, repeaters, *pairs = (int(v) for v in values)
    return Repeat(
        acquired,
        repeaters,
        tuple(pairs[0 : 2 * horizons : 2]),
        tuple(pairs[1 : 2 * horizons : 2]),
    )


def promotion_order(row: PromotionRow) -> tuple[Any, ...]:
    """Rows by currency; codes first (most orders first), then none, then all."""
    return (row.currency, KINDS.index(row.kind), -row.orders, row.coupon)


def run_promotions(
    client: Any,
    from_ms: int,
    to_ms: int,
    horizons: tuple[int, ...] = (30,),
    currency: str = "",
) -> list[PromotionRow]:
    sql, params = promotions_sql(from_ms, to_ms, horizons, currency)
    rows = [
        PromotionRow(
            str(cur),
            str(kind),
            str(code),
            int(orders),
            int(coupon_orders),
            int(gmv),
            int(discount),
            _repeat(list(rest), len(horizons)),
        )
        for cur, kind, code, orders, coupon_orders, gmv, discount, *rest in client.query(
            sql, parameters=params
        ).result_rows
    ]
    return sorted(rows, key=promotion_order)


def tier_order(tier: str) -> tuple[bool, str]:
    """Tiers by name, the unknown tier ("") last."""
    return (tier == "", tier)


def run_tier_kpis(
    client: Any,
    from_ms: int,
    to_ms: int,
    key: str = DEFAULT_TIER_PROPERTY,
    currency: str = "",
) -> list[TierKpiRow]:
    sql, params = tier_kpis_sql(from_ms, to_ms, key, currency)
    rows = [
        TierKpiRow(str(tier), str(cur), *(int(v) for v in values))
        for tier, cur, *values in client.query(sql, parameters=params).result_rows
    ]
    return sorted(rows, key=lambda r: (*tier_order(r.tier), r.currency))


def run_tier_retention(
    client: Any,
    from_ms: int,
    to_ms: int,
    horizons: tuple[int, ...] = (7, 30),
    key: str = DEFAULT_TIER_PROPERTY,
    currency: str = "",
) -> list[TierCohortRow]:
    sql, params = tier_retention_sql(from_ms, to_ms, horizons, key, currency)
    rows = [
        TierCohortRow(str(tier), _repeat(list(rest), len(horizons)))
        for tier, *rest in client.query(sql, parameters=params).result_rows
    ]
    return sorted(rows, key=lambda r: tier_order(r.tier))


def data_end(client: Any) -> int | None:
    """The default ``to``: 1 ms after the latest on-time event; None for no event."""
    end, count = client.query(data_end_sql()).result_rows[0]
    return int(end) if int(count) else None
