"""The simulator: determinism, the Kafka layout, knobs, realism of the population."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path

import pytest

from schemas.channels import CHANNELS, ChannelRules
from schemas.model import Event
from schemas.reasons import Reason, Rejection
from simulator.behaviour import Visitor, completion_probability
from simulator.catalog import CHECKOUT_BUTTON, COUNTRIES, LAUNCH_SOURCE, TRAFFIC_SOURCES
from simulator.config import SimConfig
from simulator.errors import SimConfigError
from simulator.generate import SimRecord, generate, make_codec
from simulator.partitioner import partition_for
from simulator.truth import compute_truth, write_truth
from simulator.truth_model import LifecycleParams

KNOBS = SimConfig(
    users=400,
    days=0.25,
    duplicate_pct=5,
    out_of_order_pct=10,
    late_pct=3,
    malformed_pct=4,
    json_pct=20,
    include_too_old=True,
)


@cache
def run(config: SimConfig) -> tuple[SimRecord, ...]:
    return tuple(generate(config))


def fingerprint(records: tuple[SimRecord, ...]) -> list[tuple[object, ...]]:
    return [(r.stream, r.partition, r.key, r.value, r.send_time_ms) for r in records]


def truth_bytes(records: tuple[SimRecord, ...], path: Path) -> bytes:
    truth = compute_truth(records, lateness_ms=300_000, session_timeout_ms=1_800_000)
    write_truth(truth, path)
    return path.read_bytes()


# -- determinism -------------------------------------------------------------------------------


def test_same_config_gives_identical_bytes_and_truth(tmp_path: Path) -> None:
    first = tuple(generate(KNOBS))
    second = tuple(generate(KNOBS))
    assert fingerprint(first) == fingerprint(second)
    assert truth_bytes(first, tmp_path / "a.json") == truth_bytes(second, tmp_path / "b.json")


def test_a_different_seed_gives_different_traffic(tmp_path: Path) -> None:
    other = tuple(generate(dataclasses.replace(KNOBS, seed=43)))
    assert fingerprint(other) != fingerprint(run(KNOBS))
    assert truth_bytes(other, tmp_path / "a.json") != truth_bytes(run(KNOBS), tmp_path / "b.json")


# -- the Kafka layout -----------------------------------------------------------------------------


def test_records_are_keyed_by_visitor_on_kafkas_default_partition() -> None:
    for record in run(KNOBS):
        assert record.partition == partition_for(record.key, KNOBS.partitions)
        if record.event is not None:
            assert record.key == record.event.anonymous_id.encode()
            assert record.stream == record.event.stream


def test_records_come_in_send_order() -> None:
    times = [r.send_time_ms for r in run(KNOBS)]
    assert times == sorted(times)


def test_every_record_decodes_to_its_event_or_its_rejection() -> None:
    codec = make_codec(KNOBS)
    for record in run(KNOBS):
        decoded = codec.decode(record.value, record.stream, record.send_time_ms)
        if record.event is None:
            assert isinstance(decoded, Rejection)
            assert decoded.reason == record.malformed_reason, decoded.detail
        else:
            assert decoded == record.event


# -- knobs -------------------------------------------------------------------------------------


def share(count: int, total: int) -> float:
    return 100.0 * count / total


def test_knobs_produce_what_they_say() -> None:
    records = run(KNOBS)
    total = len(records)
    valid = [r for r in records if r.event is not None]
    truth = compute_truth(records, lateness_ms=300_000, session_timeout_ms=1_800_000)
    assert share(sum(r.is_duplicate for r in records), total) == pytest.approx(5, abs=2)
    assert share(sum(r.out_of_order for r in records), total) == pytest.approx(10, abs=3)
    assert share(sum(r.intended_late for r in records), total) == pytest.approx(3, abs=1.5)
    assert share(truth.stats["malformed"], total) == pytest.approx(4, abs=1.5)
    json_share = share(sum(r.value[:1] == b"{" for r in valid), len(valid))
    assert json_share == pytest.approx(20, abs=4)
    # Late means late by the rule of semantics.md §1.2, and duplicates are dropped.
    assert truth.stats["late"] >= 0.9 * sum(r.intended_late for r in records)
    assert truth.stats["intended_late_mismatches"] <= 0.1 * truth.stats["late"]
    assert truth.stats["duplicates_dropped"] > 0
    assert truth.stats["duplicates_dropped"] + truth.stats["purchase_duplicates_dropped"] <= sum(
        r.is_duplicate for r in records
    )


def test_out_of_order_records_stay_on_time() -> None:
    truth = compute_truth(run(KNOBS), lateness_ms=300_000, session_timeout_ms=1_800_000)
    for record in run(KNOBS):
        if record.out_of_order and record.event is not None and not record.is_duplicate:
            assert record.event.event_id not in truth.late_event_ids


def test_purchases_are_resent_with_a_new_event_id_and_the_same_transaction() -> None:
    config = dataclasses.replace(KNOBS, users=1500, duplicate_pct=30, late_pct=0)
    purchases = [r.event for r in run(config) if r.event and r.event.event_type == "purchase"]
    ids_by_txn: dict[str | None, set[str]] = defaultdict(set)
    for event in purchases:
        ids_by_txn[event.transaction_id].add(event.event_id)
    assert any(len(ids) > 1 for ids in ids_by_txn.values())
    truth = compute_truth(run(config), lateness_ms=300_000, session_timeout_ms=1_800_000)
    assert sum(r.orders for r in truth.kpi) == len(ids_by_txn)


def test_every_dead_letter_reason_appears() -> None:
    config = dataclasses.replace(KNOBS, malformed_pct=40)
    reasons = {r.malformed_reason for r in run(config) if r.malformed_reason is not None}
    assert reasons == set(Reason)
    without_flag = dataclasses.replace(config, include_too_old=False)
    reasons = {r.malformed_reason for r in run(without_flag) if r.malformed_reason is not None}
    assert reasons == set(Reason) - {Reason.EVENT_TIME_TOO_OLD}


def test_no_knobs_means_clean_avro_traffic() -> None:
    records = run(SimConfig(users=200, days=0.1))
    assert all(r.event is not None and r.value[:1] == b"\x00" for r in records)
    assert not any(r.is_duplicate or r.intended_late or r.out_of_order for r in records)


@pytest.mark.parametrize(
    "changes",
    [
        {"users": 0},
        {"days": 0},
        {"duplicate_pct": 101},
        {"late_pct": -1},
        {"scenario": "meteor-strike"},
        {"partitions": 0},
    ],
)
def test_bad_options_are_rejected_with_the_option_named(changes: dict[str, object]) -> None:
    with pytest.raises(SimConfigError, match="invalid simulation option"):
        SimConfig(**changes)  # type: ignore[arg-type]


# -- realism -----------------------------------------------------------------------------------


def clean_events(config: SimConfig) -> list[Event]:
    return [r.event for r in run(config) if r.event is not None]


def test_sessions_start_with_session_start_and_carry_one_context() -> None:
    sessions: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for event in clean_events(SimConfig(users=300, days=0.5)):
        sessions[(event.anonymous_id, event.session_id)].append(event)
    browsing = {k: v for k, v in sessions.items() if not k[1].startswith("srv-")}
    assert len(browsing) > 250
    for events in browsing.values():
        events.sort(key=lambda e: (e.event_time_ms, e.event_type != "session_start"))
        assert events[0].event_type == "session_start"
        contexts = {
            (
                e.utm_source,
                e.utm_medium,
                e.utm_campaign,
                e.referrer,
                e.device,
                e.platform,
                e.country,
            )
            for e in events
        }
        assert len(contexts) == 1


def test_sign_up_sets_user_id_mid_session_and_anonymous_id_stays() -> None:
    events = clean_events(SimConfig(users=500, days=0.3))
    by_session: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_session[event.session_id].append(event)
    checked = 0
    for session in by_session.values():
        session.sort(key=lambda e: e.event_time_ms)
        types = [e.event_type for e in session]
        if "sign_up" in types and session[0].user_id is None:
            at = types.index("sign_up")
            assert all(e.user_id is None for e in session[:at])
            assert {e.user_id for e in session[at:]} == {session[at].user_id}
            assert len({e.anonymous_id for e in session}) == 1
            checked += 1
    assert checked > 5


def test_step_events_sometimes_share_a_millisecond_and_carts_are_re_entered() -> None:
    events = clean_events(SimConfig(users=3000, days=0.2))
    by_session: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_session[event.session_id].append(event)
    same_ms = re_entered = 0
    for session in by_session.values():
        starts = {e.event_time_ms for e in session if e.event_type == "session_start"}
        same_ms += any(e.event_type == "view_item" and e.event_time_ms in starts for e in session)
        re_entered += sum(e.event_type == "add_to_cart" for e in session) > 1
    assert same_ms > 0
    assert re_entered > 0


def test_some_sessions_resume_after_the_timeout_with_the_same_id() -> None:
    config = SimConfig(users=3000, days=0.2)
    truth = compute_truth(run(config), lateness_ms=300_000, session_timeout_ms=1_800_000)
    assert truth.stats["session_segments"] > truth.stats["sessions"]


def test_traffic_sources_cover_every_channel() -> None:
    rules = ChannelRules.load()
    channels = {
        rules.classify(s.utm_source, s.utm_medium, s.referrer)
        for s in (*TRAFFIC_SOURCES, LAUNCH_SOURCE)
    }
    assert channels == set(CHANNELS)


def test_countries_use_their_currency_and_all_devices_platforms_appear() -> None:
    events = clean_events(SimConfig(users=600, days=0.3))
    currency_of = {c.code: c.currency for c in COUNTRIES}
    for event in events:
        if event.currency is not None:
            assert event.currency == currency_of[event.country]
    assert {e.device for e in events} == {"desktop", "mobile", "tablet"}
    assert {e.platform for e in events} == {"web", "app", "mini_program"}
    assert {e.currency for e in events} >= {"CNY", "USD", "EUR", "GBP", "JPY"}


def test_multi_day_runs_have_returning_visitors_repeat_orders_and_refunds() -> None:
    config = SimConfig(users=1500, days=12)
    truth = compute_truth(run(config), lateness_ms=300_000, session_timeout_ms=1_800_000)
    returning = sum(
        r.users
        for r in truth.retention
        if (r.cohort_kind, r.granularity, r.activity) == ("first_visit", "day", "visit")
        and r.period >= 1
    )
    assert returning > 20
    assert sum(r.repeat_orders for r in truth.kpi) > 0
    assert sum(r.refunds for r in truth.kpi) > 0
    assert sum(r.coupon_orders for r in truth.kpi) > 0


def test_month_long_runs_give_weekly_cohorts_repeat_buyers_lifecycle_and_carts() -> None:
    records = run(SimConfig(users=1000, days=28))
    fast = LifecycleParams.from_days(rfm_new_days=1, rfm_dormant_days=3, rfm_churn_days=7)
    truth = compute_truth(records, lateness_ms=300_000, session_timeout_ms=1_800_000)
    small = compute_truth(
        records, lateness_ms=300_000, session_timeout_ms=1_800_000, lifecycle=fast
    )
    later: Counter[tuple[str, str, str]] = Counter()
    for r in truth.retention:
        if r.period >= 1:
            later[(r.cohort_kind, r.granularity, r.activity)] += r.users
    assert later[("first_visit", "week", "visit")] > 50
    assert later[("first_purchase", "week", "repeat_purchase")] >= 3
    assert sum(g.orders for g in truth.order_gaps) >= 8
    assert truth.stats["triggers_cart_abandoned"] > 50
    kinds = {(t.from_stage, t.to_stage) for t in small.transitions}
    assert kinds >= {
        ("prospect", "new"),
        ("new", "active"),
        ("active", "dormant"),
        ("dormant", "churned"),
        ("dormant", "active"),
        ("churned", "active"),
    }
    assert small.stats["triggers_user_reactivated"] >= 3


def test_checkout_button_b_lifts_completion_by_exactly_the_configured_amount() -> None:
    def visitor(variant: str) -> Visitor:
        return Visitor(
            index=0,
            anonymous_id="a",
            country=COUNTRIES[0],
            platform="web",
            device="desktop",
            experiments={CHECKOUT_BUTTON.name: variant},
            acquisition=TRAFFIC_SOURCES[0],
        )

    for source in TRAFFIC_SOURCES:
        a = completion_probability(visitor("A"), source, 0.15)
        b = completion_probability(visitor("B"), source, 0.15)
        assert b == pytest.approx(a * 1.15)
        assert b < 1.0


def test_variants_are_balanced_and_the_truth_records_the_effect() -> None:
    config = SimConfig(users=1000, days=0.2)
    records = run(config)
    visitors = {r.event.anonymous_id: r.event.experiments for r in records if r.event}
    variants = Counter(e[CHECKOUT_BUTTON.name] for e in visitors.values())
    assert abs(variants["A"] - variants["B"]) < 0.1 * len(visitors)
    truth = compute_truth(
        records,
        lateness_ms=300_000,
        session_timeout_ms=1_800_000,
        true_effects={"checkout_button": 0.15},
    )
    assert truth.true_effects == {"checkout_button": 0.15}
    assert {
        (r.funnel, r.variant) for r in truth.experiments if r.experiment == "checkout_button"
    } == {
        ("shop", "A"),
        ("shop", "B"),
        ("checkout", "A"),
        ("checkout", "B"),
    }


DIGEST_SCRIPT = """
import hashlib
from simulator.config import SimConfig
from simulator.generate import generate
config = SimConfig(users=150, days=0.1, duplicate_pct=5, out_of_order_pct=5, late_pct=2,
                   malformed_pct=5, json_pct=10, include_too_old=True)
digest = hashlib.sha256()
for r in generate(config):
    digest.update(f"{r.stream}:{r.partition}:{r.send_time_ms}:".encode() + r.value)
print(digest.hexdigest())
"""


def test_bytes_do_not_depend_on_the_process_hash_seed() -> None:
    repo = Path(__file__).resolve().parents[2]
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(repo)}
        completed = subprocess.run(
            [sys.executable, "-c", DIGEST_SCRIPT],
            env=env,
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        digests.add(completed.stdout.strip())
    assert len(digests) == 1
    assert len(digests.pop()) == 64
