"""Grafana: generated files up to date, every Prometheus query names real metrics, every
ClickHouse query runs against the migrated schema, provisioning points at real uids."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import clickhouse_connect
import pytest
import yaml
from prometheus_client import CollectorRegistry

from deploy.grafana.alerting import (
    CLICKHOUSE_UID,
    PROMETHEUS_UID,
    PromQuery,
    SqlQuery,
    dashboard_json,
    grafana_alert_rules,
)
from deploy.grafana.dashboards import DASHBOARDS
from deploy.prometheus.alert_rules import build_rule_groups, recorded_names
from sinks.metrics import PipelineMetrics

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
MIGRATIONS = sorted((REPO / "sinks" / "migrations").glob("*.sql"))
# Series Prometheus makes itself, not the exporter.
PROMETHEUS_BUILTINS = {"up", "ALERTS", "ALERTS_FOR_STATE"}
PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
}
# Grafana's variables, as a user would pick them.
GRAFANA_VARIABLES = {
    "${funnel}": "shop",
    "$funnel": "shop",
    "$channel": ".*",
    "${experiment}": "checkout_button",
    "$experiment": "checkout_button",
    "$__rate_interval": "1m",
    "$__interval": "1m",
}


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_build", GRAFANA / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_grafana_files_equal_the_build_output() -> None:
    files = _build_module().rendered_files()
    for path, text in files.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(REPO)} is stale: run python deploy/grafana/build.py"
        )
    assert set((GRAFANA / "dashboards").glob("*.json")) == {
        p for p in files if p.suffix == ".json"
    }, "a dashboard JSON without a definition in deploy/grafana/dashboards.py"


# -- Prometheus queries ---------------------------------------------------------------


def exported_metric_names() -> set[str]:
    """Sample names a fresh PipelineMetrics exposes (counters as _total, histograms...)."""
    metrics = PipelineMetrics(CollectorRegistry(), channels=("direct",))
    names = set()
    for family in metrics.registry.collect():
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "info": ("_info",),
        }.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, labels, keywords removed)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # strings (label values, regexes)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", expr):
        name, is_call = match.group(1), match.group(2)
        if not is_call and name not in PROMQL_WORDS:
            names.add(name)
    return names


def _prom_queries() -> Iterator[tuple[str, str]]:
    for dashboard in DASHBOARDS:
        for item in dashboard.items:
            for query in getattr(item, "queries", ()):
                if isinstance(query, PromQuery):
                    yield f"{dashboard.uid}: {item.title}", query.expr
        for variable in dashboard.variables:
            found = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable.query)
            assert found, variable.query
            yield f"{dashboard.uid}: ${variable.name}", found.group(1)
    for group in grafana_alert_rules()["groups"]:
        for rule in group["rules"]:
            yield f"grafana alert {rule['title']}", rule["data"][0]["model"]["expr"]


def _rule_queries() -> Iterator[tuple[str, str]]:
    for group in build_rule_groups()["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def test_the_name_extractor_finds_metrics_and_only_metrics() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, table) (rate(a_bucket{x="y",z=~"$channel"}'
        "[$__rate_interval]))) / on (table) group_left (w) b:c:d offset 5m and bool 2e3"
    )
    assert promql_metric_names(expr) == {"a_bucket", "b:c:d"}


@pytest.mark.parametrize(("where", "expr"), [*_prom_queries(), *_rule_queries()])
def test_every_promql_names_only_exported_or_recorded_metrics(where: str, expr: str) -> None:
    known = exported_metric_names() | recorded_names() | PROMETHEUS_BUILTINS
    names = promql_metric_names(expr)
    assert names, f"{where}: no metric found in {expr!r}"
    assert names <= known, f"{where}: unknown metrics {sorted(names - known)}"


def test_every_panel_promql_parses(tmp_path: Path) -> None:
    # promtool parses each query as a recording rule: a syntax error fails here.
    rules = []
    for i, (_, expr) in enumerate(_prom_queries()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"check:query_{i}", "expr": expr})
    path = tmp_path / "panels.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install -y prometheus"
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- ClickHouse queries ---------------------------------------------------------------

FROM, TO = 1_700_000_000, 1_700_086_400


def expand_grafana_sql(sql: str) -> str:
    """The grafana-clickhouse-datasource macros, expanded the way the plugin does."""
    sql = re.sub(
        r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime({FROM}) AND \1 <= toDateTime({TO})", sql
    )
    sql = re.sub(
        r"\$__dateFilter\((\w+)\)",
        r"\1 >= toDate('2023-11-14') AND \1 <= toDate('2023-11-15')",
        sql,
    )
    sql = re.sub(
        r"\$__timeInterval\((\w+)\)", r"toStartOfInterval(toDateTime(\1), INTERVAL 60 second)", sql
    )
    sql = sql.replace("$__fromTime", f"toDateTime({FROM})").replace(
        "$__toTime", f"toDateTime({TO})"
    )
    for variable, value in GRAFANA_VARIABLES.items():
        sql = sql.replace(variable, value)
    assert "$" not in sql, f"unexpanded macro or variable in {sql!r}"
    return sql


def _migration_statements() -> Iterator[str]:
    for path in MIGRATIONS:
        without_comments = "\n".join(
            re.sub(r"--.*$", "", line) for line in path.read_text().splitlines()
        )
        yield from (s for s in without_comments.split(";") if s.strip())


@pytest.fixture(scope="module")
def clickhouse() -> Iterator[Any]:
    assert MIGRATIONS, "no ClickHouse migrations found"
    client = clickhouse_connect.get_client(dsn="chdb://memory")
    try:
        for statement in _migration_statements():
            client.command(statement)
        yield client
    finally:
        client.close()


def _sql_queries() -> Iterator[tuple[str, SqlQuery]]:
    for dashboard in DASHBOARDS:
        for item in dashboard.items:
            for query in getattr(item, "queries", ()):
                if isinstance(query, SqlQuery):
                    yield f"{dashboard.uid}: {item.title}", query


SQL_QUERIES = list(_sql_queries())


def test_there_are_clickhouse_panels_for_funnels_kpis_and_retention() -> None:
    uids = {where.split(":")[0] for where, _ in SQL_QUERIES}
    assert {"shopfunnel-funnel", "shopfunnel-kpis", "shopfunnel-retention"} <= uids


@pytest.mark.parametrize(("where", "query"), SQL_QUERIES, ids=[w for w, _ in SQL_QUERIES])
def test_every_clickhouse_query_runs_on_the_migrated_schema(
    clickhouse: Any, where: str, query: SqlQuery
) -> None:
    result = clickhouse.query(expand_grafana_sql(query.sql))
    assert result.result_rows == [], where  # empty database: runs, returns nothing
    if not query.table:
        assert re.search(r"\bAS time\b", query.sql), f"{where}: a time series needs a time column"


def test_a_typo_in_a_clickhouse_query_fails(clickhouse: Any) -> None:
    with pytest.raises(Exception, match="v_kpi_hours"):
        clickhouse.query(expand_grafana_sql("SELECT sum(orders) FROM v_kpi_hours"))


# -- Dashboard structure and provisioning ---------------------------------------------


def _provisioned_datasource_uids() -> dict[str, str]:
    document = yaml.safe_load((GRAFANA / "provisioning/datasources/datasources.yml").read_text())
    return {ds["uid"]: ds["type"] for ds in document["datasources"]}


def test_dashboards_use_only_provisioned_datasources() -> None:
    provisioned = _provisioned_datasource_uids()
    assert provisioned[PROMETHEUS_UID] == "prometheus"
    assert provisioned[CLICKHOUSE_UID] == "grafana-clickhouse-datasource"
    for path in (GRAFANA / "dashboards").glob("*.json"):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                ds = target["datasource"]
                assert provisioned.get(ds["uid"]) == ds["type"], (path.name, panel["title"])


def test_panels_fit_the_grid_without_overlapping() -> None:
    for dashboard in DASHBOARDS:
        rendered = dashboard_json(dashboard)
        ids = [p["id"] for p in rendered["panels"]]
        assert len(ids) == len(set(ids)), dashboard.uid
        cells: set[tuple[int, int]] = set()
        for panel in rendered["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, (dashboard.uid, panel["title"])
            area = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not area & cells, (dashboard.uid, panel["title"])
            cells |= area
    assert len({d.uid for d in DASHBOARDS}) == len(DASHBOARDS)


def test_grafana_alert_rules_mirror_every_prometheus_alert() -> None:
    prometheus = {
        rule["alert"]: rule
        for group in build_rule_groups()["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    grafana = {
        rule["title"]: rule for group in grafana_alert_rules()["groups"] for rule in group["rules"]
    }
    assert set(grafana) == set(prometheus)
    uids = [rule["uid"] for rule in grafana.values()]
    assert len(set(uids)) == len(uids) and all(len(uid) <= 40 for uid in uids)
    provisioned = _provisioned_datasource_uids()
    for name, rule in grafana.items():
        assert rule["data"][0]["model"]["expr"] == prometheus[name]["expr"]
        assert rule["data"][0]["datasourceUid"] in provisioned
        assert rule["for"] == prometheus[name]["for"]
        assert rule["labels"] == prometheus[name]["labels"]
        assert "$value " not in json.dumps(rule["annotations"])  # Grafana has $values.A.Value


def test_dashboard_provider_reads_the_generated_dashboards() -> None:
    document = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yml").read_text())
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards"  # compose mount target
