"""deploy/alertmanager/alertmanager.yml: valid (amtool), routes as documented, and its
inhibition rules checked on a real Alertmanager (127.0.0.1, random port, temp storage)."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deploy.prometheus.alert_rules import build_rule_groups
from tests.prom_fixture import (
    RunningServer,
    alertmanager_server,
    http_json,
    require_binary,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
NOW = dt.datetime.now(dt.UTC)


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    amtool = require_binary("amtool", "prometheus-alertmanager")
    return subprocess.run([amtool, *args], capture_output=True, text=True, timeout=30, check=False)


def test_amtool_accepts_the_config() -> None:
    result = _amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=critical", "category=funnel"], "oncall-pager,growth-team"),
        (["severity=warning", "category=funnel"], "growth-team"),
        (["severity=critical", "category=tracking"], "oncall-pager,tracking-team"),
        (["severity=warning", "category=pipeline"], "data-platform"),
        (["severity=info", "category=unknown"], "default-webhook"),
    ],
)
def test_routes_by_severity_and_category(labels: list[str], receivers: str) -> None:
    result = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={receivers}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_every_rule_alert_has_the_labels_the_routing_uses() -> None:
    for group in build_rule_groups()["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
                assert rule["labels"]["category"] in {"funnel", "tracking", "pipeline"}, rule[
                    "alert"
                ]


def test_inhibition_rules_name_real_alerts_and_categories() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    alerts = {
        rule["alert"]
        for group in build_rule_groups()["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    named: set[str] = set()
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            found = re.fullmatch(r'(\w+)(=~|=)"([^"]*)"', matcher)
            assert found, f"unexpected matcher syntax {matcher!r}"
            label, _, value = found.groups()
            if label == "alertname":
                named.update(value.split("|"))
            elif label == "category":
                assert value in {"funnel", "tracking", "pipeline"}, matcher
    assert named, "the inhibition rules name no alert"
    assert named <= alerts, f"inhibition rules name unknown alerts: {named - alerts}"


def _alert(
    name: str, category: str, severity: str = "critical", *, resolved: bool = False, **labels: str
) -> dict[str, object]:
    alert: dict[str, object] = {
        "labels": {"alertname": name, "category": category, "severity": severity, **labels},
        "startsAt": (NOW - dt.timedelta(minutes=5)).isoformat(),
    }
    if resolved:
        alert["endsAt"] = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
    return alert


FUNNEL_DROP = _alert(
    "FunnelStepConversionDrop", "funnel", "warning", funnel="shop", step="add_to_cart"
)
PURCHASE_DROP = _alert(
    "FunnelStepConversionDrop", "funnel", "warning", funnel="shop", step="purchase"
)
NO_ORDERS = _alert("NoOrders", "funnel")
TRACKING = _alert("TrackingBroken", "tracking", topic="shop.cart")
LAG = _alert("ConsumerLagHigh", "pipeline", "warning", topic="shop.clickstream")
COLLAPSE = _alert("CheckoutPurchaseCollapse", "funnel", funnel="checkout", step="purchase")


def _post(am: RunningServer, *alerts: dict[str, object]) -> None:
    http_json(f"{am.url}/api/v2/alerts", data=json.dumps(list(alerts)).encode())


def _states(am: RunningServer) -> dict[tuple[str, str], str]:
    """(alertname, step or topic) -> 'inhibited' | 'active' for the unresolved alerts."""
    states = {}
    for alert in http_json(f"{am.url}/api/v2/alerts"):
        labels = alert["labels"]
        key = (labels["alertname"], labels.get("step") or labels.get("topic", ""))
        states[key] = "inhibited" if alert["status"]["inhibitedBy"] else alert["status"]["state"]
    return states


def _wait_states(am: RunningServer, expected: dict[tuple[str, str], str]) -> None:
    # The inhibitor learns about new source alerts asynchronously: poll with a deadline.
    wait_for(
        lambda: _states(am) == expected,
        timeout=10,
        interval=0.1,
        what=f"alert states {expected}, last {_states(am)}",
    )


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with alertmanager_server(tmp_path_factory.mktemp("alertmanager"), CONFIG) as am:
        yield am


def test_inhibition_on_a_real_alertmanager(alertmanager: RunningServer) -> None:
    am = alertmanager
    # Funnel alerts on their own reach people.
    _post(am, FUNNEL_DROP, NO_ORDERS)
    _wait_states(
        am, {("FunnelStepConversionDrop", "add_to_cart"): "active", ("NoOrders", ""): "active"}
    )

    # Tracking breaks: the funnel alerts it causes are inhibited, it is not.
    _post(am, TRACKING)
    _wait_states(
        am,
        {
            ("FunnelStepConversionDrop", "add_to_cart"): "inhibited",
            ("NoOrders", ""): "inhibited",
            ("TrackingBroken", "shop.cart"): "active",
        },
    )

    # Tracking fixed, the pipeline lags instead: it also explains funnel alerts.
    _post(am, _alert("TrackingBroken", "tracking", topic="shop.cart", resolved=True))
    _post(am, LAG)
    _wait_states(
        am,
        {
            ("FunnelStepConversionDrop", "add_to_cart"): "inhibited",
            ("NoOrders", ""): "inhibited",
            ("ConsumerLagHigh", "shop.clickstream"): "active",
        },
    )

    # Pipeline healthy; a payment outage inhibits only the purchase-step drop.
    _post(
        am,
        _alert("ConsumerLagHigh", "pipeline", "warning", topic="shop.clickstream", resolved=True),
    )
    _post(am, COLLAPSE, PURCHASE_DROP)
    _wait_states(
        am,
        {
            ("FunnelStepConversionDrop", "add_to_cart"): "active",
            ("FunnelStepConversionDrop", "purchase"): "inhibited",
            ("NoOrders", ""): "active",
            ("CheckoutPurchaseCollapse", "purchase"): "active",
        },
    )
