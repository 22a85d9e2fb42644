"""Inputs for tests/native/test_validation.py: records as the readers produce them.

``record()`` builds a valid record of a random stream (with the bounds and the worker
clock it is valid for); ``EDGES`` maps each field to a strategy of values at and beyond
its bounds, which the test puts into a valid record one field at a time. The conversion
of build_event's result to the JSON the probe answers with is here too.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import orjson
from hypothesis import strategies as st

from schemas.custom import MAX_PROPERTIES, MAX_PROPERTY_VALUE_CHARS
from schemas.iso4217 import ACTIVE_CODES
from schemas.model import EVENTS_BY_STREAM, PLATFORMS, STREAM_OF_EVENT, Event
from schemas.reasons import Rejection
from schemas.validation import (
    EARLIEST_EVENT_TIME_MS,
    EARLIEST_REPLAY_EVENT_TIME_MS,
    MAX_ID_LENGTH,
    MAX_ITEM_UNITS,
    MAX_MONEY_MINOR,
    MAX_QUANTITY,
    ValidationBounds,
)

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
NOW_MS: Final = 1_793_491_200_000  # the simulator's default start, 2026-11-01
DAY_MS: Final = 86_400_000

# -- results as JSON -------------------------------------------------------------------------


def event_json(event: Event) -> dict[str, Any]:
    """Every Event field in the dataclass's order; items as objects in Item's order."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(event):
        value = getattr(event, field.name)
        if field.name == "items":
            value = [
                {f.name: getattr(item, f.name) for f in dataclasses.fields(item)} for item in value
            ]
        out[field.name] = value
    return out


def result_json(result: Event | Rejection) -> bytes:
    """build_event's result as the probe gives it."""
    if isinstance(result, Rejection):
        return orjson.dumps({"rejection": {"reason": result.reason.value, "detail": result.detail}})
    return orjson.dumps({"event": event_json(result)})


def probe_args(rec: Any, stream: str, now_ms: int, bounds: ValidationBounds) -> bytes:
    return orjson.dumps(
        {"record": rec, "stream": stream, "now_ms": now_ms, "bounds": dataclasses.asdict(bounds)}
    )


# -- strings ----------------------------------------------------------------------------------

# Whitespace by Python's rule (U+001C..U+001F are Python whitespace, not Rust's), format
# characters (Cf), the hand-listed invisible ones, controls, and look-alikes that are none
# of these (U+180E, U+200B's neighbours, U+3164 Hangul filler is listed).
SPECIAL_CHARS: Final = (
    " \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000"
    "\u200b\u200c\u200d\u200e\u200f\u2060\u2064\ufeff\u00ad\u061c\u180e\U000e0001\U000e007f"
    "\u034f\u115f\u1160\u3164\uffa0\u2800\ufe00\ufe0f\ufe10\u2061\u17b4"
    "\x00\x01\x7f\x80\x9f\u0378\U0010ffff\ue000"
    "'\"\\é€😀字"
)
special = st.sampled_from(SPECIAL_CHARS)
any_char = st.characters(codec="utf-8")  # no surrogates: no reader produces them
mixed_text = st.text(st.one_of(special, any_char, st.sampled_from("aZ0_-:.")), max_size=12)

plain_id = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
uuid_like = st.uuids().map(str)

odd_id = st.one_of(
    st.just(""),
    st.text(special, min_size=1, max_size=6),  # blank, invisible, control
    mixed_text.filter(bool),
    st.text(min_size=1, max_size=8),  # non-ASCII, anything
    st.builds(
        lambda n, c: c * n,
        st.integers(MAX_ID_LENGTH - 2, MAX_ID_LENGTH + 3),
        st.sampled_from("xé\u200b "),
    ),
    st.builds(lambda a, c, b: a + c + b, plain_id, special, plain_id),
)
any_id = st.one_of(uuid_like, plain_id, odd_id)

NAME_CHARS: Final = "abcXYZ019_"
custom_name = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from("aZq"),
    st.text(st.sampled_from(NAME_CHARS), max_size=39),
)
odd_name = st.one_of(
    st.just(""),
    st.sampled_from(sorted(STREAM_OF_EVENT)),
    st.builds(lambda n: "a" * n, st.integers(39, 42)),
    st.sampled_from(["1st", "_x", "Size Guide", "a-b", "é", "aé", "a\n", "custom", "Custom"]),
    mixed_text,
)
property_value = st.one_of(
    st.text(max_size=10),
    mixed_text,
    st.builds(lambda n, c: c * n, st.integers(98, 102), st.sampled_from("x字\x00")),
)
properties = st.dictionaries(
    st.one_of(custom_name, odd_name), property_value, max_size=MAX_PROPERTIES + 2
)
valid_properties = st.dictionaries(
    # codec: with a min_codepoint alone, hypothesis also draws lone surrogates, which no
    # reader produces and orjson cannot encode (it failed the probe's JSON, not the core).
    custom_name,
    st.text(st.characters(min_codepoint=0xA0, codec="utf-8"), max_size=8),
    max_size=4,
)

# Fields that are only copied into the Event: a pool of values (cheap to draw).
TEXT_POOL: Final = (
    None,
    "",
    "x",
    "https://shop.example.com/p?q=1",
    "é字😀",
    "a\x00\n\u200b",
    "it's",
)
optional_text = st.sampled_from(TEXT_POOL)
text_map = st.sampled_from([{}, {"checkout_button": "B"}, {"b": "1", "a": "", "é": "\u200b"}])

# -- numbers ----------------------------------------------------------------------------------


def near(*points: int, spread: int = 2) -> st.SearchStrategy[int]:
    """Integers at and next to ``points`` (kept inside int64), or anywhere in int64."""
    edges = sorted(
        {min(max(p + d, INT64_MIN), INT64_MAX) for p in points for d in range(-spread, spread + 1)}
    )
    return st.one_of(st.sampled_from(edges), st.integers(INT64_MIN, INT64_MAX))


money_edge = st.one_of(st.none(), near(0, MAX_MONEY_MINOR, INT64_MIN, INT64_MAX, 2**62))
valid_money = st.one_of(st.none(), st.integers(0, MAX_MONEY_MINOR // 1000))
currency_edge = st.one_of(
    st.none(),
    st.sampled_from(sorted(ACTIVE_CODES)),
    st.sampled_from(
        ["RMB", "usd", "EURO", "", "XAU", "XXX", "it's", 'a"b', "a'\"b", "€", "\u200b", "\x00"]
    ),
    st.text(max_size=5),
)


@st.composite
def item(draw: Any, valid: bool = True) -> dict[str, Any]:
    price = draw(st.integers(0, 100_000))
    shift = draw(st.integers(-1, len(TEXT_POOL) - 1))
    copied = [None if shift < 0 else TEXT_POOL[(shift + i) % len(TEXT_POOL)] for i in range(5)]
    return {
        "item_id": draw(st.one_of(uuid_like, plain_id) if valid else any_id),
        "item_name": copied[0],
        "item_category": copied[1],
        "item_brand": copied[2],
        "item_variant": copied[3],
        "price": price,
        "quantity": draw(st.integers(0, 50)),
        "coupon": copied[4],
        "discount": draw(st.integers(0, price)),
    }


ITEM_EDGES: Final[dict[str, st.SearchStrategy[Any]]] = {
    "item_id": any_id,
    "price": near(0, MAX_MONEY_MINOR, MAX_MONEY_MINOR // 3, INT64_MIN, INT64_MAX, 10**7),
    "quantity": near(0, 1, MAX_ITEM_UNITS, MAX_QUANTITY, INT64_MIN, INT64_MAX, 3),
    "discount": near(0, MAX_MONEY_MINOR, INT64_MIN, INT64_MAX, 2**62, 10**7),
}


@st.composite
def odd_item(draw: Any) -> dict[str, Any]:
    """An item with one or more fields at their edges."""
    built: dict[str, Any] = draw(item())
    for name in draw(st.lists(st.sampled_from(sorted(ITEM_EDGES)), min_size=1, max_size=3)):
        built[name] = draw(ITEM_EDGES[name])
    return built


_PLAIN_ITEM: Final = {
    "item_id": "SKU-1",
    "item_name": None,
    "item_category": None,
    "item_brand": None,
    "item_variant": None,
    "price": 100,
    "quantity": 1,
    "coupon": None,
    "discount": 0,
}

items_edge = st.one_of(
    st.lists(odd_item(), max_size=4),
    st.lists(st.one_of(item(), odd_item()), max_size=8),
    # Many lines, each fine, whose units, totals or discounts add up beyond the bounds.
    st.builds(
        lambda n, price, quantity, discount: (
            [{**_PLAIN_ITEM, "price": price, "quantity": quantity, "discount": discount}] * n
        ),
        st.integers(1, 12),
        st.sampled_from([0, 1, 10**6, 10**7, MAX_MONEY_MINOR // 10, MAX_MONEY_MINOR]),
        st.sampled_from([0, 1, 100_000, MAX_ITEM_UNITS // 10, MAX_ITEM_UNITS]),
        st.sampled_from([0, 1, 10**6, MAX_MONEY_MINOR // 10]),
    ),
    st.builds(lambda n: [_PLAIN_ITEM] * n, st.integers(198, 203)),
)

# -- records ----------------------------------------------------------------------------------


@st.composite
def bounds(draw: Any) -> ValidationBounds:
    replay = draw(st.booleans())
    return ValidationBounds(
        max_payload_bytes=65536,
        max_items=draw(st.sampled_from([200, 200, 3, 0, -1, 10**12])),
        max_future_ms=draw(st.sampled_from([300_000, 0, 1, 86_400_000, 2**62])),
        max_past_ms=draw(st.sampled_from([7 * DAY_MS, 0, 1, 400 * DAY_MS, 2**62])),
        replay=replay,
        earliest_ms=draw(
            st.sampled_from([-1, -1, 0, 1, EARLIEST_EVENT_TIME_MS, NOW_MS, NOW_MS + DAY_MS])
        ),
    )


@st.composite
def record(draw: Any) -> tuple[dict[str, Any], str, int, ValidationBounds]:
    """A valid record, with the stream, worker clock and bounds it is valid for (the
    bounds may be tight: then the record's times sit at the limits)."""
    stream = draw(st.sampled_from(["clickstream", "cart", "orders"]))
    now_ms = NOW_MS + draw(st.integers(-400 * DAY_MS, 400 * DAY_MS))
    b = draw(bounds())
    low = max(b.earliest_ms, INT64_MIN if b.replay else now_ms - b.max_past_ms)
    high = min(now_ms + b.max_future_ms, INT64_MAX)
    if low > high:  # these bounds accept no time at this clock: loosen them
        b = ValidationBounds(replay=b.replay, max_items=b.max_items)
        low = max(b.earliest_ms, INT64_MIN if b.replay else now_ms - b.max_past_ms)
        high = now_ms + b.max_future_ms
    times = st.one_of(
        st.sampled_from([low, high, max(low, min(high, now_ms))]), st.integers(low, high)
    )
    sent_low = b.earliest_ms
    sent_times = st.one_of(st.sampled_from([sent_low, high]), st.integers(sent_low, high))
    items = draw(st.lists(item(), max_size=3)) if b.max_items >= 3 else []
    money = [draw(valid_money) for _ in range(4)]
    has_commerce = bool(items) or any(m is not None for m in money)
    currency = (
        draw(st.sampled_from(sorted(ACTIVE_CODES)))
        if has_commerce
        else draw(st.one_of(st.none(), st.sampled_from(sorted(ACTIVE_CODES))))
    )
    event_type = draw(st.sampled_from(sorted(EVENTS_BY_STREAM[stream])))
    v3 = stream == "clickstream" and draw(st.booleans())
    event_name = None
    if v3 and draw(st.booleans()):
        event_type = "custom"
        event_name = draw(custom_name.filter(lambda n: n not in STREAM_OF_EVENT))
    # The fields only copied: all null, or a rotation of the pool.
    shift = draw(st.integers(-1, len(TEXT_POOL) - 1))
    copied = [None if shift < 0 else TEXT_POOL[(shift + i) % len(TEXT_POOL)] for i in range(13)]
    rec: dict[str, Any] = {
        "event_id": draw(st.one_of(uuid_like, plain_id)),
        "event_type": event_type,
        "event_time": draw(times),
        "sent_time": draw(sent_times),
        "anonymous_id": draw(st.one_of(uuid_like, plain_id)),
        "session_id": draw(st.one_of(uuid_like, plain_id)),
        "user_id": draw(st.one_of(st.none(), st.just(""), uuid_like)),
        "platform": draw(st.sampled_from(PLATFORMS)),
        "device": draw(st.sampled_from(["desktop", "mobile", "tablet", ""])),
        "country": draw(st.sampled_from(["", "CN", "US"])),
        "page_url": copied[0],
        "referrer": copied[1],
        "utm_source": copied[2],
        "utm_medium": copied[3],
        "utm_campaign": copied[4],
        "utm_content": copied[5],
        "utm_term": copied[6],
        "experiments": draw(text_map),
        "referral_code": copied[7],
        "search_term": copied[8],
        "items": items,
        "cart_id": draw(st.one_of(st.none(), st.just(""), plain_id)),
        "transaction_id": draw(st.one_of(st.none(), st.just(""), uuid_like)),
        "currency": currency,
        "value": money[0],
        "tax": money[1],
        "shipping": money[2],
        "coupon": copied[9],
        "discount": money[3],
        "payment_type": copied[10],
        "refund_reason": copied[11],
        "payment_error_code": copied[12],
    }
    if stream == "clickstream" and draw(st.booleans()):
        rec["app_version"] = draw(optional_text)  # v2 on
    if v3:
        rec["app_version"] = draw(optional_text)
        rec["event_name"] = event_name
        rec["properties"] = draw(valid_properties)
    return rec, stream, now_ms, b


def _times(now_ms: int, b: ValidationBounds) -> st.SearchStrategy[int]:
    return near(
        now_ms,
        now_ms + b.max_future_ms,
        now_ms - b.max_past_ms,
        b.earliest_ms,
        EARLIEST_EVENT_TIME_MS,
        EARLIEST_REPLAY_EVENT_TIME_MS,
        (now_ms + b.max_future_ms) // 1000,
        INT64_MIN,
        INT64_MAX,
        spread=1,
    )


ALL_EVENT_TYPES: Final = sorted(STREAM_OF_EVENT)
event_type_edge = st.one_of(
    st.sampled_from(ALL_EVENT_TYPES),
    st.sampled_from(["custom", "custom:", "custom:Size Guide", "custom:add_to_cart", "Custom", ""]),
    st.builds(lambda name: "custom:" + name, st.one_of(custom_name, odd_name)),
    st.sampled_from(["add_to_basket", "pageview", "page_view ", "PAGE_VIEW", "é", "it's"]),
    mixed_text,
    st.builds(lambda n: "x" * n, st.integers(39, 45)),
)

# Field -> strategy of edge values (a function of the clock and bounds for the times).
EDGES: Final[dict[str, Any]] = {
    "event_id": any_id,
    "anonymous_id": any_id,
    "session_id": any_id,
    "user_id": st.one_of(st.none(), any_id),
    "cart_id": st.one_of(st.none(), any_id),
    "transaction_id": st.one_of(st.none(), any_id),
    "item_id": any_id,  # of the first item (one is added when there is none)
    "event_type": event_type_edge,
    "event_name": st.one_of(st.none(), custom_name, odd_name),
    "properties": properties,
    "platform": st.one_of(
        st.sampled_from(["ios", "Web", "web ", "", "it's", 'say "hi"', "a'\"b", "mini-program"]),
        st.text(max_size=8),
        mixed_text,
    ),
    "event_time": _times,
    "sent_time": _times,
    "value": money_edge,
    "tax": money_edge,
    "shipping": money_edge,
    "discount": money_edge,
    "currency": currency_edge,
    "items": items_edge,
}


# -- every field at each of its edges, enumerated ----------------------------------------------

ID_EDGES: Final = (
    "",
    " ",
    "   ",
    "\t",
    "\x00",
    "a\x00",
    "\x1c",
    "\x1f",
    "\x7f",
    "\x85",
    "\xa0",
    "\u200b",
    "\ufeff\u200d",
    "\u3164",
    "\u115f\u1160",
    "\u2800",
    "\ufe00",
    "\ufe0f",
    "\ufe10",
    "\u180e",
    "\u00ad",
    "\U000e0001",
    "\u2028",
    "\u1680",
    "\u3000",
    " \u200b\u2060 ",
    "a b",
    " a",
    "a\u200bb",
    "é",
    "字",
    "😀",
    "it's",
    'a"b',
    "a'\"b",
    "\\",
    "x" * 256,
    "x" * 257,
    "é" * 256,
    "é" * 257,
    "\u200b" * 256,
    "\u200b" * 300,
    "😀" * 41,
    "x" * 40,
    "x" * 41,
)
NAME_EDGES: Final = (
    None,
    "",
    "a",
    "A" * 40,
    "a" * 41,
    "Z_9",
    "page_view",
    "purchase",
    "view_cart",
    "1st",
    "_x",
    "a-b",
    "Size Guide",
    "é",
    "a\n",
    "custom",
    "Custom",
    "it's",
    "x" * 50,
)
PROPERTIES_EDGES: Final[tuple[dict[str, str], ...]] = (
    {},
    {"a": ""},
    {f"p{n}": "v" for n in range(MAX_PROPERTIES)},
    {f"p{n}": "v" for n in range(MAX_PROPERTIES + 1)},
    {"1st": "x"},
    {"": "x"},
    {"a" * 40: "x"},
    {"a" * 41: "x"},
    {"k": "x" * MAX_PROPERTY_VALUE_CHARS},
    {"k": "x" * (MAX_PROPERTY_VALUE_CHARS + 1)},
    {"k": "字" * (MAX_PROPERTY_VALUE_CHARS + 1)},
    {"k": "a\x00"},
    {"k": "\x9f"},
    {"k": "\xa0\u200b"},
    {"k": "é\x7f"},
    {"ok": "v", "bad key": "v"},
    {"ok": "gold\n", "Bad": "v"},
    {"é": "v"},
    {"membership-tier": "gold"},
    {"k": "😀\x1b"},
)
PLATFORM_EDGES: Final = (
    *PLATFORMS,
    "",
    "ios",
    "Web",
    "web ",
    "it's",
    'say "hi"',
    "a'\"b",
    "\\",
    "é",
    "\u200b",
    "\x00\t\n\r",
    "\x85",
    "\xa0",
    "😀",
    "\U000e0001",
    "\ue000",
    "\u0378",
    "\U0010ffff",
    "字",
)
EVENT_TYPE_EDGES: Final = (
    *sorted(STREAM_OF_EVENT),
    "custom",
    "custom:",
    "custom:x",
    "custom:Size Guide",
    "custom:add_to_cart",
    "custom:" + "a" * 41,
    "custom:é",
    "",
    "Page_View",
    "pageview",
    "page_view ",
    "it's",
    "é",
    "x" * 45,
    "Custom",
)
MONEY_EDGES: Final = (
    None,
    0,
    1,
    -1,
    MAX_MONEY_MINOR - 1,
    MAX_MONEY_MINOR,
    MAX_MONEY_MINOR + 1,
    2**62,
    INT64_MIN,
    INT64_MAX,
)
CURRENCY_EDGES: Final = (
    None,
    "CNY",
    "USD",
    "JPY",
    "ZWG",
    "XAU",
    "XXX",
    "HRK",
    "usd",
    "RMB",
    "EURO",
    "",
    "it's",
    "€",
    "\u200b",
    "\x00",
    "CN",
)
ITEM_FIELD_EDGES: Final[dict[str, tuple[Any, ...]]] = {
    "item_id": ID_EDGES,
    "price": (0, 1, -1, 99, 100, MAX_MONEY_MINOR, MAX_MONEY_MINOR + 1, INT64_MIN, INT64_MAX),
    "quantity": (
        0,
        1,
        -1,
        MAX_ITEM_UNITS,
        MAX_ITEM_UNITS + 1,
        MAX_QUANTITY,
        MAX_QUANTITY + 1,
        INT64_MIN,
        INT64_MAX,
    ),
    "discount": (
        0,
        -1,
        99,
        100,
        101,
        MAX_MONEY_MINOR,
        MAX_MONEY_MINOR + 1,
        2**62,
        INT64_MIN,
        INT64_MAX,
    ),
}


def _line(price: int, quantity: int, discount: int = 0, item_id: str = "SKU-1") -> dict[str, Any]:
    return {
        **_PLAIN_ITEM,
        "item_id": item_id,
        "price": price,
        "quantity": quantity,
        "discount": discount,
    }


ITEMS_EDGES: Final[tuple[list[dict[str, Any]], ...]] = (
    [],
    [_PLAIN_ITEM] * 200,
    [_PLAIN_ITEM] * 201,
    [_line(1, 600_000), _line(1, 400_000)],
    [_line(1, 600_000), _line(1, 400_001)],
    [_line(10**7, 10**6), _line(1, 1)],
    [_line(MAX_MONEY_MINOR, 1), _line(1, 1)],
    [_line(MAX_MONEY_MINOR // 2, 1), _line(MAX_MONEY_MINOR // 2, 1)],
    [_line(MAX_MONEY_MINOR // 2, 2, MAX_MONEY_MINOR // 2), _line(1, 1, 1)],
    [_line(10**7, 10**6, 10**7), _line(10**7, 1, 10**7)],
    [_line(10**7, 10**6, 10**7 - 1)],
    [_line(MAX_MONEY_MINOR, 1, MAX_MONEY_MINOR)] * 3,
    [_line(1, 8, 2**62)],
    [_line(100, 1), _line(-1, 1)],
    [_line(100, 1), _line(100, -1)],
    [_line(1, 1, item_id="")],
    [_line(1, 1), _line(1, 1, item_id=" ")],
    [_line(1, 2**31)],
    [_line(MAX_MONEY_MINOR * 100, 1)],
)


def base_records() -> list[tuple[dict[str, Any], str, int, ValidationBounds]]:
    """Valid records of every stream and clickstream schema version, with money and items,
    each with live bounds and with replay bounds."""
    out = []
    for stream, version in (
        ("clickstream", 1),
        ("clickstream", 3),
        ("clickstream", 4),
        ("cart", 1),
        ("orders", 1),
    ):
        rec: dict[str, Any] = {
            "event_id": "2c1b0a8e-57c6-4f6f-9bc1-0d6fbd1f5d2a",
            "event_type": sorted(EVENTS_BY_STREAM[stream])[0],
            "event_time": NOW_MS - 1000,
            "sent_time": NOW_MS,
            "anonymous_id": "anon-1",
            "session_id": "sess-1",
            "user_id": "user-1",
            "platform": "app",
            "device": "mobile",
            "country": "CN",
            "page_url": "https://shop.example.com/p/1",
            "referrer": None,
            "utm_source": "weibo",
            "utm_medium": None,
            "utm_campaign": "launch",
            "utm_content": None,
            "utm_term": None,
            "experiments": {"checkout_button": "B", "a": "1"},
            "referral_code": None,
            "search_term": "字",
            "items": [_line(100, 2, 10, "SKU-1"), _line(5000, 1, 0, "SKU-2")],
            "cart_id": "cart-1",
            "transaction_id": "T-1",
            "currency": "CNY",
            "value": 5190,
            "tax": 0,
            "shipping": None,
            "coupon": "SAVE",
            "discount": 20,
            "payment_type": "alipay",
            "refund_reason": None,
            "payment_error_code": None,
        }
        if version >= 3:
            rec.update(app_version="3.1", event_name=None, properties={"tier": "gold", "n": "3"})
        if version == 4:  # a v3 custom event
            rec.update(event_type="custom", event_name="size_guide_opened")
        for b in (ValidationBounds(), ValidationBounds(replay=True, earliest_ms=0)):
            out.append((rec, stream, NOW_MS, b))
    return out


def time_edges(now_ms: int, b: ValidationBounds) -> list[int]:
    points = (
        now_ms,
        now_ms + b.max_future_ms,
        now_ms + b.max_future_ms + 1,
        now_ms - b.max_past_ms,
        now_ms - b.max_past_ms - 1,
        b.earliest_ms,
        b.earliest_ms - 1,
        EARLIEST_EVENT_TIME_MS - 1,
        EARLIEST_REPLAY_EVENT_TIME_MS - 1,
        now_ms // 1000,
        0,
        -1,
        INT64_MIN,
        INT64_MAX,
    )
    return list(dict.fromkeys(points))


def field_edges(now_ms: int, b: ValidationBounds) -> dict[str, tuple[Any, ...]]:
    """Field -> its edge values (for a record at worker clock ``now_ms`` and bounds ``b``)."""
    optional_ids = (None, *ID_EDGES)
    times = tuple(time_edges(now_ms, b))
    return {
        "event_id": ID_EDGES,
        "anonymous_id": ID_EDGES,
        "session_id": ID_EDGES,
        "user_id": optional_ids,
        "cart_id": optional_ids,
        "transaction_id": optional_ids,
        "event_type": EVENT_TYPE_EDGES,
        "event_name": NAME_EDGES,
        "properties": PROPERTIES_EDGES,
        "platform": PLATFORM_EDGES,
        "event_time": times,
        "sent_time": times,
        "value": MONEY_EDGES,
        "tax": MONEY_EDGES,
        "shipping": MONEY_EDGES,
        "discount": MONEY_EDGES,
        "currency": CURRENCY_EDGES,
        "items": ITEMS_EDGES,
    }
