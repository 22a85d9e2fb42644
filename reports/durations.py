"""Durations as people read them: 42.5s, 3m 20s, 2h 05m, 1d 03h (terminal and HTML)."""

from __future__ import annotations

from collections.abc import Callable


def _one_decimal(seconds: float) -> str:
    return f"{seconds:.1f}"


def duration_text(
    seconds: float | None, under_a_minute: Callable[[float], str] = _one_decimal
) -> str:
    """``under_a_minute`` writes the number of seconds below 60 (the HTML report passes
    its locale's decimal format)."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{under_a_minute(seconds)}s"
    whole = round(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if whole >= size:
            return f"{whole // size}{unit} {(whole % size) // sub_size:02d}{sub}"
    return f"{whole // 60}m {whole % 60:02d}s"
