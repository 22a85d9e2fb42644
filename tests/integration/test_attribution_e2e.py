"""Attribution and ROI end to end (issue #15, docs/semantics.md section 10).

Five simulated days (returning visitors with several sessions, refunds, duplicates,
disorder, late and malformed records) are produced live while a worker is SIGKILLed
twice; the simulator's costs.csv is imported twice through `funnel costs import`. Then:

- every `order_attribution` row equals the simulator's truth (with the other tables);
- for each model, the credited revenue sums exactly to GMV per currency;
- `v_attribution_daily` (orders, revenue, refunds, new customers, cost, ROAS, CPA, CAC)
  and `v_acquisition_ltv` equal the truth and the CSV;
- the ROAS gauges of a live worker equal the truth's ROAS for the last day;
- `funnel report attribution`, read live through the worker's SQL endpoint, prints ROAS
  per channel under every model.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest

from funnel.settings import load_settings
from reports.attribution import read_daily_roi, read_ltv
from simulator.config import SimConfig
from simulator.costs import campaign_costs, write_costs
from simulator.generate import generate
from simulator.records import SimRecord
from simulator.truth import compute_truth
from simulator.truth_attribution import MODELS, AttributionConfig, attribution_truth_of
from simulator.truth_model import Truth
from streams.topics import ensure_topics
from tests.integration.live_traffic import LiveTraffic
from tests.pipeline_harness import (
    REPO_ROOT,
    PipelineEnv,
    WorkerProcess,
    assert_matches_truth,
    clickhouse,
    free_port,
    run_until_idle,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CONFIG = SimConfig(
    seed=21,
    users=2000,
    days=5,
    duplicate_pct=3,
    out_of_order_pct=8,
    late_pct=1.5,
    malformed_pct=1,
    json_pct=10,
)
MICRO = 1_000_000


@pytest.fixture(scope="module")
def simulated() -> tuple[list[SimRecord], Truth]:
    records = list(generate(CONFIG))
    truth = compute_truth(
        records,
        lateness_ms=CONFIG.lateness_ms,
        session_timeout_ms=CONFIG.session_timeout_ms,
        window_ms=CONFIG.window_ms,
        inputs_finished=True,
    )
    return records, truth


def _import_costs(env: PipelineEnv, path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "funnel.cli", "costs", "import", str(path)],
        env={**env.env(free_port()), "COLUMNS": "200"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _wait(what: str, check: Any, worker: WorkerProcess, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited early; log:\n{worker.log_tail()}")
        try:
            value = check()
        except Exception as exc:  # the endpoint is not up yet
            last = exc
        else:
            if value is not None:
                return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not reached in {timeout:.0f} s ({last!r})")


def test_attribution_and_roi_equal_the_truth_after_kills_and_a_double_import(
    kafka_bootstrap: str, simulated: tuple[list[SimRecord], Truth], tmp_path: Path
) -> None:
    records, truth = simulated
    attribution = attribution_truth_of(
        records, AttributionConfig(window_ms=CONFIG.window_ms), lateness_ms=CONFIG.lateness_ms
    )
    assert any(cell.refunded_micro for cell in attribution.roi.values()), "need refunds"
    costs = campaign_costs(CONFIG)
    costs_csv = tmp_path / "costs.csv"
    write_costs(costs, costs_csv)

    sql_port = free_port()
    env = PipelineEnv.with_fresh_topics(
        kafka_bootstrap,
        tmp_path / "pipeline",
        extra={"FUNNEL_SQL_PORT": str(sql_port), "FUNNEL_ATTRIBUTION_EVAL_SECONDS": "1"},
    )
    ensure_topics(
        load_settings(bootstrap_servers=env.bootstrap, topics=env.topics, partitions=env.partitions)
    )
    _import_costs(env, costs_csv)
    # Paced over ~40 s so the input is still arriving at the kills; the rest at once after.
    traffic = LiveTraffic(records, env.bootstrap, env.topics, rate=len(records) / 40.0).start()
    rnd = random.Random(15)
    for round_ in range(2):
        worker = WorkerProcess(env, until_idle=None, name=f"killed-{round_}")
        worker.wait_for_metric("shopfunnel_events_ingested_total", 1, timeout=120)
        time.sleep(rnd.uniform(1.0, 4.0))
        worker.kill()
        if round_ == 0:
            # The same file again, between the kills: it must change nothing.
            _import_costs(env, costs_csv)
    sent_at_last_kill = traffic.hurry()
    traffic.join(180)
    assert sent_at_last_kill < len(records), "input must still be arriving at the last kill"

    # A live worker: its gauges show the last day's ROAS per channel and model.
    live = WorkerProcess(env, until_idle=None, name="live")
    want_gauges = _expected_gauges(attribution, costs)
    endpoint = _wait(
        "the SQL endpoint",
        lambda: clickhouse_connect.get_client(host="127.0.0.1", port=sql_port, database="shop"),
        live,
    )
    _wait(
        "every order attributed",
        lambda: True if _attributed(endpoint) == len(attribution.rows) else None,
        live,
    )
    got_gauges = _wait(
        "the ROAS gauges",
        lambda: _gauges_if_equal(live, want_gauges),
        live,
        timeout=120,
    )
    assert got_gauges, "no ROAS gauge to compare"
    _assert_report_shows_every_model(env)  # read live, through the worker's SQL endpoint
    live.terminate()
    assert live.wait(60) == 0
    # Declares the inputs finished, as the truth assumes. Everything is in the topics
    # before it starts: a second of idleness means read to the end.
    run_until_idle(env, name="final", until_idle=1.0)

    client = clickhouse(env)
    try:
        assert_matches_truth(env, truth, records)
        gmv: dict[str, int] = defaultdict(int)
        for row in truth.kpi:
            gmv[row.currency] += row.gmv_minor
        credited = client.query(
            "SELECT model, currency, sum(value_minor * share_micro) FROM order_attribution FINAL "
            "WHERE share_micro > 0 GROUP BY ALL"
        ).result_rows
        for model in MODELS:
            by_currency = {str(c): int(v) for m, c, v in credited if m == model}
            assert by_currency == {c: v * MICRO for c, v in gmv.items() if v}, model

        want_roi = {
            tuple(k): (c.orders_micro, c.revenue_micro, c.refunded_micro, c.first_orders_micro)
            for k, c in attribution.roi.items()
            if (c.orders_micro, c.revenue_micro, c.refunded_micro, c.first_orders_micro)
            != (0, 0, 0, 0)
        }
        got_roi = {tuple(k): v for k, v in read_daily_roi(client).items()}
        assert got_roi == want_roi
        want_ltv = {
            tuple(k): (c.customers_micro, c.revenue_d7_micro, c.revenue_d30_micro)
            for k, c in attribution.ltv.items()
        }
        assert {tuple(k): v for k, v in read_ltv(client).items()} == want_ltv
        _assert_cost_measures(client, attribution.roi, costs)
    finally:
        client.close()  # one embedded store per process: the next test opens its own


def _attributed(client: Any) -> int:
    return int(client.command("SELECT count() FROM order_attribution FINAL WHERE share_micro > 0"))


def _cost_of(costs: list[Any]) -> dict[tuple[str, str, str, str], int]:
    out: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for row in costs:
        out[(row.day, row.channel, row.campaign, row.currency)] += row.cost_minor
    return out


def _assert_cost_measures(client: Any, roi: dict[Any, Any], costs: list[Any]) -> None:
    """Each view row's cost is the CSV's for its day, channel, campaign and currency, and
    ROAS, CPA and CAC follow from the truth's numbers and that cost."""
    cost = _cost_of(costs)
    rows = client.query(
        "SELECT toString(day), model, channel, campaign, kol, currency, cost_minor, has_cost, "
        "roas, cpa_minor, cac_minor FROM v_attribution_daily"
    ).result_rows
    with_cost = 0
    for day, model, channel, campaign, kol, currency, cost_minor, has_cost, roas, cpa, cac in rows:
        spent = cost.get((day, channel, campaign, currency))
        assert int(has_cost) == (spent is not None), (day, channel, campaign)
        if spent is None:
            assert roas is None and cpa is None and cac is None
            continue
        with_cost += 1
        assert int(cost_minor) == spent
        cell = roi.get((day, model, channel, campaign, kol, currency))
        net = (cell.revenue_micro - cell.refunded_micro) if cell else 0
        orders = cell.orders_micro if cell else 0
        first = cell.first_orders_micro if cell else 0
        if spent:
            assert Decimal(str(roas)) == pytest.approx(
                Decimal(net) / MICRO / spent, rel=Decimal("1e-9")
            )
        assert (cpa is None) == (orders == 0)
        if orders:
            assert float(cpa) == pytest.approx(spent * MICRO / orders, rel=1e-9)
        assert (cac is None) == (first == 0)
        if first:
            assert float(cac) == pytest.approx(spent * MICRO / first, rel=1e-9)
    # Every day, paid channel and model has a row with the day's cost.
    assert with_cost >= len(cost) * len(MODELS), (with_cost, len(cost))


def _expected_gauges(attribution: Any, costs: list[Any]) -> dict[tuple[str, str], float]:
    """ROAS per (channel, model) on the last day with an order, in CNY (the cost's)."""
    # The monitor's "today": the UTC day of the newest attributed order (not of a refund).
    newest_ms = max(k.order_time_ms for k in attribution.rows)
    last_day = datetime.fromtimestamp(newest_ms // 1000, tz=UTC).date().isoformat()
    spent: dict[str, int] = defaultdict(int)
    for row in costs:
        if row.day == last_day and row.currency == "CNY":
            spent[row.channel] += row.cost_minor
    net: dict[tuple[str, str], int] = defaultdict(int)
    for key, cell in attribution.roi.items():
        if key.day == last_day and key.currency == "CNY" and key.channel in spent:
            net[(key.channel, key.model)] += cell.revenue_micro - cell.refunded_micro
    return {
        (channel, model): net.get((channel, model), 0) / MICRO / spent[channel]
        for channel in spent
        for model in MODELS
        if spent[channel]
    }


def _gauges_if_equal(
    worker: WorkerProcess, want: dict[tuple[str, str], float]
) -> dict[tuple[str, str], float] | None:
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    with urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    got = {
        (s.labels["channel"], s.labels["model"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "shopfunnel_attribution_roas"
    }
    if set(got) != set(want):
        return None
    if any(abs(got[k] - want[k]) > 1e-9 * max(1.0, abs(want[k])) for k in want):
        return None
    return got


def _assert_report_shows_every_model(env: PipelineEnv) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "funnel.cli", "report", "attribution"],
        env={**env.env(free_port()), "COLUMNS": "250"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for model in MODELS:
        assert model in result.stdout, (model, result.stdout[:2000])
    assert "ROAS" in result.stdout
