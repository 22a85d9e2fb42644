"""The CLI's rich consoles, made when they print rather than when a module is imported.

rich reads ``COLUMNS`` (and whether the output is a terminal) when a ``Console`` is
made. A module-level ``Console()`` would keep the environment of whichever moment first
imported the module: a narrow terminal of an earlier command, or no setting at all.
"""

from __future__ import annotations

from typing import Any, cast

from rich.console import Console


class _ConsoleOnUse:
    """Stands for a ``Console(**options)`` made afresh for each use."""

    def __init__(self, **options: Any) -> None:
        self._options = options

    def __getattr__(self, name: str) -> Any:
        return getattr(Console(**self._options), name)


def console_on_use(**options: Any) -> Console:
    """A console that reads the environment each time it is used."""
    return cast(Console, _ConsoleOnUse(**options))
