"""Money shown per currency: the ISO 4217 exponent, in reports, dashboards and metrics."""

from __future__ import annotations

from decimal import Decimal

import clickhouse_connect
from prometheus_client import CollectorRegistry

from deploy.grafana.dashboards import CH_MINOR_PER_MAJOR
from reports.money import format_money, to_major
from schemas.iso4217 import MINOR_UNIT_EXPONENT
from sinks.metrics import PipelineMetrics


def test_format_money_uses_each_currencys_exponent_and_symbol() -> None:
    assert format_money(169_914, "JPY") == "¥169,914"
    assert format_money(9_823_000, "KRW") == "₩9,823,000"
    assert format_money(9_852_154, "CNY") == "CN¥98,521.54"
    assert format_money(1299, "USD") == "$12.99"
    assert format_money(1234, "KWD") == "KWD1.234"
    assert to_major(Decimal("2123925") / 100, "JPY") == Decimal("21239")  # an average
    assert format_money(1299, "XYZ") == "1,299 minor units XYZ"


def test_the_clickhouse_divisor_matches_iso_4217_for_every_code() -> None:
    client = clickhouse_connect.get_client(dsn="chdb://memory")
    try:
        rows = client.query(
            f"SELECT currency, {CH_MINOR_PER_MAJOR} FROM "
            "(SELECT arrayJoin({codes:Array(String)}) AS currency)",
            parameters={"codes": sorted(MINOR_UNIT_EXPONENT)},
        ).result_rows
    finally:
        client.close()
    assert {code: int(div) for code, div in rows} == {
        code: 10**e for code, e in MINOR_UNIT_EXPONENT.items()
    }


def test_the_worker_exports_the_scale_of_each_currency_it_counts() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    for code in ("JPY", "USD", "KWD", "", "none"):
        metrics.currency_seen(code)
    name = "shopfunnel_currency_minor_units_per_major"
    assert registry.get_sample_value(name, {"currency": "JPY"}) == 1
    assert registry.get_sample_value(name, {"currency": "USD"}) == 100
    assert registry.get_sample_value(name, {"currency": "KWD"}) == 1000
    assert registry.get_sample_value(name, {"currency": "none"}) is None
