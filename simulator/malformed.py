"""Records the workers must reject, one builder per dead-letter reason.

Each builder starts from a real event of the run and breaks it the way a real producer
bug would (a release that sends prices as strings, seconds instead of milliseconds, a
stale schema id, ...). The expected reason is recorded on the SimRecord; a unit test
decodes every builder's output with :class:`schemas.codec.EventCodec` and checks that
the codec gives exactly that reason.

INVALID_CUSTOM_EVENT and INVALID_PROPERTIES exist only on the clickstream (schema v3
carries ``event_name`` and ``properties``): :meth:`MalformedFactory.reasons_for` leaves
them out for the other topics.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any, Final

import orjson

from schemas.codec import EventCodec
from schemas.custom import MAX_PROPERTIES, MAX_PROPERTY_VALUE_CHARS
from schemas.model import Event, Item, StreamKind
from schemas.reasons import Reason
from schemas.validation import MAX_ID_LENGTH, MAX_ITEM_UNITS, MAX_MONEY_MINOR
from simulator.config import SimConfig

_YEAR_MS: Final = 365 * 86_400_000
# Not registered for any stream (schemas/registry.json uses 1xx-9xx).
UNKNOWN_SCHEMA_ID: Final = 4242
CLICKSTREAM_ONLY: Final = frozenset({Reason.INVALID_CUSTOM_EVENT, Reason.INVALID_PROPERTIES})


class MalformedFactory:
    """``build(reason, event, rng) -> bytes`` that the codec rejects with ``reason``."""

    def __init__(self, codec: EventCodec, config: SimConfig) -> None:
        self.codec = codec
        self.config = config
        self._builders: dict[Reason, Callable[[Event, random.Random], bytes]] = {
            Reason.UNDECODABLE: self._undecodable,
            Reason.UNKNOWN_SCHEMA_ID: self._unknown_schema_id,
            Reason.MISSING_FIELD: self._missing_field,
            Reason.WRONG_TYPE: self._wrong_type,
            Reason.UNKNOWN_EVENT_TYPE: self._unknown_event_type,
            Reason.NEGATIVE_PRICE: self._negative_price,
            Reason.NEGATIVE_QUANTITY: self._negative_quantity,
            Reason.INVALID_CURRENCY: self._invalid_currency,
            Reason.INVALID_PLATFORM: self._invalid_platform,
            Reason.TOO_MANY_ITEMS: self._too_many_items,
            Reason.PAYLOAD_TOO_LARGE: self._payload_too_large,
            Reason.EVENT_TIME_IN_FUTURE: self._event_time_in_future,
            Reason.EVENT_TIME_TOO_OLD: self._event_time_too_old,
            Reason.INVALID_ID: self._invalid_id,
            Reason.TIMESTAMP_OUT_OF_RANGE: self._timestamp_out_of_range,
            Reason.AMOUNT_OUT_OF_RANGE: self._amount_out_of_range,
            Reason.QUANTITY_OUT_OF_RANGE: self._quantity_out_of_range,
            Reason.DISCOUNT_EXCEEDS_PRICE: self._discount_exceeds_price,
            Reason.INVALID_CUSTOM_EVENT: self._invalid_custom_event,
            Reason.INVALID_PROPERTIES: self._invalid_properties,
        }
        self._by_stream: dict[str, tuple[Reason, ...]] = {}

    @property
    def reasons(self) -> tuple[Reason, ...]:
        """The reasons this run may produce: all of :class:`Reason`, EVENT_TIME_TOO_OLD only
        with ``include_too_old`` (whether "too old" applies depends on the worker's clock
        and replay setting, so it is opt-in even though these records are always too old)."""
        return tuple(
            r
            for r in self._builders
            if r is not Reason.EVENT_TIME_TOO_OLD or self.config.include_too_old
        )

    def reasons_for(self, stream: StreamKind) -> tuple[Reason, ...]:
        """The reasons a record of ``stream`` may be broken with (:attr:`reasons`, less the
        clickstream-only ones on the cart and orders topics)."""
        found = self._by_stream.get(stream)
        if found is None:
            found = tuple(
                r for r in self.reasons if stream == "clickstream" or r not in CLICKSTREAM_ONLY
            )
            self._by_stream[stream] = found
        return found

    def build(self, reason: Reason, event: Event, rng: random.Random) -> bytes:
        if reason in CLICKSTREAM_ONLY and event.stream != "clickstream":
            raise ValueError(f"{reason} needs a clickstream event, not a {event.stream} one")
        return self._builders[reason](event, rng)

    # -- helpers ---------------------------------------------------------------------

    def _avro_or_json(self, event: Event, rng: random.Random) -> bytes:
        """Semantic errors travel in either encoding: the schema allows them."""
        if rng.random() < 0.5:
            return self.codec.encode_avro(event)
        return self.codec.encode_json(event)

    def _json_dict(self, event: Event) -> dict[str, Any]:
        loaded: dict[str, Any] = orjson.loads(self.codec.encode_json(event))
        return loaded

    def _with_item(self, event: Event, **changes: Any) -> Event:
        """``event`` with its first item changed (an item is added if it has none)."""
        base = event.items[0] if event.items else Item(item_id="SKU-10000", price_minor=9900)
        item = dataclasses.replace(base, **changes)
        return dataclasses.replace(
            event, items=(item, *event.items[1:]), currency=event.currency or "CNY"
        )

    # -- one builder per reason ------------------------------------------------------------

    def _undecodable(self, event: Event, rng: random.Random) -> bytes:
        kind = rng.randrange(3)
        if kind == 0:  # not Avro, not JSON: a protobuf-ish or compressed blob
            return b"\x1f\x8b" + rng.randbytes(rng.randint(20, 120))
        if kind == 1:  # an Avro frame cut short in the middle of the body
            avro = self.codec.encode_avro(event)
            return avro[: max(6, len(avro) // 2)]
        json = self.codec.encode_json(event)  # JSON cut off by a buffer limit
        return json[: max(2, len(json) // 2)]

    def _unknown_schema_id(self, event: Event, rng: random.Random) -> bytes:
        body = self.codec.encode_avro(event)[5:]
        return b"\x00" + UNKNOWN_SCHEMA_ID.to_bytes(4, "big") + body

    def _missing_field(self, event: Event, rng: random.Random) -> bytes:
        if rng.random() < 0.5:
            return self.codec.encode_avro(dataclasses.replace(event, session_id=""))
        record = self._json_dict(event)
        del record[rng.choice(("event_id", "anonymous_id", "event_time", "session_id"))]
        return orjson.dumps(record)

    def _wrong_type(self, event: Event, rng: random.Random) -> bytes:
        record = self._json_dict(event)
        if rng.random() < 0.5:
            record["event_time"] = event.event_time_ms / 1000  # JavaScript seconds, a float
        else:
            record["items"] = [{"item_id": "SKU-10000", "price": 12.99, "quantity": 1}]
            record["currency"] = event.currency or "CNY"
        return orjson.dumps(record)

    def _unknown_event_type(self, event: Event, rng: random.Random) -> bytes:
        renamed = dataclasses.replace(event, event_type=rng.choice(("add_to_basket", "pageview")))
        return self._avro_or_json(renamed, rng)

    def _negative_price(self, event: Event, rng: random.Random) -> bytes:
        return self._avro_or_json(
            self._with_item(event, price_minor=-abs(rng.randint(1, 9999))), rng
        )

    def _negative_quantity(self, event: Event, rng: random.Random) -> bytes:
        return self._avro_or_json(self._with_item(event, quantity=-1), rng)

    def _invalid_currency(self, event: Event, rng: random.Random) -> bytes:
        broken = self._with_item(event)
        broken = dataclasses.replace(broken, currency=rng.choice(("RMB", "usd", "EURO")))
        return self._avro_or_json(broken, rng)

    def _invalid_platform(self, event: Event, rng: random.Random) -> bytes:
        broken = dataclasses.replace(event, platform=rng.choice(("ios", "android", "h5")))
        return self._avro_or_json(broken, rng)

    def _too_many_items(self, event: Event, rng: random.Random) -> bytes:
        item = Item(item_id="SKU-10001", price_minor=100)
        broken = dataclasses.replace(event, items=(item,) * 201, currency=event.currency or "CNY")
        return self.codec.encode_avro(broken)

    def _payload_too_large(self, event: Event, rng: random.Random) -> bytes:
        padding = "x" * (self.config.max_payload_bytes + 1024)
        broken = dataclasses.replace(event, page_url=f"https://shop.example.com/?state={padding}")
        return self._avro_or_json(broken, rng)

    def _event_time_in_future(self, event: Event, rng: random.Random) -> bytes:
        # Decades ahead: in the future for any plausible worker clock.
        future = event.event_time_ms + 30 * _YEAR_MS
        return self._avro_or_json(dataclasses.replace(event, event_time_ms=future), rng)

    def _event_time_too_old(self, event: Event, rng: random.Random) -> bytes:
        # Seconds sent where milliseconds belong: before 2000, so rejected on any worker
        # clock and even in replay mode, which keeps the ground truth exact.
        old = event.event_time_ms // 1000
        return self._avro_or_json(dataclasses.replace(event, event_time_ms=old), rng)

    def _invalid_id(self, event: Event, rng: random.Random) -> bytes:
        # Ids a tracker bug produces: blank, invisible, with a NUL, or a payload as the id.
        broken_id = rng.choice(
            (
                "   ",
                "\u200b",
                "\ufeff\u200d",
                f"{event.session_id}\x00",
                "x" * (MAX_ID_LENGTH + 1),
            )
        )
        if rng.random() < 0.5:
            broken = dataclasses.replace(event, event_id=broken_id)
        else:
            broken = dataclasses.replace(event, session_id=broken_id)
        return self._avro_or_json(broken, rng)

    def _timestamp_out_of_range(self, event: Event, rng: random.Random) -> bytes:
        # A valid event_time but a send time no clock gives: the minimum long (a
        # "null" written as Long.MIN_VALUE), seconds instead of milliseconds, decades ahead.
        sent = rng.choice(
            (-(2**63), event.sent_time_ms // 1000, event.sent_time_ms + 30 * _YEAR_MS)
        )
        return self._avro_or_json(dataclasses.replace(event, sent_time_ms=sent), rng)

    def _amount_out_of_range(self, event: Event, rng: random.Random) -> bytes:
        kind = rng.randrange(3)
        if kind == 0:  # a unit price in the wrong unit, far above the bound
            broken = self._with_item(event, price_minor=MAX_MONEY_MINOR * 100)
        elif kind == 1:  # a per-unit discount near 2**62 (the orjson / Int64 crash)
            broken = self._with_item(event, price_minor=1, quantity=8, discount_minor=2**62)
        else:  # an order value that overflows a minute's GMV after two orders
            broken = dataclasses.replace(
                event, value_minor=6 * 10**18, currency=event.currency or "CNY"
            )
        return self._avro_or_json(broken, rng)

    def _quantity_out_of_range(self, event: Event, rng: random.Random) -> bytes:
        quantity = rng.randint(MAX_ITEM_UNITS + 1, 2**31 - 1)
        return self._avro_or_json(
            self._with_item(event, quantity=quantity, price_minor=1, discount_minor=0), rng
        )

    def _discount_exceeds_price(self, event: Event, rng: random.Random) -> bytes:
        base = event.items[0] if event.items else None
        price = base.price_minor if base is not None else 9900
        discount = price + rng.randint(1, 1000)
        return self._avro_or_json(
            self._with_item(event, price_minor=price, discount_minor=discount), rng
        )

    def _invalid_custom_event(self, event: Event, rng: random.Random) -> bytes:
        kind = rng.randrange(5)
        if kind == 0:  # event_type "custom" without event_name
            return self._avro_or_json(dataclasses.replace(event, event_type="custom"), rng)
        if kind == 1:  # a name as an analyst would write it, with spaces
            named = dataclasses.replace(event, event_type="custom:Size Guide Opened")
            return self._avro_or_json(named, rng)
        if kind == 2:  # a name beyond 40 characters
            named = dataclasses.replace(event, event_type="custom:" + "size_guide_" * 4 + "x")
            return self._avro_or_json(named, rng)
        if kind == 3:  # a built-in event type sent as a custom event
            named = dataclasses.replace(event, event_type="custom:add_to_cart")
            return self._avro_or_json(named, rng)
        record = self._json_dict(event)  # event_name on a built-in event
        if record["event_type"] == "custom":
            record["event_type"] = "page_view"
        record["event_name"] = "size_guide_opened"
        return orjson.dumps(record)

    def _invalid_properties(self, event: Event, rng: random.Random) -> bytes:
        kind = rng.randrange(5)
        properties = dict(event.properties)
        if kind == 0:  # every query parameter of the page as a property
            properties.update({f"param_{n}": str(n) for n in range(MAX_PROPERTIES + 1)})
        elif kind == 1:  # a key as the tracker's UI shows it
            properties[rng.choice(("membership-tier", "Membership Tier", "1st_visit"))] = "gold"
        elif kind == 2:  # a payload as a value
            properties["cart_json"] = "{" + "x" * MAX_PROPERTY_VALUE_CHARS + "}"
        elif kind == 3:  # a value with a newline or a NUL
            properties["membership_tier"] = rng.choice(("gold\n", "gold\x00"))
        else:  # JSON numbers where strings belong
            record = self._json_dict(event)
            record["properties"] = {**properties, "items_in_cart": 3}
            return orjson.dumps(record)
        return self._avro_or_json(dataclasses.replace(event, properties=properties), rng)
