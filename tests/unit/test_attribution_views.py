"""The read side of attribution and ROI (issue #15, docs/semantics.md section 10): the views
of sinks/migrations/0011_attribution_views.sql, their readers (reports/attribution.py),
`funnel report attribution` (funnel/cli_attribution.py) and the attribution monitor's
gauges (streams/attribution_monitor.py).

Hand-built ``order_attribution`` rows (with superseded versions and share_micro = 0
credits), refunds in ``events_raw`` and two imports of a day in ``marketing_costs`` go into
an embedded ClickHouse migrated with the real migrations; every view column is compared
with a plain-Python computation of section 10 over the rows that are live by
construction (the Python side never applies FINAL itself)."""

from __future__ import annotations

import gc
import itertools
import math
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest
import typer
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner, Result

from funnel.cli_attribution import report_attribution
from funnel.cli_html import report_callback
from reports import attribution as attr
from reports.errors import ReportError
from reports.money import format_money
from sinks.clickhouse import ClickHouseTarget, apply_migrations, open_client
from sinks.metrics import PipelineMetrics
from streams.attribution_monitor import AttributionMonitor

_numbers = itertools.count()
DAY: Final = 86_400_000
MINUTE: Final = 60_000
MICRO: Final = 1_000_000
MODELS: Final = attr.MODELS
UNATTRIBUTED: Final = attr.UNATTRIBUTED
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
D1, D2, D3, D4 = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4), date(2026, 11, 5)
MIGRATION = Path(__file__).resolve().parents[2] / "sinks/migrations/0011_attribution_views.sql"


def at(day: date, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC).timestamp() * 1000)


def as_datetime(t_ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=t_ms)


def day_of(t_ms: int) -> date:
    return as_datetime(t_ms).date()


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # chDB has one engine per process, on one path: let the clients other modules left go
    # first, and ours (the CLI's too) before the next module opens its own.
    gc.collect()
    yield tmp_path_factory.mktemp("chdb-attribution")
    gc.collect()


@pytest.fixture
def client(engine_dir: Path) -> Iterator[Any]:
    """A freshly migrated database of its own for each test."""
    target = ClickHouseTarget(dsn=f"chdb:///{engine_dir}", database=f"attr_{next(_numbers)}")
    handle = open_client(target)
    apply_migrations(handle)
    try:
        yield handle
    finally:
        handle.close()


# -- rows -------------------------------------------------------------------------------------

TouchKey = tuple[str, str, str, str, str]  # channel, source, medium, campaign, kol
PS_BAIDU: Final = ("paid_search", "baidu", "cpc", "spring", "")
PS_SOGOU: Final = ("paid_search", "sogou", "cpc", "spring", "")
KOL_LILY: Final = ("kol", "xiaohongshu", "kol", "kol_push", "lily")
KOL_MAX: Final = ("kol", "xiaohongshu", "kol", "kol_push", "max")
DIRECT: Final = ("direct", "", "", "", "")
EMAIL: Final = ("email", "newsletter", "email", "news", "")


@dataclass(frozen=True)
class Credit:
    """One order_attribution row."""

    t: int
    anon: str
    tx: str
    currency: str
    value: int
    is_first: int
    model: str
    key: TouchKey
    share: int
    version: int = 1
    partition: int = 0


def _largest_remainder(weights: Sequence[int]) -> list[int]:
    total = sum(weights)
    base = [MICRO * w // total for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(MICRO * weights[i] % total), i))
    for i in order[: MICRO - sum(base)]:
        base[i] += 1
    return base


def model_shares(touches: Sequence[TouchKey]) -> dict[str, dict[TouchKey, int]]:
    """Shares per model, different for every model (the views do not care how they were
    made; they only have to sum to 10^6 per order and model), merged per key."""
    n = len(touches)
    non_direct = [i for i, k in enumerate(touches) if k[0] != "direct"]
    weights = {
        "first_touch": [1 if i == 0 else 0 for i in range(n)],
        "last_touch": [1 if i == n - 1 else 0 for i in range(n)],
        "last_non_direct": [
            1 if i == (non_direct[-1] if non_direct else n - 1) else 0 for i in range(n)
        ],
        "linear": [1] * n,
        "position_based": [2 if i in (0, n - 1) else 1 for i in range(n)],
        "time_decay": [i + 1 for i in range(n)],
    }
    out: dict[str, dict[TouchKey, int]] = {}
    for model in MODELS:
        merged: dict[TouchKey, int] = defaultdict(int)
        for key, share in zip(touches, _largest_remainder(weights[model]), strict=True):
            merged[key] += share
        out[model] = {k: s for k, s in merged.items() if s > 0}
    return out


def order(
    t: int,
    anon: str,
    tx: str,
    value: int,
    touches: Sequence[TouchKey],
    *,
    currency: str = "CNY",
    first: bool = False,
    version: int = 1,
) -> list[Credit]:
    return [
        Credit(t, anon, tx, currency, value, int(first), model, key, share, version)
        for model, shares in model_shares(touches).items()
        for key, share in shares.items()
    ]


OA_COLUMNS: Final = [
    "window_start", "order_time", "anonymous_id", "transaction_id", "currency", "value_minor",
    "is_first", "model", "channel", "source", "medium", "campaign", "kol", "partition",
    "share_micro", "is_final", "version",
]  # fmt: skip


def insert_credits(client: Any, credits: Sequence[Credit]) -> None:
    client.insert(
        "order_attribution",
        [
            [
                as_datetime(c.t // MINUTE * MINUTE),
                as_datetime(c.t),
                c.anon,
                c.tx,
                c.currency,
                c.value,
                c.is_first,
                c.model,
                *c.key,
                c.partition,
                c.share,
                1,
                c.version,
            ]
            for c in credits
        ],
        column_names=OA_COLUMNS,
    )


@dataclass(frozen=True)
class Refund:
    event_id: str
    t: int
    anon: str
    tx: str
    value: int
    currency: str = "CNY"
    is_late: int = 0


RAW_COLUMNS: Final = [
    "event_id", "event_type", "stream", "event_time", "anonymous_id", "session_id",
    "transaction_id", "currency", "value_minor", "is_late", "version", "channel",
]  # fmt: skip


def insert_refunds(client: Any, refunds: Sequence[Refund]) -> None:
    client.insert(
        "events_raw",
        [
            [
                r.event_id,
                "refund",
                "orders",
                as_datetime(r.t),
                r.anon,
                "srv-1",
                r.tx,
                r.currency,
                r.value,
                r.is_late,
                0 if r.is_late else 1,
                "direct",
            ]
            for r in refunds
        ],
        column_names=RAW_COLUMNS,
    )


COST_COLUMNS: Final = [
    "day", "channel", "utm_source", "utm_medium", "campaign", "currency", "cost_minor",
    "imported_at", "origin", "source_partition", "source_offset",
]  # fmt: skip

CostRow = tuple[str, str, str, str, int, str]  # channel, source, medium, campaign, cost, cur


def insert_cost_import(
    client: Any, day: date, imported_at_ms: int, offset: int, rows: Sequence[CostRow]
) -> None:
    """One day record as the costs agent writes it: a marker row, then its rows."""
    marker: CostRow = ("", "", "", "", 0, "")
    client.insert(
        "marketing_costs",
        [
            [
                day,
                ch,
                src,
                med,
                camp,
                cur,
                cost,
                as_datetime(imported_at_ms),
                "costs.csv",
                0,
                offset,
            ]
            for ch, src, med, camp, cost, cur in (marker, *rows)
        ],
        column_names=COST_COLUMNS,
    )


# -- the scenario -----------------------------------------------------------------------------

A1_T: Final = at(D1, 10)


def live_credits() -> list[Credit]:
    """The credits that are live after FINAL (share > 0), by construction."""
    return [
        # a: first order on D1, then orders around the D7 and D30 bounds, one in USD.
        *order(
            A1_T, "a", "A1", 10_000, [DIRECT, KOL_LILY, PS_BAIDU, PS_SOGOU], first=True, version=2
        ),
        *order(A1_T + 5 * DAY, "a", "A2", 5_000, [PS_BAIDU]),
        *order(A1_T + 7 * DAY, "a", "A3", 300, [DIRECT]),
        *order(A1_T + 7 * DAY + 1, "a", "A4", 111, [DIRECT]),
        *order(A1_T + 30 * DAY, "a", "A5", 700, [EMAIL]),
        *order(A1_T + 30 * DAY + 1, "a", "A6", 900, [EMAIL]),
        *order(A1_T + 2 * DAY, "a", "A7", 4_242, [EMAIL], currency="USD"),
        # b: a first order in USD through email (the email cost is in CNY).
        *order(at(D1, 12), "b", "B1", 2_500, [EMAIL], currency="USD", first=True),
        # c: a first order on D2 with two KOLs of one campaign, then a repeat order.
        *order(at(D2, 9), "c", "C1", 8_000, [KOL_LILY, KOL_MAX, DIRECT], first=True, version=2),
        *order(at(D2, 11), "c", "C2", 1_200, [KOL_MAX]),
        # d: two lives (forgotten after the buyer TTL): two first orders.
        *order(at(D1, 8), "d", "D1", 600, [DIRECT], first=True),
        *order(at(D1, 8) + 450 * DAY, "d", "D2", 800, [PS_BAIDU], first=True),
    ]


def superseded_credits() -> list[Credit]:
    """Rows FINAL must drop: older versions of live keys, credits replaced by a share of
    0 (a late touchpoint), and an earlier copy of an order, superseded as a whole."""
    a1 = [c for c in live_credits() if c.tx == "A1"]
    c1 = [c for c in live_credits() if c.tx == "C1"]
    older = [replace(c, share=c.share // 2 + 7, version=1) for c in a1]
    late_touch = Credit(A1_T, "a", "A1", "CNY", 10_000, 1, "linear", KOL_MAX, 250_000, 1)
    copy_t = at(D2, 9) - MINUTE
    copy = [replace(c, t=copy_t, version=1) for c in c1]
    return [
        *older,
        late_touch,
        replace(late_touch, share=0, version=2),
        *copy,
        *(replace(c, share=0, version=2) for c in copy),
    ]


def counted_refunds() -> list[Refund]:
    return [
        Refund("r1", at(D4, 8), "a", "A1", 4_000),  # split by A1's shares, on D4
        Refund("r3", at(D3, 1), "z", "OLD", 1_500),  # an order from before the data
        Refund("r4", at(D4, 2), "c", "C2", 1_200),  # on time; a late copy exists too
        Refund("r5", at(D2, 3), "b", "B1", 2_500, "USD"),
        Refund("r6", at(D3, 4), "a", "", 50),  # no transaction id
        Refund("r7", at(D3, 5), "a", "C1", 70),  # another visitor's transaction
    ]


def stored_refunds() -> list[Refund]:
    """What events_raw holds: the counted ones, a replayed copy, a late refund, and a
    late copy of r4 written after its on-time copy."""
    counted = counted_refunds()
    return [
        *counted,
        counted[0],
        Refund("r2", at(D3, 9), "c", "C1", 8_000, is_late=1),
        replace(counted[2], is_late=1),
    ]


# (day, channel, campaign, currency) -> cost: the latest import of each day, summed over
# source and medium.
COSTS: Final = {
    (D1, "paid_search", "spring", "CNY"): 3_500 + 1_500,
    (D1, "kol", "kol_push", "CNY"): 6_000,
    (D1, "display", "banner", "CNY"): 2_000,
    (D1, "email", "news", "CNY"): 1_000,
    (D1, "affiliates", "aff", "CNY"): 0,
    (D2, "kol", "kol_push", "CNY"): 4_000,
}


def insert_costs(client: Any) -> None:
    t0 = at(D4, 12)
    insert_cost_import(
        client,
        D1,
        t0,
        0,
        [
            ("paid_search", "baidu", "cpc", "spring", 3_000, "CNY"),
            ("paid_search", "sogou", "cpc", "spring", 1_000, "CNY"),
            ("kol", "xiaohongshu", "kol", "kol_push", 5_000, "CNY"),
            ("display", "dsp", "banner", "banner", 2_000, "CNY"),
            ("organic_social", "weibo", "social", "gone", 777, "CNY"),  # not re-imported
        ],
    )
    insert_cost_import(
        client,
        D1,
        t0 + 3_600_000,
        1,
        [
            ("paid_search", "baidu", "cpc", "spring", 3_500, "CNY"),
            ("paid_search", "sogou", "cpc", "spring", 1_500, "CNY"),
            ("kol", "xiaohongshu", "kol", "kol_push", 6_000, "CNY"),
            ("display", "dsp", "banner", "banner", 2_000, "CNY"),
            ("email", "newsletter", "email", "news", 1_000, "CNY"),
            ("affiliates", "partner", "affiliate", "aff", 0, "CNY"),
        ],
    )
    insert_cost_import(client, D2, t0, 2, [("kol", "xiaohongshu", "kol", "kol_push", 4_000, "CNY")])
    insert_cost_import(client, D3, t0, 3, [("paid_search", "baidu", "cpc", "spring", 999, "CNY")])
    insert_cost_import(client, D3, t0 + 1, 4, [])  # D3 imported again, empty


def load(client: Any) -> None:
    live, old = live_credits(), superseded_credits()
    b1 = [c for c in live if c.tx == "B1"]
    insert_credits(client, old)
    insert_credits(client, live)
    insert_credits(client, b1)  # a replayed write of the same rows
    insert_refunds(client, stored_refunds())
    insert_costs(client)


# -- the Python side of section 10 ------------------------------------------------------------

Cell = tuple[date, str, str, str, str, str]  # day, model, channel, campaign, kol, currency


def expected_daily(
    credits: Sequence[Credit], refunds: Sequence[Refund], costs: dict[Any, int]
) -> dict[Cell, dict[str, Any]]:
    sums: dict[Cell, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    by_tx: dict[tuple[str, str], list[Credit]] = defaultdict(list)
    for c in credits:
        channel, _, _, campaign, kol = c.key
        cell = sums[(day_of(c.t), c.model, channel, campaign, kol, c.currency)]
        cell[0] += c.share
        cell[1] += c.value * c.share
        cell[3] += c.share if c.is_first else 0
        by_tx[(c.anon, c.tx)].append(c)
    for r in refunds:
        shares = by_tx.get((r.anon, r.tx), []) if r.tx else []
        if shares:
            for c in shares:
                channel, _, _, campaign, kol = c.key
                sums[(day_of(r.t), c.model, channel, campaign, kol, r.currency)][2] += (
                    r.value * c.share
                )
        else:
            for model in MODELS:
                sums[(day_of(r.t), model, UNATTRIBUTED, "", "", r.currency)][2] += r.value * MICRO
    sold = set(sums)
    for day, channel, campaign, currency in costs:
        for model in MODELS:
            if not any(k[:4] == (day, model, channel, campaign) and k[5] == currency for k in sold):
                sums[(day, model, channel, campaign, "", currency)] = [0, 0, 0, 0]
    out: dict[Cell, dict[str, Any]] = {}
    for key, (orders, revenue, refunded, first) in sums.items():
        day, _, channel, campaign, _, currency = key
        has_cost = (day, channel, campaign, currency) in costs
        cost = costs.get((day, channel, campaign, currency), 0)
        net = revenue - refunded
        out[key] = {
            "orders_micro": orders,
            "attributed_orders": orders / MICRO,
            "revenue_micro": revenue,
            "revenue_minor": revenue / MICRO,
            "refunded_micro": refunded,
            "refunded_minor": refunded / MICRO,
            "net_revenue_micro": net,
            "net_revenue_minor": net / MICRO,
            "first_orders_micro": first,
            "new_customers": first / MICRO,
            "cost_minor": cost,
            "has_cost": int(has_cost),
            "roas": net / MICRO / cost if has_cost and cost else None,
            "cpa_minor": cost * MICRO / orders if has_cost and orders else None,
            "cac_minor": cost * MICRO / first if has_cost and first else None,
        }
    return out


def expected_ltv(credits: Sequence[Credit]) -> dict[Cell, dict[str, Any]]:
    orders = {(c.anon, c.tx): (c.t, c.currency, c.value) for c in credits}
    sums: dict[Cell, list[int]] = defaultdict(lambda: [0, 0, 0])
    for c in credits:
        if not c.is_first:
            continue
        revenue = [
            sum(
                value
                for (anon, _), (t, currency, value) in orders.items()
                if anon == c.anon and currency == c.currency and 0 <= t - c.t <= days * DAY
            )
            for days in (7, 30)
        ]
        channel, _, _, campaign, kol = c.key
        cell = sums[(day_of(c.t), c.model, channel, campaign, kol, c.currency)]
        cell[0] += c.share
        cell[1] += c.share * revenue[0]
        cell[2] += c.share * revenue[1]
    return {
        key: {
            "customers_micro": customers,
            "customers": customers / MICRO,
            "revenue_d7_micro": d7,
            "revenue_d30_micro": d30,
            "revenue_d7_minor": d7 / MICRO,
            "revenue_d30_minor": d30 / MICRO,
            "ltv_d7_minor": d7 / customers,
            "ltv_d30_minor": d30 / customers,
        }
        for key, (customers, d7, d30) in sums.items()
    }


def view_rows(client: Any, view: str) -> dict[Cell, dict[str, Any]]:
    result = client.query(f"SELECT * FROM {view}")
    names = result.column_names
    out: dict[Cell, dict[str, Any]] = {}
    for row in result.result_rows:
        record = dict(zip(names, row, strict=True))
        key = tuple(record.pop(k) for k in names[:6])
        assert key not in out, f"{view}: two rows for {key}"
        out[key] = record
    return out


def assert_rows_equal(
    actual: dict[Cell, dict[str, Any]], expected: dict[Cell, dict[str, Any]]
) -> None:
    assert sorted(actual) == sorted(expected)
    for key, want in expected.items():
        got = actual[key]
        assert set(got) == set(want), key
        for column, value in want.items():
            if isinstance(value, float):
                assert got[column] == pytest.approx(value, rel=1e-12), (key, column)
            else:
                assert got[column] == value, (key, column, got[column], value)
                if value is not None:
                    assert type(got[column]) is type(value), (key, column)


# -- the views --------------------------------------------------------------------------------


def test_every_column_of_v_attribution_daily(client: Any) -> None:
    load(client)
    expected = expected_daily(live_credits(), counted_refunds(), COSTS)
    assert_rows_equal(view_rows(client, "v_attribution_daily"), expected)


def test_every_column_of_v_acquisition_ltv(client: Any) -> None:
    load(client)
    assert_rows_equal(view_rows(client, "v_acquisition_ltv"), expected_ltv(live_credits()))


def test_ltv_windows_are_inclusive_and_in_the_first_orders_currency(client: Any) -> None:
    load(client)
    ltv = view_rows(client, "v_acquisition_ltv")
    cell = ltv[(D1, "first_touch", "direct", "", "", "CNY")]
    # a's first order (first touch direct) and d's first life's first order
    a_d7 = 10_000 + 5_000 + 300  # A3 at exactly 7 days counts, A4 one ms later does not
    a_d30 = a_d7 + 111 + 700  # A5 at exactly 30 days counts, A6 does not; A7 is USD
    assert cell["customers_micro"] == 2 * MICRO
    assert cell["revenue_d7_micro"] == (a_d7 + 600) * MICRO
    assert cell["revenue_d30_micro"] == (a_d30 + 600) * MICRO
    # d's second life is a customer of its own, 450 days later
    later = day_of(at(D1, 8) + 450 * DAY)
    assert ltv[(later, "first_touch", "paid_search", "spring", "", "CNY")]["revenue_d30_micro"] == (
        800 * MICRO
    )


def test_roas_cpa_and_cac_where_they_exist_and_null_where_they_do_not(client: Any) -> None:
    load(client)
    rows = view_rows(client, "v_attribution_daily")
    lnd = "last_non_direct"
    # Spent and sold nothing: ROAS 0, no CPA or CAC.
    display = rows[(D1, lnd, "display", "banner", "", "CNY")]
    assert (display["cost_minor"], display["roas"], display["cpa_minor"]) == (2_000, 0.0, None)
    assert display["cac_minor"] is None and display["orders_micro"] == 0
    # A cost of 0: no ROAS (nothing to divide by).
    aff = rows[(D1, lnd, "affiliates", "aff", "", "CNY")]
    assert (aff["has_cost"], aff["cost_minor"], aff["roas"]) == (1, 0, None)
    # Revenue in USD, cost in CNY: no ROAS for the USD row, ROAS 0 for the cost's row.
    email_usd = rows[(D1, lnd, "email", "news", "", "USD")]
    assert email_usd["has_cost"] == 0 and email_usd["roas"] is None
    assert email_usd["cpa_minor"] is None and email_usd["cac_minor"] is None
    assert rows[(D1, lnd, "email", "news", "", "CNY")]["roas"] == 0.0
    # last_non_direct credits A1 to its last non-direct touch (sogou): ROAS of the
    # paid_search spring campaign over source and medium, CPA and CAC of one order.
    ps = rows[(D1, lnd, "paid_search", "spring", "", "CNY")]
    assert ps["cost_minor"] == 5_000 and ps["orders_micro"] == MICRO
    assert ps["roas"] == pytest.approx(10_000 / 5_000)
    assert ps["cpa_minor"] == pytest.approx(5_000) and ps["cac_minor"] == pytest.approx(5_000)
    # A campaign's cost is on each of its KOL rows.
    for kol in ("lily", "max"):
        assert rows[(D2, "linear", "kol", "kol_push", kol, "CNY")]["cost_minor"] == 4_000
    # last_touch gives C1 to direct: only C2, a repeat order, is on kol max (no CAC).
    assert (D2, "last_touch", "kol", "kol_push", "lily", "CNY") not in rows
    kmax = rows[(D2, "last_touch", "kol", "kol_push", "max", "CNY")]
    assert kmax["cost_minor"] == 4_000 and kmax["first_orders_micro"] == 0
    assert kmax["cac_minor"] is None and kmax["cpa_minor"] == pytest.approx(4_000 / 1)


def test_refunds_are_the_counted_ones_and_an_unknown_order_is_unattributed(client: Any) -> None:
    load(client)
    rows = view_rows(client, "v_attribution_daily")
    for model in MODELS:
        # What KPI `refunds` / `refunded_minor` count, per day and currency, under every
        # model: r1 once (not its replayed copy), r4 (not its late copy), never r2.
        refunded: dict[tuple[date, str], int] = defaultdict(int)
        for key, row in rows.items():
            if key[1] == model:
                refunded[(key[0], key[5])] += row["refunded_micro"]
        assert {k: v for k, v in refunded.items() if v} == {
            (D2, "USD"): 2_500 * MICRO,
            (D3, "CNY"): (1_500 + 50 + 70) * MICRO,
            (D4, "CNY"): (4_000 + 1_200) * MICRO,
        }
        unknown = rows[(D3, model, UNATTRIBUTED, "", "", "CNY")]
        assert unknown["refunded_micro"] == (1_500 + 50 + 70) * MICRO
        assert unknown["net_revenue_micro"] == -unknown["refunded_micro"]
        assert unknown["orders_micro"] == 0 and unknown["roas"] is None
    # Revenue sums to the GMV of the live orders under every model, per currency.
    for model in MODELS:
        for currency, gmv in (("CNY", 10_000 + 5_000 + 300 + 111 + 700 + 900 + 8_000 + 1_200
                               + 600 + 800), ("USD", 4_242 + 2_500)):  # fmt: skip
            total = sum(
                r["revenue_micro"] for k, r in rows.items() if k[1] == model and k[5] == currency
            )
            assert total == gmv * MICRO


def test_the_view_models_are_the_workers_models() -> None:
    sql = MIGRATION.read_text(encoding="utf-8")
    (listed,) = re.findall(r"arrayJoin\(\[([^\]]*)\]\)", sql)
    assert tuple(re.findall(r"'(\w+)'", listed)) == MODELS


def test_empty_views(client: Any) -> None:
    assert attr.read_daily_roi(client) == {}
    assert attr.read_ltv(client) == {}
    assert attr.newest_day(client) is None
    assert attr.today(client) is None


# -- the exact readers against the simulator's truth ------------------------------------------


def test_read_daily_roi_and_read_ltv_equal_the_truth_on_its_own_rows(client: Any) -> None:
    from simulator.truth_attribution import AttributionConfig, attribution_truth_of
    from tests.unit import truth_builders as tb

    t0 = tb.at("2026-11-02T08:00:00Z")
    kol = {"utm_source": "xiaohongshu", "utm_medium": "kol", "utm_campaign": "kol_push"}
    events = [
        tb.ev(
            "page_view",
            t0,
            "e1",
            anon="a",
            session="s1",
            utm_source="baidu",
            utm_medium="cpc",
            utm_campaign="spring",
        ),
        tb.ev("page_view", t0 + DAY, "e2", anon="a", session="s2", utm_content="lily", **kol),
        tb.ev("page_view", t0 + 2 * DAY, "e3", anon="a", session="s3"),
        tb.buy(t0 + 2 * DAY + MINUTE, "A1", 10_000, anon="a", session="s3"),
        tb.buy(t0 + 6 * DAY, "A2", 3_000, anon="a", session="s4"),
        tb.ev("page_view", t0, "e4", anon="b", session="s5", utm_content="max", **kol),
        tb.buy(t0 + MINUTE, "B1", 7_777, anon="b", session="s5", utm_content="max", **kol),
        tb.ev(
            "refund",
            t0 + 3 * DAY,
            "r1",
            anon="a",
            session="srv-1",
            transaction_id="A1",
            currency="CNY",
            value_minor=2_500,
        ),
        tb.ev(
            "refund",
            t0 + 3 * DAY,
            "r2",
            anon="z",
            session="srv-2",
            transaction_id="OLD",
            currency="CNY",
            value_minor=900,
        ),
    ]
    truth = attribution_truth_of(events, AttributionConfig())
    rows = []
    for key, share in truth.rows.items():
        rows.append(
            Credit(
                key.order_time_ms,
                key.anonymous_id,
                key.transaction_id,
                key.currency,
                key.value_minor,
                key.is_first,
                key.model,
                (key.channel, key.source, key.medium, key.campaign, key.kol),
                share,
            )
        )
    insert_credits(client, rows)
    insert_refunds(
        client,
        [Refund("r1", t0 + 3 * DAY, "a", "A1", 2_500), Refund("r2", t0 + 3 * DAY, "z", "OLD", 900)],
    )
    roi = {
        tuple(k): (c.orders_micro, c.revenue_micro, c.refunded_micro, c.first_orders_micro)
        for k, c in truth.roi.items()
    }
    ltv = {
        tuple(k): (c.customers_micro, c.revenue_d7_micro, c.revenue_d30_micro)
        for k, c in truth.ltv.items()
    }
    assert {k[2] for k in roi} >= {"paid_search", "kol", UNATTRIBUTED}
    assert attr.read_daily_roi(client) == roi
    assert attr.read_ltv(client) == ltv


# -- the report readers -----------------------------------------------------------------------


def test_roas_by_channel_takes_a_campaigns_cost_once_over_its_kols(client: Any) -> None:
    load(client)
    days = attr.DayRange(D1, D2)
    by_channel = {(r.channel, r.currency): r for r in attr.roas_by_channel(client, days)}
    kol = by_channel[("kol", "CNY")]
    assert kol.cost_minor == 6_000 + 4_000 and kol.has_cost
    expected = expected_daily(live_credits(), counted_refunds(), COSTS)
    for model in MODELS:
        net = sum(
            r["net_revenue_micro"]
            for k, r in expected.items()
            if k[1] == model and k[2] == "kol" and k[5] == "CNY" and D1 <= k[0] <= D2
        )
        assert kol.net_revenue_micro[model] == net
        assert kol.roas(model) == pytest.approx(net / MICRO / 10_000)
    assert by_channel[("display", "CNY")].roas("linear") == 0.0
    assert by_channel[("email", "USD")].roas("linear") is None
    assert by_channel[("affiliates", "CNY")].roas("linear") is None
    # Channels with a cost come first, the largest first.
    ordered = [r.channel for r in attr.roas_by_channel(client, days) if r.has_cost]
    assert ordered[:2] == ["kol", "paid_search"]


def test_daily_rows_and_ltv_by_channel_of_one_model(client: Any) -> None:
    load(client)
    days = attr.DayRange(D1, D4)
    expected = expected_daily(live_credits(), counted_refunds(), COSTS)
    rows = attr.daily_rows(client, "linear", days)
    assert [(r.day, r.channel, r.campaign, r.kol, r.currency) for r in rows] == sorted(
        (k[0], k[2], k[3], k[4], k[5]) for k in expected if k[1] == "linear" and k[0] <= D4
    )
    for r in rows:
        want = expected[(r.day, "linear", r.channel, r.campaign, r.kol, r.currency)]
        assert (r.orders_micro, r.revenue_micro, r.refunded_micro, r.first_orders_micro) == (
            want["orders_micro"],
            want["revenue_micro"],
            want["refunded_micro"],
            want["first_orders_micro"],
        )
        assert r.net_revenue_micro == want["net_revenue_micro"]
        assert (r.cost_minor, r.has_cost) == (want["cost_minor"], bool(want["has_cost"]))
        assert r.roas == (None if want["roas"] is None else pytest.approx(want["roas"]))
    ltv = {(r.channel, r.currency): r for r in attr.ltv_by_channel(client, "first_touch", days)}
    direct = ltv[("direct", "CNY")]  # a (A1) and d (D1), both first touch direct on D1
    assert direct.customers_micro == 2 * MICRO
    assert direct.ltv_minor(7) == pytest.approx((15_300 + 600) / 2)
    assert direct.ltv_minor(30) == pytest.approx((16_111 + 600) / 2)


def test_options_are_checked() -> None:
    with pytest.raises(ReportError, match="unknown attribution model 'last_click'"):
        attr.check_model("last_click")
    with pytest.raises(ReportError, match="--from '2026-13-01' is not a day"):
        attr.day_range("2026-13-01", None, D4)
    with pytest.raises(ReportError, match="--to 2026-11-02 is before --from 2026-11-03"):
        attr.day_range("2026-11-03", "2026-11-02", D4)
    assert attr.day_range(None, None, D4) == attr.DayRange(D4 - timedelta(days=6), D4)
    assert attr.day_range("2026-11-03", None, D4) == attr.DayRange(D2, D4)
    assert attr.day_range(None, "2026-11-03", D4) == attr.DayRange(D2 - timedelta(days=6), D2)
    assert attr.day_range(None, None, None) is None


def test_a_reader_may_be_a_function() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def reader(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        calls.append((sql, params))
        return [(D2, 3)]

    assert attr.newest_day(reader) == D2
    assert calls == [(attr.NEWEST_DAY_SQL, {})]


# -- `funnel report attribution` --------------------------------------------------------------


def run_report(client: Any, engine_dir: Path, *args: str, width: int = 250) -> Result:
    app = typer.Typer()
    report = typer.Typer()
    report.callback(invoke_without_command=True)(report_callback)
    report.command("attribution")(report_attribution)
    app.add_typer(report, name="report")
    env = {
        "FUNNEL_CLICKHOUSE_DSN": f"chdb:///{engine_dir}",
        "FUNNEL_CLICKHOUSE_DATABASE": client.query("SELECT currentDatabase()").result_rows[0][0],
        "COLUMNS": str(width),  # rich's width; typer's terminal_width does not reach it
    }
    return CliRunner().invoke(app, ["report", "attribution", *args], env=env, terminal_width=width)


def _line(output: str, first_cell: str, *parts: str) -> str:
    """The one table line whose first cell is ``first_cell`` and that has ``parts``."""
    (line,) = [
        ln
        for ln in output.splitlines()
        if ln.strip("│ ").startswith(f"{first_cell} ") and all(p in ln for p in parts)
    ]
    return line


def test_report_prints_roas_per_model_the_daily_table_and_ltv(
    client: Any, engine_dir: Path
) -> None:
    load(client)
    result = run_report(client, engine_dir, "--from", "2026-11-02", "--to", "2026-11-05")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "ROAS per channel and model, 2026-11-02 .. 2026-11-05" in out
    assert "Per day, channel, campaign and KOL (last_non_direct)" in out
    assert "LTV by acquisition channel (last_non_direct)" in out
    days = attr.DayRange(D1, D4)
    # The ROAS table: one column per model, in the cost's currency.
    (kol,) = [r for r in attr.roas_by_channel(client, days) if r.channel == "kol"]
    line = _line(out, "kol", format_money(10_000, "CNY"))
    for model in MODELS:
        assert f"{kol.roas(model):,.2f}" in line
    assert all(m[:10] in out for m in MODELS)
    # The daily table: the paid_search spring campaign on D1.
    ps = _line(out, "2026-11-02", "paid_search", "spring")
    for text in (format_money(5_000, "CNY"), "1.00", format_money(10_000, "CNY"), "2.00"):
        assert text in ps
    display = _line(out, "2026-11-02", "display", "banner")
    assert "0.00" in display and format_money(2_000, "CNY") in display
    refund = _line(out, "2026-11-04", UNATTRIBUTED)
    assert format_money(1_620, "CNY") in refund
    # LTV: the direct customers of D1 under last_non_direct: d only (a went to sogou).
    ltv = _line(out, "direct", format_money(600, "CNY"))
    assert "1.00" in ltv


def test_report_with_another_model_and_a_narrow_terminal(client: Any, engine_dir: Path) -> None:
    load(client)
    result = run_report(
        client, engine_dir, "--model", "linear", "--from", "2026-11-02", "--to", "2026-11-03",
        width=70,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(linear)" in result.output.replace("\n", "")
    assert "…" not in result.output  # numbers fold onto a second line, never cut


def test_report_errors(client: Any, engine_dir: Path) -> None:
    unknown = run_report(client, engine_dir, "--model", "last_click")
    assert unknown.exit_code == 2
    assert "unknown attribution model 'last_click'" in unknown.output
    assert "last_non_direct" in unknown.output
    bad = run_report(client, engine_dir, "--from", "2026-02-30")
    assert bad.exit_code == 2 and "--from '2026-02-30' is not a day" in bad.output
    backwards = run_report(client, engine_dir, "--from", "2026-11-05", "--to", "2026-11-02")
    assert backwards.exit_code == 2 and "is before --from" in backwards.output
    empty = run_report(client, engine_dir)
    assert empty.exit_code == 1 and "no attributed orders" in empty.output


def test_report_default_range_is_the_last_seven_days_with_data(
    client: Any, engine_dir: Path
) -> None:
    insert_credits(client, order(at(D4, 10), "a", "X1", 1_000, [PS_BAIDU], first=True))
    insert_credits(client, order(at(D1, 10), "b", "X2", 2_000, [EMAIL], first=True))
    result = run_report(client, engine_dir)
    assert result.exit_code == 0, result.output
    assert "2026-10-30 .. 2026-11-05" in result.output.replace("\n", "")


def test_report_sql_prints_the_queries_without_a_database() -> None:
    app = typer.Typer()
    app.command()(report_attribution)
    result = CliRunner().invoke(app, ["--sql", "--model", "linear", "--from", "2026-11-02"])
    assert result.exit_code == 0, result.output
    assert result.output.count("FROM v_attribution_daily") == 2
    assert "FROM v_acquisition_ltv" in result.output
    assert "'model': 'linear'" in result.output and "'from': '2026-11-02'" in result.output


# -- the attribution monitor ------------------------------------------------------------------


def _samples(metrics: PipelineMetrics, name: str) -> dict[tuple[str, ...], float]:
    out = {}
    for family in metrics.registry.collect():
        for s in family.samples:
            if s.name == name:
                out[tuple(s.labels.values())] = s.value
    return out


def test_monitor_sets_todays_gauges_from_the_views(client: Any) -> None:
    insert_credits(client, order(at(D1, 9), "a", "M1", 50_000, [PS_BAIDU], first=True))
    insert_credits(client, order(at(D2, 9), "b", "M2", 30_000, [DIRECT, PS_BAIDU], first=True))
    insert_credits(client, order(at(D2, 10), "c", "M3", 9_000, [KOL_LILY, KOL_MAX], first=True))
    insert_refunds(client, [Refund("m1", at(D2, 11), "a", "M1", 10_000)])  # today, D1's order
    insert_cost_import(
        client,
        D2,
        at(D2, 12),
        0,
        [
            ("paid_search", "baidu", "cpc", "spring", 20_000, "CNY"),
            ("display", "dsp", "banner", "banner", 5_000, "CNY"),
            ("made_up", "x", "y", "z", 1_000, "CNY"),  # not a channel: label "other"
        ],
    )
    insert_cost_import(client, D1, at(D1, 12), 1, [("email", "e", "e", "e", 99_900, "CNY")])
    metrics = PipelineMetrics(CollectorRegistry())
    opened: list[Any] = []

    def open_reader() -> Any:
        opened.append(client)
        return client

    monitor = AttributionMonitor.from_factory(open_reader, metrics)
    assert not opened  # opened at the first evaluation, in the evaluating thread
    monitor.evaluate()
    cost = _samples(metrics, "shopfunnel_marketing_cost_today")
    assert cost == {("paid_search",): 200.0, ("display",): 50.0, ("other",): 10.0}
    revenue = _samples(metrics, "shopfunnel_attribution_revenue_today")
    roas = _samples(metrics, "shopfunnel_attribution_roas")
    # M2 under last_touch: all paid_search; M1's refund comes off paid_search today.
    assert revenue[("paid_search", "last_touch")] == pytest.approx(300.0 - 100.0)
    assert roas[("paid_search", "last_touch")] == pytest.approx(200.0 / 200.0)
    assert revenue[("paid_search", "first_touch")] == pytest.approx(-100.0)
    assert revenue[("direct", "first_touch")] == pytest.approx(300.0)
    assert revenue[("kol", "linear")] == pytest.approx(90.0)
    assert roas[("display", "linear")] == 0.0 and ("kol", "linear") not in roas
    assert {m for _, m in revenue} == set(MODELS)
    assert _samples(metrics, "shopfunnel_attribution_evaluation_failures_total") == {(): 0.0}
    # A later order moves "today" (event time): D2's series go, D3 has no cost.
    insert_credits(client, order(at(D3, 1), "d", "M4", 4_000, [EMAIL], first=True))
    monitor.evaluate()
    assert _samples(metrics, "shopfunnel_marketing_cost_today") == {}
    assert _samples(metrics, "shopfunnel_attribution_roas") == {}
    revenue = _samples(metrics, "shopfunnel_attribution_revenue_today")
    assert {c for c, _ in revenue} == {"email"}
    assert revenue[("email", "linear")] == pytest.approx(40.0)
    assert len(opened) == 1
    # A client works as the reader too.
    direct = PipelineMetrics(CollectorRegistry())
    AttributionMonitor(client, direct).evaluate()
    assert _samples(direct, "shopfunnel_attribution_revenue_today") == revenue


def test_monitor_with_a_function_reader_bounds_labels_and_counts_failures() -> None:
    today = D3

    def reader(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        if "FROM order_attribution" in sql:
            return [(today, 5)]
        if "FROM v_marketing_costs" in sql:
            assert params == {"day": today}
            return [("paid_search", "KRW", 1_000_000), ("kol", "KWD", 5_000)]
        return [
            ("linear", "paid_search", "KRW", 2_500_000 * MICRO),
            ("linear", UNATTRIBUTED, "KRW", -1_000 * MICRO),
            ("linear", "garbage<script>", "KRW", 500 * MICRO),
            ("linear", "paid_search", "USD", 99 * MICRO),  # another currency: not shown
        ]

    metrics = PipelineMetrics(CollectorRegistry())
    AttributionMonitor(reader, metrics).evaluate()
    # KRW (exponent 0) costs the most in major units: the gauges are in KRW.
    assert _samples(metrics, "shopfunnel_marketing_cost_today") == {("paid_search",): 1_000_000.0}
    revenue = _samples(metrics, "shopfunnel_attribution_revenue_today")
    assert revenue[("paid_search", "linear")] == 2_500_000.0
    assert revenue[(UNATTRIBUTED, "linear")] == -1_000.0
    assert revenue[("other", "linear")] == 500.0
    assert _samples(metrics, "shopfunnel_attribution_roas")[("paid_search", "linear")] == 2.5

    def broken(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        raise RuntimeError("ClickHouse is down")

    failing = AttributionMonitor(broken, metrics)
    failing.evaluate()
    assert _samples(metrics, "shopfunnel_attribution_evaluation_failures_total") == {(): 1.0}
    assert revenue == _samples(metrics, "shopfunnel_attribution_revenue_today")  # kept
    kwd = PipelineMetrics(CollectorRegistry())
    AttributionMonitor(reader, kwd, currency="KWD").evaluate()
    assert _samples(kwd, "shopfunnel_marketing_cost_today") == {("kol",): 5.0}
    assert math.isclose(_samples(kwd, "shopfunnel_attribution_roas")[("kol", "linear")], 0.0)
