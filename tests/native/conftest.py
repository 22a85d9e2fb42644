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
