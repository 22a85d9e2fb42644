"""The SQL behind forgetting a person (issue #17): sinks/forget_store.py on an embedded
ClickHouse migrated with the real migrations.

- Stored events read back whole: simulator events, hand-made events with every field
  set, and the inputs the fuzzing source makes that the codec accepts, written through
  ``raw_events.build_row``, come back from ``read_person_events`` equal to the original.
- ``newest_values`` picks each key's newest version below a version, per partition, for
  every aggregate family.
- Counting and deleting a person's rows, whole life and in a range, and ``find_person``
  proving nothing mentions the person afterwards while everyone else's rows stay.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import pytest

from schemas.channels import ChannelRules
from schemas.model import Event, Item
from simulator.config import SimConfig
from simulator.generate import generate
from sinks.clickhouse import ClickHouseTarget, apply_migrations, open_client
from sinks.forget_store import (
    StoredEvent,
    count_person_rows,
    delete_person_rows,
    find_person,
    newest_values,
    person_ids_of_user,
    read_person_events,
)
from sinks.tables import TableSpec
from streams.outputs import (
    AGGREGATES,
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
from tests.fuzzing import FuzzSource
from tests.unit.test_output_families import SAMPLE_KEYS

_numbers = itertools.count()
MIN: Final = 60_000
T0: Final = 1_793_491_200_000  # 2026-11-01T00:00:00Z
TOPICS: Final = {"clickstream": "shop.clickstream", "cart": "shop.cart", "orders": "shop.orders"}
STEP_NAMES: Final = {"shop": ("a", "b", "c")}
OPTIONAL_TEXT: Final = tuple(
    f.name
    for f in dataclasses.fields(Event)
    if f.name != "user_id" and str(f.type) == "str | None"  # user_id: Nullable(String)
)
OPTIONAL_ITEM_TEXT: Final = tuple(
    f.name for f in dataclasses.fields(Item) if f.type == "str | None"
)


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # chDB has one engine per process, on one path: let the clients other modules left go
    # first, and ours before the next module opens its own.
    gc.collect()
    yield tmp_path_factory.mktemp("chdb-forget")
    gc.collect()


@pytest.fixture
def client(engine_dir: Path) -> Iterator[Any]:
    """A freshly migrated database of its own for each test."""
    target = ClickHouseTarget(dsn=f"chdb:///{engine_dir}", database=f"forget_{next(_numbers)}")
    handle = open_client(target)
    apply_migrations(handle)
    try:
        yield handle
    finally:
        handle.close()


def insert(client: Any, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
    """Every row kept as written: no ReplacingMergeTree dedup on insert."""
    client.insert(
        spec.name,
        [list(r) for r in rows],
        column_names=list(spec.columns),
        settings={"optimize_on_insert": 0},
    )


def keep_versions(client: Any, *specs: TableSpec) -> None:
    """No merge of parts (which keeps a row's newest version alone): the tests count
    every version. SYSTEM STOP MERGES would do it but also stops mutations, the deletes."""
    for spec in specs:
        client.command(
            f"ALTER TABLE {spec.name} MODIFY SETTING max_bytes_to_merge_at_max_space_in_pool = 1"
        )


def row_of(spec: TableSpec, **values: Any) -> tuple[Any, ...]:
    assert set(values) == set(spec.columns), set(spec.columns) ^ set(values)
    return tuple(values[c] for c in spec.columns)


# -- stored events read back whole ---------------------------------------------------------


def full_events() -> list[Event]:
    """Events with every field set (and some items without optional details)."""
    items = (
        Item("sku-1", 1999, 2, "Red Shoe", "shoes", "Acme", "42/red", "SPRING10", 200),
        Item("sku-2", 500, 1),
        Item("sku-3", 0, 3, item_name="Gift", item_variant="XL", coupon=None),
    )
    common: dict[str, Any] = {
        "anonymous_id": "anon-full",
        "session_id": "s-1",
        "user_id": "user-1",
        "platform": "app",
        "device": "mobile",
        "country": "DE",
        "page_url": "https://shop.example/p?q=1",
        "referrer": "https://search.example/",
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "spring",
        "utm_content": "banner-1",
        "utm_term": "shoes",
        "experiments": {"checkout_button": "B", "hero": "control"},
        "referral_code": "FRIEND-7",
    }
    return [
        Event(
            "clickstream", "search", "e-1", T0, T0 + 5, search_term="red shoes 'quoted'", **common
        ),
        Event(
            "clickstream",
            "custom:size_guide_opened",
            "e-2",
            T0 + 1,
            T0 + 9,
            properties={"size": "42", "ünïcode": "✓ \x00 nul"},
            **common,
        ),
        Event(
            "cart",
            "add_to_cart",
            "e-3",
            T0 + 2,
            T0 + 2,
            items=items[:2],
            cart_id="c-1",
            currency="EUR",
            value_minor=4498,
            **common,
        ),
        Event(
            "orders",
            "purchase",
            "e-4",
            T0 + 3,
            T0 + 3,
            items=items,
            cart_id="c-1",
            transaction_id="t-1",
            currency="EUR",
            value_minor=4298,
            tax_minor=700,
            shipping_minor=0,
            coupon="WELCOME",
            discount_minor=200,
            payment_type="card",
            **common,
        ),
        Event(
            "orders",
            "refund",
            "e-5",
            T0 + 4,
            T0 + 4,
            transaction_id="t-1",
            currency="EUR",
            value_minor=1999,
            refund_reason="too small",
            **common,
        ),
        Event(
            "orders",
            "payment_failed",
            "e-6",
            T0 + 4,
            T0 + 4,
            transaction_id="t-2",
            currency="EUR",
            value_minor=100,
            payment_error_code="card_declined",
            **common,
        ),
    ]


def simulator_events() -> list[Event]:
    config = SimConfig(users=150, days=0.1, partitions=2)
    return [r.event for r in generate(config) if r.event is not None and not r.is_duplicate]


def accepted_fuzz_events(count: int = 3000) -> list[Event]:
    """Events the codec accepts among the fuzzing source's hostile inputs."""
    source = FuzzSource.from_simulator()
    accepted = []
    for fuzz_input in source.stream(random.Random(17), count):
        result = source.codec.decode(fuzz_input.raw, fuzz_input.stream, fuzz_input.now_ms)
        if isinstance(result, Event):
            accepted.append(result)
    return accepted


def _nones(obj: Any, names: Sequence[str]) -> dict[str, Any]:
    return {n: None for n in names if getattr(obj, n) == ""}


def without_empty_text(event: Event) -> Event:
    """``event`` as it reads back: '' in an optional text field is stored as '' and read
    as None (build_row writes None as ''): the one loss of the events_raw round trip."""
    changes = _nones(event, OPTIONAL_TEXT)
    items = tuple(
        dataclasses.replace(item, **_nones(item, OPTIONAL_ITEM_TEXT)) for item in event.items
    )
    return dataclasses.replace(event, items=items, **changes)


def store_events(client: Any, events: Sequence[Event]) -> dict[tuple[str, str], tuple[int, Event]]:
    """Write ``events`` as the worker does (one row per (anonymous_id, event_id): the
    first copy), each with its own offset; returns the stored ones by id with offsets."""
    channels = ChannelRules.load()
    stored: dict[tuple[str, str], tuple[int, Event]] = {}
    rows = []
    for offset, event in enumerate(events):
        key = (event.anonymous_id, event.event_id)
        if key in stored:
            continue
        stored[key] = (offset, event)
        channel = channels.classify(event.utm_source, event.utm_medium, event.referrer)
        late = offset % 7 == 0
        rows.append(
            raw_events.build_row(event, channel, late, TOPICS[event.stream], 0, offset, T0 + offset)
        )
    insert(client, raw_events.TABLE, rows)
    return stored


def check_read_back(client: Any, events: Sequence[Event]) -> int:
    """Every stored event reads back equal to what was stored; returns how many had an
    optional '' (read back as None)."""
    stored = store_events(client, events)
    people = sorted({anonymous_id for anonymous_id, _ in stored})
    lossy = 0
    for anonymous_id in people:
        back = read_person_events(client, anonymous_id)
        mine = {k: v for k, v in stored.items() if k[0] == anonymous_id}
        assert sorted(s.event.event_id for s in back) == sorted(e for _, e in mine)
        order = [(s.event.event_time_ms, s.stream, s.source_offset) for s in back]
        assert order == sorted(order)
        for s in back:
            offset, original = mine[(anonymous_id, s.event.event_id)]
            expected = without_empty_text(original)
            lossy += expected != original
            assert s.event == expected, f"{s.event}\n!=\n{expected}"
            assert s == StoredEvent(
                expected, s.channel, original.stream, offset, offset % 7 == 0, T0 + offset
            )
    return lossy


def test_events_with_every_field_read_back_equal(client: Any) -> None:
    events = full_events()
    assert check_read_back(client, events) == 0
    back = read_person_events(client, "anon-full")
    assert [s.event for s in back] == events  # in event time order
    assert back[0].event.search_term == "red shoes 'quoted'"
    assert back[3].event.items[0].item_category == "shoes"
    assert back[0].channel == "paid_search"
    # One field lost (the read ignores a column) would fail: each field differs from its
    # default somewhere in these events.
    for f in dataclasses.fields(Event):
        assert any(
            getattr(e, f.name) != getattr(Event("cart", "x", "x", 0, 0, "a", "s"), f.name)
            for e in events
        ), f.name
    for f in dataclasses.fields(Item):
        assert any(
            getattr(i, f.name) != getattr(Item("x", 0), f.name) for e in events for i in e.items
        ), f.name


def test_simulator_and_accepted_fuzz_events_read_back_equal(client: Any) -> None:
    events = simulator_events() + accepted_fuzz_events()
    assert any(e.search_term for e in events) and any(e.properties for e in events)
    assert any(i.item_category for e in events for i in e.items)
    lossy = check_read_back(client, events)
    assert lossy > 0, "the fuzzing source no longer sends '' in an optional field"


def test_rows_written_before_migration_0013_read_items_without_details(client: Any) -> None:
    event = full_events()[3]
    row = dict(
        zip(
            raw_events.TABLE.columns,
            raw_events.build_row(event, "seo", False, "t", 0, 0, T0),
            strict=True,
        )
    )
    for column in ("item_names", "item_categories", "item_brands", "item_variants", "item_coupons"):
        row[column] = []
    row["item_discounts_minor"] = []
    row["search_term"] = ""
    insert(client, raw_events.TABLE, [tuple(row.values())])
    [back] = read_person_events(client, event.anonymous_id)
    assert back.event.items == tuple(
        Item(i.item_id, i.price_minor, i.quantity) for i in event.items
    )


def test_person_ids_of_a_user(client: Any) -> None:
    a, b, c = (dataclasses.replace(full_events()[0], anonymous_id=x) for x in ("a-2", "a-1", "a-3"))
    store_events(client, [a, b, dataclasses.replace(c, user_id=None)])
    assert person_ids_of_user(client, "user-1") == ["a-1", "a-2"]
    assert person_ids_of_user(client, "nobody") == []


# -- newest values of aggregate rows -------------------------------------------------------


def other_key(key: Any) -> Any:
    """A key of the same family that has no row."""
    first = key[0]
    return key._replace(
        **{key._fields[0]: first + "x" if isinstance(first, str) else first + 86_400_000}
    )


def write_aggregate(
    client: Any, family: AggregateFamily, key: Any, partition: int, version: int, total: int
) -> None:
    ctx = RowContext(partition=partition, is_final=0, version=version, step_names=STEP_NAMES)
    insert(client, family.table, [family.build_row(key, lambda _: total, ctx)])


@pytest.mark.parametrize("family", AGGREGATES, ids=lambda f: f.table.name)
def test_newest_values_before_a_version(client: Any, family: AggregateFamily) -> None:
    key = SAMPLE_KEYS[family.key_type]
    keep_versions(client, family.table)
    for version, total in ((10, 3), (20, 5)):
        write_aggregate(client, family, key, 7, version, total)
    write_aggregate(client, family, key, 8, 15, 99)  # another partition
    absent = other_key(key)
    values = {c: 5 for c in family.value_columns}
    older = {c: 3 for c in family.value_columns}
    assert newest_values(client, family, 7, [key, absent], None) == {key: values}
    assert newest_values(client, family, 7, [key, absent], 21) == {key: values}
    assert newest_values(client, family, 7, [key, absent], 20) == {key: older}
    assert newest_values(client, family, 7, [key], 11) == {key: older}
    assert newest_values(client, family, 7, [key], 10) == {}
    assert newest_values(client, family, 8, [key], None) == {
        key: {c: 99 for c in family.value_columns}
    }
    assert newest_values(client, family, 9, [key], None) == {}
    assert newest_values(client, family, 7, [], None) == {}


# -- counting, deleting, finding a person's rows -----------------------------------------

X: Final = "anon-x"  # the person forgotten
Y: Final = "anon-y"  # someone else
IN_RANGE: Final = T0 + 10 * MIN
OUT_OF_RANGE: Final = T0 + 90 * MIN
BEFORE_RANGE: Final = T0 - 30 * MIN
LIFECYCLE_TIMES: Final = (BEFORE_RANGE, IN_RANGE, OUT_OF_RANGE)
RANGE: Final = (T0, T0 + 60 * MIN)


def attempt_key(anonymous_id: str, start_event_id: str) -> funnel_attempts.FunnelAttemptKey:
    base: funnel_attempts.FunnelAttemptKey = SAMPLE_KEYS[funnel_attempts.FunnelAttemptKey]
    return base._replace(anonymous_id=anonymous_id, start_event_id=start_event_id)


def attribution_key(
    anonymous_id: str, transaction_id: str
) -> order_attribution.OrderAttributionKey:
    base: order_attribution.OrderAttributionKey = SAMPLE_KEYS[order_attribution.OrderAttributionKey]
    return base._replace(anonymous_id=anonymous_id, transaction_id=transaction_id)


def fill(client: Any) -> None:
    """X and Y each have rows in every table that names a person, in and out of RANGE."""
    keep_versions(
        client,
        raw_events.TABLE,
        late_events.TABLE,
        dead_letters.TABLE,
        user_rfm.TABLE,
        segment_transitions.TABLE,
        triggers.TABLE,
        funnel_attempts.TABLE,
        order_attribution.TABLE,
    )
    events = []
    for person in (X, Y):
        for n, t in enumerate((IN_RANGE, OUT_OF_RANGE)):
            base = full_events()[3]
            events.append(
                dataclasses.replace(
                    base,
                    anonymous_id=person,
                    event_id=f"{person}-e{n}",
                    event_time_ms=t,
                    sent_time_ms=t,
                )
            )
    store_events(client, events)
    insert(
        client,
        late_events.TABLE,
        [
            late_events.build_row(
                e, "seo", e.event_time_ms, "window_closed", "shop.orders", 0, 100 + n, T0
            )
            for n, e in enumerate(events)
        ],
    )
    avro_like = b"\x02\x00" + X.encode() + b"\xff\xfe"  # not UTF-8: stored as hex
    insert(
        client,
        dead_letters.TABLE,
        [
            ("shop.orders", 0, 1, X, "garbage", "malformed", "not JSON", T0),
            ("shop.orders", 0, 2, "", f'{{"anonymous_id": "{X}", "t": 1}}', "wrong_type", "t", T0),
            ("shop.orders", 0, 3, "", avro_like.hex(), "malformed", "bad Avro", T0),
            (
                "shop.orders",
                0,
                4,
                Y,
                '{"anonymous_id": "' + Y + '"}',
                "wrong_type",
                "event_time",
                T0,
            ),
        ],
    )
    for person in (X, Y):
        insert(
            client,
            user_rfm.TABLE,
            [
                row_of(
                    user_rfm.TABLE,
                    anonymous_id=person,
                    user_id="u",
                    stage="new",
                    first_purchase_at=IN_RANGE,
                    last_purchase_at=IN_RANGE,
                    frequency=1,
                    monetary_minor=100,
                    currency="EUR",
                    channel="seo",
                    as_of=t,
                    partition=0,
                    version=t,
                )
                for t in LIFECYCLE_TIMES
            ],
        )
        insert(
            client,
            segment_transitions.TABLE,
            [
                row_of(
                    segment_transitions.TABLE,
                    anonymous_id=person,
                    at=t,
                    from_stage="prospect",
                    to_stage="new",
                    partition=0,
                    version=1,
                )
                for t in LIFECYCLE_TIMES
            ],
        )
        insert(
            client,
            triggers.TABLE,
            [
                row_of(
                    triggers.TABLE,
                    trigger_id=f"tr-{person}-{t}",
                    trigger_type="welcome",
                    anonymous_id=person,
                    user_id=None,
                    occurred_at=t,
                    emitted_at=t,
                    cart_value_minor=None,
                    currency="",
                    channel="",
                    segment="",
                    previous_segment="",
                    partition=0,
                )
                for t in LIFECYCLE_TIMES
            ],
        )
        # Per person: a key corrected to zero (two versions) and a key still counting.
        for family, zeroed, counting in (
            (funnel_attempts.AGGREGATE, attempt_key(person, "s-0"), attempt_key(person, "s-1")),
            (
                order_attribution.AGGREGATE,
                attribution_key(person, "t-0"),
                attribution_key(person, "t-1"),
            ),
        ):
            write_aggregate(client, family, zeroed, 3, 1, 1)
            write_aggregate(client, family, zeroed, 3, 2, 0)
            write_aggregate(client, family, counting, 3, 1, 0)
            write_aggregate(client, family, counting, 3, 2, 1)
    insert(
        client,
        forget_audit.TABLE,
        [
            forget_audit.build_row(
                ForgetAudit(
                    "req-1", 0, "done", T0, T0 + 5, None, None, 7, {"kpi": T0}, 2, 3, 4, 5, 6
                )
            )
        ],
    )


WHOLE_LIFE: Final = {
    "events_raw": 2,
    "late_events": 2,
    "dead_letters": 3,
    "user_rfm": 3,
    "segment_transitions": 3,
    "triggers": 3,
    "funnel_attempts": 4,
    "order_attribution": 4,
}


def test_whole_life_forget_deletes_every_row_naming_the_person(client: Any) -> None:
    fill(client)
    before_y = find_person(client, Y)
    assert find_person(client, X) == {**WHOLE_LIFE, "dead_letters": 3}
    assert count_person_rows(client, X, None, None) == WHOLE_LIFE
    assert delete_person_rows(client, X, None, None) == WHOLE_LIFE
    assert find_person(client, X) == {}
    assert count_person_rows(client, X, None, None) == dict.fromkeys(WHOLE_LIFE, 0)
    assert find_person(client, Y) == before_y  # everyone else's rows stay
    assert read_person_events(client, X) == []
    assert len(read_person_events(client, Y)) == 2
    assert delete_person_rows(client, X, None, None) == dict.fromkeys(WHOLE_LIFE, 0)


def test_range_forget_deletes_the_range_and_the_keys_corrected_to_zero(client: Any) -> None:
    fill(client)
    before_y = find_person(client, Y)
    expected = {
        "events_raw": 1,
        "late_events": 1,
        # Lifecycle rows from the range's start on: each depends on every purchase
        # before it, so a later one may be wrong too (docs/forget.md).
        "user_rfm": 2,
        "segment_transitions": 2,
        "triggers": 2,
        "funnel_attempts": 2,  # both versions of the key corrected to zero
        "order_attribution": 2,
    }
    assert count_person_rows(client, X, *RANGE) == expected  # no dead letters
    assert delete_person_rows(client, X, *RANGE) == expected
    assert [s.event.event_time_ms for s in read_person_events(client, X)] == [OUT_OF_RANGE]
    left = find_person(client, X)
    assert left == {
        "events_raw": 1,
        "late_events": 1,
        "dead_letters": 3,
        "user_rfm": 1,  # the rows before the range
        "segment_transitions": 1,
        "triggers": 1,
        "funnel_attempts": 2,  # the key still counting keeps its history
        "order_attribution": 2,
    }
    counting = newest_values(
        client, funnel_attempts.AGGREGATE, 3, [attempt_key(X, "s-1"), attempt_key(X, "s-0")], None
    )
    assert counting == {attempt_key(X, "s-1"): {"attempts": 1}}
    assert find_person(client, Y) == before_y
    # Open ends: from alone, to alone.
    assert count_person_rows(client, X, OUT_OF_RANGE, None)["events_raw"] == 1
    assert count_person_rows(client, X, None, OUT_OF_RANGE)["events_raw"] == 0
    assert count_person_rows(client, X, None, OUT_OF_RANGE + 1)["events_raw"] == 1


def test_delete_on_a_cluster_runs_on_the_local_tables() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.commands: list[str] = []

        def query(self, sql: str, parameters: Any = None) -> Any:
            return type("R", (), {"result_rows": [(1,)]})()

        def command(self, sql: str, parameters: Any = None) -> None:
            assert X not in sql  # the id is a parameter
            self.commands.append(sql)

    recorder = Recorder()
    delete_person_rows(recorder, X, None, None, cluster="shop_cluster")
    assert recorder.commands and all(
        c.startswith("ALTER TABLE ")
        and "_local ON CLUSTER shop_cluster DELETE WHERE" in c
        and c.endswith("SETTINGS mutations_sync = 2")
        for c in recorder.commands
    )


def test_forget_audit_rows_read_back_into_the_same_audit(client: Any) -> None:
    audits = [
        ForgetAudit("req-1", 0, "started", T0, T0 + 1, None, None, 7, {}, 0, 0, 0, 0, 1),
        ForgetAudit(
            "req-2",
            3,
            "done",
            T0,
            T0 + 2,
            T0 - MIN,
            T0 + 999,
            2**63,
            {"kpi": T0, "funnel:shop": T0 - 1},
            5,
            6,
            2**40,
            1234,
            2**64 - 1,
        ),
    ]
    insert(client, forget_audit.TABLE, [forget_audit.build_row(a) for a in audits])
    rows = client.query(
        f"SELECT {', '.join(forget_audit.TABLE.columns)} FROM forget_audit ORDER BY request_id"
    ).result_rows
    assert [forget_audit.read_audit(r) for r in rows] == audits
    assert (
        forget_audit.build_row(audits[1])[8] == '{"funnel:shop":1793491199999,"kpi":1793491200000}'
    )


def test_rows_appended_after_the_request_stay(client: Any) -> None:
    fill(client)  # X's events were ingested at T0 and T0 + 1
    removed = delete_person_rows(client, X, None, None, appended_until=T0)
    assert removed["events_raw"] == 1
    assert removed["funnel_attempts"] == 2  # only the key corrected to zero
    assert [s.event.event_id for s in read_person_events(client, X)] == [f"{X}-e1"]
