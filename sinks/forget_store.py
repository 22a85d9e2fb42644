"""The SQL behind forgetting a person (issue #17, GDPR): read a person's stored events
back, read the newest values of aggregate rows, count and delete a person's rows, and
prove that nothing mentions the person any more.

Every function takes a clickhouse-connect client (the embedded chDB or a server) and
passes the person's id as a query parameter, never inside the SQL text.

Deletes are delete mutations, ``ALTER TABLE ... DELETE ... SETTINGS mutations_sync = 2``:
they return once every replica has rewritten its parts without the rows, so the data is
gone from the table's parts, not only hidden. A lightweight ``DELETE FROM`` only marks the
rows deleted and removes them at some later merge (ClickHouse's documentation names delete
mutations as the way for compliance). Both work on chDB 4.4 (engine 26.9) and return after
the rows are gone there. The parts a mutation replaced are removed after the server's
``old_parts_lifetime`` (8 minutes by default). On a cluster the mutation runs ``ON
CLUSTER`` on the ``<table>_local`` tables (a Distributed table takes no mutation).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final, NamedTuple, cast

from schemas.model import Event, Item, StreamKind
from sinks.cluster_ddl import check_cluster_name, local_name
from streams.outputs import (
    dead_letters,
    forget_audit,
    funnel_attempts,
    late_events,
    order_attribution,
    raw_events,
    segment_transitions,
    triggers,
    user_rfm,
)
from streams.outputs.family import AggregateFamily, RowContext
from streams.outputs.forget_audit import ForgetAudit
from streams.outputs.funnel_attempts import datetime64_ms


class StoredEvent(NamedTuple):
    """An event read back from ``events_raw`` with what the pipeline stored beside it."""

    event: Event
    channel: str
    stream: str  # the events_raw `stream` column: clickstream, cart or orders
    source_offset: int
    is_late: bool
    received_at_ms: int  # ingested_at


# -- reading a person's events back -------------------------------------------------------

_RAW_COLUMNS: Final = raw_events.TABLE.columns
_READ_EVENTS: Final = (
    f"SELECT {', '.join(_RAW_COLUMNS)} FROM {raw_events.TABLE.name} FINAL "
    "WHERE anonymous_id = {anonymous_id:String} "
    "ORDER BY event_time, stream, source_offset"
)


def read_person_events(client: Any, anonymous_id: str) -> list[StoredEvent]:
    """Every stored event of ``anonymous_id`` (newest copy of each: FINAL), in event time
    order, each rebuilt into the Event that :func:`streams.outputs.raw_events.build_row`
    stored. Optional strings stored as '' come back as None (build_row writes None as '')."""
    rows = client.query(_READ_EVENTS, parameters={"anonymous_id": anonymous_id}).result_rows
    return [_stored_event(dict(zip(_RAW_COLUMNS, row, strict=True))) for row in rows]


def _opt(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _stored_event(r: Mapping[str, Any]) -> StoredEvent:
    ids: list[Any] = list(r["item_ids"])

    def column(name: str, default: Any) -> list[Any]:
        # Rows written before migrations 0012/0013 read [] for their columns.
        values = list(r[name])
        return values + [default] * (len(ids) - len(values))

    items = tuple(
        Item(
            item_id=str(item_id),
            price_minor=int(price),
            quantity=int(quantity),
            item_name=_opt(name),
            item_category=_opt(category),
            item_brand=_opt(brand),
            item_variant=_opt(variant),
            coupon=_opt(coupon),
            discount_minor=int(discount),
        )
        for item_id, price, quantity, name, category, brand, variant, coupon, discount in zip(
            ids,
            column("item_prices_minor", 0),
            column("item_quantities", 1),
            column("item_names", ""),
            column("item_categories", ""),
            column("item_brands", ""),
            column("item_variants", ""),
            column("item_coupons", ""),
            column("item_discounts_minor", 0),
            strict=True,
        )
    )
    event = Event(
        stream=cast(StreamKind, str(r["stream"])),
        event_type=str(r["event_type"]),
        event_id=str(r["event_id"]),
        event_time_ms=datetime64_ms(r["event_time"]),
        sent_time_ms=datetime64_ms(r["sent_time"]),
        anonymous_id=str(r["anonymous_id"]),
        session_id=str(r["session_id"]),
        user_id=None if r["user_id"] is None else str(r["user_id"]),
        platform=str(r["platform"]),
        device=str(r["device"]),
        country=str(r["country"]),
        page_url=_opt(r["page_url"]),
        referrer=_opt(r["referrer"]),
        utm_source=_opt(r["utm_source"]),
        utm_medium=_opt(r["utm_medium"]),
        utm_campaign=_opt(r["utm_campaign"]),
        utm_content=_opt(r["utm_content"]),
        utm_term=_opt(r["utm_term"]),
        experiments={str(k): str(v) for k, v in r["experiments"].items()},
        referral_code=_opt(r["referral_code"]),
        search_term=_opt(r["search_term"]),
        items=items,
        cart_id=_opt(r["cart_id"]),
        transaction_id=_opt(r["transaction_id"]),
        currency=_opt(r["currency"]),
        value_minor=_opt_int(r["value_minor"]),
        tax_minor=_opt_int(r["tax_minor"]),
        shipping_minor=_opt_int(r["shipping_minor"]),
        coupon=_opt(r["coupon"]),
        discount_minor=_opt_int(r["discount_minor"]),
        payment_type=_opt(r["payment_type"]),
        refund_reason=_opt(r["refund_reason"]),
        payment_error_code=_opt(r["payment_error_code"]),
        properties={str(k): str(v) for k, v in r["properties"].items()},
    )
    return StoredEvent(
        event,
        str(r["channel"]),
        str(r["stream"]),
        int(r["source_offset"]),
        bool(r["is_late"]),
        datetime64_ms(r["ingested_at"]),
    )


# -- the newest values of aggregate rows --------------------------------------------------

# At most this many leading key columns narrow the read (with the partition and version).
_FILTER_COLUMNS: Final = 3


class _AnySteps(Mapping[str, tuple[str, ...]]):
    """Step names for building a row of any funnel: the name is never read back."""

    _BLANK: Final = ("",) * 256

    def __getitem__(self, funnel: str) -> tuple[str, ...]:
        return self._BLANK

    def __iter__(self) -> Any:
        return iter(())

    def __len__(self) -> int:
        return 0


def _column_types(client: Any, table: str) -> dict[str, str]:
    rows = client.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
        "AND table = {table:String}",
        parameters={"table": table},
    ).result_rows
    return {str(name): str(kind) for name, kind in rows}


def _scalar_type(kind: str) -> str | None:
    """The parameter type of a column whose values IN can test, or None (arrays, maps)."""
    while kind.startswith(("LowCardinality(", "Nullable(")):
        kind = kind[kind.index("(") + 1 : -1]
    return None if kind.startswith(("Array(", "Map(", "Tuple(")) else kind


def newest_values(
    client: Any,
    family: AggregateFamily,
    partition: int,
    keys: Collection[Any],
    before_version: int | None,
) -> dict[Any, dict[str, int]]:
    """The value columns of each key's newest row in ``partition`` with a version below
    ``before_version`` (any version when None); keys without such a row are absent.

    The read is narrowed by the partition, the version and the values the keys have in
    the table's leading key columns (up to three, up to the first array), which the
    sorting key indexes; the exact keys are then picked by ``family.read_key``.

    The older versions of a row exist only until ClickHouse merges its parts: a merge
    keeps the newest version alone. So a key whose newest row is at or above
    ``before_version`` may read as absent once merged.
    """
    wanted = set(keys)
    if not wanted:
        return {}
    table = family.table.name
    key_columns = family.key_columns
    types = _column_types(client, table)
    ctx = RowContext(partition=partition, is_final=0, version=0, step_names=_AnySteps())
    built = [
        dict(zip(family.table.columns, family.build_row(key, lambda _: 0, ctx), strict=True))
        for key in wanted
    ]
    conditions = ["partition = {partition:UInt16}"]
    parameters: dict[str, Any] = {"partition": partition}
    if before_version is not None:
        conditions.append("version < {before_version:UInt64}")
        parameters["before_version"] = before_version
    for index, column in enumerate(key_columns[:_FILTER_COLUMNS]):
        kind = _scalar_type(types[column])
        if kind is None:
            break
        name = f"key_{index}"
        conditions.append(f"{column} IN {{{name}:Array({kind})}}")
        parameters[name] = sorted({row[column] for row in built})
    sql = (
        f"SELECT {', '.join(key_columns)}, {', '.join(family.value_columns)} FROM {table} "
        f"WHERE {' AND '.join(conditions)} "
        f"ORDER BY version DESC LIMIT 1 BY {', '.join(key_columns)}"
    )
    width = len(key_columns)
    out: dict[Any, dict[str, int]] = {}
    for row in client.query(sql, parameters=parameters).result_rows:
        key = family.read_key(row[:width])
        if key in wanted:
            out[key] = {c: int(v) for c, v in zip(family.value_columns, row[width:], strict=True)}
    return out


# -- a person's rows: count, delete --------------------------------------------------------


class _Target(NamedTuple):
    table: str
    # SQL over the table's columns, with {anonymous_id:String} etc. (None: no row)
    condition: str | None


def _time_range(column: str, from_ms: int | None, to_ms: int | None) -> str:
    parts = []
    if from_ms is not None:
        parts.append(f"{column} >= fromUnixTimestamp64Milli({{from_ms:Int64}}, 'UTC')")
    if to_ms is not None:
        parts.append(f"{column} < fromUnixTimestamp64Milli({{to_ms:Int64}}, 'UTC')")
    return " AND ".join(parts)


_PERSON: Final = "anonymous_id = {anonymous_id:String}"
# Tables of a person's rows with the time that places each row in a range.
_TIMED: Final = (
    (raw_events.TABLE.name, "event_time"),
    (late_events.TABLE.name, "event_time"),
    (user_rfm.TABLE.name, "as_of"),  # the snapshot's time
    (segment_transitions.TABLE.name, "at"),
    (triggers.TABLE.name, "occurred_at"),
)
_EVENT_TABLES: Final = (raw_events.TABLE.name, late_events.TABLE.name)
# Aggregates whose key holds the person's id.
_PERSONAL_AGGREGATES: Final = (funnel_attempts.AGGREGATE, order_attribution.AGGREGATE)
# A dead letter names the person in its record key or somewhere in its payload: as text,
# or as the hex of the bytes the writer stores for a payload that is not UTF-8 (Avro);
# its detail may quote a field of the payload. A substring match also takes the dead
# letters of an id that contains this one (anon-1 in anon-12): they have no trusted
# fields to tell them apart.
_DEAD_LETTER: Final = (
    "record_key = {anonymous_id:String} OR position(raw, {anonymous_id:String}) > 0 "
    "OR position(raw, lower(hex({anonymous_id:String}))) > 0 "
    "OR position(detail, {anonymous_id:String}) > 0"
)


def _targets(
    client: Any,
    anonymous_id: str,
    from_ms: int | None,
    to_ms: int | None,
    parameters: dict[str, Any],
) -> list[_Target]:
    """The tables and conditions of a forget; adds the parameters they need."""
    whole_life = from_ms is None and to_ms is None
    targets = []
    for table, time_column in _TIMED:
        if table in _EVENT_TABLES:
            span = _time_range(time_column, from_ms, to_ms)
            if "appended_until" in parameters:
                # Records appended after the request count normally (streams/forget.py).
                appended = "ingested_at <= fromUnixTimestamp64Milli({appended_until:Int64}, 'UTC')"
                span = f"{span} AND {appended}" if span else appended
        else:
            # Lifecycle rows from the range's start on: each depends on every purchase
            # before it, so a row before the range is still right and a later one may
            # not be; the worker goes on from the current watermark (docs/forget.md).
            span = _time_range(time_column, from_ms, None)
        targets.append(_Target(table, f"{_PERSON} AND {span}" if span else _PERSON))
    if whole_life:
        # A range forget leaves dead letters alone: a dead letter has no trusted event
        # time (its payload failed decoding or validation), so nothing places it inside
        # or outside the range. The whole-life forget removes every one naming the person.
        targets.append(_Target(dead_letters.TABLE.name, _DEAD_LETTER))
    for family in _PERSONAL_AGGREGATES:
        table = family.table.name
        if whole_life and "appended_until" not in parameters:
            targets.append(_Target(table, _PERSON))
            continue
        # With the worker's cut-off, rows of events appended after the request still
        # count: only the rows the corrections brought to zero go.
        # Every version of each row (key and partition) whose newest version counts
        # nothing: a key corrected to zero disappears, a key still counting keeps its
        # history. The rows are named by a hash of their sorting key, computed first
        # (a mutation reading its own table through a subquery is not deterministic).
        identity = f"cityHash64({', '.join(family.table.order_by)})"
        zero = " AND ".join(f"{c} = 0" for c in family.value_columns)
        hashes = sorted(
            int(row[0])
            for row in client.query(
                f"SELECT {identity} FROM {table} FINAL WHERE {_PERSON} AND {zero}",
                parameters={"anonymous_id": anonymous_id},
            ).result_rows
        )
        condition = f"{_PERSON} AND {identity} IN {{zero_rows_{table}:Array(UInt64)}}"
        targets.append(_Target(table, condition if hashes else None))
        parameters[f"zero_rows_{table}"] = hashes
    return targets


def _parameters(
    anonymous_id: str, from_ms: int | None, to_ms: int | None, appended_until: int | None = None
) -> dict[str, Any]:
    parameters: dict[str, Any] = {"anonymous_id": anonymous_id}
    if appended_until is not None:
        parameters["appended_until"] = appended_until
    if from_ms is not None:
        parameters["from_ms"] = from_ms
    if to_ms is not None:
        parameters["to_ms"] = to_ms
    return parameters


def _count(client: Any, target: _Target, parameters: Mapping[str, Any]) -> int:
    if target.condition is None:
        return 0
    sql = f"SELECT count() FROM {target.table} WHERE {target.condition}"
    return int(client.query(sql, parameters=dict(parameters)).result_rows[0][0])


def count_person_rows(
    client: Any, anonymous_id: str, from_ms: int | None, to_ms: int | None
) -> dict[str, int]:
    """Rows (every stored version) :func:`delete_person_rows` would remove, per table.

    ``from_ms``/``to_ms`` bound the event time, ``[from, to)``; both None: the whole life.
    """
    parameters = _parameters(anonymous_id, from_ms, to_ms)
    targets = _targets(client, anonymous_id, from_ms, to_ms, parameters)
    return {t.table: _count(client, t, parameters) for t in targets}


def delete_person_rows(
    client: Any,
    anonymous_id: str,
    from_ms: int | None,
    to_ms: int | None,
    *,
    appended_until: int | None = None,
    cluster: str | None = None,
) -> dict[str, int]:
    """Delete the person's rows (see :func:`count_person_rows`), synchronously; returns
    the rows removed per table, counted just before each delete.

    ``cluster``: the schema's cluster form (sinks/cluster_ddl.py): the mutation runs ON
    CLUSTER on each ``<table>_local``; the counts read the Distributed tables.
    """
    parameters = _parameters(anonymous_id, from_ms, to_ms, appended_until)
    removed: dict[str, int] = {}
    for target in _targets(client, anonymous_id, from_ms, to_ms, parameters):
        count = _count(client, target, parameters)
        removed[target.table] = count
        if count:
            client.command(_delete_sql(target, cluster), parameters=parameters)
    return removed


def _delete_sql(target: _Target, cluster: str | None) -> str:
    table = target.table
    if cluster is not None:
        table = f"{local_name(table)} ON CLUSTER {check_cluster_name(cluster)}"
    return f"ALTER TABLE {table} DELETE WHERE {target.condition} SETTINGS mutations_sync = 2"


# -- proof: nothing mentions the person ----------------------------------------------------


def _mention(column: str, kind: str) -> str | None:
    """SQL true when ``column`` of type ``kind`` holds the id (equal or inside), or None
    for a column that holds no text."""
    found = (
        "(position({v}, {{anonymous_id:String}}) > 0 "
        "OR position({v}, lower(hex({{anonymous_id:String}}))) > 0)"
    )
    bare = kind
    while bare.startswith(("LowCardinality(", "Nullable(")):
        bare = bare[bare.index("(") + 1 : -1]
    if bare.startswith("Map("):
        keys = found.format(v="toString(k)")
        values = found.format(v="toString(v)")
        return (
            f"(arrayExists(k -> coalesce({keys}, 0), mapKeys(`{column}`)) "
            f"OR arrayExists(v -> coalesce({values}, 0), mapValues(`{column}`)))"
        )
    if bare.startswith("Array("):
        if "String" not in bare:
            return None
        each = found.format(v="toString(x)")
        return f"arrayExists(x -> coalesce({each}, 0), `{column}`)"
    if "String" not in bare:
        return None
    return found.format(v=f"`{column}`")


def find_person(client: Any, anonymous_id: str) -> dict[str, int]:
    """Rows per table of the current database that still mention ``anonymous_id`` in any
    text column (String, Nullable/LowCardinality String, arrays and maps of them), equal
    to it or containing it, as text or as hex. Tables without a mention are absent; views
    are not read (their tables are)."""
    tables = [
        str(row[0])
        for row in client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() "
            "AND engine NOT LIKE '%View' AND NOT is_temporary ORDER BY name"
        ).result_rows
    ]
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, name, kind in client.query(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase() "
        "ORDER BY table, position"
    ).result_rows:
        columns.setdefault(str(table), []).append((str(name), str(kind)))
    found: dict[str, int] = {}
    for table in tables:
        conditions = [
            c for name, kind in columns.get(table, []) if (c := _mention(name, kind)) is not None
        ]
        if not conditions:
            continue
        sql = f"SELECT count() FROM `{table}` WHERE {' OR '.join(conditions)}"
        count = int(client.query(sql, parameters={"anonymous_id": anonymous_id}).result_rows[0][0])
        if count:
            found[table] = count
    return found


def person_ids_of_user(client: Any, user_id: str) -> list[str]:
    """The anonymous ids events_raw links to ``user_id``, sorted."""
    rows = client.query(
        "SELECT DISTINCT anonymous_id FROM events_raw WHERE user_id = {user_id:String} "
        "ORDER BY anonymous_id",
        parameters={"user_id": user_id},
    ).result_rows
    return [str(row[0]) for row in rows]


__all__ = [
    "StoredEvent",
    "count_person_rows",
    "delete_person_rows",
    "find_person",
    "newest_values",
    "person_ids_of_user",
    "read_audit",
    "read_person_events",
]


def read_audit(client: Any, request_id: str, partition: int) -> ForgetAudit | None:
    """The newest audit row of a request on one partition (None: never started)."""
    sql = (
        f"SELECT {', '.join(forget_audit.TABLE.columns)} FROM {forget_audit.TABLE.name} FINAL "
        "WHERE request_id = {request_id:String} AND partition = {partition:UInt16}"
    )
    rows = client.query(
        sql, parameters={"request_id": request_id, "partition": partition}
    ).result_rows
    return forget_audit.read_audit(rows[0]) if rows else None
