"""Validate a decoded record and build the :class:`~schemas.model.Event` (hot path).

Input is the record dict the Avro reader (or the JSON converter) produced, with Avro field
names and types already checked. The checks, in order, each giving one reason code:

1. ``event_id``, ``anonymous_id`` and ``session_id`` are non-empty (MISSING_FIELD); they
   and ``user_id``, ``cart_id``, ``transaction_id`` (when present and non-empty) are valid
   ids (INVALID_ID): not blank once whitespace and invisible characters (U+200B, U+200C,
   U+200D, U+2060, U+FEFF, other format characters, Hangul fillers) are removed, no
   control characters (NUL, tab, newline, ...), at most ``MAX_ID_LENGTH`` characters.
2. ``event_type`` is allowed on the topic's stream (UNKNOWN_EVENT_TYPE), or is
   ``custom`` on the clickstream (schema v3). ``event_name`` is required when it is
   ``custom`` and refused otherwise; it matches ``CUSTOM_EVENT_NAME`` and is not a
   built-in event type (INVALID_CUSTOM_EVENT). The event's type becomes
   ``custom:<event_name>``.
   ``properties`` (any clickstream event, v3) has at most ``MAX_PROPERTIES`` keys, each
   matching ``PROPERTY_KEY``, and values of at most ``MAX_PROPERTY_VALUE_CHARS``
   characters without control characters (INVALID_PROPERTIES). Records of schemas
   without these fields (clickstream v1/v2, cart, orders) have no properties.
3. ``platform`` is web, app or mini_program (INVALID_PLATFORM).
4. ``event_time`` is at most ``max_future_ms`` ahead of the worker clock
   (EVENT_TIME_IN_FUTURE) and at most ``max_past_ms`` behind it unless ``replay`` is set
   (EVENT_TIME_TOO_OLD). Times before ``earliest_ms`` are always too old: 2000-01-01 by
   default (no live shop event is that old, and it catches seconds sent where
   milliseconds belong), 1971-01-01 with replay (a backfill of older history; seconds
   are still caught), or ``FUNNEL_EARLIEST_EVENT_TIME_MS``.
5. ``sent_time`` lies in [``earliest_ms``, worker clock + ``max_future_ms``], also in
   replay (TIMESTAMP_OUT_OF_RANGE): it is stored, and ClickHouse cannot read back values
   such as -2**63.
6. Order ``value``/``tax``/``shipping``/``discount`` are >= 0 (NEGATIVE_PRICE; a refund
   carries a positive value, its type gives the sign) and at most ``MAX_MONEY_MINOR``
   (AMOUNT_OUT_OF_RANGE).
7. At most ``max_items`` items (TOO_MANY_ITEMS); then per item: price and discount >= 0
   (NEGATIVE_PRICE), quantity >= 0 (NEGATIVE_QUANTITY) and within 32 bits (WRONG_TYPE),
   non-empty ``item_id`` (MISSING_FIELD) that is a valid id (INVALID_ID), price and
   discount at most ``MAX_MONEY_MINOR`` (AMOUNT_OUT_OF_RANGE), quantity at most
   ``MAX_ITEM_UNITS`` (QUANTITY_OUT_OF_RANGE), discount (per unit) at most the unit price
   (DISCOUNT_EXCEEDS_PRICE), line total price x quantity at most ``MAX_MONEY_MINOR``
   (AMOUNT_OUT_OF_RANGE). Per event: units over all lines at most ``MAX_ITEM_UNITS``
   (QUANTITY_OUT_OF_RANGE); the sum of line totals, and the order discount plus item
   discounts x quantity (what ``kpi_minute.discount_minor`` adds), at most
   ``MAX_MONEY_MINOR`` (AMOUNT_OUT_OF_RANGE).
8. ``currency`` is an active ISO 4217 code, and present whenever a money field or an
   item is (INVALID_CURRENCY).

The bounds of 5-7 are chosen so that no value the pipeline stores and no sum it keeps
can leave its column type; docs/semantics.md section 9 gives the headroom.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from schemas.custom import (
    CUSTOM_EVENT_NAME,
    MAX_PROPERTIES,
    MAX_PROPERTY_VALUE_CHARS,
    PROPERTY_KEY,
)
from schemas.iso4217 import ACTIVE_CODES
from schemas.model import EVENTS_BY_STREAM, PLATFORMS, STREAM_OF_EVENT, Event, Item, StreamKind
from schemas.properties import CUSTOM_EVENT_PREFIX
from schemas.reasons import Reason, Rejection

if TYPE_CHECKING:
    from funnel.settings import Settings

EARLIEST_EVENT_TIME_MS: Final = 946_684_800_000  # 2000-01-01T00:00:00Z
# With replay, older history loads (a backfill), but epoch seconds sent as milliseconds
# (1.7e9 ms is 1970-01-20) are still caught.
EARLIEST_REPLAY_EVENT_TIME_MS: Final = 31_536_000_000  # 1971-01-01T00:00:00Z
MAX_QUANTITY: Final = 2**31 - 1  # the Avro ``int``; beyond it is WRONG_TYPE
INT64_MAX: Final = 2**63 - 1
# Every money amount of one event: each field, each line total (price x quantity), the
# sum of line totals and the total discount. 10**13 minor units is 100 billion USD/CNY
# (or 10**13 JPY); INT64_MAX // MAX_MONEY_MINOR = 922,337 such amounts fit one Int64 sum.
MAX_MONEY_MINOR: Final = 10**13
# Units of one line and of one event (all lines together).
MAX_ITEM_UNITS: Final = 1_000_000
MAX_ID_LENGTH: Final = 256
# Rendered as nothing: an id made only of these (and whitespace) is blank. Format
# characters (category Cf: U+200B..U+200F, U+2060, U+FEFF, U+00AD, ...) count too.
_INVISIBLE: Final = frozenset(
    "\u034f\u115f\u1160\u3164\uffa0\u2800" + "".join(chr(c) for c in range(0xFE00, 0xFE10))
)
_OPTIONAL_IDS: Final = ("user_id", "cart_id", "transaction_id")
# ASCII byte -> 1 if printable and not the space, else 0: an id without a 0 is valid.
_PLAIN_ID_BYTES: Final = bytes(1 if 0x21 <= b <= 0x7E else 0 for b in range(256))
_PLATFORMS: Final = frozenset(PLATFORMS)
_ORDER_MONEY_FIELDS: Final = ("value", "tax", "shipping", "discount")
CUSTOM_EVENT_TYPE: Final = "custom"  # on the wire; the Event says custom:<event_name>
# C0 and C1 control characters (category Cc) and lone surrogates: never in a property value.
_CONTROL_CHARS: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# build_event passes Event and Item arguments by position; these are the orders it assumes
# (tests/unit/test_schemas_validation.py holds them equal to schemas/model.py).
EVENT_FIELD_ORDER: Final = (
    "stream", "event_type", "event_id", "event_time_ms", "sent_time_ms", "anonymous_id",
    "session_id", "user_id", "platform", "device", "country", "page_url", "referrer",
    "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "experiments",
    "referral_code", "search_term", "items", "cart_id", "transaction_id", "currency",
    "value_minor", "tax_minor", "shipping_minor", "coupon", "discount_minor", "payment_type",
    "refund_reason", "payment_error_code", "properties",
)  # fmt: skip
ITEM_FIELD_ORDER: Final = (
    "item_id", "price_minor", "quantity", "item_name", "item_category", "item_brand",
    "item_variant", "coupon", "discount_minor",
)  # fmt: skip


@dataclass(frozen=True)
class ValidationBounds:
    """Limits applied to every input record; ``replay`` lifts the ``max_past_ms`` bound.

    ``earliest_ms`` is the oldest ``event_time``/``sent_time`` accepted in any mode:
    2000-01-01 by default, 1971-01-01 with replay (``FUNNEL_EARLIEST_EVENT_TIME_MS`` sets
    it explicitly).
    """

    max_payload_bytes: int = 65536
    max_items: int = 200
    max_future_ms: int = 300_000
    max_past_ms: int = 7 * 86_400_000
    replay: bool = False
    earliest_ms: int = -1  # -1: the mode's default (set in __post_init__)

    def __post_init__(self) -> None:
        if self.earliest_ms < 0:
            default = EARLIEST_REPLAY_EVENT_TIME_MS if self.replay else EARLIEST_EVENT_TIME_MS
            object.__setattr__(self, "earliest_ms", default)

    @classmethod
    def from_settings(cls, settings: Settings) -> ValidationBounds:
        earliest = settings.earliest_event_time_ms
        return cls(
            max_payload_bytes=settings.max_payload_bytes,
            max_future_ms=settings.max_future_seconds * 1000,
            max_past_ms=settings.max_past_seconds * 1000,
            replay=settings.replay,
            earliest_ms=-1 if earliest is None else earliest,
        )


def build_event(
    rec: Mapping[str, Any], stream: StreamKind, now_ms: int, bounds: ValidationBounds
) -> Event | Rejection:
    """The validated Event for ``rec``, or the first Rejection that applies."""
    # Each check is an inline test on the common path; the helpers run only to explain
    # a failure, which keeps a valid record to a handful of comparisons.
    event_id: str = rec["event_id"]
    anonymous_id: str = rec["anonymous_id"]
    session_id: str = rec["session_id"]
    if not (event_id and anonymous_id and session_id):
        return _empty_ids(rec)
    user_id, cart_id, transaction_id = rec["user_id"], rec["cart_id"], rec["transaction_id"]
    ids = event_id + anonymous_id + session_id
    if user_id:
        ids += user_id
    if cart_id:
        ids += cart_id
    if transaction_id:
        ids += transaction_id
    # One pass over the bytes of all ids (~1 ns a byte, no Unicode lookups): a control,
    # space or non-ASCII character, or a long id, sends the record to the exact check,
    # which may still accept it.
    if (
        not ids.isascii()
        or 0 in ids.encode().translate(_PLAIN_ID_BYTES)
        or (
            len(ids) > MAX_ID_LENGTH
            and max(
                len(event_id),
                len(anonymous_id),
                len(session_id),
                len(user_id or ""),
                len(cart_id or ""),
                len(transaction_id or ""),
            )
            > MAX_ID_LENGTH
        )
    ):
        bad_id = _bad_ids(rec)
        if bad_id is not None:
            return bad_id
    event_type: str = rec["event_type"]
    # Only clickstream v3 records have these two keys (v1/v2, cart and orders do not).
    event_name: str | None = rec.get("event_name")
    if event_type not in EVENTS_BY_STREAM[stream]:
        if event_type != CUSTOM_EVENT_TYPE or stream != "clickstream":
            return _wrong_event_type(event_type, stream)
        if (
            event_name is None
            or event_name in STREAM_OF_EVENT
            or not CUSTOM_EVENT_NAME.fullmatch(event_name)
        ):
            return _bad_custom_event(event_name)
        event_type = CUSTOM_EVENT_PREFIX + event_name
    elif event_name is not None:
        return _event_name_not_custom(event_type, event_name)
    properties: dict[str, str] | None = rec.get("properties")
    if properties:
        bad_properties = _bad_properties(properties)
        if bad_properties is not None:
            return bad_properties
    else:
        properties = {}
    if rec["platform"] not in _PLATFORMS:
        return _wrong_platform(rec["platform"])
    event_time: int = rec["event_time"]
    if (
        event_time > now_ms + bounds.max_future_ms
        or event_time < bounds.earliest_ms
        or (not bounds.replay and event_time < now_ms - bounds.max_past_ms)
    ):
        return _bad_time(event_time, now_ms, bounds)
    sent_time: int = rec["sent_time"]
    if sent_time < bounds.earliest_ms or sent_time > now_ms + bounds.max_future_ms:
        return _bad_sent_time(sent_time, now_ms, bounds)
    value, tax, shipping, discount = rec["value"], rec["tax"], rec["shipping"], rec["discount"]
    has_money = value is not None or tax is not None or shipping is not None or discount is not None
    if has_money and not (
        0 <= (value or 0) <= MAX_MONEY_MINOR
        and 0 <= (tax or 0) <= MAX_MONEY_MINOR
        and 0 <= (shipping or 0) <= MAX_MONEY_MINOR
        and 0 <= (discount or 0) <= MAX_MONEY_MINOR
    ):
        return _bad_money(rec)
    raw_items = rec["items"]
    items: tuple[Item, ...] = ()
    if raw_items:
        built = _build_items(raw_items, bounds.max_items, discount or 0)
        if isinstance(built, Rejection):
            return built
        items = built
    currency: str | None = rec["currency"]
    if currency not in ACTIVE_CODES and (currency is not None or items or has_money):
        return _bad_currency(currency)
    # Positional, in Event's field order (EVENT_FIELD_ORDER, pinned by a unit test):
    # ~8% more records/s than keywords for this 34-field dataclass.
    return Event(
        stream,
        event_type,
        event_id,
        event_time,
        sent_time,
        anonymous_id,
        session_id,
        user_id,
        rec["platform"],
        rec["device"],
        rec["country"],
        rec["page_url"],
        rec["referrer"],
        rec["utm_source"],
        rec["utm_medium"],
        rec["utm_campaign"],
        rec["utm_content"],
        rec["utm_term"],
        rec["experiments"],
        rec["referral_code"],
        rec["search_term"],
        items,
        cart_id,
        transaction_id,
        currency,
        value,
        tax,
        shipping,
        rec["coupon"],
        discount,
        rec["payment_type"],
        rec["refund_reason"],
        rec["payment_error_code"],
        properties,
    )


def _empty_ids(rec: Mapping[str, Any]) -> Rejection:
    empty = [name for name in ("event_id", "anonymous_id", "session_id") if not rec[name]]
    return Rejection(Reason.MISSING_FIELD, f"{', '.join(empty)} must not be empty")


def id_problem(value: str) -> str | None:
    """Why a non-empty id is invalid (a phrase naming the fix), or None if it is valid."""
    if len(value) > MAX_ID_LENGTH:
        return (
            f"is {len(value)} characters long; ids are at most {MAX_ID_LENGTH} characters "
            "(a UUID is 36): send the id, not a payload"
        )
    for position, char in enumerate(value):
        if unicodedata.category(char) in ("Cc", "Cs"):
            return (
                f"contains the control character U+{ord(char):04X} at position {position}; "
                "ids must not contain NUL, tabs, newlines or other control characters: "
                "fix the producer's id generation"
            )
    if all(c.isspace() or c in _INVISIBLE or unicodedata.category(c) == "Cf" for c in value):
        return (
            "is blank: only whitespace or invisible characters (such as U+200B zero-width "
            "space or U+FEFF); send the real id"
        )
    return None


def _invalid_id(field: str, value: str, problem: str) -> Rejection:
    shown = ascii(value if len(value) <= 40 else value[:40] + "...")
    return Rejection(Reason.INVALID_ID, f"{field} {shown} {problem}")


def _bad_ids(rec: Mapping[str, Any]) -> Rejection | None:
    for name in ("event_id", "anonymous_id", "session_id", *_OPTIONAL_IDS):
        value = rec[name]
        if value:
            problem = id_problem(value)
            if problem is not None:
                return _invalid_id(name, value, problem)
    return None


def _wrong_event_type(event_type: str, stream: StreamKind) -> Rejection:
    home = STREAM_OF_EVENT.get(event_type)
    if home:
        hint = f"it belongs on the {home} stream"
    elif event_type == CUSTOM_EVENT_TYPE:
        hint = "custom events belong on the clickstream stream"
    elif event_type.startswith(CUSTOM_EVENT_PREFIX) and stream == "clickstream":
        hint = (
            f"send event_type 'custom' with event_name "
            f"{_shown(event_type[len(CUSTOM_EVENT_PREFIX) :])} instead"
        )
    else:
        allowed = sorted(EVENTS_BY_STREAM[stream])
        if stream == "clickstream":
            allowed.append("custom (with event_name)")
        hint = f"allowed: {', '.join(allowed)}"
    return Rejection(
        Reason.UNKNOWN_EVENT_TYPE,
        f"event_type {_shown(event_type)} is not a {stream} event; {hint}",
    )


def _shown(value: str) -> str:
    """``value`` quoted for a detail: ASCII-escaped, cut after 40 characters."""
    return ascii(value if len(value) <= 40 else value[:40] + "...")


_NAME_RULE: Final = (
    "a letter, then at most 39 letters, digits or underscores "
    f"(CUSTOM_EVENT_NAME {CUSTOM_EVENT_NAME.pattern})"
)
_KEY_RULE: Final = (
    "a letter, then at most 39 letters, digits or underscores "
    f"(PROPERTY_KEY {PROPERTY_KEY.pattern})"
)


def _bad_custom_event(event_name: str | None) -> Rejection:
    if event_name is None:
        detail = "event_type 'custom' needs event_name (the custom event's name): " + _NAME_RULE
    elif event_name in STREAM_OF_EVENT:
        detail = (
            f"event_name {event_name!r} is a built-in event type; send event_type "
            f"{event_name!r} for it, or give the custom event a name of its own"
        )
    else:
        detail = f"event_name {_shown(event_name)} is not a valid custom event name: " + _NAME_RULE
    return Rejection(Reason.INVALID_CUSTOM_EVENT, detail)


def _event_name_not_custom(event_type: str, event_name: str) -> Rejection:
    return Rejection(
        Reason.INVALID_CUSTOM_EVENT,
        f"event_name {_shown(event_name)} is set on a {event_type!r} event; event_name is only "
        "for event_type 'custom' (leave it null otherwise)",
    )


def _bad_properties(properties: Mapping[str, str]) -> Rejection | None:
    """Why ``properties`` break a bound (the first key that does), or None."""
    if len(properties) > MAX_PROPERTIES:
        return Rejection(
            Reason.INVALID_PROPERTIES,
            f"properties has {len(properties)} keys; at most {MAX_PROPERTIES} are allowed "
            "(MAX_PROPERTIES): send fewer properties",
        )
    for key, value in properties.items():
        if not PROPERTY_KEY.fullmatch(key):
            return Rejection(
                Reason.INVALID_PROPERTIES,
                f"properties key {_shown(key)} is not a valid property key: " + _KEY_RULE,
            )
        if len(value) > MAX_PROPERTY_VALUE_CHARS:
            return Rejection(
                Reason.INVALID_PROPERTIES,
                f"properties.{key} is {len(value)} characters long; values are at most "
                f"{MAX_PROPERTY_VALUE_CHARS} characters (MAX_PROPERTY_VALUE_CHARS): send a "
                "short label, not a payload",
            )
        control = _CONTROL_CHARS.search(value)
        if control is not None:
            return Rejection(
                Reason.INVALID_PROPERTIES,
                f"properties.{key} contains the control character U+{ord(control.group()):04X} "
                f"at position {control.start()}; property values must not contain NUL, tabs, "
                "newlines or other control characters",
            )
    return None


def _wrong_platform(platform: str) -> Rejection:
    return Rejection(
        Reason.INVALID_PLATFORM, f"platform {platform!r} is not one of {', '.join(PLATFORMS)}"
    )


def _bad_time(event_time: int, now_ms: int, bounds: ValidationBounds) -> Rejection:
    if event_time > now_ms + bounds.max_future_ms:
        return Rejection(
            Reason.EVENT_TIME_IN_FUTURE,
            f"event_time {event_time} is {event_time - now_ms} ms ahead of the worker clock "
            f"(limit {bounds.max_future_ms} ms); fix the client clock or the time unit",
        )
    if event_time < bounds.earliest_ms:
        return Rejection(
            Reason.EVENT_TIME_TOO_OLD,
            f"event_time {event_time} is before {_utc_date(bounds.earliest_ms)}; send epoch "
            "milliseconds, not seconds (history older than that: set "
            "FUNNEL_EARLIEST_EVENT_TIME_MS)",
        )
    return Rejection(
        Reason.EVENT_TIME_TOO_OLD,
        f"event_time {event_time} is {now_ms - event_time} ms behind the worker clock "
        f"(limit {bounds.max_past_ms} ms); run with replay enabled to load history",
    )


def _bad_sent_time(sent_time: int, now_ms: int, bounds: ValidationBounds) -> Rejection:
    if sent_time < bounds.earliest_ms:
        return Rejection(
            Reason.TIMESTAMP_OUT_OF_RANGE,
            f"sent_time {sent_time} is before {_utc_date(bounds.earliest_ms)}; send the "
            "tracker's send time in "
            "epoch milliseconds UTC (or leave it out in JSON to use event_time)",
        )
    return Rejection(
        Reason.TIMESTAMP_OUT_OF_RANGE,
        f"sent_time {sent_time} is {sent_time - now_ms} ms ahead of the worker clock "
        f"(limit {bounds.max_future_ms} ms); fix the tracker clock or the time unit",
    )


def _negative_money(rec: Mapping[str, Any]) -> Rejection | None:
    for name in _ORDER_MONEY_FIELDS:
        amount = rec[name]
        if amount is not None and amount < 0:
            return Rejection(
                Reason.NEGATIVE_PRICE, f"{name}={amount} is negative; money fields are >= 0"
            )
    return None


def _too_much(what: str, amount: int) -> Rejection:
    return Rejection(
        Reason.AMOUNT_OUT_OF_RANGE,
        f"{what}={amount} is above the limit of {MAX_MONEY_MINOR} minor units (10^13); "
        "money is integer minor units (1299 for 12.99): fix the unit or the amount",
    )


def _bad_money(rec: Mapping[str, Any]) -> Rejection:
    negative = _negative_money(rec)
    if negative is not None:
        return negative
    name = next(n for n in _ORDER_MONEY_FIELDS if (rec[n] or 0) > MAX_MONEY_MINOR)
    return _too_much(name, rec[name])


def _bad_currency(currency: str | None) -> Rejection:
    if currency is None:
        return Rejection(
            Reason.INVALID_CURRENCY,
            "currency is required when value, tax, shipping, discount or items are present; "
            "send an ISO 4217 code such as CNY or USD",
        )
    return Rejection(
        Reason.INVALID_CURRENCY,
        f"currency {currency!r} is not an active ISO 4217 code; send an upper-case code "
        "such as CNY or USD",
    )


def _build_items(
    raw_items: list[Mapping[str, Any]], max_items: int, order_discount: int
) -> tuple[Item, ...] | Rejection:
    if len(raw_items) > max_items:
        return Rejection(
            Reason.TOO_MANY_ITEMS, f"{len(raw_items)} items exceed the limit of {max_items}"
        )
    items = []
    units = total = item_discount = 0
    for index, raw in enumerate(raw_items):
        price, quantity, discount = raw["price"], raw["quantity"], raw["discount"]
        if price < 0 or discount < 0:
            field, amount = ("price", price) if price < 0 else ("discount", discount)
            return Rejection(
                Reason.NEGATIVE_PRICE,
                f"items[{index}].{field}={amount} is negative; money fields are >= 0",
            )
        if quantity < 0:
            return Rejection(
                Reason.NEGATIVE_QUANTITY, f"items[{index}].quantity={quantity} is negative"
            )
        if quantity > MAX_QUANTITY:
            return Rejection(
                Reason.WRONG_TYPE, f"items[{index}].quantity={quantity} does not fit 32 bits"
            )
        item_id: str = raw["item_id"]
        if not item_id:
            return Rejection(Reason.MISSING_FIELD, f"items[{index}].item_id must not be empty")
        if (
            not item_id.isascii()
            or 0 in item_id.encode().translate(_PLAIN_ID_BYTES)
            or len(item_id) > MAX_ID_LENGTH
        ):
            problem = id_problem(item_id)
            if problem is not None:
                return _invalid_id(f"items[{index}].item_id", item_id, problem)
        line = price * quantity
        if (
            price > MAX_MONEY_MINOR
            or discount > price
            or quantity > MAX_ITEM_UNITS
            or line > MAX_MONEY_MINOR
        ):
            return _bad_item(index, price, quantity, discount)
        units += quantity
        total += line
        item_discount += discount * quantity
        items.append(
            Item(
                item_id,
                price,
                quantity,
                raw["item_name"],
                raw["item_category"],
                raw["item_brand"],
                raw["item_variant"],
                raw["coupon"],
                discount,
            )
        )
    if units > MAX_ITEM_UNITS or total > MAX_MONEY_MINOR:
        return _event_too_much(units, total)
    if order_discount + item_discount > MAX_MONEY_MINOR:
        return Rejection(
            Reason.AMOUNT_OUT_OF_RANGE,
            f"total discount (discount {order_discount} + item discounts x quantity "
            f"{item_discount}) = {order_discount + item_discount} is above the limit of "
            f"{MAX_MONEY_MINOR} minor units (10^13); fix the discounts",
        )
    return tuple(items)


def _bad_item(index: int, price: int, quantity: int, discount: int) -> Rejection:
    """Per field first (price, discount, quantity), then discount <= price, then the line."""
    if price > MAX_MONEY_MINOR:
        return _too_much(f"items[{index}].price", price)
    if discount > MAX_MONEY_MINOR:
        return _too_much(f"items[{index}].discount", discount)
    if quantity > MAX_ITEM_UNITS:
        return Rejection(
            Reason.QUANTITY_OUT_OF_RANGE,
            f"items[{index}].quantity={quantity} is above the limit of {MAX_ITEM_UNITS} "
            "units per line; fix the quantity (a count of units, not an amount of money)",
        )
    if discount > price:
        return Rejection(
            Reason.DISCOUNT_EXCEEDS_PRICE,
            f"items[{index}].discount={discount} is larger than items[{index}].price="
            f"{price}; the item discount is per unit and at most the unit price",
        )
    return Rejection(
        Reason.AMOUNT_OUT_OF_RANGE,
        f"items[{index}] line total price x quantity = {price} x {quantity} = "
        f"{price * quantity} is above the limit of {MAX_MONEY_MINOR} minor units (10^13); "
        "fix the price (minor units) or the quantity",
    )


def _event_too_much(units: int, total: int) -> Rejection:
    if units > MAX_ITEM_UNITS:
        return Rejection(
            Reason.QUANTITY_OUT_OF_RANGE,
            f"items hold {units} units in all, above the limit of {MAX_ITEM_UNITS} units "
            "per event; split the order or fix the quantities",
        )
    return Rejection(
        Reason.AMOUNT_OUT_OF_RANGE,
        f"items total (sum of price x quantity) = {total} is above the limit of "
        f"{MAX_MONEY_MINOR} minor units (10^13); fix the prices (minor units) or quantities",
    )


def _utc_date(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, UTC).date().isoformat()
