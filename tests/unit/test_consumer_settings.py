"""The consumer's read-ahead per partition: a setting, validated, passed to aiokafka."""

from __future__ import annotations

from pathlib import Path

import pytest

from funnel.errors import ConfigError
from funnel.settings import load_settings
from streams.app import build_app


def test_the_default_read_ahead_is_eight_mebibytes_per_partition() -> None:
    app = build_app(load_settings())
    assert app.conf.consumer_max_fetch_size == 8 * 1024 * 1024


def test_an_operator_can_lower_it_for_memory() -> None:
    app = build_app(load_settings(consumer_fetch_bytes=1024 * 1024))
    assert app.conf.consumer_max_fetch_size == 1024 * 1024


@pytest.mark.parametrize("value", [0, 1024, 65 * 1024 * 1024])
def test_a_read_ahead_out_of_range_names_the_setting(value: int) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(consumer_fetch_bytes=value)
    assert "consumer_fetch_bytes" in str(raised.value)


def test_faust_keeps_its_directory_under_the_data_directory(tmp_path: Path) -> None:
    """Not "<app id>-data" in whatever directory the worker was started from."""
    settings = load_settings(data_dir=tmp_path / "odd {dir}", app_id="shop_x")
    app = build_app(settings)
    assert app.conf.datadir == (tmp_path / "odd {dir}" / "faust" / "shop_x").resolve()
    app.conf.datadir.mkdir(exist_ok=True)  # as Faust does at start-up: the parent exists
