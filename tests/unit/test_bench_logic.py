"""The benchmark harness's pure parts: recount, exactness, state accounting, profile, goals."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from bench import run as bench_run
from bench.changelog_stats import summarise as summarise_changelog
from bench.dataset import recount, window_start
from bench.errors import PeerFailedError
from bench.full import (
    FullSetup,
    _system_share,
    _worker_configs,
    new_topics,
    second_half,
    summarise_pass,
)
from bench.procstats import ProcessSampler, Sample
from bench.profiling import render, summarise
from bench.promscrape import (
    DEAD_LETTERS,
    GC_COLLECTED,
    GC_SECONDS_COUNT,
    GC_SECONDS_SUM,
    INGESTED,
    LAG,
    STATE_BYTES,
    STATE_KEYS,
    Snapshot,
    by_label,
    parse,
)
from bench.report import goals, simple_ratios
from bench.simple import compare, default_peers
from bench.simple_spec import delta_columns
from bench.soak import (
    DAY_MS,
    SOAK_DAYS,
    SOAK_MALFORMED_PCT,
    START_MARGIN_MS,
    SoakCheckError,
    Tally,
    curve,
    dead_letter_check,
    gc_summary,
    level_growth_pct,
    require_dead_letter_share,
    rss_level_mb,
    soak_sim_config,
    soak_start_ms,
)
from bench.worker_proc import WorkerConfig, WorkerProcess
from funnel.settings import TopicNames
from schemas.codec import EventCodec
from schemas.reasons import Reason, Rejection
from schemas.validation import ValidationBounds
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.records import SimRecord
from streams.checkpoint import meta_key
from streams.funnel_eval import FunnelEvent
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
    assert met["p99_latency_at_half_saturation_at_most_1s"]["met"] is None


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


# -- soak (issue #19): event time, dead-letter share, curve, --worker-env ------------------

SOAK_NOW_MS = 1_796_400_000_000  # 2026-12-04T18:40Z, the day issue #19 was measured


def _worker_codec() -> EventCodec:
    """The codec as the soak's worker builds it: default bounds, replay mode."""
    return EventCodec(bounds=ValidationBounds(replay=True))


def _rejections(records: list[SimRecord], now_ms: int) -> list[tuple[SimRecord, Reason]]:
    codec = _worker_codec()
    out = []
    for record in records:
        decoded = codec.decode(record.value, record.stream, now_ms)
        if isinstance(decoded, Rejection):
            out.append((record, decoded.reason))
    return out


@pytest.mark.parametrize("now_ms", [SOAK_NOW_MS, SOAK_NOW_MS + 1, SOAK_NOW_MS + 23 * 3_600_000])
def test_soak_history_ends_a_day_before_now_at_a_midnight(now_ms: int) -> None:
    start = soak_start_ms(now_ms)
    assert start % DAY_MS == 0
    end = start + int(SOAK_DAYS * DAY_MS)
    assert now_ms - 2 * DAY_MS < end <= now_ms - START_MARGIN_MS


def test_soak_traffic_is_never_in_the_future_and_only_malformed_records_are_dead() -> None:
    config = soak_sim_config(users=400, partitions=2, now_ms=SOAK_NOW_MS)
    assert config.days == SOAK_DAYS and config.malformed_pct == SOAK_MALFORMED_PCT
    records = list(generate(config))
    assert len(records) > 2000
    valid = [r for r in records if r.malformed_reason is None]
    # Every event of the whole simulated span (the last session's tail included) lies
    # before the harness's clock; the worker's clock only moves on from there.
    assert max(r.event.event_time_ms for r in valid if r.event) < SOAK_NOW_MS
    rejected = _rejections(records, SOAK_NOW_MS)
    assert all(r.malformed_reason == reason for r, reason in rejected)
    assert len(rejected) == len(records) - len(valid)
    tally = Tally()
    assert list(tally.count(records)) == records
    assert tally.sent == len(records) and tally.malformed == len(rejected)


def test_the_fixed_simulator_start_floods_dead_letters_on_the_issue_day() -> None:
    """What issue #19's soak did: 150 days from 2026-11-01, judged on 2026-12-04."""
    config = SimConfig(users=400, days=SOAK_DAYS, partitions=2)
    records = list(generate(config))
    in_future = [
        r for r, reason in _rejections(records, SOAK_NOW_MS) if reason == "event_time_in_future"
    ]
    assert len(in_future) / len(records) > 0.5


def test_dead_letter_check_passes_the_intended_share_and_fails_a_flood() -> None:
    fine = dead_letter_check(1.0, dead_letters=1_030, ingested=100_000)
    assert fine["ok"] is True and fine["measured_pct"] == 1.03
    require_dead_letter_share(fine)
    flood = dead_letter_check(1.0, dead_letters=70_650, ingested=100_000)
    assert flood["ok"] is False
    with pytest.raises(SoakCheckError, match=r"70\.65% of 100,000"):
        require_dead_letter_share(flood)
    missing = dead_letter_check(1.0, dead_letters=0, ingested=100_000)  # DLQ path dead
    assert missing["ok"] is False
    early = dead_letter_check(1.0, dead_letters=900, ingested=1_000)  # too few to judge
    assert early["ok"] is None
    require_dead_letter_share(early)


def _soak_worker(tmp_path: Path) -> WorkerProcess:
    topics = TopicNames(clickstream="c", cart="a", orders="o", dlq="d", triggers="t")
    return WorkerProcess(WorkerConfig("b:1", topics, 1, "app", tmp_path, 1))


def test_soak_tally_stops_the_run_when_the_worker_floods_dead_letters(tmp_path: Path) -> None:
    records = list(generate(soak_sim_config(users=300, partitions=1, now_ms=SOAK_NOW_MS)))
    worker = _soak_worker(tmp_path)
    worker.snapshots.append(Snapshot(1.0, {INGESTED: 50_000.0, DEAD_LETTERS: 500.0}, 3))
    assert len(list(Tally(worker, every=0.0).count(records))) == len(records)
    worker.snapshots.append(Snapshot(2.0, {INGESTED: 60_000.0, DEAD_LETTERS: 10_500.0}, 3))
    with pytest.raises(SoakCheckError):
        list(Tally(worker, every=0.0).count(records))


def test_soak_curve_and_gc_summary_from_scrapes(tmp_path: Path) -> None:
    worker = _soak_worker(tmp_path)
    worker.sampler = ProcessSampler(pid=0)
    for i in range(121):  # 60 s, a scrape and a sample every 0.5 s
        at = 100.0 + i / 2
        runs = i // 40  # a collection at 20 s and 40 s (and one at 60 s)
        worker.sampler.samples.append(Sample(at, (300 + i) * 1024 * 1024, 0.0))
        values = {
            INGESTED: 1000.0 * i,
            DEAD_LETTERS: 10.0 * i,
            STATE_KEYS: 5.0 * i,
            STATE_BYTES: 1024.0 * 1024 * i,
            GC_SECONDS_COUNT: float(runs),
            GC_SECONDS_SUM: [0.0, 0.1, 0.4, 0.6][runs],
            GC_COLLECTED: 100.0 * runs,
        }
        worker.snapshots.append(Snapshot(at, values, 3))
    rows = curve(worker, 100.0, 160.0, every=30.0)
    assert [r["t_s"] for r in rows] == [0, 30, 60]
    assert rows[1] == {
        "t_s": 30,
        "rss_mb": 360.0,
        "state_keys": 300,
        "state_mb": 60.0,
        "events": 60_000,
        "dead_letter_pct": 1.0,
        "lag": 0,
        "gc_runs": 1,
        "gc_seconds": 0.1,
    }
    gc = gc_summary(worker.snapshots, 100.0, 160.0)
    assert gc is not None
    assert gc["runs"] == 3 and gc["every_s"] == 20.0 and gc["collected_objects"] == 300
    assert gc["p50_seconds"] == 0.2 and gc["max_seconds"] == 0.3
    old_worker = _soak_worker(tmp_path)  # before issue #19: no GC series
    old_worker.snapshots = [
        Snapshot(s.at, {INGESTED: s.get(INGESTED)}, 3) for s in worker.snapshots
    ]
    assert gc_summary(old_worker.snapshots, 100.0, 160.0) is None
    assert "gc_runs" not in curve(old_worker, 100.0, 160.0)[0]


def test_the_memory_level_ignores_a_reads_spike_but_not_a_step() -> None:
    # 0.5-s samples: a flat 1,000 MB with a 40-s spike to 1,650 MB (a monitor's read)
    # at the end window's last instant, which a single end sample would take as +65%.
    flat = [(t / 2, 1000.0) for t in range(0, 2 * 600)]
    spiky = flat + [(600 + t / 2, 1650.0 if t >= 2 * 140 else 1000.0) for t in range(2 * 180)]
    warm = rss_level_mb(spiky, 0.0, 180.0)
    end = rss_level_mb(spiky, 600.0, 780.0)
    assert (warm, end) == (1000.0, 1000.0)
    assert level_growth_pct(warm, end) == 0.0
    # A step that holds for most of the window is growth, and the level says so.
    stepped = flat + [(600 + t / 2, 1150.0 if t >= 2 * 30 else 1000.0) for t in range(2 * 180)]
    assert level_growth_pct(warm, rss_level_mb(stepped, 600.0, 780.0)) == pytest.approx(15.0)
    # Samples of a process being torn down (0 bytes) and outside the window do not count.
    assert rss_level_mb([(1.0, 0.0), (2.0, 500.0), (9.0, 9000.0)], 0.0, 5.0) == 500.0
    assert rss_level_mb([], 0.0, 5.0) is None
    assert level_growth_pct(None, 1.0) is None


def test_prometheus_by_label_sums_one_label() -> None:
    text = (
        'shopfunnel_dead_letters_total{topic="a",reason="undecodable"} 2.0\n'
        'shopfunnel_dead_letters_total{topic="b",reason="undecodable"} 1.0\n'
        'shopfunnel_dead_letters_total{topic="a",reason="negative_price"} 4.0\n'
        'shopfunnel_dead_letters_created{topic="a",reason="negative_price"} 1.7e9\n'
    )
    assert by_label(text, DEAD_LETTERS, "reason") == {"undecodable": 3.0, "negative_price": 4.0}


def _fake_soak(ok: bool | None, seen: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    def fake(setup: FullSetup, users: int | None, rate: float, minutes: float) -> dict[str, Any]:
        seen["setup"] = setup
        check = dead_letter_check(1.0, 1_000 if ok else 50_000, 100_000)
        return {"minutes": minutes, "dead_letters": check}

    return fake


def test_worker_env_reaches_the_soak_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(bench_run, "run_soak", _fake_soak(True, seen))
    argv = [
        "--soak-minutes", "1", "--bootstrap", "127.0.0.1:1",
        "--worker-env", "FUNNEL_GC_INTERVAL_SECONDS=1000000",
        "--output", str(tmp_path / "results.json"), "--run-dir", str(tmp_path / "run"),
    ]  # fmt: skip
    args = bench_run.parse_args(argv)
    args.argv = argv
    assert args.soak_rate == 2500.0
    results = bench_run.run_soak_only(args, Console(quiet=True))
    setup: FullSetup = seen["setup"]
    assert setup.worker_env == (("FUNNEL_GC_INTERVAL_SECONDS", "1000000"),)
    [config] = _worker_configs(setup, new_topics("t"), "app", "soak", 1)
    env = config.env()
    assert env["FUNNEL_GC_INTERVAL_SECONDS"] == "1000000"
    assert env["FUNNEL_REPLAY"] == "true"  # the soak's history is in the past
    saved = orjson.loads((tmp_path / "results.json").read_bytes())
    assert saved["soak"]["dead_letters"]["ok"] is True
    assert results["soak"]["command"].endswith("--run-dir " + str(tmp_path / "run"))


def test_soak_fails_loudly_after_saving_a_flood(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_run, "run_soak", _fake_soak(False, {}))
    argv = [
        "--soak-minutes",
        "1",
        "--bootstrap",
        "127.0.0.1:1",
        "--output",
        str(tmp_path / "r.json"),
    ]
    args = bench_run.parse_args(argv)
    args.argv = argv
    args.run_dir = tmp_path / "run"
    with pytest.raises(SoakCheckError):
        bench_run.run_soak_only(args, Console(quiet=True))
    assert orjson.loads((tmp_path / "r.json").read_bytes())["soak"]["dead_letters"]["ok"] is False
    assert bench_run.main([*argv, "--run-dir", str(tmp_path / "run")]) == 2


def test_a_run_without_a_soak_keeps_the_soak_the_results_file_has(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    soak = {"rss_growth_after_warmup_pct": -5.3, "flat": True, "minutes": 30.0, "git_commit": "ab"}
    output.write_bytes(orjson.dumps({"soak": soak, "scaling": {"speedup": 1.0}}))
    fresh: dict[str, Any] = {"scaling": {"speedup": 1.9}}
    fresh["goals"] = goals(fresh)
    assert fresh["goals"]["flat_memory_over_30_minutes"]["met"] is None
    bench_run.keep_earlier_soak(fresh, output)
    assert fresh["soak"] == soak
    assert fresh["goals"]["flat_memory_over_30_minutes"]["met"] is True
    assert fresh["goals"]["two_workers_at_least_1_8x"]["met"] is True  # this run's


def test_a_run_with_its_own_soak_or_no_results_file_keeps_its_own(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    bench_run.keep_earlier_soak(fresh := {"scaling": {}}, output)  # no file yet
    assert "soak" not in fresh
    output.write_bytes(orjson.dumps({"soak": {"rss_growth_after_warmup_pct": 50.0}}))
    own = {"soak": {"rss_growth_after_warmup_pct": 1.0}}
    bench_run.keep_earlier_soak(own, output)
    assert own["soak"] == {"rss_growth_after_warmup_pct": 1.0}
    output.write_text("not json")
    bench_run.keep_earlier_soak(fresh, output)
    assert "soak" not in fresh


def _growing_then_warm_worker(tmp_path: Path) -> WorkerProcess:
    """30 s at 1,000 events/s: 2 CPU-s a second (0.8 of it the kernel's) for 15 s as
    memory grows, then 1 CPU-s a second (0.05 the kernel's)."""
    worker = _soak_worker(tmp_path)
    worker.sampler = ProcessSampler(pid=0)
    cpu = system = 0.0
    for i in range(61):
        at = 100.0 + i / 2
        worker.sampler.samples.append(Sample(at, 0, cpu, system))
        worker.snapshots.append(Snapshot(at, {INGESTED: 500.0 * i}, 3))
        growing = at < 115.0
        cpu += 1.0 if growing else 0.5
        system += 0.4 if growing else 0.025
    return worker


def test_the_second_half_is_the_warm_worker_and_the_kernel_share_is_split_out(
    tmp_path: Path,
) -> None:
    worker = _growing_then_warm_worker(tmp_path)
    half = second_half([worker], 30_000, 100.0, 130.0)
    assert half is not None
    assert half["from_s"] == 15.0 and half["events"] == 15_000
    assert half["events_per_s"] == 1000.0
    assert half["events_per_cpu_second"] == 1000.0
    assert half["system_cpu_share"] == 0.05
    # The whole pass: 45 CPU-s, 12.75 of them the kernel's.
    assert _system_share([worker], 100.0, 130.0) == round(12.75 / 45, 3)


def test_a_pass_is_summarised_from_scrapes_that_count_every_event(tmp_path: Path) -> None:
    worker = _growing_then_warm_worker(tmp_path)
    summary = summarise_pass([worker], 30_000, "app")
    # Counted from the first scrape that saw ingestion (500 events at 100.5 s).
    assert summary["events_per_s"] == round(29_500 / 29.5, 1)
    assert summary["events_per_cpu_second"] == round(29_500 / 44.0, 1)


def test_a_pass_whose_last_scrape_lost_the_series_fails_instead_of_reporting(
    tmp_path: Path,
) -> None:
    """A scrape during shut-down had no runtime series: it read as 0 ingested, and the
    pass reported 982,632 events/s on 0 CPU-seconds."""
    worker = _growing_then_warm_worker(tmp_path)
    worker.snapshots.append(Snapshot(131.0, {}, 0))
    with pytest.raises(PeerFailedError, match="report 0 of 30000 events ingested"):
        summarise_pass([worker], 30_000, "app")


def test_stopping_a_worker_stops_its_scrapes_before_the_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _soak_worker(tmp_path)
    worker.process = subprocess.Popen(["sleep", "30"])
    worker._scraper = threading.Thread(target=worker._scrape_loop, daemon=True)
    worker._scraper.start()
    scraping_at_signal: list[bool] = []
    send = worker.process.send_signal

    def record(sig: int) -> None:
        assert worker._scraper is not None
        scraping_at_signal.append(worker._scraper.is_alive())
        send(sig)

    monkeypatch.setattr(worker.process, "send_signal", record)
    worker.stop()
    assert scraping_at_signal == [False]
    assert worker.process.returncode is not None


def test_no_second_half_without_samples_or_when_one_scrape_saw_everything(
    tmp_path: Path,
) -> None:
    worker = _growing_then_warm_worker(tmp_path)
    assert worker.sampler is not None
    worker.sampler.samples = [s for s in worker.sampler.samples if s.at < 110.0]
    assert second_half([worker], 30_000, 100.0, 130.0) is None
    tiny = _soak_worker(tmp_path)
    tiny.sampler = ProcessSampler(pid=0)
    tiny.sampler.samples += [Sample(1.0, 0, 0.0), Sample(2.0, 0, 1.0)]
    tiny.snapshots += [Snapshot(1.5, {INGESTED: 0.0}, 3), Snapshot(1.9, {INGESTED: 50.0}, 3)]
    assert second_half([tiny], 50, 1.0, 2.0) is None
    assert _system_share([tiny], 1.0, 2.0) == 0.0


def test_core_heap_refuses_a_core_without_the_counting_allocator() -> None:
    import types

    from bench import core_heap
    from bench.errors import BenchError

    installed = types.SimpleNamespace(__file__="site-packages/shopfunnel_core.so")
    with pytest.raises(BenchError, match="not the heap-count build"):
        core_heap.require_counting(installed)
    counting = types.SimpleNamespace(heap_live_bytes=lambda: 0)
    assert core_heap.require_counting(counting) is counting


def _setup(tmp_path: Path) -> FullSetup:
    from bench.dataset import Dataset

    return FullSetup(
        Dataset(SimConfig(), [], [], {}), "127.0.0.1:1", 4, tmp_path, 10.0, lambda _: None
    )


def test_a_pinned_worker_and_every_thread_it_starts_run_on_its_cpu(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = _worker_configs(_setup(tmp_path), new_topics("t"), "app", "pin", 1)[0]
    assert config.pin_prefix() == []  # unpinned by default
    pinned = dataclasses.replace(config, cpus=(0,))
    child = (
        "import os, threading\n"
        "seen = [sorted(os.sched_getaffinity(0))]\n"
        "t = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))\n"
        "t.start(); t.join(); print(seen)"
    )
    out = subprocess.run(
        [*pinned.pin_prefix(), sys.executable, "-c", child],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[[0], [0]]"


def test_pinned_scaling_compares_one_cpu_per_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.full as full

    runs: list[tuple[int, str, bool]] = []

    def fake_saturation(
        setup: FullSetup, topics: Any, total: int, workers: int, label: str, pin: bool = False
    ) -> dict[str, Any]:
        runs.append((workers, label, pin))
        return {"events_per_s": 10_000.0 * workers * 0.9 if workers > 1 else 10_000.0}

    monkeypatch.setattr(full, "run_saturation", fake_saturation)
    monkeypatch.setattr(full.os, "cpu_count", lambda: 2)
    result = full._pinned_scaling(_setup(tmp_path), new_topics("t"), 100, 2)
    assert runs == [(1, "sat1-pinned", True), (2, "sat2-pinned", True)]
    assert result["speedup"] == 1.8
    monkeypatch.setattr(full.os, "cpu_count", lambda: 1)
    assert "skipped" in full._pinned_scaling(_setup(tmp_path), new_topics("t"), 100, 2)


def test_handover_hands_every_state_back_and_recovers_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``bench.handover``: the states a core held go into a real Faust store and a new
    core recovers every one of them (the function checks both counts), each step timed."""
    from bench import handover, state_memory

    monkeypatch.setattr(state_memory, "CACHE_DIR", tmp_path)
    states, meta = handover.simulated_states(1_000, 1.0)
    assert len(states) > 30 and meta
    seconds = handover.one_handover(states, meta, len(states) * 3)
    assert set(seconds) == {"held_states", "write_back", "recover"}
    assert all(v >= 0 for v in seconds.values())
    assert seconds["recover"] > 0
