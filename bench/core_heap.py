"""What the compiled core's heap holds, part by part, after simulated traffic.

    .venv/bin/python -m bench.core_heap [--records 300000] [--days 30]

Builds the crate with its ``heap-count`` feature (a counting allocator, never in
production) into ``.data/heap-count``, imports that build instead of the installed one,
feeds one partition's share of simulated traffic through ``CompiledProcessor`` in batches
of ``bench.state_memory.BATCH``, and reports the bytes the core's live allocations asked
for: in all, at the peak, and per part (the stored states, the live aggregate rows, the
timers, ...), found by emptying the parts one after the other. These are the bytes asked
for, not resident memory: mimalloc's size classes and free pages come on top.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from bench.errors import BenchError

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / ".data" / "heap-count"


def build_counting_core() -> Path:
    """The crate built with ``heap-count``; returns the directory to import it from."""
    target = BUILD_DIR / "target"
    command = [
        "cargo",
        "build",
        "--release",
        "--features",
        "heap-count,pyo3/extension-module",
        "--target-dir",
        str(target),
    ]
    env = {**os.environ, "PYO3_PYTHON": sys.executable}
    try:
        subprocess.run(command, cwd=ROOT / "native", env=env, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BenchError(
            f"building the counting core failed ({' '.join(command)} in native/): {exc}; "
            "run `make setup-test` first, which installs the Rust toolchain"
        ) from exc
    lib_dir = BUILD_DIR / "lib"
    lib_dir.mkdir(parents=True, exist_ok=True)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    shutil.copyfile(
        target / "release" / "libshopfunnel_core.so", lib_dir / f"shopfunnel_core{suffix}"
    )
    return lib_dir


def import_counting_core(lib_dir: Path) -> Any:
    sys.path.insert(0, str(lib_dir))
    sys.modules.pop("shopfunnel_core", None)
    return require_counting(importlib.import_module("shopfunnel_core"))


def require_counting(module: Any) -> Any:
    """The module, if it is the heap-count build (else its numbers would mean nothing)."""
    if not hasattr(module, "heap_live_bytes"):
        raise BenchError(
            f"{getattr(module, '__file__', module)} is not the heap-count build; "
            f"delete {BUILD_DIR} and run again"
        )
    return module


def measure(core: Any, records: list[tuple[str, bytes, bytes, int]]) -> dict[str, Any]:
    # Imported after the counting build is in place: CompiledProcessor imports the core.
    from bench.state_memory import TOPICS, MemoryTable, feed
    from schemas.channels import ChannelRules
    from schemas.codec import EventCodec
    from schemas.validation import ValidationBounds
    from streams.compiled.processor import CompiledProcessor
    from streams.funnels import load_funnels
    from streams.visitor import Rules

    gc.collect()
    start = core.heap_live_bytes()
    core.heap_peak_bytes()
    table = MemoryTable()
    decoder: Any = EventCodec(bounds=ValidationBounds(replay=True))
    processor = CompiledProcessor(
        0, Rules(load_funnels(None)), decoder, ChannelRules.load(), TOPICS, table
    )
    feed(processor, table, records)
    gc.collect()
    peak = core.heap_peak_bytes() - start
    live = core.heap_live_bytes() - start
    report: dict[str, Any] = {
        "records": len(records),
        "visitors": processor.state_keys,
        "stored_state_mb": round(processor.state_bytes / 1e6, 1),
        "live_heap_mb": round(live / 1e6, 1),
        # The most the core held at once: between calls, and inside a call (a batch's
        # decoded events, rows and outputs).
        "peak_heap_mb": round(peak / 1e6, 1),
    }
    parts = processor._core.heap_breakdown()
    report["parts_mb"] = {name: round(freed / 1e6, 1) for name, freed in parts}
    report["rest_mb"] = round((live - sum(freed for _, freed in parts)) / 1e6, 1)
    report["heap_bytes_per_visitor"] = round(live / max(1, report["visitors"]))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--days", type=float, default=30.0)
    args = parser.parse_args()
    core = import_counting_core(build_counting_core())
    from bench.state_memory import cached_records

    print(json.dumps(measure(core, cached_records(args.records, args.days)), indent=1))


if __name__ == "__main__":
    main()
