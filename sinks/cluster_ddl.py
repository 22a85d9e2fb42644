"""The cluster form of the migrations: Replicated local tables plus Distributed tables.

The same ``sinks/migrations/*.sql`` serve a single node and a cluster (setting
``clickhouse_cluster``, docs/clickhouse-cluster.md). On a cluster every statement is
rewritten by :func:`cluster_statements`:

- ``CREATE TABLE t`` becomes ``t_local`` (ON CLUSTER, ``Replicated*MergeTree`` with the
  usual ``{shard}``/``{replica}`` macros) and ``t`` itself, a ``Distributed`` table over
  ``t_local`` with the same columns and the sharding key of :data:`SHARDING_KEYS`. Every
  reader (reports, views, Grafana, the worker's recovery reader) and the writer keep
  using the plain name ``t``.
- ``ALTER TABLE t`` runs on ``t_local`` (ON CLUSTER); its column clauses (ADD, DROP,
  MODIFY, RENAME, COMMENT COLUMN) run on the Distributed ``t`` as well, so both keep the
  same columns. Other clauses (MODIFY ORDER BY, ...) concern the storage only.
- ``CREATE [OR REPLACE] VIEW`` gets ON CLUSTER; its ``IN (SELECT ...)`` subqueries become
  ``GLOBAL IN``: a view whose FROM is a Distributed table with an IN over another one is
  a "double-distributed" subquery, refused by ClickHouse (distributed_product_mode).

ReplacingMergeTree collapses the versions of a row only within one shard, so each key
below is a function of columns of the table's sorting key that no version of a row ever
changes: all versions of one row land on the same shard, and ``FINAL`` over the
Distributed table (each shard applies it to its own rows) stays exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Final

from sinks.errors import MigrationError

LOCAL_SUFFIX: Final = "_local"

# Table -> sharding key of its Distributed table (docs/clickhouse-cluster.md explains
# each). `partition` is the Kafka partition whose worker writes the row: part of the
# sorting key of every per-partition aggregate, so the recovery reader's
# `WHERE partition = N` reads one shard.
SHARDING_KEYS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # Raw input: both copies of an event (on-time, late) share (anonymous_id, event_id).
        "events_raw": "cityHash64(anonymous_id)",
        "late_events": "cityHash64(event_id)",
        "dead_letters": "cityHash64(source_topic, source_partition, source_offset)",
        # Per-partition aggregates (absolute values with a version, is_final).
        "funnel_steps_minute": "partition",
        "funnel_outcomes_minute": "partition",
        "funnel_ttc_minute": "partition",
        "funnel_attempts": "partition",
        "kpi_minute": "partition",
        "retention_cohorts": "partition",
        "order_gaps_daily": "partition",
        "order_attribution": "partition",
        # Keyed by buyer or trigger alone: the partition is not in the key, and a buyer's
        # partition may change when the topic is repartitioned.
        "user_rfm": "cityHash64(anonymous_id)",
        "segment_transitions": "cityHash64(anonymous_id)",
        "triggers": "cityHash64(trigger_id)",
        # Experiment monitor: one experiment's rows together.
        "experiment_readouts": "cityHash64(experiment)",
        "experiment_status": "cityHash64(experiment)",
        "experiment_decisions": "cityHash64(experiment)",
        # A day's cost imports together (v_marketing_costs picks a day's latest import).
        "marketing_costs": "cityHash64(day)",
        # The forget audit: a request's rows (one per partition) together.
        "forget_audit": "cityHash64(request_id)",
    }
)

_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)(\s)", re.IGNORECASE)
_ALTER_TABLE = re.compile(r"^ALTER TABLE (\w+)\s+", re.IGNORECASE)
_CREATE_VIEW = re.compile(r"^(CREATE (?:OR REPLACE )?VIEW(?: IF NOT EXISTS)? \w+)", re.IGNORECASE)
_ENGINE = re.compile(r"ENGINE = (Replacing|Summing|Aggregating)?MergeTree(?:\((.*?)\))?")
_COLUMN_CLAUSE = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b", re.IGNORECASE)
_IN_SUBQUERY = re.compile(r"(?<!GLOBAL )\b((?:NOT )?IN)(\s*)\(\s*SELECT\b", re.IGNORECASE)
_CLUSTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def local_name(table: str) -> str:
    return f"{table}{LOCAL_SUFFIX}"


def sharding_key(table: str) -> str:
    try:
        return SHARDING_KEYS[table]
    except KeyError:
        raise MigrationError(
            f"table {table} has no sharding key for the cluster form: add one to "
            "SHARDING_KEYS in sinks/cluster_ddl.py (a function of sorting-key columns no "
            "version of a row changes) and to docs/clickhouse-cluster.md"
        ) from None


def check_cluster_name(cluster: str) -> str:
    if not _CLUSTER_NAME.match(cluster):
        raise MigrationError(
            f"cluster name {cluster!r} is not a plain identifier (letters, digits, _): "
            "check FUNNEL_CLICKHOUSE_CLUSTER"
        )
    return cluster


def cluster_statements(statement: str, cluster: str) -> list[str]:
    """The statements ``statement`` becomes on ``cluster`` (see the module docstring)."""
    check_cluster_name(cluster)
    on = f"ON CLUSTER {cluster}"
    created = _CREATE_TABLE.match(statement)
    if created:
        table = created.group(1)
        key = sharding_key(table)
        local = local_name(table)
        local_ddl = _CREATE_TABLE.sub(
            f"CREATE TABLE IF NOT EXISTS {local} {on}\\2", statement, count=1
        )
        local_ddl, engines = _ENGINE.subn(lambda m: _replicated(m, local), local_ddl, count=1)
        if not engines:
            raise MigrationError(f"table {table}: no *MergeTree engine to replicate")
        distributed = (
            f"CREATE TABLE IF NOT EXISTS {table} {on} AS {local}\n"
            f"ENGINE = Distributed({cluster}, currentDatabase(), {local}, {key})"
        )
        return [local_ddl, distributed]
    altered = _ALTER_TABLE.match(statement)
    if altered:
        table = altered.group(1)
        sharding_key(table)  # a table of the schema: it has a Distributed twin
        clauses = _split_clauses(statement[altered.end() :])
        result = [f"ALTER TABLE {local_name(table)} {on} " + ",\n    ".join(clauses)]
        columns = [c for c in clauses if _COLUMN_CLAUSE.match(c)]
        if columns:
            result.append(f"ALTER TABLE {table} {on} " + ",\n    ".join(columns))
        return result
    viewed = _CREATE_VIEW.match(statement)
    if viewed:
        view = _CREATE_VIEW.sub(rf"\1 {on}", statement, count=1)
        return [_IN_SUBQUERY.sub(r"GLOBAL \1\2(SELECT", view)]
    raise MigrationError(
        f"no cluster form for this statement (CREATE TABLE IF NOT EXISTS, ALTER TABLE and "
        f"CREATE VIEW have one): {statement.splitlines()[0][:120]}"
    )


def _replicated(match: re.Match[str], local: str) -> str:
    zk = f"'/clickhouse/tables/{{shard}}/{{database}}/{local}', '{{replica}}'"
    args = f", {match.group(2)}" if match.group(2) else ""
    return f"ENGINE = Replicated{match.group(1) or ''}MergeTree({zk}{args})"


def _split_clauses(text: str) -> list[str]:
    """An ALTER's clauses: split at commas outside parentheses and quotes."""
    clauses: list[str] = []
    depth = 0
    quote = ""
    start = 0
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'`\"":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            clauses.append(text[start:index])
            start = index + 1
    clauses.append(text[start:])
    return [" ".join(clause.split()) for clause in clauses if clause.strip()]


def render_schema(cluster: str | None, directory: Traversable | None = None) -> str:
    """All migrations as one SQL script: as written (``cluster`` None) or in the cluster
    form (what ``funnel migrate --print`` shows; no ClickHouse needed)."""
    from sinks.clickhouse import MIGRATIONS_DIR, load_migrations

    parts: list[str] = []
    for migration in load_migrations(directory or MIGRATIONS_DIR):
        parts.append(f"-- {migration.name}")
        for statement in migration.statements:
            rendered = cluster_statements(statement, cluster) if cluster else [statement]
            parts.extend(f"{sql};" for sql in rendered)
        parts.append("")
    return "\n".join(parts)
