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
- a tenth carry only the unknown value (never exposed, counted as unknown).

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
from reports.experiment_readout import experiment_sums
from schemas.codec import EventCodec
from schemas.model import Event
from simulator.config import SimConfig
from simulator.generate import generate
from simulator.records import SimRecord
from simulator.truth_experiments import experiment_truth
from sinks.clickhouse import ClickHouseTarget, open_client
from streams.experiments import ExperimentDef, load_experiments
from streams.funnels import load_funnels
from streams.lifecycle import DAY_MS, LifecycleRules
from tests.core_store import fill_store
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
LIFECYCLE: Final = LifecycleRules(
    new_ms=DAY_MS,
    dormant_ms=2 * DAY_MS,
    churn_ms=4 * DAY_MS,
    cart_abandon_ms=30 * 60_000,
    anonymous_ttl_ms=5 * DAY_MS,
    buyer_ttl_ms=12 * DAY_MS,
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
"""
OTHER: Final = {"A": "B", "B": "A", "control": "treatment", "treatment": "control"}
UNKNOWN: Final = "C"


def _bucket(text: str, n: int) -> int:
    return zlib.crc32(text.encode()) % n


def rewritten(event: Event) -> Event:
    """The event's experiments as this test's visitor groups carry them (a function of
    the event alone, so duplicates stay identical)."""
    group, mark = _bucket(event.anonymous_id, 10), _bucket(event.event_id, 12)
    experiments = dict(event.experiments)
    if group == 0 and mark % 4 == 0:
        experiments = {name: OTHER[value] for name, value in experiments.items()}
    elif group == 1 and mark % 3 == 0:
        experiments = dict.fromkeys(experiments, UNKNOWN)
    elif group == 2 and mark % 2 == 0:
        experiments = {}
    elif group == 3:
        experiments = dict.fromkeys(experiments, UNKNOWN)
    else:
        return event
    return dataclasses.replace(event, experiments=experiments)


def rewritten_records(codec: EventCodec) -> list[SimRecord]:
    out = []
    for record in generate(CONFIG):
        if record.event is None:  # malformed: stays as sent
            out.append(record)
            continue
        event = rewritten(record.event)
        if event is record.event:
            out.append(record)
            continue
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


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, records: list[SimRecord]) -> Iterator[Any]:
    gc.collect()  # chDB has one engine per process: let other modules' clients go first
    data_dir = tmp_path_factory.mktemp("experiment-sql")
    target = ClickHouseTarget(dsn=f"chdb://{data_dir / 'clickhouse'}", database="shop")
    handle = open_client(target)
    try:
        fill_store(handle, CONFIG, FUNNELS_FILE, LIFECYCLE, records)
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


@pytest.mark.parametrize("name", ["checkout_button", "free_shipping_banner"])
def test_the_sums_equal_the_truth_with_mixed_and_unknown_visitors(
    name: str, client: Any, records: list[SimRecord], experiments: tuple[ExperimentDef, ...]
) -> None:
    truth = experiment_truth(
        records,
        experiments,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
    )[name]
    exp = next(e for e in experiments if e.name == name)
    got, want = normalised(experiment_sums(client, exp)), normalised(truth)
    assert got == want
    # Not a trivial comparison: every kind of visitor is there.
    assert want["mixed"] > 10 and want["unknown"] > 10
    assert set(want["unknown_values"]) == {UNKNOWN}
    assert all(v["exposed"] > 50 for v in want["variants"].values())
    assert any(v["orders"] > 0 for v in want["variants"].values())
    assert any(v["cuped"] for v in want["variants"].values())
