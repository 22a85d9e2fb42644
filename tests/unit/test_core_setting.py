"""FUNNEL_CORE: which core processes the partitions, validated, with clear errors."""

from __future__ import annotations

import builtins
from typing import Any

import pytest

import streams.app as app_module
from funnel.errors import ConfigError
from funnel.settings import load_settings
from schemas.channels import ChannelRules
from schemas.codec import EventCodec
from streams.app import processor_factory, resolve_core, resolve_fetch_reader
from streams.compiled import config
from streams.compiled.processor import CompiledProcessor
from streams.errors import CompiledCoreError
from streams.funnels import load_funnels
from streams.processor import PartitionProcessor
from streams.visitor import Rules

TOPICS = {"clickstream": "c", "cart": "k", "orders": "o"}


def test_each_value_selects_its_processor() -> None:
    assert processor_factory(resolve_core(load_settings(core="python").core)) is PartitionProcessor
    assert processor_factory(resolve_core(load_settings(core="compiled").core)) is CompiledProcessor


def test_auto_is_the_default_and_runs_the_compiled_core_where_it_is_built() -> None:
    assert load_settings().core == "auto"
    assert resolve_core("auto") == "compiled"  # the test environment builds it


def test_auto_without_the_build_runs_the_python_core_and_says_how_to_build_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(app_module, "compiled_core_built", lambda: False)
    assert resolve_core("auto") == "python"
    assert "make setup" in caplog.text and "FUNNEL_CORE=python" in caplog.text
    caplog.clear()
    assert resolve_core("compiled") == "compiled"  # explicit: never silently replaced
    assert resolve_core("python") == "python" and not caplog.text


def test_an_unknown_core_names_the_setting_and_the_choices() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(core="rust")
    message = str(raised.value)
    assert "core" in message
    assert "python" in message and "compiled" in message


def test_a_missing_build_says_how_to_build_it_or_choose_the_python_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = builtins.__import__

    def no_core(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "shopfunnel_core":
            raise ImportError("No module named 'shopfunnel_core'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_core)
    with pytest.raises(CompiledCoreError) as raised:
        CompiledProcessor.check(
            Rules(load_funnels(None)), EventCodec(), ChannelRules.load(), TOPICS
        )
    message = str(raised.value)
    assert "make setup" in message and "FUNNEL_CORE=python" in message


def test_the_start_up_check_passes_the_shipped_configuration() -> None:
    CompiledProcessor.check(Rules(load_funnels(None)), EventCodec(), ChannelRules.load(), TOPICS)


def test_a_configuration_the_crate_refuses_is_an_error_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As an older build of the crate would refuse a newer rule (here: a funnel mode it
    does not know), with the crate's own words."""
    real = config.rules_json

    def newer(rules: Rules) -> dict[str, Any]:
        spec = real(rules)
        spec["funnels"][0]["mode"] = "teleport"
        return spec

    monkeypatch.setattr(config, "rules_json", newer)
    with pytest.raises(CompiledCoreError) as raised:
        CompiledProcessor.check(
            Rules(load_funnels(None)), EventCodec(), ChannelRules.load(), TOPICS
        )
    message = str(raised.value)
    assert "refused the configuration" in message and "teleport" in message


# --- FUNNEL_FETCH_READER: who reads the fetched input records -----------------------------


def test_the_fetch_reader_is_compiled_where_the_crate_is_built() -> None:
    assert load_settings().fetch_reader == "auto"
    assert resolve_fetch_reader("auto") == "compiled"  # the test environment builds it
    assert resolve_fetch_reader(load_settings(fetch_reader="aiokafka").fetch_reader) == "aiokafka"


def test_without_the_build_auto_reads_with_aiokafka_and_compiled_says_how_to_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app_module, "compiled_core_built", lambda: False)
    assert resolve_fetch_reader("auto") == "aiokafka"
    with pytest.raises(CompiledCoreError, match=r"make setup.*FUNNEL_FETCH_READER=aiokafka"):
        resolve_fetch_reader("compiled")


def test_an_unknown_fetch_reader_names_the_setting_and_the_choices() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(fetch_reader="rust")
    message = str(raised.value)
    assert "fetch_reader" in message
    assert "aiokafka" in message and "compiled" in message
