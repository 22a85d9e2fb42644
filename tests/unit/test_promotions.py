"""`funnel report promotions|tiers` (reports/promotions.py, docs/semantics.md 10a): the SQL
over events_raw in an in-memory chDB equals the simulator's independent truth
(simulator/truth_promotions.py), on a generated multi-week run (duplicates, re-sent
purchases, out-of-order and late records) and on hand-built edge cases; the totals equal
the KPI truth; the CLI renders tables, CSV and JSON and names the fix of a bad option.

events_raw is filled as the worker fills it: each valid record through the real row
builder (streams/outputs/raw_events.py), lateness decided in SQL per topic-partition
(as in tests/unit/test_simulator_truth_vs_clickhouse.py, whose loader leaves out the
properties and item columns these reports need).
"""

from __future__ import annotations

import csv
import gc
import io
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import astuple, replace
from datetime import UTC, datetime
from typing import Any

import clickhouse_connect
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from funnel import cli
from funnel.cli_promotions import report_promotions, report_tiers
from reports import promotions as p
from schemas.channels import ChannelRules
from schemas.model import Event, Item, StreamKind
from simulator import truth_promotions as tp
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.records import SimRecord
from simulator.truth import compute_truth
from simulator.truth_exploration import counted_events
from sinks.clickhouse import apply_migrations
from streams.outputs import raw_events

CONFIG = SimConfig(
    users=4000,
    days=45,
    duplicate_pct=4,
    out_of_order_pct=5,
    late_pct=3,
    malformed_pct=1,
    json_pct=10,
)
DAY = 86_400_000
START = CONFIG.start_ms
END = START + int(CONFIG.days * DAY) + 10 * DAY  # after every event (refunds come later)
TOPICS = {"clickstream": "shop.clickstream", "cart": "shop.cart", "orders": "shop.orders"}
_numbers = itertools.count()


# -- loading events_raw ------------------------------------------------------------------


def load(client: Any, records: Sequence[SimRecord], lateness_ms: int) -> None:
    """Every valid record as the worker writes it (row builder, topic, partition, offset),
    then §1.2 lateness in SQL: below (max event_time of the earlier records of its
    topic-partition) - lateness is late (is_late = 1, version 0)."""
    channels = ChannelRules.load()
    offsets: Counter[tuple[str, int]] = Counter()
    rows = []
    for record in records:
        offset = offsets[(record.stream, record.partition)]
        offsets[(record.stream, record.partition)] += 1
        e = record.event
        if e is None:
            continue  # a dead letter
        channel = channels.classify(e.utm_source, e.utm_medium, e.referrer)
        rows.append(
            raw_events.build_row(
                e, channel, False, TOPICS[record.stream], record.partition, offset,
                record.send_time_ms,
            )
        )  # fmt: skip
    client.command(
        "CREATE TABLE staging AS events_raw "
        "ENGINE = MergeTree ORDER BY (source_topic, source_partition, source_offset)"
    )
    client.insert("staging", rows, column_names=list(raw_events.TABLE.columns))
    client.command(
        f"""
        INSERT INTO events_raw
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
    client.command("DROP TABLE staging")


@pytest.fixture(scope="module")
def admin() -> Iterator[Any]:
    # chDB has one engine per process: collect clients other modules left unreferenced
    # (their engine may be on a directory) before and after; keep one session open.
    gc.collect()
    handle = clickhouse_connect.get_client(dsn="chdb://memory")
    yield handle
    handle.close()
    gc.collect()


def database(admin: Any) -> Any:
    name = f"promotions_{next(_numbers)}"
    admin.command(f"CREATE DATABASE {name}")
    handle = clickhouse_connect.get_client(dsn="chdb://memory", database=name)
    apply_migrations(handle)
    return handle


@pytest.fixture(scope="module")
def run(admin: Any) -> Iterator[tuple[Any, list[SimRecord], list[Event]]]:
    records = list(generate(CONFIG))
    client = database(admin)
    load(client, records, CONFIG.lateness_ms)
    try:
        yield client, records, counted_events(records, CONFIG.lateness_ms)
    finally:
        client.close()


@pytest.fixture
def client(admin: Any) -> Iterator[Any]:
    handle = database(admin)
    try:
        yield handle
    finally:
        handle.close()


def as_tuples(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [astuple(r) for r in rows]


# -- the generated run --------------------------------------------------------------------


def test_the_run_exercises_every_rule(run: tuple[Any, list[SimRecord], list[Event]]) -> None:
    client, records, counted = run
    truth = compute_truth(
        records, lateness_ms=CONFIG.lateness_ms, session_timeout_ms=CONFIG.session_timeout_ms
    )
    for key in ("late", "duplicates_dropped", "purchase_duplicates_dropped"):
        assert truth.stats[key] > 0, key
    late = client.query("SELECT countIf(is_late) FROM events_raw FINAL").result_rows[0][0]
    assert late == len(truth.late_event_ids)
    rows = tp.promotions(counted, START, END, (7, 30))
    codes = {r.coupon for r in rows if r.kind == "code"}
    assert {"WELCOME10", "DOUBLE11", "SKU15OFF"} <= codes
    assert any(r.repeat.repeat_buyers for r in rows if r.kind == "code")
    assert any(r.repeat.mature[1] < r.repeat.acquired for r in rows)
    tiers = {r.tier for r in tp.tier_kpis(counted, START, END)}
    assert {"gold", "silver", "none", ""} <= tiers
    # The "all orders" rows are the KPI sums (docs/semantics.md section 4).
    kpi: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for k in truth.kpi:
        for n, value in enumerate(
            (k.orders, k.coupon_orders, k.gmv_minor, k.discount_minor, k.first_orders)
        ):
            kpi[k.currency][n] += value
    totals = {
        r.currency: [r.orders, r.coupon_orders, r.gmv_minor, r.discount_minor, r.repeat.acquired]
        for r in p.run_promotions(client, START, END)
        if r.kind == "all"
    }
    assert totals == {c: v for c, v in kpi.items() if v[0]}
    # Item-level coupons make orders coupon orders that have no order-level coupon.
    order_level = sum(1 for e in counted if e.event_type == "purchase" and e.coupon)
    assert sum(v[1] for v in totals.values()) > order_level


RANGES = [
    pytest.param(START, END, (30,), "", id="all-data"),
    pytest.param(START + 10 * DAY, START + 30 * DAY, (7, 30), "", id="middle"),
    pytest.param(START + 5 * DAY, START + 40 * DAY + 12345, (1, 7, 14, 30), "CNY", id="cny"),
    pytest.param(START + 44 * DAY, START + 46 * DAY, (30,), "", id="immature"),
]


@pytest.mark.parametrize(("start", "end", "horizons", "currency"), RANGES)
def test_promotions_sql_equals_the_truth(
    run: tuple[Any, list[SimRecord], list[Event]],
    start: int,
    end: int,
    horizons: tuple[int, ...],
    currency: str,
) -> None:
    client, _, counted = run
    got = p.run_promotions(client, start, end, horizons, currency)
    want = tp.promotions(counted, start, end, horizons, currency)
    assert want and as_tuples(got) == [tuple(w) for w in want]
    if currency:
        assert {r.currency for r in got} == {currency}


@pytest.mark.parametrize(("start", "end", "horizons", "currency"), RANGES)
@pytest.mark.parametrize("key", ["membership_tier", "page_type"])
def test_tiers_sql_equal_the_truth(
    run: tuple[Any, list[SimRecord], list[Event]],
    start: int,
    end: int,
    horizons: tuple[int, ...],
    currency: str,
    key: str,
) -> None:
    client, _, counted = run
    got = p.run_tier_kpis(client, start, end, key, currency)
    want = tp.tier_kpis(counted, start, end, key, currency)
    assert want and as_tuples(got) == [tuple(w) for w in want]
    cohorts = p.run_tier_retention(client, start, end, horizons, key, currency)
    want_cohorts = tp.tier_retention(counted, start, end, horizons, key, currency)
    assert as_tuples(cohorts) == [tuple(w) for w in want_cohorts]


def test_the_default_end_is_just_after_the_latest_on_time_event(
    run: tuple[Any, list[SimRecord], list[Event]],
) -> None:
    client, _, counted = run
    latest = max(e.event_time_ms for e in counted)
    assert p.data_end(client) == latest + 1


# -- hand-built edge cases ---------------------------------------------------------------

T = datetime(2026, 11, 2, tzinfo=UTC)
T_MS = int(T.timestamp() * 1000)


def ev(
    event_type: str,
    t: int,
    event_id: str,
    person: str = "p1",
    *,
    transaction_id: str | None = None,
    value: int | None = None,
    currency: str | None = None,
    coupon: str | None = None,
    discount: int | None = None,
    items: tuple[Item, ...] = (),
    properties: dict[str, str] | None = None,
) -> Event:
    stream: StreamKind = "orders" if event_type == "purchase" else "clickstream"
    if event_type == "purchase":
        currency = currency or "USD"
        value = 1000 if value is None else value
    return Event(
        stream=stream,
        event_type=event_type,
        event_id=event_id,
        event_time_ms=t,
        sent_time_ms=t,
        anonymous_id=person,
        session_id="s",
        transaction_id=transaction_id,
        currency=currency,
        value_minor=value,
        coupon=coupon,
        discount_minor=discount,
        items=items,
        properties=properties or {},
    )


def record(event: Event, partition: int = 0) -> SimRecord:
    return SimRecord(
        stream=event.stream,
        partition=partition,
        key=event.anonymous_id.encode(),
        value=b"",
        send_time_ms=event.event_time_ms,
        event=event,
        malformed_reason=None,
        is_duplicate=False,
        intended_late=False,
    )


def check(client: Any, events: Sequence[Event], lateness_ms: int = 300_000) -> list[Event]:
    """Load ``events`` as records in this order; SQL == truth for every report; the
    counted events."""
    records = [record(e) for e in events]
    load(client, records, lateness_ms)
    counted = counted_events(records, lateness_ms)
    ends = (T_MS - DAY, T_MS + 60 * DAY)
    for horizons in ((1,), (7, 30)):
        got = p.run_promotions(client, *ends, horizons)
        assert as_tuples(got) == [tuple(r) for r in tp.promotions(counted, *ends, horizons)]
        got_c = p.run_tier_retention(client, *ends, horizons)
        assert as_tuples(got_c) == [tuple(r) for r in tp.tier_retention(counted, *ends, horizons)]
    got_k = p.run_tier_kpis(client, *ends)
    assert as_tuples(got_k) == [tuple(r) for r in tp.tier_kpis(counted, *ends)]
    return counted


def line(item_id: str, price: int, qty: int, coupon: str | None, discount: int) -> Item:
    return Item(item_id, price, qty, coupon=coupon, discount_minor=discount)


def test_codes_at_order_and_item_level_and_their_own_discounts(client: Any) -> None:
    orders = [
        # Order-level and item-level SAVE on one order, plus an item code and a discount
        # without a code: SAVE gets 100 + 2 x 30, SKU 5, the order counts once per code.
        ev("purchase", T_MS, "a", "p1", transaction_id="t1", value=5000, coupon="SAVE",
           discount=100, items=(line("x", 300, 2, "SAVE", 30), line("y", 50, 1, "SKU", 5),
                                line("z", 80, 3, None, 10))),
        ev("purchase", T_MS + DAY, "b", "p1", transaction_id="t2", value=3000),
        ev("purchase", T_MS + 2 * DAY, "c", "p2", transaction_id="t3", value=2000,
           discount=40),  # a discount without a code: a no-coupon order
        ev("purchase", T_MS + 3 * DAY, "d", "p3", transaction_id="t4", value=700,
           items=(line("x", 300, 1, "SKU", 1),), currency="EUR"),
    ]  # fmt: skip
    check(client, orders)
    rows = {(r.currency, r.kind, r.coupon): r for r in p.run_promotions(client, 0, T_MS + 9 * DAY)}
    save, sku = rows[("USD", "code", "SAVE")], rows[("USD", "code", "SKU")]
    assert (save.orders, save.discount_minor, save.gmv_minor) == (1, 160, 5000)
    assert (sku.orders, sku.discount_minor) == (1, 5)
    none, total = rows[("USD", "none", "")], rows[("USD", "all", "")]
    assert (none.orders, none.discount_minor, none.aov_minor) == (2, 40, 2500)
    all_discounts = 100 + 2 * 30 + 5 + 3 * 10 + 40
    assert (total.orders, total.coupon_orders, total.discount_minor) == (3, 1, all_discounts)
    assert (save.first_orders, save.repeat.repeat_buyers) == (1, 1)
    assert (none.first_orders, none.first_share) == (1, 0.5)
    assert rows[("EUR", "code", "SKU")].discount_minor == 1


def test_duplicates_late_copies_and_a_resent_purchase(client: Any) -> None:
    minute = 60_000
    first = ev("purchase", T_MS + 26 * minute, "z", "p1", transaction_id="t1", coupon="WELCOME10")
    view = ev("page_view", T_MS + 26 * minute, "v", "p1", properties={"membership_tier": "gold"})
    events = [
        # A re-sent copy of t1 (new event_id), sent first but later in event time: loses.
        ev("purchase", T_MS + 30 * minute, "a-resent", "p1", transaction_id="t1", coupon="R"),
        first,
        first,  # an exact duplicate
        view,
        view,
        # 30 min behind its topic-partition: late, counts nowhere, not even as p2's
        # first order, so p2's next order is its first.
        ev("purchase", T_MS, "late", "p2", transaction_id="t0", coupon="LATE"),
        ev("purchase", T_MS + 31 * minute, "p2b", "p2", transaction_id="t2", coupon="X"),
    ]
    counted = check(client, events)
    assert [e.event_id for e in counted if e.event_type == "purchase"] == ["z", "p2b"]
    rows = {(r.kind, r.coupon): r for r in p.run_promotions(client, 0, T_MS + DAY)}
    assert set(rows) == {("code", "WELCOME10"), ("code", "X"), ("all", "")}
    assert rows[("code", "WELCOME10")].orders == 1
    assert rows[("code", "X")].first_orders == 1
    tiers = {r.tier: r.orders for r in p.run_tier_kpis(client, 0, T_MS + DAY)}
    assert tiers == {"gold": 1, "": 1}


def test_repeat_horizons_at_their_edges(client: Any) -> None:
    events = [
        # p1: again exactly 7 days later (not within 7 days, within 8).
        ev("purchase", T_MS, "a", "p1", transaction_id="t1"),
        ev("purchase", T_MS + 7 * DAY, "b", "p1", transaction_id="t2"),
        # p2: again 1 ms short of 7 days.
        ev("purchase", T_MS, "c", "p2", transaction_id="t3"),
        ev("purchase", T_MS + 7 * DAY - 1, "d", "p2", transaction_id="t4"),
        # p3: first order 7 days before --to exactly: mature for 7 days.
        ev("purchase", T_MS + DAY, "e", "p3", transaction_id="t5"),
        # p4: first order 1 ms later: not mature for 7 days; its second order is at --to.
        ev("purchase", T_MS + DAY + 1, "f", "p4", transaction_id="t6"),
        ev("purchase", T_MS + 8 * DAY, "g", "p4", transaction_id="t7"),
        # p5: two orders in one millisecond: by transaction_id, "t10" is the first.
        ev("purchase", T_MS + 2 * DAY, "h", "p5", transaction_id="t9", coupon="LATER"),
        ev("purchase", T_MS + 2 * DAY, "i", "p5", transaction_id="t10", coupon="FIRST"),
    ]
    check(client, sorted(events, key=lambda e: e.event_time_ms))  # none late
    to = T_MS + 8 * DAY
    (row,) = [r for r in p.run_promotions(client, T_MS, to, (7, 8)) if r.kind == "all"]
    assert row.orders == 8  # g is at --to: outside [from, to)
    assert row.repeat == p.Repeat(5, 3, (3, 2), (1, 2))
    codes = {r.coupon: r.first_orders for r in p.run_promotions(client, T_MS, to) if r.coupon}
    assert codes == {"FIRST": 1, "LATER": 0}


def test_tier_is_the_latest_seen_at_or_before_the_purchase(client: Any) -> None:
    tier = "membership_tier"
    events = [
        ev("page_view", T_MS, "a1", "p1", properties={tier: "silver"}),
        ev("page_view", T_MS + 10, "a2", "p1", properties={tier: "gold"}),
        ev("page_view", T_MS + 20, "a3", "p1", properties={tier: ""}),  # empty: no value
        ev("page_view", T_MS + 25, "a4", "p1", properties={"page_type": "home"}),
        ev("purchase", T_MS + 30, "a5", "p1", transaction_id="t1"),  # gold
        # Same millisecond as the purchase: counts; of two, the greater event_id wins.
        ev("page_view", T_MS + 40, "b9", "p1", properties={tier: "silver"}),
        ev("page_view", T_MS + 40, "b1", "p1", properties={tier: "none"}),
        ev("purchase", T_MS + 40, "b5", "p1", transaction_id="t2"),  # silver
        # After the purchase: not its tier.
        ev("page_view", T_MS + 50, "c1", "p1", properties={tier: "gold"}),
        # The purchase's own property wins.
        ev("purchase", T_MS + 60, "c2", "p1", transaction_id="t3", properties={tier: "vip"}),
        # Never seen: unknown.
        ev("purchase", T_MS + 70, "d1", "p2", transaction_id="t4"),
        # Only after the purchase: unknown too.
        ev("purchase", T_MS + 80, "e1", "p3", transaction_id="t5"),
        ev("page_view", T_MS + 90, "e2", "p3", properties={tier: "gold"}),
    ]
    check(client, events)
    kpis = {r.tier: (r.orders, r.first_orders, r.repeat_orders, r.buyers)
            for r in p.run_tier_kpis(client, 0, T_MS + DAY)}  # fmt: skip
    assert kpis == {
        "gold": (1, 1, 0, 1),
        "silver": (1, 0, 1, 1),
        "vip": (1, 0, 1, 1),
        "": (2, 2, 0, 2),
    }
    cohorts = {r.tier: r.repeat for r in p.run_tier_retention(client, 0, T_MS + DAY, (1,))}
    assert cohorts == {"gold": p.Repeat(1, 1, (0,), (0,)), "": p.Repeat(2, 0, (0,), (0,))}
    assert list(cohorts) == ["gold", ""]  # the unknown tier last


def test_rows_written_before_migration_0012_read_as_no_item_coupon(client: Any) -> None:
    purchase = ev("purchase", T_MS, "a", transaction_id="t1", coupon="SAVE", discount=100,
                  items=(line("x", 300, 2, "SKU", 30),))  # fmt: skip
    new = ("item_coupons", "item_discounts_minor")
    old_columns = [c for c in raw_events.TABLE.columns if c not in new]
    built = raw_events.build_row(purchase, "direct", False, "shop.orders", 0, 0, T_MS)
    row = dict(zip(raw_events.TABLE.columns, built, strict=True))
    client.insert("events_raw", [[row[c] for c in old_columns]], column_names=old_columns)
    (r,) = [r for r in p.run_promotions(client, 0, T_MS + 1) if r.kind == "code"]
    assert (r.coupon, r.discount_minor) == ("SAVE", 100)
    # The truth without the item coupon agrees.
    bare = replace(purchase, items=(line("x", 300, 2, None, 0),))
    want = tp.promotions([bare], 0, T_MS + 1)
    assert as_tuples(p.run_promotions(client, 0, T_MS + 1)) == [tuple(w) for w in want]


def test_empty_store_has_no_rows_and_no_end(client: Any) -> None:
    assert p.run_promotions(client, 0, T_MS) == []
    assert p.run_tier_kpis(client, 0, T_MS) == []
    assert p.run_tier_retention(client, 0, T_MS) == []
    assert p.data_end(client) is None


# -- parsing ------------------------------------------------------------------------------


def test_parse_options() -> None:
    assert p.parse_horizons("30, 7,7") == (7, 30)
    assert p.parse_currency("cny") == "CNY" and p.parse_currency(None) == ""
    assert p.parse_property("page_type") == "page_type"
    for bad in ("", "0", "367", "7,x", "1,2,3,4,5", "-3"):
        with pytest.raises(p.PromotionError, match="--repeat-within"):
            p.parse_horizons(bad)
    with pytest.raises(p.PromotionError, match="ISO 4217"):
        p.parse_currency("XYZ")
    with pytest.raises(p.PromotionError, match="property key"):
        p.parse_property("membership tier")
    with pytest.raises(p.PromotionError, match="not after --from"):
        p.promotions_sql(10, 10)


def test_user_values_travel_as_parameters() -> None:
    sql, params = p.tier_retention_sql(0, 10, (7,), "page_type", "usd")
    assert "page_type" not in sql and "USD" not in sql
    assert params == {"from_ms": 0, "to_ms": 10, "currency": "USD", "key": "page_type",
                      "h0": 7 * DAY}  # fmt: skip


# -- the CLI ------------------------------------------------------------------------------


def app() -> typer.Typer:
    """The report group as funnel/cli.py registers the two commands."""
    root = typer.Typer()
    report = typer.Typer()
    report.command("promotions")(report_promotions)
    report.command("tiers")(report_tiers)
    root.add_typer(report, name="report")
    return root


def invoke(client: Any, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setattr(cli, "_report_client", lambda ctx: client)
    # Wide enough that no cell is folded onto two lines.
    monkeypatch.setattr(cli, "console", Console(width=400, force_terminal=False))
    return CliRunner().invoke(app(), ["report", *args], terminal_width=250)


def test_cli_promotions_json_csv_and_table(
    run: tuple[Any, list[SimRecord], list[Event]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _, counted = run
    result = invoke(client, monkeypatch, "promotions", "--format", "json",
                    "--repeat-within", "7,30")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    # No --from / --to: all data, up to 1 ms after the latest on-time event.
    end = max(e.event_time_ms for e in counted) + 1
    want = tp.promotions(counted, 0, end, (7, 30))
    assert [(r["currency"], r["kind"], r["coupon"], r["orders"], r["repeat_30d"])
            for r in rows] == [(w.currency, w.kind, w.coupon, w.orders, w.repeat.within[1])
                               for w in want]  # fmt: skip
    cny = {(r["kind"], r["coupon"]): r for r in rows if r["currency"] == "CNY"}
    assert cny[("code", "WELCOME10")]["aov_no_coupon_minor"] == cny[("none", "")]["aov_minor"]
    assert cny[("code", "WELCOME10")]["first_share"] == 1.0  # a first-order coupon
    result = invoke(client, monkeypatch, "promotions", "--format", "csv", "--currency", "usd",
                    "--from", "2026-11-01", "--to", "2026-12-01")  # fmt: skip
    assert result.exit_code == 0, result.output
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0][:4] == ["currency", "kind", "coupon", "orders"]
    assert table[0][-3:] == ["mature_30d", "repeat_30d", "repeat_rate_30d"]
    assert {r[0] for r in table[1:]} == {"USD"}
    result = invoke(client, monkeypatch, "promotions", "--currency", "CNY")
    assert result.exit_code == 0, result.output
    text = result.output
    for expected in ("WELCOME10", "(no coupon)", "(all orders)", "AOV no coupon", "¥",
                     "repeat <30d"):  # fmt: skip
        assert expected in text, expected


def test_cli_tiers_json_csv_and_table(
    run: tuple[Any, list[SimRecord], list[Event]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _, counted = run
    result = invoke(client, monkeypatch, "tiers", "--format", "json", "--to", "2026-12-31")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    end = int(datetime(2026, 12, 31, tzinfo=UTC).timestamp() * 1000)
    kpis = tp.tier_kpis(counted, 0, end)
    assert [(r["tier"], r["currency"], r["orders"], r["gmv_minor"]) for r in document["kpis"]] == [
        (k.tier, k.currency, k.orders, k.gmv_minor) for k in kpis
    ]
    cohorts = tp.tier_retention(counted, 0, end)
    assert [(r["tier"], r["new_buyers"], r["repeat_7d"], r["repeat_30d"])
            for r in document["retention"]] == [
        (c.tier, c.repeat.acquired, c.repeat.within[0], c.repeat.within[1]) for c in cohorts
    ]  # fmt: skip
    result = invoke(client, monkeypatch, "tiers", "--format", "csv", "--part", "retention",
                    "--property", "page_type", "--repeat-within", "14")  # fmt: skip
    assert result.exit_code == 0, result.output
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0] == ["tier", "new_buyers", "repeat_buyers", "repeat_rate", "mature_14d",
                        "repeat_14d", "repeat_rate_14d"]  # fmt: skip
    result = invoke(client, monkeypatch, "tiers", "--part", "kpis", "--format", "json")
    assert result.exit_code == 0 and isinstance(json.loads(result.stdout), list)
    result = invoke(client, monkeypatch, "tiers")
    assert result.exit_code == 0, result.output
    for expected in ("Orders by membership_tier", "gold", "(unknown)", "Repeat purchase",
                     "repeat <7d", "first / repeat"):  # fmt: skip
        assert expected in result.output, expected


def test_cli_sql_prints_the_queries_without_opening_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_store(ctx: Any) -> Any:
        raise AssertionError("--sql must not open the store")

    monkeypatch.setattr(cli, "_report_client", no_store)
    runner = CliRunner()
    result = runner.invoke(app(), ["report", "promotions", "--sql", "--currency", "EUR"])
    assert result.exit_code == 0, result.output
    assert "events_raw FINAL" in result.stdout and '"currency": "EUR"' in result.stdout
    assert "the default --to" in result.stdout
    result = runner.invoke(
        app(), ["report", "tiers", "--sql", "--from", "2026-11-01", "--to", "2026-11-08"]
    )
    assert result.exit_code == 0, result.output
    assert "-- tier KPIs" in result.stdout and "-- tier retention" in result.stdout
    assert "the default --to" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["promotions", "--currency", "XYZ"], "not an ISO 4217 currency code"),
        (["promotions", "--repeat-within", "0"], "--repeat-within '0' is not a list of days"),
        (["tiers", "--repeat-within", "7,month"], "--repeat-within '7,month'"),
        (["tiers", "--property", "membership-tier"], "--property 'membership-tier' is not"),
        (["tiers", "--format", "csv"], "--format csv writes one table"),
        (["promotions", "--from", "yesterday"], "--from 'yesterday' is not an ISO date"),
        (["tiers", "--from", "2026-11-02", "--to", "2026-11-01"], "is not after --from"),
    ],
)
def test_cli_errors_name_the_option_and_the_fix(
    client: Any, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    result = invoke(client, monkeypatch, *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split()), result.output


@pytest.mark.parametrize(
    "args", [["promotions", "--format", "xml"], ["tiers", "--part", "everything"]]
)
def test_cli_rejects_unknown_choices(
    client: Any, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    result = invoke(client, monkeypatch, *args)
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def test_cli_on_an_empty_store_says_what_to_run(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = invoke(client, monkeypatch, "promotions")
    assert result.exit_code == 1
    assert "no events yet" in result.output
    result = invoke(client, monkeypatch, "tiers", "--to", "2026-11-01", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == {"kpis": [], "retention": []}


def test_cli_from_after_the_data_and_a_store_without_the_item_columns(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(client, [record(ev("purchase", T_MS, "a", transaction_id="t1"))], 300_000)
    result = invoke(client, monkeypatch, "promotions", "--from", "2030-01-01")
    assert result.exit_code == 2
    assert "is after the latest on-time event" in " ".join(result.output.split())
    # A store the worker wrote before migration 0012: the fix is `funnel migrate`.
    client.command("ALTER TABLE events_raw DROP COLUMN item_coupons")
    result = invoke(client, monkeypatch, "promotions")
    assert result.exit_code == 2
    assert "run `funnel migrate`" in " ".join(result.output.split()), result.output
