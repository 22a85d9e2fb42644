"""Accepted input cannot overflow anything the pipeline keeps (docs/semantics.md section 9).

Events at and near the validation bounds (and some just beyond them) are encoded as the
producers would, decoded and validated by the real :class:`EventCodec` inside the real
processing core (:class:`PartitionProcessor`, no broker). Then:

- every visitor state encodes (``encode_state``: orjson refuses integers beyond 64 bits);
- every trigger encodes to Avro (``cart_value_minor`` is a ``long``, quantities ``int``);
- every value of every produced row fits its ClickHouse column type, with the types read
  from the real migrations applied to an embedded ClickHouse (``chdb://memory``), and
  ClickHouse itself takes the rows and reads them back unchanged, ``events_raw`` included
  (a stored ``sent_time`` of -2**63 made every read of that column fail);
- each sum is within the linear bound the headroom argument uses (GMV <= orders x the
  money bound, ...), and the documented headroom numbers hold for the column types.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import EventCodec
from schemas.model import Event, Item
from schemas.reasons import Reason
from schemas.triggers import Trigger
from schemas.validation import (
    EARLIEST_EVENT_TIME_MS,
    INT64_MAX,
    MAX_ITEM_UNITS,
    MAX_MONEY_MINOR,
    ValidationBounds,
)
from sinks.clickhouse import apply_migrations
from sinks.tables import TableSpec
from streams.batch import BatchResult
from streams.funnels import load_funnels
from streams.lifecycle import CartEvent, LifecycleRules, abandoned_carts
from streams.outputs import ALL_TABLES
from streams.outputs.kpi import TABLE as KPI_MINUTE
from streams.outputs.raw_events import TABLE as EVENTS_RAW
from streams.outputs.triggers import TABLE as TRIGGERS
from streams.outputs.triggers import build_row as trigger_row
from streams.outputs.triggers import to_trigger
from streams.outputs.user_rfm import TABLE as USER_RFM
from streams.processor import PartitionProcessor
from streams.records import Record as InputRecord
from streams.state import decode_state, encode_state
from streams.visitor import Rules
from tests.unit.fakes import DictStore, SimpleChannels

M = MAX_MONEY_MINOR
U = MAX_ITEM_UNITS
MIN = 60_000
T0 = 1_790_000_000_000 - 1_790_000_000_000 % MIN
T_END = T0 + 2 * 86_400_000  # sentinels that move the watermark past everything
RULES = Rules(load_funnels(), lateness_ms=5 * MIN, session_timeout_ms=30 * MIN)
TOPICS = {"clickstream": "c", "cart": "k", "orders": "o"}
CODEC = EventCodec(bounds=ValidationBounds())
MAX_FUTURE = ValidationBounds().max_future_ms
DOCS = Path(__file__).resolve().parents[2] / "docs" / "semantics.md"

# The headroom docs/semantics.md section 9 documents.
MONEY_HEADROOM = 922_337  # maximum-size amounts per Int64 sum
UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1

INT_RANGES = {
    "Int64": (-(2**63), INT64_MAX),
    "Int32": (-(2**31), INT32_MAX),
    "UInt64": (0, UINT64_MAX),
    "UInt32": (0, UINT32_MAX),
    "UInt16": (0, 2**16 - 1),
    "UInt8": (0, 2**8 - 1),
}
# DateTime64(3): 1900-01-01 .. 2299-12-31 (ClickHouse docs), as epoch milliseconds.
DATETIME64_MS = (-2_208_988_800_000, 10_413_791_999_999)


# -- the embedded ClickHouse with the production schema -----------------------------------


@functools.cache
def chdb() -> tuple[Any, dict[str, list[str]]]:
    """A client on a fresh database with all migrations, and each table's column types."""
    database = "no_overflow_test"
    admin = clickhouse_connect.get_client(dsn="chdb://memory")
    admin.command(f"DROP DATABASE IF EXISTS {database}")
    admin.command(f"CREATE DATABASE {database}")
    client = clickhouse_connect.get_client(dsn="chdb://memory", database=database)
    apply_migrations(client)
    types: dict[str, list[str]] = {}
    for spec in ALL_TABLES:
        described = {
            row[0]: row[1] for row in client.query(f"DESCRIBE TABLE {spec.name}").result_rows
        }
        types[spec.name] = [described[column] for column in spec.columns]
    return client, types


@pytest.fixture(scope="module", autouse=True)
def _close_chdb() -> Any:
    """chDB serves one data path per process: release ``chdb://memory`` after this module
    so later tests can open their own directories."""
    yield
    if chdb.cache_info().currsize:
        client, _ = chdb()
        client.close()
        chdb.cache_clear()


def assert_fits(column_type: str, value: Any, where: str) -> None:
    """``value`` (as the writer passes it) fits ``column_type``; names the cell if not."""
    inner = re.fullmatch(r"(Nullable|LowCardinality)\((.*)\)", column_type)
    if inner:
        if value is None and inner.group(1) == "Nullable":
            return
        assert_fits(inner.group(2), value, where)
        return
    array = re.fullmatch(r"Array\((.*)\)", column_type)
    if array:
        for index, item in enumerate(value):
            assert_fits(array.group(1), item, f"{where}[{index}]")
        return
    if column_type in INT_RANGES:
        low, high = INT_RANGES[column_type]
        assert isinstance(value, int), f"{where}: {value!r} is not an int"
        assert low <= value <= high, f"{where}={value} does not fit {column_type}"
    elif column_type.startswith("DateTime64(3"):
        assert DATETIME64_MS[0] <= value <= DATETIME64_MS[1], f"{where}={value} ms"
    elif column_type.startswith("DateTime("):
        assert 0 <= value <= UINT32_MAX, f"{where}={value} s does not fit DateTime"
    elif column_type == "Date":
        assert isinstance(value, date)
        assert date(1970, 1, 1) <= value <= date(2149, 6, 6), f"{where}={value}"
    elif column_type == "String":
        assert isinstance(value, str), f"{where}: {value!r} is not a str"
    elif column_type == "Float64":
        assert isinstance(value, int | float)
    elif column_type.startswith("Map("):
        assert isinstance(value, dict)
    else:  # a new column type: teach this test its range
        raise AssertionError(f"{where}: no range check for column type {column_type}")


def check_and_insert(rows: dict[TableSpec, list[tuple[Any, ...]]]) -> None:
    """Every value fits its column; ClickHouse takes the rows and reads them back."""
    client, types = chdb()
    for spec in ALL_TABLES:
        client.command(f"TRUNCATE TABLE {spec.name}")
    for spec, table_rows in rows.items():
        if not table_rows:
            continue
        for row in table_rows:
            assert len(row) == len(spec.columns), spec.name
            for column, column_type, value in zip(spec.columns, types[spec.name], row, strict=True):
                assert_fits(column_type, value, f"{spec.name}.{column}")
        columns = [list(col) for col in zip(*table_rows, strict=True)]
        client.insert(
            spec.name,
            columns,
            column_names=list(spec.columns),
            column_oriented=True,
            # Keep every row (no ReplacingMergeTree dedup on insert) to compare them all.
            settings={"optimize_on_insert": 0},
        )
    # Read everything back: values must come back unchanged (no silent wrap-around) and
    # every column must be readable (a DateTime64 out of range fails on read).
    for spec, table_rows in rows.items():
        if not table_rows:
            continue
        got = client.query(f"SELECT * FROM {spec.name}").result_rows
        assert len(got) == len(table_rows), spec.name
    for spec, money_columns in (
        (KPI_MINUTE, ("gmv_minor", "discount_minor", "refunded_minor", "items")),
        (USER_RFM, ("monetary_minor",)),
        (TRIGGERS, ("cart_value_minor",)),
    ):
        wanted = sorted(
            (
                tuple(row[spec.columns.index(c)] for c in money_columns)
                for row in rows.get(spec, [])
            ),
            key=repr,
        )
        query = f"SELECT {', '.join(money_columns)} FROM {spec.name}"
        got = sorted((tuple(row) for row in client.query(query).result_rows), key=repr)
        assert got == wanted, spec.name


# -- events at and near the bounds --------------------------------------------------------------

valid_money = st.sampled_from([0, 1, M - 1, M]) | st.integers(0, M)
ids_near_bounds = st.sampled_from(["v", "x" * 255, "用户-", "a\u200bb-"])


def capped(cap: int) -> st.SearchStrategy[int]:
    return st.sampled_from([0, 1, cap]) | st.integers(0, cap)


@st.composite
def order_lines(draw: st.DrawFn, lines: int, max_units: int) -> tuple[Item, ...]:
    """Up to ``lines`` lines whose totals stay inside the per-event bounds."""
    out = []
    for n in range(draw(st.integers(0, lines))):
        price = draw(capped(M // lines))
        most = min(max_units // lines, M // lines // price) if price else max_units // lines
        out.append(
            Item(
                item_id=draw(ids_near_bounds) + str(n),
                price_minor=price,
                quantity=draw(capped(most)),
                discount_minor=draw(st.sampled_from([0, price]) | st.integers(0, price)),
                coupon=draw(st.sampled_from([None, "C"])),
            )
        )
    return tuple(out)


@st.composite
def sent_time(draw: st.DrawFn, t: int) -> int:
    return draw(st.sampled_from([EARLIEST_EVENT_TIME_MS, t, t + 1 + MAX_FUTURE]))


def poison(event: Event, kind: int) -> Event:
    """The same event broken beyond one bound (the validator must reject it)."""
    item = Item("p", price_minor=1, quantity=8, discount_minor=2**62)
    breaks: list[dict[str, Any]] = [
        {"value_minor": 6 * 10**18, "currency": "CNY"},
        {"items": (item,), "currency": "CNY"},
        {"items": (Item("p", price_minor=M + 1),), "currency": "CNY"},
        {"items": (Item("p", price_minor=1, quantity=U + 1),), "currency": "CNY"},
        {"items": (Item("p", price_minor=10, discount_minor=11),), "currency": "CNY"},
        {"sent_time_ms": -(2**63)},
        {"session_id": "\u200b"},
        {"anonymous_id": "a\x00"},
        {"transaction_id": "   "},
    ]
    return replace(event, **breaks[kind % len(breaks)])


@st.composite
def visitor_events(draw: st.DrawFn, visitor: int) -> list[Event]:
    anonymous_id = draw(ids_near_bounds) + f"-{visitor}"
    events: list[Event] = []
    for n in range(draw(st.integers(1, 8))):
        kind = draw(
            st.sampled_from(
                ["purchase", "purchase", "purchase", "refund", "add_to_cart", "remove_from_cart"]
            )
        )
        t = T0 + draw(st.integers(0, 2 * MIN))
        base = Event(
            stream="orders" if kind in ("purchase", "refund") else "cart",
            event_type=kind,
            event_id=f"e{visitor}-{n}",
            event_time_ms=t,
            sent_time_ms=draw(sent_time(t)),
            anonymous_id=anonymous_id,
            session_id=f"s{visitor}",
            user_id=draw(st.sampled_from([None, "u" * 256])),
            currency=draw(st.sampled_from(["CNY", "JPY"])),
        )
        if kind == "purchase":
            items = draw(order_lines(3, U))
            item_discount = sum(i.discount_minor * i.quantity for i in items)
            event = replace(
                base,
                transaction_id=f"t{visitor}-{n}",
                items=items,
                value_minor=draw(valid_money),
                tax_minor=draw(st.none() | valid_money),
                shipping_minor=draw(st.none() | valid_money),
                discount_minor=draw(st.none() | capped(M - item_discount)),
                coupon=draw(st.sampled_from([None, "C"])),
            )
        elif kind == "refund":
            event = replace(base, transaction_id=f"t{visitor}-0", value_minor=draw(valid_money))
        else:
            # Cart lines stay small: the cart value is a sum across events (units held x
            # the latest unit price) that validation cannot bound; see the xfail below.
            event = replace(base, items=draw(order_lines(3, 27)))
        if draw(st.integers(0, 5)) == 0:
            event = poison(event, draw(st.integers(0, 100)))
        events.append(event)
    return events


@st.composite
def traffic(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = []
    for visitor in range(draw(st.integers(1, 4))):
        events.extend(draw(visitor_events(visitor)))
    return events


def sentinels() -> list[Event]:
    """One late-in-time event per input: the watermark passes every window and timer."""
    common = {"event_time_ms": T_END, "sent_time_ms": T_END, "anonymous_id": "clock"}
    return [
        Event(stream="clickstream", event_type="page_view", event_id="c1", session_id="c",
              **common),  # type: ignore[arg-type]
        Event(stream="cart", event_type="view_cart", event_id="c2", session_id="c",
              **common),  # type: ignore[arg-type]
        Event(stream="orders", event_type="order_cancelled", event_id="c3", session_id="c",
              **common),  # type: ignore[arg-type]
    ]  # fmt: skip


# -- running the real core -----------------------------------------------------------------------


def records(events: Sequence[Event], first_offset: int) -> list[InputRecord]:
    out = []
    for offset, event in enumerate(events, start=first_offset):
        raw = CODEC.encode_avro(event) if offset % 2 else CODEC.encode_json(event)
        # The record timestamp is the validator's clock ("now").
        out.append(InputRecord(offset, event.anonymous_id.encode(), raw, event.event_time_ms + 1))
    return out


def run_core(events: list[Event]) -> tuple[list[BatchResult], DictStore]:
    store = DictStore()
    decoder: Any = CODEC  # EventCodec.decode takes the StreamKind literal
    processor = PartitionProcessor(0, RULES, decoder, SimpleChannels(), TOPICS, store)
    results = [processor.recover()]

    def take(result: BatchResult) -> None:
        for key, value in result.state_writes.items():
            store.put(key, value, 0)
        results.append(result)

    by_stream = {s: sorted((e for e in events if e.stream == s), key=lambda e: e.event_time_ms)
                 for s in TOPICS}  # fmt: skip
    for stream in TOPICS:
        take(processor.process(stream, records(by_stream[stream], 0)))
    for sentinel in sentinels():
        take(
            processor.process(sentinel.stream, records([sentinel], len(by_stream[sentinel.stream])))
        )
    take(processor.tick({s: len(by_stream[s]) + 1 for s in TOPICS}))
    return results, store


def collect(
    results: list[BatchResult],
) -> tuple[dict[TableSpec, list[tuple[Any, ...]]], list[Trigger]]:
    rows: dict[TableSpec, list[tuple[Any, ...]]] = {}
    triggers: list[Trigger] = []
    for result in results:
        for spec, table_rows in result.rows.items():
            rows.setdefault(spec, []).extend(tuple(r) for r in table_rows)
        triggers.extend(result.triggers)
    return rows, triggers


def column(spec: TableSpec, row: tuple[Any, ...], name: str) -> Any:
    return row[spec.columns.index(name)]


def assert_linear_bounds(rows: dict[TableSpec, list[tuple[Any, ...]]]) -> None:
    """Each sum is at most (number of summands) x (bound per summand): the headroom
    argument of docs/semantics.md 9."""
    for row in rows.get(KPI_MINUTE, []):

        def v(name: str, row: tuple[Any, ...] = row) -> int:
            return int(column(KPI_MINUTE, row, name))

        assert 0 <= v("gmv_minor") <= v("orders") * M
        assert 0 <= v("discount_minor") <= v("orders") * M
        assert 0 <= v("items") <= v("orders") * U
        assert 0 <= v("refunded_minor") <= v("refunds") * M
    for row in rows.get(USER_RFM, []):
        monetary = column(USER_RFM, row, "monetary_minor")
        assert 0 <= monetary <= column(USER_RFM, row, "frequency") * M


# -- the properties ----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traffic())
def test_accepted_input_never_overflows_state_rows_or_triggers(events: list[Event]) -> None:
    results, store = run_core(events)
    # Every record was either accepted or dead-lettered with a reason; nothing raised.
    letters = [letter for result in results for letter in result.dead_letters]
    assert {letter.reason for letter in letters} <= {r.value for r in Reason}
    rows, triggers = collect(results)
    raw_ids = {column(EVENTS_RAW, row, "event_id") for row in rows.get(EVENTS_RAW, [])}
    assert len(raw_ids) + len(letters) == len(events) + len(sentinels())
    # States: the processor encoded them; they decode and encode again unchanged.
    for value in store.data.values():
        if not value.startswith(b"{"):  # the partition's meta record is JSON, states lists
            assert encode_state(decode_state(value)) == value
    for trigger in triggers:
        assert CODEC.decode_trigger(CODEC.encode_trigger(trigger)) == trigger
    for letter in letters:
        CODEC.encode_dead_letter(letter)
    assert_linear_bounds(rows)
    check_and_insert(rows)


def test_the_poison_records_of_the_fault_drills_are_dead_lettered() -> None:
    base = Event(stream="orders", event_type="purchase", event_id="p", event_time_ms=T0,
                 sent_time_ms=T0, anonymous_id="a", session_id="s", transaction_id="t",
                 currency="CNY", value_minor=1)  # fmt: skip
    events = [replace(poison(base, kind), event_id=f"p{kind}") for kind in range(9)]
    results, _ = run_core(events)
    letters = [letter for result in results for letter in result.dead_letters]
    assert sorted(letter.reason for letter in letters) == sorted(
        [Reason.AMOUNT_OUT_OF_RANGE] * 3
        + [Reason.QUANTITY_OUT_OF_RANGE, Reason.DISCOUNT_EXCEEDS_PRICE]
        + [Reason.TIMESTAMP_OUT_OF_RANGE]
        + [Reason.INVALID_ID] * 3
    )
    rows, _ = collect(results)
    check_and_insert(rows)


def test_the_maximum_accepted_orders_fill_one_minute_exactly_up_to_the_headroom() -> None:
    """The documented count of maximum-size orders fits one kpi_minute cell; one more
    would not. ClickHouse stores and sums the full cell."""
    assert M * MONEY_HEADROOM <= INT64_MAX < M * (MONEY_HEADROOM + 1)
    assert U * (UINT64_MAX // U) <= UINT64_MAX  # items: 1.8e13 max-unit orders per cell
    # Per purchase the pipeline adds at most M to gmv_minor, discount_minor and
    # refunded_minor, and U to items (checked on random input above).
    client, _ = chdb()
    client.command(f"TRUNCATE TABLE {KPI_MINUTE.name}")
    values: dict[str, Any] = dict.fromkeys(KPI_MINUTE.columns, 0)
    values.update(
        window_start=T0 // 1000, channel="direct", campaign="", device="desktop",
        platform="web", country="", currency="CNY", orders=MONEY_HEADROOM,
        gmv_minor=M * MONEY_HEADROOM, discount_minor=M * MONEY_HEADROOM,
        items=U * MONEY_HEADROOM, refunds=MONEY_HEADROOM, refunded_minor=M * MONEY_HEADROOM,
        version=1,
    )  # fmt: skip
    row = tuple(values[c] for c in KPI_MINUTE.columns)
    check_and_insert({KPI_MINUTE: [row]})
    got = client.query("SELECT gmv_minor, aov_minor FROM v_kpi_minute").result_rows
    assert got == [(M * MONEY_HEADROOM, M)]


def test_the_documented_bounds_and_headroom_are_the_enforced_ones() -> None:
    text = DOCS.read_text()
    section = text[text.index("## 9.") :]
    for number in ("10^13", "1,000,000", "256", "922,337", "2000-01-01"):
        assert number in section, number
    assert f"{INT64_MAX // M:,}" == "922,337"


# -- the one sum validation cannot bound --------------------------------------------------------


def test_cart_value_of_two_accepted_adds_fits_int64() -> None:
    many_cheap = Item("sku", price_minor=1, quantity=U)  # line total 10**6
    one_dear = Item("sku", price_minor=M, quantity=1)  # line total 10**13
    for item in (many_cheap, one_dear):
        event = Event(stream="cart", event_type="add_to_cart", event_id=str(item.price_minor),
                      event_time_ms=T0, sent_time_ms=T0, anonymous_id="a", session_id="s",
                      items=(item,), currency="CNY")  # fmt: skip
        assert isinstance(CODEC.decode(CODEC.encode_avro(event), "cart", T0), Event)
    cart = [
        CartEvent(
            T0 + n,
            f"e{n}",
            "add_to_cart",
            ((i.item_id, i.quantity, i.price_minor),),
            "CNY",
            "direct",
        )
        for n, i in enumerate((many_cheap, one_dear))
    ]
    specs = abandoned_carts(cart, None, T_END, LifecycleRules())
    trigger = to_trigger(specs[-1], "a", None, T0)
    # 1,000,001 units at 10^13 exceed Int64: the value saturates instead of overflowing.
    assert trigger.cart_value_minor == INT64_MAX
    assert [item.quantity for item in trigger.items] == [U + 1]
    assert CODEC.decode_trigger(CODEC.encode_trigger(trigger)) == trigger
    check_and_insert({TRIGGERS: [trigger_row(trigger, 0)]})


def test_units_of_one_cart_item_saturate_at_the_avro_int() -> None:
    adds = [
        CartEvent(T0 + n, f"e{n}", "add_to_cart", (("sku", U, 1),), "CNY", "direct")
        for n in range(2_148)  # 2,148,000,000 units held: beyond 2^31 - 1
    ]
    specs = abandoned_carts(adds, None, T_END, LifecycleRules())
    trigger = to_trigger(specs[-1], "a", None, T0)
    assert [item.quantity for item in trigger.items] == [2**31 - 1]
    assert trigger.cart_value_minor == 2_148 * U
    assert CODEC.decode_trigger(CODEC.encode_trigger(trigger)) == trigger
