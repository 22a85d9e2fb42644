"""A small model of Grafana dashboards and alert rules, rendered to provisioning files.

Dashboards are lists of :class:`Panel` entries (``deploy/grafana/dashboards.py``); this
module turns them into Grafana's dashboard JSON with an automatic grid layout, so adding a
panel is one entry and no hand-placed coordinates. Datasources are referenced by the fixed
uids that ``deploy/grafana/provisioning/datasources/`` provisions. The Grafana-managed alert
rules are the Prometheus alerts of ``deploy/prometheus/alert_rules.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from deploy.prometheus.alert_rules import build_rule_groups, to_yaml

PROMETHEUS_UID: Final = "prometheus"
CLICKHOUSE_UID: Final = "clickhouse"
PROMETHEUS_DS: Final = {"type": "prometheus", "uid": PROMETHEUS_UID}
CLICKHOUSE_DS: Final = {"type": "grafana-clickhouse-datasource", "uid": CLICKHOUSE_UID}
GRID_COLUMNS: Final = 24
SCHEMA_VERSION: Final = 39
FOLDER: Final = "Shop funnel"
TAG: Final = "shopfunnel"

PanelKind = Literal["timeseries", "stat", "table", "heatmap", "bargauge", "barchart"]


@dataclass(frozen=True)
class PromQuery:
    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class SqlQuery:
    """A ClickHouse query; may use the plugin's macros ($__timeFilter(col), ...) and ${vars}."""

    sql: str
    table: bool = False  # True: a table result; False: a time series (first column "time")


Query = PromQuery | SqlQuery


@dataclass(frozen=True)
class Panel:
    title: str
    kind: PanelKind
    queries: tuple[Query, ...]
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""
    stacked: bool = False
    max_value: float | None = None
    # (value, colour) steps above the base colour, e.g. ((0.1, "green"),) with red base.
    thresholds: tuple[tuple[float, str], ...] = ()
    base_colour: str = "green"


@dataclass(frozen=True)
class Row:
    title: str


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str  # PromQL label_values(...) for Prometheus variables
    multi: bool = False


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    items: tuple[Panel | Row, ...]
    variables: tuple[Variable, ...] = ()
    time_from: str = "now-6h"
    refresh: str = "30s"
    tags: tuple[str, ...] = field(default=(TAG,))


def _datasource(query: Query) -> dict[str, str]:
    return dict(PROMETHEUS_DS) if isinstance(query, PromQuery) else dict(CLICKHOUSE_DS)


def _target(query: Query, ref_id: str) -> dict[str, Any]:
    if isinstance(query, PromQuery):
        return {
            "refId": ref_id,
            "datasource": _datasource(query),
            "expr": query.expr,
            "legendFormat": query.legend or "__auto",
            "range": not query.instant,
            "instant": query.instant,
        }
    return {
        "refId": ref_id,
        "datasource": _datasource(query),
        "editorType": "sql",
        "queryType": "table" if query.table else "timeSeries",
        # The plugin's format enum: 0 time series, 1 table.
        "format": 1 if query.table else 0,
        "rawSql": query.sql,
    }


def _field_config(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.max_value is not None:
        defaults["min"] = 0
        defaults["max"] = panel.max_value
    steps: list[dict[str, Any]] = [{"color": panel.base_colour, "value": None}]
    steps += [{"color": colour, "value": value} for value, colour in panel.thresholds]
    defaults["thresholds"] = {"mode": "absolute", "steps": steps}
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if panel.stacked else 0,
            "stacking": {"mode": "normal" if panel.stacked else "none", "group": "A"},
            "showPoints": "never",
            "spanNulls": False,
        }
    return {"defaults": defaults, "overrides": []}


def _options(panel: Panel) -> dict[str, Any]:
    if panel.kind == "timeseries":
        return {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if panel.kind in ("stat", "bargauge"):
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "colorMode": "value",
        }
    if panel.kind == "heatmap":
        return {
            "calculate": False,
            "yAxis": {"axisPlacement": "left"},
            "color": {"mode": "scheme", "scheme": "Oranges"},
            "cellGap": 1,
        }
    if panel.kind == "table":
        return {"showHeader": True, "cellHeight": "sm"}
    return {}


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    ref_ids = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    datasource = _datasource(panel.queries[0])
    if any(_datasource(q) != datasource for q in panel.queries):
        datasource = {"type": "datasource", "uid": "-- Mixed --"}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": datasource,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": [_target(q, ref_ids[i]) for i, q in enumerate(panel.queries)],
        "fieldConfig": _field_config(panel),
        "options": _options(panel),
    }


def _layout(items: Sequence[Panel | Row]) -> list[dict[str, Any]]:
    """Place panels left to right, wrapping at 24 columns; a Row starts a new line."""
    panels: list[dict[str, Any]] = []
    x = y = line_height = 0
    for panel_id, item in enumerate(items, start=1):
        if isinstance(item, Row):
            y += line_height
            panels.append(
                {
                    "id": panel_id,
                    "type": "row",
                    "title": item.title,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": GRID_COLUMNS, "x": 0, "y": y},
                    "panels": [],
                }
            )
            x, y, line_height = 0, y + 1, 0
            continue
        if x + item.width > GRID_COLUMNS:
            x, y, line_height = 0, y + line_height, 0
        panels.append(_panel_json(item, panel_id, x, y))
        x += item.width
        line_height = max(line_height, item.height)
    return panels


def _variable_json(variable: Variable) -> dict[str, Any]:
    return {
        "name": variable.name,
        "label": variable.label,
        "type": "query",
        "datasource": dict(PROMETHEUS_DS),
        "definition": variable.query,
        "query": {"query": variable.query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "sort": 1,
        "multi": variable.multi,
        "includeAll": variable.multi,
        "current": {},
        "hide": 0,
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": dashboard.refresh,
        "time": {"from": dashboard.time_from, "to": "now"},
        "links": [
            {
                "title": "Shop funnel dashboards",
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": True,
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "annotations": {"list": []},
        "templating": {"list": [_variable_json(v) for v in dashboard.variables]},
        "panels": _layout(dashboard.items),
    }


def render_dashboard(dashboard: Dashboard) -> str:
    return json.dumps(dashboard_json(dashboard), indent=2, ensure_ascii=False) + "\n"


# -- Grafana-managed alert rules mirroring the Prometheus alerts -------------------------

ALERTING_HEADER: Final = (
    "# GENERATED by deploy/grafana/build.py from deploy/prometheus/alert_rules.py: do not edit.\n"
    "# Grafana-managed copies of the Prometheus alerts (same PromQL), for teams that\n"
    "# work from Grafana's alert list; Prometheus + Alertmanager stay the pager path.\n"
)


def _grafana_template(text: str) -> str:
    # Grafana exposes the query value as $values.<refId>.Value, not $value.
    return re.sub(r"\$value\b", "$values.A.Value", text)


def grafana_alert_rules() -> dict[str, Any]:
    """The provisioning document (apiVersion 1) with one group per Prometheus alert group."""
    groups = []
    for group in build_rule_groups()["groups"]:
        rules = []
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            rules.append(
                {
                    "uid": f"shopfunnel-{re.sub(r'(?<!^)(?=[A-Z])', '-', rule['alert']).lower()}"[
                        :40
                    ],
                    "title": rule["alert"],
                    "condition": "C",
                    "data": [
                        {
                            "refId": "A",
                            "relativeTimeRange": {"from": 600, "to": 0},
                            "datasourceUid": PROMETHEUS_UID,
                            "model": {
                                "refId": "A",
                                "expr": rule["expr"],
                                "instant": True,
                                "range": False,
                                "intervalMs": 15000,
                                "maxDataPoints": 43200,
                            },
                        },
                        # Every series the alert expression returns is an alert (its values
                        # are ratios and counts >= 0), exactly as in Prometheus.
                        {
                            "refId": "C",
                            "relativeTimeRange": {"from": 0, "to": 0},
                            "datasourceUid": "__expr__",
                            "model": {
                                "refId": "C",
                                "type": "threshold",
                                "expression": "A",
                                "conditions": [{"evaluator": {"type": "gt", "params": [-1]}}],
                            },
                        },
                    ],
                    "noDataState": "OK",
                    "execErrState": "Error",
                    "for": rule["for"],
                    "labels": dict(rule["labels"]),
                    "annotations": {
                        k: _grafana_template(v) for k, v in rule["annotations"].items()
                    },
                    "isPaused": False,
                }
            )
        groups.append(
            {"orgId": 1, "name": group["name"], "folder": FOLDER, "interval": "1m", "rules": rules}
        )
    return {"apiVersion": 1, "groups": [g for g in groups if g["rules"]]}


def render_grafana_alert_rules() -> str:
    return ALERTING_HEADER + to_yaml(grafana_alert_rules())
