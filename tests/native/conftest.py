"""The differential tests of the compiled core (native/) against the Python core.

They need the extension built (`make setup-test` does it); a missing build is an error,
not a skip: CI must never pass without comparing the two cores.
"""

from __future__ import annotations

try:
    import shopfunnel_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - only without a build
    raise RuntimeError(
        "the compiled core (native/) is not built: run `make setup-test` "
        "(it installs Rust from Debian's packages if needed and builds it)"
    ) from exc


def _share_simulated_partitions() -> None:
    """Several differential tests replay the same simulated partition through the Python
    core (bench.state_memory.partition_zero is deterministic: seed 1). Generate each
    (records, days) once per test session; every caller gets its own list."""
    import functools

    from bench import state_memory

    generate = state_memory.partition_zero

    @functools.lru_cache(maxsize=16)
    def generated(records: int, days: float) -> tuple[tuple[str, bytes, bytes, int], ...]:
        return tuple(generate(records, days))

    def partition_zero(records: int, days: float) -> list[tuple[str, bytes, bytes, int]]:
        return list(generated(records, days))

    state_memory.partition_zero = partition_zero


_share_simulated_partitions()
