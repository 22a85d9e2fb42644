"""The bounds that keep stored values and sums in range (docs/semantics.md section 9).

One case per rule and per boundary: exactly at the bound is accepted, one above (or
below) is rejected with the rule's own reason and a detail naming the field and the fix.
Records go through ``EventCodec.decode`` in both encodings (Avro and JSON), as the
worker reads them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import EventCodec
from schemas.model import Event, Item
from schemas.reasons import Reason, Rejection
from schemas.validation import (
    EARLIEST_EVENT_TIME_MS,
    INT64_MAX,
    MAX_ID_LENGTH,
    MAX_ITEM_UNITS,
    MAX_MONEY_MINOR,
    ValidationBounds,
    id_problem,
)

NOW = 1_790_000_000_000
MAX_FUTURE = ValidationBounds().max_future_ms
CODEC = EventCodec()
REPLAY = EventCodec(bounds=ValidationBounds(replay=True))
PURCHASE = Event(
    stream="orders",
    event_type="purchase",
    event_id="e-1",
    event_time_ms=NOW,
    sent_time_ms=NOW,
    anonymous_id="a-1",
    session_id="s-1",
    user_id="u-1",
    transaction_id="t-1",
    cart_id="c-1",
    items=(Item(item_id="sku-1", price_minor=1000, quantity=1),),
    currency="CNY",
    value_minor=1000,
)
M = MAX_MONEY_MINOR
U = MAX_ITEM_UNITS


def decode_both(event: Event, codec: EventCodec = CODEC) -> list[Event | Rejection]:
    """The decoded Avro and JSON encodings of ``event``."""
    return [
        codec.decode(codec.encode_avro(event), event.stream, NOW),
        codec.decode(codec.encode_json(event), event.stream, NOW),
    ]


def accepted(event: Event, codec: EventCodec = CODEC) -> None:
    for result in decode_both(event, codec):
        assert isinstance(result, Event), result
        assert result == event


def rejected(event: Event, reason: Reason, *details: str, codec: EventCodec = CODEC) -> None:
    for result in decode_both(event, codec):
        assert isinstance(result, Rejection), f"expected {reason}, got an Event"
        assert result.reason is reason, result
        for detail in details:
            assert detail in result.detail, result.detail


def lines(*items: Item, **changes: Any) -> Event:
    return replace(PURCHASE, items=items, **changes)


def setting(field: str, value: object, **changes: Any) -> Event:
    """PURCHASE with ``field`` (a name chosen at run time) set to ``value``."""
    fields: dict[str, Any] = {field: value, **changes}
    return replace(PURCHASE, **fields)


# -- money: per field ---------------------------------------------------------------------


@pytest.mark.parametrize("field", ["value_minor", "tax_minor", "shipping_minor", "discount_minor"])
def test_order_money_field_bound(field: str) -> None:
    name = field.removesuffix("_minor")
    accepted(setting(field, M, items=()))
    rejected(
        setting(field, M + 1, items=()),
        Reason.AMOUNT_OUT_OF_RANGE,
        f"{name}={M + 1} is above the limit of {M} minor units",
        "fix the unit or the amount",
    )


def test_negative_money_still_wins_over_the_upper_bound() -> None:
    rejected(replace(PURCHASE, value_minor=M + 1, tax_minor=-1), Reason.NEGATIVE_PRICE, "tax=-1")


def test_item_price_bound() -> None:
    accepted(lines(Item("x", price_minor=M, quantity=1)))
    rejected(
        lines(Item("x", price_minor=M + 1, quantity=1)),
        Reason.AMOUNT_OUT_OF_RANGE,
        f"items[0].price={M + 1}",
    )


def test_item_discount_bound() -> None:
    accepted(lines(Item("x", price_minor=M, quantity=1, discount_minor=M)))
    rejected(
        lines(Item("x", price_minor=M, quantity=1, discount_minor=M + 1)),
        Reason.AMOUNT_OUT_OF_RANGE,
        f"items[0].discount={M + 1}",
    )


def test_money_above_10_to_the_15_is_rejected_everywhere() -> None:
    rejected(replace(PURCHASE, value_minor=10**15 + 1), Reason.AMOUNT_OUT_OF_RANGE, "value=")
    rejected(lines(Item("x", price_minor=10**15 + 1)), Reason.AMOUNT_OUT_OF_RANGE, "price=")


def test_the_fault_drill_records_are_rejected() -> None:
    # orjson could not encode the state holding 8 x 2**62; kpi_minute could not take it.
    rejected(
        lines(Item("x", price_minor=1, quantity=8, discount_minor=2**62)),
        Reason.AMOUNT_OUT_OF_RANGE,
        f"items[0].discount={2**62}",
    )
    # Two of these in one minute overflow gmv_minor (Int64).
    assert INT64_MAX < 2 * 6 * 10**18
    rejected(replace(PURCHASE, value_minor=6 * 10**18), Reason.AMOUNT_OUT_OF_RANGE, "value=")


# -- money: per line and per event --------------------------------------------------------------


def test_line_total_bound() -> None:
    price = M // U  # 10**7: the largest price that U units may have
    accepted(lines(Item("x", price_minor=price, quantity=U)))
    rejected(
        lines(Item("x", price_minor=price + 1, quantity=U)),
        Reason.AMOUNT_OUT_OF_RANGE,
        f"items[0] line total price x quantity = {price + 1} x {U} = {(price + 1) * U}",
    )


def test_items_total_bound() -> None:
    half = M // 2
    accepted(lines(Item("x", price_minor=half), Item("y", price_minor=M - half)))
    rejected(
        lines(Item("x", price_minor=half), Item("y", price_minor=M - half + 1)),
        Reason.AMOUNT_OUT_OF_RANGE,
        f"items total (sum of price x quantity) = {M + 1}",
    )


def test_total_discount_bound() -> None:
    # What kpi_minute.discount_minor adds for the order: discount + item discounts x quantity.
    item = Item("x", price_minor=1000, quantity=10, discount_minor=100)
    accepted(lines(item, discount_minor=M - 1000))
    rejected(
        lines(item, discount_minor=M - 999),
        Reason.AMOUNT_OUT_OF_RANGE,
        f"total discount (discount {M - 999} + item discounts x quantity 1000) = {M + 1}",
    )


# -- quantities ---------------------------------------------------------------------------------


def test_line_quantity_bound() -> None:
    accepted(lines(Item("x", price_minor=1, quantity=U)))
    rejected(
        lines(Item("x", price_minor=1, quantity=U + 1)),
        Reason.QUANTITY_OUT_OF_RANGE,
        f"items[0].quantity={U + 1} is above the limit of {U} units per line",
    )


def test_event_quantity_bound() -> None:
    half = U // 2
    accepted(lines(Item("x", 1, quantity=half), Item("y", 1, quantity=half)))
    rejected(
        lines(Item("x", 1, quantity=half), Item("y", 1, quantity=half + 1)),
        Reason.QUANTITY_OUT_OF_RANGE,
        f"items hold {U + 1} units in all",
    )


def test_a_quantity_beyond_32_bits_stays_wrong_type() -> None:
    raw = CODEC.encode_json(lines(Item("x", price_minor=1)))
    too_big = raw.replace(b'"quantity":1', b'"quantity":4294967296')
    result = CODEC.decode(too_big, "orders", NOW)
    assert isinstance(result, Rejection)
    assert result.reason is Reason.WRONG_TYPE


# -- discount against price ---------------------------------------------------------------------


def test_item_discount_at_most_the_unit_price() -> None:
    accepted(lines(Item("x", price_minor=999, quantity=3, discount_minor=999)))
    rejected(
        lines(Item("x", price_minor=999, quantity=3, discount_minor=1000)),
        Reason.DISCOUNT_EXCEEDS_PRICE,
        "items[0].discount=1000 is larger than items[0].price=999",
        "per unit",
    )


def test_a_free_item_cannot_carry_a_discount() -> None:
    accepted(lines(Item("x", price_minor=0, quantity=1)))
    rejected(lines(Item("x", price_minor=0, discount_minor=1)), Reason.DISCOUNT_EXCEEDS_PRICE)


def test_order_discount_may_exceed_the_order_value() -> None:
    # A 100% coupon: value 0 after a discount; only item discounts are tied to a price.
    accepted(replace(PURCHASE, value_minor=0, discount_minor=5000))


# -- timestamps ---------------------------------------------------------------------------------


def test_sent_time_lower_bound() -> None:
    accepted(replace(PURCHASE, sent_time_ms=EARLIEST_EVENT_TIME_MS))
    rejected(
        replace(PURCHASE, sent_time_ms=EARLIEST_EVENT_TIME_MS - 1),
        Reason.TIMESTAMP_OUT_OF_RANGE,
        f"sent_time {EARLIEST_EVENT_TIME_MS - 1} is before 2000-01-01",
        "epoch milliseconds",
    )


def test_sent_time_upper_bound() -> None:
    accepted(replace(PURCHASE, sent_time_ms=NOW + MAX_FUTURE))
    rejected(
        replace(PURCHASE, sent_time_ms=NOW + MAX_FUTURE + 1),
        Reason.TIMESTAMP_OUT_OF_RANGE,
        f"is {MAX_FUTURE + 1} ms ahead of the worker clock",
        "fix the tracker clock",
    )


@pytest.mark.parametrize("sent_time", [-(2**63), -1, 0, 1_790_000_000, INT64_MAX])
def test_impossible_sent_times_are_rejected_also_in_replay(sent_time: int) -> None:
    for codec in (CODEC, REPLAY):
        rejected(
            replace(PURCHASE, sent_time_ms=sent_time), Reason.TIMESTAMP_OUT_OF_RANGE, codec=codec
        )


def test_replay_still_lifts_the_past_bound_for_event_time_only() -> None:
    old = NOW - 400 * 86_400_000
    accepted(replace(PURCHASE, event_time_ms=old, sent_time_ms=old), REPLAY)
    rejected(replace(PURCHASE, event_time_ms=old, sent_time_ms=old), Reason.EVENT_TIME_TOO_OLD)


def test_event_time_keeps_its_own_reasons() -> None:
    rejected(replace(PURCHASE, event_time_ms=-(2**63)), Reason.EVENT_TIME_TOO_OLD, codec=REPLAY)
    rejected(replace(PURCHASE, event_time_ms=INT64_MAX), Reason.EVENT_TIME_IN_FUTURE)


def test_iso_sent_time_in_json_is_checked_too() -> None:
    raw = CODEC.encode_json(PURCHASE).replace(
        f'"sent_time":{NOW}'.encode(), b'"sent_time":"0001-01-01T00:00:00Z"'
    )
    result = CODEC.decode(raw, "orders", NOW)
    assert isinstance(result, Rejection)
    assert result.reason is Reason.TIMESTAMP_OUT_OF_RANGE


# -- ids ----------------------------------------------------------------------------------------

REQUIRED_IDS = ("event_id", "anonymous_id", "session_id")
OPTIONAL_IDS = ("user_id", "cart_id", "transaction_id")
BLANK = [
    " ",
    "   ",
    "\u200b",
    "\u200c",
    "\u200d",
    "\ufeff",
    "\u2060",
    " \u200b\u3000",
    "\u00ad",
    "\u3164",
    "\u2800",
]
CONTROL = ["\x00", "a\x00b", "id\n", "\tid", "a\x7f", "a\x85", "\x1b[31mred"]


@pytest.mark.parametrize("field", REQUIRED_IDS + OPTIONAL_IDS)
@pytest.mark.parametrize("value", BLANK, ids=[ascii(v) for v in BLANK])
def test_blank_ids_are_rejected(field: str, value: str) -> None:
    rejected(setting(field, value), Reason.INVALID_ID, f"{field} ", "is blank")


@pytest.mark.parametrize("field", REQUIRED_IDS + OPTIONAL_IDS)
@pytest.mark.parametrize("value", CONTROL, ids=[ascii(v) for v in CONTROL])
def test_ids_with_control_characters_are_rejected(field: str, value: str) -> None:
    rejected(
        setting(field, value),
        Reason.INVALID_ID,
        f"{field} ",
        "control character U+",
        "fix the producer",
    )


@pytest.mark.parametrize("field", REQUIRED_IDS + OPTIONAL_IDS)
def test_id_length_bound(field: str) -> None:
    accepted(setting(field, "x" * MAX_ID_LENGTH))
    rejected(
        setting(field, "x" * (MAX_ID_LENGTH + 1)),
        Reason.INVALID_ID,
        f"is {MAX_ID_LENGTH + 1} characters long; ids are at most {MAX_ID_LENGTH}",
    )


def test_item_id_rules() -> None:
    accepted(lines(Item("x" * MAX_ID_LENGTH, price_minor=1)))
    rejected(lines(Item("\u200b", price_minor=1)), Reason.INVALID_ID, "items[0].item_id")
    rejected(lines(Item("a\x00", price_minor=1)), Reason.INVALID_ID, "items[0].item_id")
    rejected(lines(Item("x" * (MAX_ID_LENGTH + 1), 1)), Reason.INVALID_ID, "items[0].item_id")
    rejected(lines(Item("", price_minor=1)), Reason.MISSING_FIELD, "items[0].item_id")


def test_empty_ids_keep_their_reasons() -> None:
    # Required: empty is a missing field. Optional: empty means absent (as null does).
    rejected(replace(PURCHASE, session_id=""), Reason.MISSING_FIELD, "session_id")
    for field in OPTIONAL_IDS:
        accepted(setting(field, ""))
        accepted(setting(field, None))


@pytest.mark.parametrize(
    "value", ["用户-42", "café", "a\u200bb", "  padded  ", "a b", "x", "~!@#$%^&*()"]
)
def test_ids_with_something_visible_are_accepted(value: str) -> None:
    for field in REQUIRED_IDS + OPTIONAL_IDS:
        accepted(setting(field, value))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(REQUIRED_IDS + OPTIONAL_IDS), st.text(min_size=1, max_size=300))
def test_the_fast_path_agrees_with_the_exact_id_rule(field: str, value: str) -> None:
    # build_event screens all ids with one bytes pass and asks id_problem only when in
    # doubt: it must accept exactly the ids id_problem accepts.
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return  # lone surrogates cannot be encoded (Avro and JSON refuse them earlier)
    result = CODEC.decode(CODEC.encode_avro(setting(field, value)), "orders", NOW)
    if id_problem(value) is None:
        assert isinstance(result, Event)
    else:
        assert isinstance(result, Rejection)
        assert result.reason is Reason.INVALID_ID


def test_the_first_failing_id_is_named() -> None:
    both = replace(PURCHASE, anonymous_id="\u200b", user_id="\x00")
    rejected(both, Reason.INVALID_ID, "anonymous_id")


def test_invisible_ids_are_shown_escaped_in_the_detail() -> None:
    result = CODEC.decode(CODEC.encode_avro(replace(PURCHASE, event_id="\u200b")), "orders", NOW)
    assert isinstance(result, Rejection)
    assert "event_id '\\u200b' is blank" in result.detail


def test_replay_backfills_history_before_2000_but_still_catches_seconds() -> None:
    """Issue #12 bug 6: shops backfill older history with FUNNEL_REPLAY=true."""
    old = 820_454_400_000  # 1996-01-01
    backfill = replace(PURCHASE, event_time_ms=old, sent_time_ms=old)
    rejected(
        backfill, Reason.EVENT_TIME_TOO_OLD, "before 2000-01-01", "FUNNEL_EARLIEST_EVENT_TIME_MS"
    )
    accepted(backfill, codec=REPLAY)
    seconds = 1_790_000_000  # epoch seconds sent as milliseconds: 1970-01-21
    rejected(
        replace(PURCHASE, event_time_ms=seconds),
        Reason.EVENT_TIME_TOO_OLD,
        "before 1971-01-01",
        "not seconds",
        codec=REPLAY,
    )


def test_the_earliest_time_is_a_setting() -> None:
    from funnel.settings import load_settings

    def bounds(**overrides: Any) -> ValidationBounds:
        return ValidationBounds.from_settings(load_settings(**overrides))

    assert bounds().earliest_ms == EARLIEST_EVENT_TIME_MS
    assert bounds(replay=True).earliest_ms == 31_536_000_000
    custom = bounds(earliest_event_time_ms=631_152_000_000)  # 1990-01-01, live mode
    assert custom.earliest_ms == 631_152_000_000
    codec = EventCodec(bounds=custom)
    nineties = replace(PURCHASE, event_time_ms=820_454_400_000, sent_time_ms=NOW)
    rejected(nineties, Reason.EVENT_TIME_TOO_OLD, "ms behind the worker clock", codec=codec)
    before = replace(PURCHASE, sent_time_ms=631_152_000_000 - 1)
    rejected(before, Reason.TIMESTAMP_OUT_OF_RANGE, "before 1990-01-01", codec=codec)
