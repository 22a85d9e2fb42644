"""The experiment readout's SQL (``reports/experiment_readout.py``) against the truth, on
visitors the simulator never makes: mixed, unknown and partly unassigned.

The simulator gives every visitor one sticky variant on every event, so the end-to-end
test (tests/integration/test_experiments_e2e.py) never sees a mixed visitor or an
unknown value. Here simulated records (with duplicates, out-of-order, late and malformed
records) are rewritten per event, deterministically, so that byte copies stay copies:

- a tenth of the visitors carry the other variant on about a quarter of their events
  (mixed after the exposure, or exposed by the other variant when it comes first);
- a tenth carry a value no variant has on about a third of their events (unknown before
  the exposure, mixed after it);
- a tenth lose the experiments on about half of their events;
- a tenth carry only the unknown value (never exposed, counted as unknown);
- a fifth carry the experiments only after their first purchase, so that it is before
  the exposure (left out of the revenue; in CUPED's pre-exposure covariates).

The records then go through the real core into embedded ClickHouse
(``tests/core_store.py``), and each experiment's sufficient statistics must equal
``simulator/truth_experiments.py``, for both exposure rules, a funnel and a revenue
primary, and both CUPED covariates.
"""

from __future__ import annotations

import dataclasses
import gc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

import streams
from reports.experiment_readout import JOINS_AS_WRITTEN, experiment_sums, join_settings
from schemas.codec import EventCodec
from schemas.model import Event
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.records import SimRecord
from simulator.truth_experiments import ExperimentTruth, experiment_truth
from sinks.clickhouse import BACKGROUND_READ_SETTINGS, ClickHouseTarget, open_client
from streams.experiments import ExperimentDef, load_experiments
from streams.funnels import load_funnels
from tests.core_store import DAYS_LIFECYCLE, fill_store
from tests.experiment_sums import normalised

FUNNELS_FILE: Final = Path(streams.__file__).parent / "funnels.yaml"
CONFIG: Final = SimConfig(
    seed=77,
    users=500,
    days=1,
    duplicate_pct=3,
    out_of_order_pct=5,
    late_pct=2,
    malformed_pct=1,
    json_pct=10,
)
EXPERIMENTS: Final = """
experiments:
  - name: checkout_button
    variants: [A, B]
    control: A
    primary: {funnel: checkout, step: purchase}
    guardrails: [payment_failure_rate, refund_rate]
    cuped: pre_exposure_activity
  - name: free_shipping_banner
    variants: [control, treatment]
    control: control
    primary: revenue_per_user
    guardrails: [payment_failure_rate]
    exposure: {event: view_item}
    cuped: {covariate: pre_exposure_revenue, lookback: 1d}
  - name: banner_from_first_event
    variants: [control, treatment]
    control: control
    primary: revenue_per_user
    cuped: {covariate: pre_exposure_revenue, lookback: 10s}  # shorter than some gaps
"""
# The third experiment's value is the banner's, on the same events: exposed at the first
# of them, so that groups 4 and 5 have pre-exposure revenue; its lookback is shorter than
# some of their gaps from the purchase to the exposure, so that it is tested too.
COPIED: Final = ("free_shipping_banner", "banner_from_first_event")
OTHER: Final = {"A": "B", "B": "A", "control": "treatment", "treatment": "control"}
UNKNOWN: Final = "C"


def _bucket(text: str, n: int) -> int:
    return zlib.crc32(text.encode()) % n


def rewritten(event: Event, first_purchase_ms: dict[str, int]) -> Event:
    """The event's experiments as this test's visitor groups carry them (a function of
    the event and its visitor's first purchase time, so duplicates stay identical)."""
    group, mark = _bucket(event.anonymous_id, 10), _bucket(event.event_id, 12)
    experiments = dict(event.experiments)
    source, copy = COPIED
    if source in experiments:
        experiments[copy] = experiments[source]
    if group == 0 and mark % 4 == 0:
        experiments = {name: OTHER[value] for name, value in experiments.items()}
    elif group == 1 and mark % 3 == 0:
        experiments = dict.fromkeys(experiments, UNKNOWN)
    elif group == 2 and mark % 2 == 0:
        experiments = {}
    elif group == 3:
        experiments = dict.fromkeys(experiments, UNKNOWN)
    elif group in (4, 5) and event.event_time_ms <= first_purchase_ms.get(event.anonymous_id, -1):
        experiments = {}
    return dataclasses.replace(event, experiments=experiments)


def rewritten_records(codec: EventCodec) -> list[SimRecord]:
    records = list(generate(CONFIG))
    first_purchase_ms: dict[str, int] = {}
    for record in records:
        e = record.event
        if e is not None and e.event_type == "purchase":
            known = first_purchase_ms.get(e.anonymous_id, e.event_time_ms)
            first_purchase_ms[e.anonymous_id] = min(known, e.event_time_ms)
    out = []
    for record in records:
        if record.event is None:  # malformed: stays as sent
            out.append(record)
            continue
        event = rewritten(record.event, first_purchase_ms)
        as_json = record.value.startswith(b"{")
        value = codec.encode_json(event) if as_json else codec.encode_avro(event)
        out.append(dataclasses.replace(record, value=value, event=event))
    return out


@pytest.fixture(scope="module")
def experiments(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExperimentDef, ...]:
    path = tmp_path_factory.mktemp("experiments") / "experiments.yaml"
    path.write_text(EXPERIMENTS)
    return load_experiments(path, load_funnels(FUNNELS_FILE))


@pytest.fixture(scope="module")
def records() -> list[SimRecord]:
    return rewritten_records(EventCodec())


def truth_of(
    records: list[SimRecord], experiments: tuple[ExperimentDef, ...]
) -> dict[str, ExperimentTruth]:
    """Every experiment's sums by the simulator's oracle, from the same records."""
    return experiment_truth(
        records,
        experiments,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
    )


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> ClickHouseTarget:
    data_dir = tmp_path_factory.mktemp("experiment-sql")
    return ClickHouseTarget(dsn=f"chdb://{data_dir / 'clickhouse'}", database="shop")


@pytest.fixture(scope="module")
def client(target: ClickHouseTarget, records: list[SimRecord]) -> Iterator[Any]:
    gc.collect()  # chDB has one engine per process: let other modules' clients go first
    handle = open_client(target)
    try:
        fill_store(handle, CONFIG, FUNNELS_FILE, DAYS_LIFECYCLE, records)
        yield handle
    finally:
        handle.close()
        gc.collect()


def test_the_rewrite_makes_mixed_unknown_and_unassigned_visitors(
    records: list[SimRecord],
) -> None:
    changed = [r for r in records if r.event is not None and r.event.experiments != {}]
    values = {v for r in changed if r.event is not None for v in r.event.experiments.values()}
    assert UNKNOWN in values
    assert any(r.event is not None and not r.event.experiments for r in records)
    # Purchases before the exposure: without the experiments, by visitors who carry them.
    later = {r.event.anonymous_id for r in records if r.event and r.event.experiments}
    early_purchases = [
        r.event
        for r in records
        if r.event is not None
        and r.event.event_type == "purchase"
        and not r.event.experiments
        and r.event.anonymous_id in later
    ]
    assert len(early_purchases) > 5


@pytest.mark.parametrize("name", ["checkout_button", "free_shipping_banner", COPIED[1]])
def test_the_sums_equal_the_truth_with_mixed_and_unknown_visitors(
    name: str, client: Any, records: list[SimRecord], experiments: tuple[ExperimentDef, ...]
) -> None:
    truth = truth_of(records, experiments)[name]
    exp = next(e for e in experiments if e.name == name)
    got, want = normalised(experiment_sums(client, exp)), normalised(truth)
    assert got == want
    # Not a trivial comparison: every kind of visitor is there.
    assert want["mixed"] > 10 and want["unknown"] > 10
    assert set(want["unknown_values"]) == {UNKNOWN}
    assert all(v["exposed"] > 50 for v in want["variants"].values())
    assert any(v["orders"] > 0 for v in want["variants"].values())
    assert any(v["cuped"] for v in want["variants"].values())
    if name == COPIED[1]:  # pre-exposure revenue, the covariate x, summed
        assert any(c[3] > 0 for v in want["variants"].values() for c in v["cuped"].values())


# Every GROUP BY two-level from its first key and spilled past its first byte: the
# monitors' reads spill past 32 MiB (sinks/clickhouse.py), which this store never reaches.
SPILL_EVERY_GROUP_BY: Final = {
    **BACKGROUND_READ_SETTINGS,
    "max_bytes_before_external_group_by": 1,
    "group_by_two_level_threshold": 1,
    "group_by_two_level_threshold_bytes": 1,
}
_SPILLS: Final = "SELECT sum(value) FROM system.events WHERE event = 'ExternalAggregationWritePart'"


@pytest.mark.parametrize("name", ["checkout_button", COPIED[0]])
def test_the_sums_stay_exact_when_the_aggregations_spill_to_disk(
    name: str,
    client: Any,
    target: ClickHouseTarget,
    records: list[SimRecord],
    experiments: tuple[ExperimentDef, ...],
) -> None:
    """What a monitor reads past 32 MiB of aggregation state, forced here on a small store:
    the truth's numbers from aggregations written to disk and merged back."""
    truth = truth_of(records, experiments)[name]
    exp = next(e for e in experiments if e.name == name)
    spilling = open_client(target, settings=SPILL_EVERY_GROUP_BY)
    try:
        before = int(spilling.query(_SPILLS).result_rows[0][0])
        got = normalised(experiment_sums(spilling, exp))
        spilled = int(spilling.query(_SPILLS).result_rows[0][0]) - before
    finally:
        spilling.close()
    assert spilled > 0  # the evaluation did spill (one part per aggregation at least)
    assert got == normalised(truth)
    assert got == normalised(experiment_sums(client, exp))  # and so did the unspilled read


def test_the_joins_run_as_written_where_the_reader_may_say_so(
    client: Any,
    target: ClickHouseTarget,
    records: list[SimRecord],
    experiments: tuple[ExperimentDef, ...],
) -> None:
    """The engine here has the setting: the joins build on the exposed visitors. A read-only
    reader may not change it, and gets the same numbers with the planner's choice."""
    assert join_settings(client) == JOINS_AS_WRITTEN
    read_only = open_client(target, settings={"readonly": 1})
    try:
        assert join_settings(read_only) == {}
        exp = next(e for e in experiments if e.name == "checkout_button")
        got = normalised(experiment_sums(read_only, exp))
    finally:
        read_only.close()
    truth = truth_of(records, experiments)["checkout_button"]
    assert got == normalised(truth)
