"""The compiled core's state codec against the Python one, on the states of a real run.

    .venv/bin/python -m bench.native_codec [--records 30000] [--repeat 5]

Issue #16: the Python core decodes every touched visitor's state and encodes it again,
per batch. This measures that round trip (bytes in, bytes out, so no conversion between
Python and Rust objects counts for either side) over every state the Python core wrote for
one partition of simulated traffic: ``streams.state.decode_state`` + ``encode_state``
against ``shopfunnel_core.reencode_state`` (native/src/state.rs). Both results are
checked equal before timing. CPU time of this process; the ratio is the number to quote.
"""

from __future__ import annotations

import argparse
import json
import time

import shopfunnel_core

from bench import state_memory
from streams.state import decode_state, encode_state


def states(records: int) -> list[bytes]:
    return state_memory._some_states(state_memory.partition_zero(records, 20))


def _cpu(fn: object, raws: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for raw in raws:
            fn(raw)  # type: ignore[operator]
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    raws = states(args.records)
    for raw in raws:
        assert shopfunnel_core.reencode_state(raw, "v") == encode_state(decode_state(raw, "v"))
    python_s = _cpu(lambda raw: encode_state(decode_state(raw, "v")), raws, args.repeat)
    rust_s = _cpu(lambda raw: shopfunnel_core.reencode_state(raw, "v"), raws, args.repeat)
    n = len(raws)
    print(
        json.dumps(
            {
                "states": n,
                "mean_state_bytes": round(sum(map(len, raws)) / n),
                "python_us_per_state": round(python_s / n * 1e6, 2),
                "rust_us_per_state": round(rust_s / n * 1e6, 2),
                "speedup": round(python_s / rust_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
