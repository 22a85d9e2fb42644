"""Dead letters, triggers and currencies: what the worker writes besides aggregates."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas.codec import EventCodec
from schemas.deadletter import DeadLetter
from schemas.errors import DecodeError, EncodeError
from schemas.iso4217 import ACTIVE_CODES, is_active_currency, minor_unit_exponent, to_major
from schemas.reasons import Reason, Rejection
from schemas.triggers import TRIGGER_TYPES, Trigger, trigger_id

CODEC = EventCodec()


def test_dead_letter_from_rejection_round_trips() -> None:
    raw = bytes(range(256)) * 300  # larger than the payload limit: kept whole
    dead = DeadLetter.from_rejection(
        Rejection(Reason.PAYLOAD_TOO_LARGE, "record is 76800 bytes"),
        raw=raw,
        source_topic="shop.orders",
        source_partition=0,
        source_offset=0,
        key=None,
        received_at_ms=1,
    )
    assert dead.reason == "payload_too_large"
    assert CODEC.decode_dead_letter(CODEC.encode_dead_letter(dead)) == dead


def test_trigger_round_trip_and_type_check() -> None:
    trig = Trigger(
        trigger_id=trigger_id("segment_changed", "anon-1", "active", 1000),
        trigger_type="segment_changed",
        anonymous_id="anon-1",
        occurred_at_ms=1000,
        emitted_at_ms=2000,
        segment="active",
        previous_segment="new",
    )
    assert CODEC.decode_trigger(CODEC.encode_trigger(trig)) == trig
    with pytest.raises(EncodeError, match="trigger_type 'birthday'"):
        CODEC.encode_trigger(Trigger("t", "birthday", "a", 1, 2))


def test_trigger_ids_are_deterministic_and_distinct() -> None:
    first = trigger_id("cart_abandoned", "anon-1", "cart-9", 1_700_000_000_000)
    assert first == trigger_id("cart_abandoned", "anon-1", "cart-9", 1_700_000_000_000)
    # Pinned: consumers de-duplicate on this id across releases.
    assert first == "da8e45e7-4316-5d22-8c76-e88a621a67da"
    others = {
        trigger_id("cart_abandoned", "anon-1", "cart-9", 1_700_000_000_001),
        trigger_id("cart_abandoned", "anon-2", "cart-9", 1_700_000_000_000),
        trigger_id("first_purchase", "anon-1", "cart-9", 1_700_000_000_000),
        trigger_id("cart_abandoned", "anon-1cart-9", 1_700_000_000_000),
    }
    assert first not in others
    assert len(others) == 4
    assert set(TRIGGER_TYPES) >= {"cart_abandoned", "segment_changed", "user_churned"}


def test_reading_foreign_bytes_as_our_records_fails_clearly() -> None:
    dead_letter = CODEC.encode_dead_letter(DeadLetter(b"x", "undecodable", "", "t", 0, 0, None, 0))
    with pytest.raises(DecodeError, match="not a Confluent-framed trigger record"):
        CODEC.decode_trigger(dead_letter)
    with pytest.raises(DecodeError, match="trailing bytes"):
        CODEC.decode_dead_letter(dead_letter + b"\x00")
    with pytest.raises(DecodeError, match="does not match schema id 901"):
        CODEC.decode_dead_letter(dead_letter[:7])


def test_currency_table() -> None:
    assert {"CNY", "USD", "EUR", "JPY", "HKD", "TWD", "KRW", "GBP", "XCG", "ZWG"} <= ACTIVE_CODES
    assert not {"HRK", "ANG", "ZWL", "XAU", "XXX", "XTS", "cny", "RMB"} & ACTIVE_CODES
    assert all(len(code) == 3 and code.isupper() for code in ACTIVE_CODES)
    assert (minor_unit_exponent("CNY"), minor_unit_exponent("JPY"), minor_unit_exponent("KWD")) == (
        2,
        0,
        3,
    )
    assert to_major(1299, "USD") == Decimal("12.99")
    assert to_major(1299, "JPY") == Decimal(1299)
    assert is_active_currency("CNY") and not is_active_currency("usd")
