"""The large fuzzing run of the decoder, the validators and the processing core (issue 18).

    .venv/bin/python -m bench.fuzz --inputs 100000 [--seed N] [--batch 500]

Generates ``--inputs`` hostile records with the generators the unit tests use
(``tests/fuzzing.py``: every kind in turn, so each kind gets the same share), decodes
each with the real :class:`~schemas.codec.EventCodec` at the input's worker clock, checks
every rejection (a :class:`~schemas.reasons.Reason`, a detail, a dead letter that
encodes and decodes) and feeds every record, accepted or not, through the real
:class:`~streams.processor.PartitionProcessor` in batches (state read back with
``decode_state``, triggers and dead letters encoded, rows checked for UTF-8 and 64-bit
integers). No hypothesis here: plain ``random.Random(seed)``, no shrinking overhead.

Prints the inputs per kind, accepted / rejected per reason (overall and per kind), every
unexpected exception with its input in hex, inputs per second and the wall time. Exits 1
if any stage raised.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence

from schemas.reasons import Rejection
from tests.fuzzing import KINDS, FuzzInput, FuzzSource, LaterStages, UnexpectedError, decode_checked

ACCEPTED = "accepted"


def run(inputs: int, seed: int, batch_size: int, out: list[str]) -> int:
    """Run the fuzzing; append the report lines to ``out``; the number of failures."""
    source = FuzzSource.from_simulator()
    codec = source.codec
    later = LaterStages()
    rng = random.Random(seed)
    per_kind: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    by_kind: Counter[tuple[str, str]] = Counter()
    failures: list[UnexpectedError] = []
    batch: list[FuzzInput] = []
    started = time.perf_counter()
    cpu_started = time.process_time()

    rows = states = 0

    def flush() -> None:
        nonlocal later, rows, states
        try:
            later.feed(batch)
        except UnexpectedError as exc:
            failures.append(exc)
            # The processor's state is suspect after a failure: go on with a new one.
            rows, states = rows + later.rows_checked, states + later.states_checked
            later = LaterStages()
        batch.clear()

    for fuzz_input in source.stream(rng, inputs):
        per_kind[fuzz_input.kind] += 1
        try:
            result = decode_checked(codec, fuzz_input)
        except UnexpectedError as exc:
            failures.append(exc)
            outcomes["exception"] += 1
            by_kind[(fuzz_input.kind, "exception")] += 1
            continue
        outcome = result.reason.value if isinstance(result, Rejection) else ACCEPTED
        outcomes[outcome] += 1
        by_kind[(fuzz_input.kind, outcome)] += 1
        batch.append(fuzz_input)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    try:
        later.finish()
    except Exception as exc:  # a failure at the end of the replay
        out.append(f"finish failed: {type(exc).__name__}: {exc}")
        failures.append(UnexpectedError("finish", FuzzInput("finish", "orders", b"", 0), str(exc)))
    rows, states = rows + later.rows_checked, states + later.states_checked
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started

    out.append(f"bench.fuzz: {inputs} inputs, seed {seed}, {len(source.seeds)} seed events")
    out.append(f"wall time {wall:.1f} s, CPU {cpu:.1f} s, {inputs / wall:,.0f} inputs/s")
    out.append(f"processing core: {rows} output rows and {states} visitor states checked")
    out.append("")
    out.append("inputs per kind:")
    for kind in KINDS:
        accepted = by_kind[(kind, ACCEPTED)]
        out.append(f"  {kind:<18} {per_kind[kind]:>8}   accepted {accepted:>7}")
    out.append("")
    rejected = sum(n for k, n in outcomes.items() if k not in (ACCEPTED, "exception"))
    out.append(f"accepted {outcomes[ACCEPTED]}, rejected {rejected}, exceptions {len(failures)}")
    out.append("rejected per reason:")
    for reason, count in sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0])):
        if reason not in (ACCEPTED, "exception"):
            out.append(f"  {reason:<24} {count:>8}")
    out.append("")
    out.append("outcomes per kind:")
    for kind in KINDS:
        parts = sorted(((o, n) for (k, o), n in by_kind.items() if k == kind), key=lambda x: -x[1])
        out.append(f"  {kind}: " + ", ".join(f"{o} {n}" for o, n in parts))
    out.append("")
    out.append(f"unexpected exceptions: {len(failures)}")
    for failure in failures:
        given = failure.fuzz_input
        out.append(
            f"  {failure.stage} failed on a {given.kind} input for {given.stream} at "
            f"now_ms={given.now_ms}: {failure.problem}"
        )
        out.append(f"    input ({len(given.raw)} bytes, hex): {given.raw.hex()}")
    return len(failures)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs to generate")
    parser.add_argument("--seed", type=int, default=18, help="random seed (same seed, same run)")
    parser.add_argument(
        "--batch", type=int, default=500, help="records per batch into the processing core"
    )
    args = parser.parse_args(argv)
    lines: list[str] = []
    failures = run(args.inputs, args.seed, args.batch, lines)
    print("\n".join(lines))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
