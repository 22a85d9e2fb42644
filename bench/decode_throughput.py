"""Decode throughput of schemas.codec.EventCodec on one core (records/s).

    .venv/bin/python bench/decode_throughput.py [--records 200000]

Decodes a typical cart event (add_to_cart, one item, campaign fields, one experiment)
again and again: Avro with the compiled reader, Avro with fastavro, and JSON; each
figure is decode + validation + building the Event. Reports the best of five runs in
CPU time so a busy neighbour process skews it less.
"""

from __future__ import annotations

import argparse
import gc
import time

from schemas.codec import EventCodec
from schemas.model import Event, Item

NOW_MS = 1_714_567_890_123


def typical_cart_event() -> Event:
    return Event(
        stream="cart",
        event_type="add_to_cart",
        event_id="5f0c8a1e-8a4b-4c1e-9d2a-0b1c2d3e4f50",
        event_time_ms=NOW_MS,
        sent_time_ms=NOW_MS + 333,
        anonymous_id="anon-7f3c2a9d1e",
        session_id="sess-0b5e9c4d",
        platform="app",
        device="mobile",
        country="CN",
        page_url="https://shop.example.com/p/sku-10293",
        utm_source="xiaohongshu",
        utm_medium="kol",
        utm_campaign="spring_sale_2024",
        experiments={"checkout_v2": "treatment"},
        items=(
            Item(
                item_id="sku-10293",
                price_minor=12900,
                quantity=2,
                item_name="Oolong tea 250g",
                item_category="food/tea",
            ),
        ),
        cart_id="cart-55e1",
        currency="CNY",
        value_minor=25800,
    )


def records_per_second(codec: EventCodec, raw: bytes, records: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(records):
            codec.decode(raw, "cart", NOW_MS)
        best = min(best, time.process_time() - start)
    return records / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    event = typical_cart_event()
    compiled = EventCodec()
    fastavro_only = EventCodec(compiled_reader=False)
    avro, json = compiled.encode_avro(event), compiled.encode_json(event)
    for codec, raw in ((compiled, avro), (fastavro_only, avro), (compiled, json)):
        if codec.decode(raw, "cart", NOW_MS) != event:
            raise SystemExit("decode does not return the encoded event")
    gc.collect()
    cases = (
        ("avro (compiled reader)", compiled, avro),
        ("avro (fastavro reader)", fastavro_only, avro),
        ("json (orjson)", compiled, json),
    )
    for label, codec, raw in cases:
        rate = records_per_second(codec, raw, args.records)
        print(f"{label:24} {len(raw):4d} B  {rate:>9,.0f} records/s")


if __name__ == "__main__":
    main()
