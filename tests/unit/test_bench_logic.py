"""The benchmark harness's pure parts: recount, exactness, state accounting, profile, goals."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import orjson
import pytest

from bench.changelog_stats import summarise as summarise_changelog
from bench.dataset import recount, window_start
from bench.profiling import render, summarise
from bench.promscrape import INGESTED, LAG, parse
from bench.report import goals, simple_ratios
from bench.simple import compare, default_peers
from bench.simple_spec import delta_columns
from streams.funnel_eval import FunnelEvent
from streams.processor import meta_key
from streams.state import OpenSession, VisitorState, encode_state

MIN = 60_000


def _event(t: int, event_type: str, channel: str) -> bytes:
    return orjson.dumps({"event_time": t, "event_type": event_type, "channel": channel})


def test_recount_groups_by_minute_window_type_and_channel() -> None:
    values = [
        _event(5 * MIN + 1, "view_item", "email"),
        _event(5 * MIN + 59_999, "view_item", "email"),
        _event(6 * MIN, "view_item", "email"),
        _event(5 * MIN, "purchase", "email"),
    ]
    assert recount(values) == {
        (5 * MIN, "view_item", "email"): 2,
        (6 * MIN, "view_item", "email"): 1,
        (5 * MIN, "purchase", "email"): 1,
    }
    assert window_start(6 * MIN - 1) == 5 * MIN


def test_compare_sums_partial_rows_and_reports_missing_and_wrong_keys() -> None:
    expected = {(0, "a", "x"): 3, (MIN, "a", "x"): 1}
    exact = [(0, "a", "x", 1), (0, "a", "x", 2), (MIN, "a", "x", 1)]
    assert compare(expected, exact) == (0, 0)
    short = [(0, "a", "x", 2)]
    assert compare(expected, short) == (2, 2)
    extra = [*exact, (2 * MIN, "b", "y", 1)]
    assert compare(expected, extra) == (-1, 1)


def test_delta_columns_are_column_oriented_in_table_order() -> None:
    columns = delta_columns({(0, "a", "x"): 3, (MIN, "b", "y"): 1})
    assert columns == [[0, MIN], ["a", "b"], ["x", "y"], [3, 1]]


def _state(sessions: int, events_per_session: int) -> bytes:
    state = VisitorState(partition=0, dims=[("email", "", "mobile", "web", "CN")])
    for s in range(sessions):
        events = [
            FunnelEvent(1000 + i, f"e{s}-{i}", "view_item", 0) for i in range(events_per_session)
        ]
        state.sessions[f"s{s}"] = OpenSession(f"s{s}", 0, events)
    return encode_state(state)


def test_changelog_summary_attributes_session_bytes_and_keeps_last_state_per_user() -> None:
    one_session = _state(1, 2)
    no_session = _state(0, 0)
    records: list[tuple[bytes, bytes | None]] = [
        (b"u1", one_session),
        (b"u2", _state(2, 2)),
        (meta_key(0), b"{}"),  # partition metadata: not a visitor
        (b"u1", no_session),
        (b"u3", one_session),
        (b"u3", None),  # deleted visitor
    ]
    stats = summarise_changelog(records)
    assert stats["changelog_records"] == 6
    assert stats["state_records"] == 4
    assert stats["users_at_end"] == 2
    assert stats["bytes_per_user_at_end"] == (len(no_session) + len(_state(2, 2))) / 2
    assert stats["events_per_active_session_in_state"] == 2.0
    # Four open sessions across the records; each costs what removing it saves.
    assert stats["bytes_per_active_session"] > 0
    assert stats["bytes_per_active_session"] < len(one_session)


def test_profile_summary_counts_self_inclusive_and_package(tmp_path: Path) -> None:
    folded = tmp_path / "profile.folded"
    folded.write_text(
        "main (x.py:1);handle (streams/runtime.py:10);decode (schemas/codec.py:5) 3\n"
        "main (x.py:1);handle (streams/runtime.py:10) 1\n"
        "main (x.py:1);send (aiokafka/producer.py:9) 4\n"
    )
    summary = summarise(folded)
    assert summary.samples == 8
    assert summary.inclusive["main (x.py:1)"] == 8
    assert summary.self_time["decode (schemas/codec.py:5)"] == 3
    assert summary.by_package["aiokafka"] == 4
    assert summary.by_package["streams (our core)"] == 1
    assert summary.inclusive_project["handle (streams/runtime.py:10)"] == 4
    assert "main (x.py:1)" not in summary.inclusive_project
    text = render(summary)
    assert "50.0%  send (aiokafka/producer.py:9)" in text


def test_prometheus_parse_sums_labels_and_counts_lag_series() -> None:
    text = (
        "# TYPE shopfunnel_events_ingested counter\n"
        'shopfunnel_events_ingested_total{topic="a"} 5.0\n'
        'shopfunnel_events_ingested_total{topic="b"} 7.0\n'
        "# TYPE shopfunnel_consumer_lag_records gauge\n"
        'shopfunnel_consumer_lag_records{topic="a",partition="0"} 3.0\n'
        'shopfunnel_consumer_lag_records{topic="a",partition="1"} 0.0\n'
    )
    snapshot = parse(text, at=1.0)
    assert snapshot.get(INGESTED) == 12.0
    assert snapshot.get(LAG) == 3.0
    assert snapshot.lag_series == 2


def test_ratios_pick_the_best_external_peer_and_goals_say_what_was_met() -> None:
    simple = {
        "systems": {
            "aiokafka_loop": {"events_per_s": 200.0, "exact": True, "is_external_peer": False},
            "shopfunnel_worker": {"events_per_s": 150.0, "exact": True, "is_external_peer": False},
            "ch_kafka_engine_tuned": {
                "events_per_s": 100.0,
                "exact": True,
                "is_external_peer": True,
            },
            "quix": {"events_per_s": 120.0, "exact": False, "is_external_peer": True},
        }
    }
    ratios = simple_ratios(simple)
    assert ratios["ours_vs_baseline"] == 0.75
    assert ratios["best_peer"] == "quix"
    assert ratios["best_exact_peer"] == "ch_kafka_engine_tuned"
    assert ratios["ours_vs_best_exact_peer"] == 1.5
    met = goals({"simple_workload": {**simple, "ratios": ratios}, "scaling": {"speedup": 1.5}})
    assert met["simple_at_least_0_7x_baseline"]["met"] is True
    assert met["simple_ahead_of_ch_kafka_tuned"]["met"] is True
    assert met["simple_ours_at_least_75k"]["met"] is False
    assert met["two_workers_at_least_1_8x"]["met"] is False
    assert met["p99_latency_at_half_saturation_at_most_2s"]["met"] is None


def test_peer_selection_says_why_a_system_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    peers, skipped = default_peers(smoke=False, chdb_python=None)
    names = {p.name for p in peers}
    assert {"aiokafka_loop", "shopfunnel_worker", "quix_streams_grace_60s"} <= names
    assert not any(n.startswith("ch_kafka_engine") for n in names)
    assert "bench/chdb_env.py" in skipped["ch_kafka_engine_tuned"]

    smoke_peers, smoke_skipped = default_peers(smoke=True, chdb_python="/usr/bin/python3")
    assert {p.name for p in smoke_peers} == {
        "aiokafka_loop",
        "shopfunnel_worker",
        "ch_kafka_engine_tuned",
        "quix_streams_grace_60s",
    }
    assert smoke_skipped["quix_streams_grace_1d"] == "not in --smoke"

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "quixstreams" else real_find_spec(name, *a),
    )
    no_quix, why = default_peers(smoke=True, chdb_python=None)
    assert {p.name for p in no_quix} == {"aiokafka_loop", "shopfunnel_worker"}
    assert "pip install" in why["quix_streams_grace_60s"]
