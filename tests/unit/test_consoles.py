"""funnel.consoles: the CLI's consoles take the terminal width of the moment they print."""

from __future__ import annotations

import pytest

from funnel.consoles import console_on_use


def test_the_width_is_read_when_the_console_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "50")
    console = console_on_use()  # as at import time
    monkeypatch.setenv("COLUMNS", "120")
    assert console.width == 120
    monkeypatch.setenv("COLUMNS", "70")
    assert console.width == 70


def test_options_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "90")
    assert console_on_use(stderr=True).stderr is True
    assert console_on_use(width=33).width == 33
