"""The compiled core's first stage against the Python one: raw records to events.

    .venv/bin/python -m bench.native_decode [--records 60000] [--repeat 3]

Issue #16's profile puts Avro decoding at 9.8 us and validation at 6.3 us per event in
the Python core. This decodes and validates the same simulated records (all three
streams, Avro and JSON, with malformed records) with ``schemas.codec.EventCodec.decode``
and with ``shopfunnel_core.Decoder`` (native/src/records.rs + validation.rs), checks that
both accept and reject the same number, and reports CPU microseconds per record of this
process (best of ``--repeat``). The Rust side counts the copy of each batch into Rust, as
the core will receive it; it builds no Python objects, as the core will not.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import orjson
import shopfunnel_core

from schemas.codec import EventCodec
from schemas.model import Event
from schemas.validation import ValidationBounds
from simulator.generate import SimConfig, generate
from streams.compiled import config


def batches(records: int) -> dict[str, list[tuple[bytes, int]]]:
    sim = SimConfig(seed=3, users=records // 10, days=2, partitions=1, malformed_pct=2, json_pct=10)
    out: dict[str, list[tuple[bytes, int]]] = defaultdict(list)
    for n, r in enumerate(generate(sim)):
        if n >= records:
            break
        out[r.stream].append((r.value, r.send_time_ms))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bounds = ValidationBounds(replay=True)
    codec = EventCodec(bounds=bounds)
    native = shopfunnel_core.Decoder(
        orjson.dumps(config.registry_json(codec.registry)), orjson.dumps(config.bounds_json(bounds))
    )
    data = batches(args.records)
    total = sum(len(v) for v in data.values())

    def python_pass() -> tuple[int, int]:
        events = 0
        for stream, batch in data.items():
            for value, now in batch:
                events += isinstance(codec.decode(value, stream, now), Event)  # type: ignore[arg-type]
        return events, total - events

    def rust_pass() -> tuple[int, int]:
        events = rejected = 0
        for stream, batch in data.items():
            e, r = native.decode_count(stream, [v for v, _ in batch], [t for _, t in batch])
            events, rejected = events + e, rejected + r
        return events, rejected

    assert python_pass() == rust_pass(), "the two decoders disagree"
    timings = {}
    for name, run in (("python", python_pass), ("rust", rust_pass)):
        best = float("inf")
        for _ in range(args.repeat):
            started = time.process_time()
            run()
            best = min(best, time.process_time() - started)
        timings[name] = best
    events, rejected = rust_pass()
    print(
        json.dumps(
            {
                "records": total,
                "events": events,
                "rejected": rejected,
                "python_us_per_record": round(timings["python"] / total * 1e6, 2),
                "rust_us_per_record": round(timings["rust"] / total * 1e6, 2),
                "speedup": round(timings["python"] / timings["rust"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
