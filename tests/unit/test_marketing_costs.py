"""Marketing costs (docs/semantics.md section 10, "Marketing cost"): the Avro contract, the
checks, the CSV import, the worker's intake and the view of each day's latest import."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import clickhouse_connect
import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from funnel import cli_costs
from funnel.cli_costs import (
    CostFileError,
    CostImportError,
    CsvCostRow,
    costs_app,
    encode_days,
    group_by_day,
    read_costs_csv,
    send_days,
)
from schemas.channels import CHANNELS
from schemas.costs import (
    MAX_COST_MINOR,
    MAX_COST_ROWS,
    MAX_TEXT_CHARS,
    CostCodec,
    CostDay,
    CostRow,
)
from schemas.deadletter import DeadLetter
from schemas.reasons import CostReason, Reason, Rejection
from schemas.registry import SchemaRegistry
from simulator.config import SimConfig
from simulator.costs import campaign_costs, write_costs
from sinks.clickhouse import apply_migrations
from sinks.metrics import PipelineMetrics
from sinks.tables import TableSpec
from streams.costs_agent import CostIntake
from streams.outputs import dead_letters
from streams.outputs import marketing_costs as family

GOLDEN = Path(__file__).parent / "golden"
T0 = 1_714_567_890_123  # 2024-05-01T12:51:30.123Z
HEADER = "day,channel,utm_source,utm_medium,campaign,cost_minor,currency\n"
CODEC = CostCodec()

SEARCH = CostRow("paid_search", "baidu", "cpc", "brand_search_cn", 897196, "CNY")
KOL = CostRow("kol", "xiaohongshu", "kol", "春季新品", 120000, "CNY")
SOCIAL = CostRow("paid_social", "facebook", "paid_social", "", 5000, "USD")
DAY = CostDay("2024-05-01", T0, "costs-2024-05.csv", (SEARCH, KOL, SOCIAL))


def decode(day: CostDay, now_ms: int = T0) -> CostDay | Rejection:
    return CODEC.decode(CODEC.encode(day), now_ms)


def rejected(day: CostDay, now_ms: int = T0) -> Rejection:
    result = decode(day, now_ms)
    assert isinstance(result, Rejection), result
    return result


# -- the Avro contract ---------------------------------------------------------------------


def test_schema_is_registered_with_its_own_id() -> None:
    registry = SchemaRegistry.load()
    schema = registry.latest("marketing_costs")
    assert (schema.version, schema.schema_id) == (1, 401)
    assert schema.field_names == ("day", "imported_at_ms", "origin", "rows")
    assert CODEC.encode(DAY)[:5] == b"\x00\x00\x00\x01\x91"


def test_encoding_matches_golden_bytes() -> None:
    encoded = CODEC.encode(DAY).hex()
    golden = (GOLDEN / "marketing_costs.v1.hex").read_text().strip()
    assert encoded == golden, f"marketing_costs encoding changed; new hex: {encoded}"
    assert CODEC.decode(bytes.fromhex(golden), T0) == DAY


def test_golden_bytes_read_by_the_reference_avro_library() -> None:
    schema = SchemaRegistry.load().latest("marketing_costs")
    body = bytes.fromhex((GOLDEN / "marketing_costs.v1.hex").read_text().strip())[5:]
    reader = avro.io.DatumReader(avro.schema.parse(json.dumps(schema.definition)))
    record: Any = reader.read(avro.io.BinaryDecoder(io.BytesIO(body)))
    assert record["day"] == "2024-05-01"
    assert int(record["imported_at_ms"].timestamp() * 1000 + 0.5) == T0
    assert [r["cost_minor"] for r in record["rows"]] == [897196, 120000, 5000]
    assert record["rows"][1]["campaign"] == "春季新品"


def test_round_trip_and_an_empty_day() -> None:
    assert decode(DAY) == DAY
    empty = CostDay("2024-05-02", T0, "ads-api")
    assert decode(empty) == empty  # no rows: valid, it clears the day
    assert empty.totals() == {}
    assert DAY.totals() == {"CNY": 897196 + 120000, "USD": 5000}


def test_encoding_refuses_values_the_schema_cannot_carry() -> None:
    from schemas.errors import EncodeError

    with pytest.raises(EncodeError, match="does not fit schema marketing_costs v1"):
        CODEC.encode(replace(DAY, rows=(replace(SEARCH, cost_minor=12.99),)))  # type: ignore[arg-type]


# -- decoding and checking -----------------------------------------------------------------


def test_framing_problems_have_the_event_reasons() -> None:
    raw = CODEC.encode(DAY)
    cases: list[tuple[bytes, Reason, str]] = [
        (b"day,channel\n", Reason.UNDECODABLE, "not Confluent Avro"),
        (b"", Reason.UNDECODABLE, "not Confluent Avro"),
        (b"\x00\x00\x01", Reason.UNDECODABLE, "has no schema id"),
        (raw[:-3], Reason.UNDECODABLE, "schema id 401"),
        (raw + b"\x00", Reason.UNDECODABLE, "1 trailing bytes"),
        (b"\x00\x00\x00\x00\xc9" + raw[5:], Reason.UNKNOWN_SCHEMA_ID, "cart v1, not a marketing"),
        (b"\x00\x00\x00\x03\xe7" + raw[5:], Reason.UNKNOWN_SCHEMA_ID, "not registered"),
        (raw + b"\x00" * 1_000_000, Reason.PAYLOAD_TOO_LARGE, "the limit is 1000000"),
    ]
    for data, reason, detail in cases:
        result = CODEC.decode(data, T0)
        assert isinstance(result, Rejection), data[:20]
        assert result.reason is reason, result
        assert detail in result.detail, result


def test_hostile_bytes_never_raise() -> None:
    raw = CODEC.encode(DAY)
    for cut in range(5, len(raw)):
        assert isinstance(CODEC.decode(raw[:cut], T0), Rejection)
    flipped = bytearray(raw)
    for i in range(5, len(raw)):
        flipped[i] ^= 0xFF
        CODEC.decode(bytes(flipped), T0)  # a CostDay or a Rejection, never an exception
        flipped[i] ^= 0xFF


INVALID: list[tuple[str, CostDay, str]] = [
    ("day format", replace(DAY, day="2024/05/01"), "day '2024/05/01' is not a date written"),
    ("day digits", replace(DAY, day="２０24-05-01"), "is not a date written YYYY-MM-DD"),
    ("calendar", replace(DAY, day="2024-02-30"), "day '2024-02-30' is not a calendar date"),
    ("old day", replace(DAY, day="1999-12-31"), "day 1999-12-31 is outside 2000-01-01"),
    ("far day", replace(DAY, day="2100-01-01"), "check the year"),
    ("seconds", replace(DAY, imported_at_ms=T0 // 1000), "imported_at_ms 1714567890 is before"),
    ("future", replace(DAY, imported_at_ms=T0 + 3_600_000), "3600 s after the record reached"),
    ("no origin", replace(DAY, origin=""), "origin is empty"),
    ("long origin", replace(DAY, origin="x" * 257), "origin is 257 characters long; at most 256"),
    (
        "channel",
        replace(DAY, rows=(replace(SEARCH, channel="Paid_Search"),)),
        "rows[0].channel 'Paid_Search' is not a known channel (did you mean 'paid_search'?)",
    ),
    (
        "marker channel",
        replace(DAY, rows=(replace(SEARCH, channel=""),)),
        "rows[0].channel '' is not a known channel",
    ),
    (
        "source length",
        replace(DAY, rows=(SEARCH, replace(KOL, utm_source="s" * (MAX_TEXT_CHARS + 1)))),
        "rows[1].utm_source is 257 characters long",
    ),
    (
        "control character",
        replace(DAY, rows=(replace(KOL, campaign="spring\nsale"),)),
        "rows[0].campaign 'spring\\nsale' contains the control character U+000A at position 6",
    ),
    (
        "negative",
        replace(DAY, rows=(replace(SEARCH, cost_minor=-1),)),
        "rows[0].cost_minor -1 is negative",
    ),
    (
        "too much",
        replace(DAY, rows=(replace(SEARCH, cost_minor=MAX_COST_MINOR + 1),)),
        "rows[0].cost_minor 10000000000001 is above the limit",
    ),
    (
        "currency",
        replace(DAY, rows=(replace(SOCIAL, currency="usd"),)),
        "rows[0].currency 'usd' is not an active ISO 4217 code (did you mean 'USD'?)",
    ),
    (
        "duplicate",
        replace(DAY, rows=(SEARCH, KOL, replace(SEARCH, cost_minor=1))),
        "rows[2] repeats the key of rows[0] (channel='paid_search', utm_source='baidu', "
        "utm_medium='cpc', campaign='brand_search_cn', currency='CNY') on 2024-05-01",
    ),
]


@pytest.mark.parametrize(("case", "day", "detail"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_content_is_an_invalid_cost_record_naming_the_field(
    case: str, day: CostDay, detail: str
) -> None:
    rejection = rejected(day)
    assert rejection.reason is CostReason.INVALID_COST_RECORD
    assert detail in rejection.detail, rejection.detail


def test_row_count_and_bounds_at_their_limits() -> None:
    many = tuple(
        CostRow("paid_search", "baidu", "cpc", f"c{i}", 1, "CNY") for i in range(MAX_COST_ROWS)
    )
    assert decode(replace(DAY, rows=many)) == replace(DAY, rows=many)
    extra = (*many, CostRow("kol", "", "", "", 0, "CNY"))
    assert "rows has 10001 entries; at most 10000" in rejected(replace(DAY, rows=extra)).detail
    edge = replace(
        DAY, rows=(replace(SEARCH, cost_minor=MAX_COST_MINOR), replace(KOL, cost_minor=0))
    )
    assert decode(edge) == edge
    assert decode(replace(DAY, imported_at_ms=T0 + 300_000)) == replace(
        DAY, imported_at_ms=T0 + 300_000
    )
    # The same key in another currency is another row.
    two = replace(DAY, rows=(SEARCH, replace(SEARCH, currency="USD")))
    assert decode(two) == two
    for channel in CHANNELS:
        assert isinstance(decode(replace(DAY, rows=(replace(KOL, channel=channel),))), CostDay)


def test_a_rejection_becomes_a_dead_letter_with_its_reason() -> None:
    raw = CODEC.encode(replace(DAY, day="2024-02-30"))
    rejection = CODEC.decode(raw, T0)
    assert isinstance(rejection, Rejection)
    letter = DeadLetter.from_rejection(
        rejection,
        raw=raw,
        source_topic="shop.marketing_costs",
        source_partition=1,
        source_offset=7,
        key=b"2024-02-30",
        received_at_ms=T0,
    )
    assert letter.reason == "invalid_cost_record"
    assert "day '2024-02-30'" in letter.detail
    assert dead_letters.build_row(letter)[5] == "invalid_cost_record"


# -- the CSV file --------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "costs.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(CostFileError) as info:
        read_costs_csv(path)
    return info.value.problems


def test_the_simulators_file_reads_back_as_its_rows(tmp_path: Path) -> None:
    sim_rows = campaign_costs(SimConfig(days=2.5))
    path = tmp_path / "costs.csv"
    write_costs(sim_rows, path)
    rows = read_costs_csv(path)
    assert [(r.day, r.row) for r in rows] == [
        (
            s.day,
            CostRow(s.channel, s.utm_source, s.utm_medium, s.campaign, s.cost_minor, s.currency),
        )
        for s in sim_rows
    ]
    assert [r.line for r in rows] == list(range(2, len(sim_rows) + 2))


def test_lenient_about_layout(tmp_path: Path) -> None:
    # A BOM, upper-case header in another order, an extra column, spaces and blank lines.
    text = (
        "\ufeffCurrency, Day ,channel,utm_source,utm_medium,campaign,cost_minor,note\n"
        "\n"
        'CNY, 2026-11-01 , kol ,xhs,kol,"spring, 2026",100,first\n'
        "  \n"
        "CNY,2026-11-01,paid_search,,,,0,\n"
    )
    rows = read_costs_csv(write(tmp_path, text))
    assert rows == [
        CsvCostRow(3, "2026-11-01", CostRow("kol", "xhs", "kol", "spring, 2026", 100, "CNY")),
        CsvCostRow(5, "2026-11-01", CostRow("paid_search", "", "", "", 0, "CNY")),
    ]


CSV_PROBLEMS: list[tuple[str, str, list[str]]] = [
    ("empty file", "", ["the file is empty; its first line must be the header day,channel"]),
    (
        "missing column",
        "day,channel,utm_source,utm_medium,campaign,cost\n",
        ["line 1: the header lacks column(s) cost_minor, currency; it must name day"],
    ),
    (
        "repeated column",
        "day,day,channel,utm_source,utm_medium,campaign,cost_minor,currency\n",
        ["line 1: the header repeats column(s) day"],
    ),
    (
        "bad number",
        HEADER + "2026-11-01,kol,a,b,c,12.99,CNY\n2026-11-01,kol,a,b,d,1e5,CNY\n"
        "2026-11-01,kol,a,b,e,,CNY\n2026-11-01,kol,a,b,f,12.5,JPY\n2026-11-01,kol,a,b,g,1.234,CNY\n",
        [
            "line 2: cost_minor '12.99' is not a whole number: costs are integer minor units: "
            "write 1299 for 12.99 CNY",
            "line 3: cost_minor '1e5' is not a whole number of minor units",
            "line 4: cost_minor is empty; write the cost in minor units",
            "line 5: cost_minor '12.5' is not a whole number: costs are integer minor units, "
            "and JPY has 0 decimal place(s): round the amount",
            "line 6: cost_minor '1.234' is not a whole number: costs are integer minor units, "
            "and CNY has 2 decimal place(s)",
        ],
    ),
    (
        "bad amount",
        HEADER + "2026-11-01,kol,a,b,c,-100,CNY\n2026-11-01,kol,a,b,d,10000000000001,CNY\n",
        [
            "line 2: cost_minor -100 is negative; costs are >= 0",
            "line 3: cost_minor 10000000000001 is above the limit of 10000000000000",
        ],
    ),
    (
        "bad date",
        HEADER + "01/11/2026,kol,a,b,c,1,CNY\n2026-11-31,kol,a,b,c,1,CNY\n",
        [
            "line 2: day '01/11/2026' is not a date written YYYY-MM-DD",
            "line 3: day '2026-11-31' is not a calendar date",
        ],
    ),
    (
        "unknown channel",
        HEADER + "2026-11-01,Paid Search,a,b,c,1,CNY\n2026-11-01,,a,b,c,1,CNY\n",
        [
            "line 2: channel 'Paid Search' is not a known channel; use one of organic_search",
            "line 3: channel '' is not a known channel",
        ],
    ),
    (
        "bad currency",
        HEADER + "2026-11-01,kol,a,b,c,1,RMB\n",
        ["line 2: currency 'RMB' is not an active ISO 4217 code; use an upper-case code"],
    ),
    (
        "duplicate key",
        HEADER + "2026-11-01,kol,a,b,c,1,CNY\n2026-11-02,kol,a,b,c,1,CNY\n"
        "2026-11-01,kol,a,b,c,2,CNY\n2026-11-01,kol,a,b,c,2,USD\n",
        [
            "line 4: repeats line 2 (day 2026-11-01, channel='kol', utm_source='a', "
            "utm_medium='b', campaign='c', currency='CNY'); one line per day, channel, "
            "utm_source, utm_medium, campaign and currency: add the costs up in one line"
        ],
    ),
    (
        "field count",
        HEADER + "2026-11-01,kol,a,b,c,1\n2026-11-01,kol,a,b,c,1,CNY,extra\n",
        [
            "line 2: has 6 fields, the header has 7",
            "line 3: has 8 fields, the header has 7; quote values that contain commas",
        ],
    ),
    (
        "long text",
        HEADER + f"2026-11-01,kol,{'s' * 300},b,c,1,CNY\n",
        ["line 2: utm_source is 300 characters long; at most 256"],
    ),
]


@pytest.mark.parametrize(
    ("case", "text", "expected"), CSV_PROBLEMS, ids=[c[0] for c in CSV_PROBLEMS]
)
def test_csv_problems_name_the_line_and_the_fix(
    tmp_path: Path, case: str, text: str, expected: list[str]
) -> None:
    problems = problems_of(write(tmp_path, text))
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), (problem, start)


def test_every_problem_of_a_line_is_listed(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, HEADER + "2026-13-01,paid,a,b,c,x,cny\n"))
    assert [p.split(" ")[2] for p in problems] == ["day", "channel", "currency", "cost_minor"]
    assert all(p.startswith("line 2: ") for p in problems)


def test_unreadable_files(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "absent.csv") == ["the file does not exist; check the path"]
    assert problems_of(tmp_path) == ["is a directory; pass the CSV file"]
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(HEADER.encode() + "2026-11-01,kol,a,b,café,1,CNY\n".encode("latin-1"))
    assert problems_of(latin1)[0].startswith("is not UTF-8 text")


def test_many_problems_are_listed_briefly(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2026-11-01,nope,a,b,c,1,CNY\n" * 50)
    with pytest.raises(CostFileError) as info:
        read_costs_csv(path)
    assert len(info.value.problems) == 50
    assert "50 problem(s), nothing sent" in str(info.value)
    assert "... and 20 more" in str(info.value)


# -- grouping per day ----------------------------------------------------------------------


def csv_row(line: int, day: str, campaign: str, cost: int = 100) -> CsvCostRow:
    return CsvCostRow(line, day, CostRow("paid_search", "baidu", "cpc", campaign, cost, "CNY"))


def test_grouping_gives_one_record_per_day_with_one_import_time() -> None:
    rows = [
        csv_row(2, "2026-11-02", "b"),
        csv_row(3, "2026-11-01", "a"),
        csv_row(4, "2026-11-02", "a"),
    ]
    days = group_by_day(rows, T0, "costs.csv", clear_days=["2026-11-05"])
    assert [d.day for d in days] == ["2026-11-01", "2026-11-02", "2026-11-05"]
    assert {d.imported_at_ms for d in days} == {T0}
    assert {d.origin for d in days} == {"costs.csv"}
    assert [r.campaign for r in days[1].rows] == ["b", "a"]  # file order
    assert days[2].rows == ()
    values = encode_days(days, CODEC)
    assert [CODEC.decode(v, T0) for v in values] == days


def test_grouping_problems() -> None:
    rows = [csv_row(i + 2, "2026-11-01", f"c{i}") for i in range(MAX_COST_ROWS + 1)]
    with pytest.raises(CostFileError, match=r"day 2026-11-01 has 10001 lines \(lines 2-10002\)"):
        group_by_day(rows, T0, "costs.csv")
    with pytest.raises(CostFileError, match="--clear-day 2026-11-01: the file has 1 line"):
        group_by_day(rows[:1], T0, "costs.csv", clear_days=["2026-11-01"])
    with pytest.raises(CostFileError, match="--clear-day '2026-11' is not a date"):
        group_by_day(rows[:1], T0, "costs.csv", clear_days=["2026-11"])


def test_a_record_over_the_size_limit_is_refused_before_sending() -> None:
    wide = "w" * MAX_TEXT_CHARS
    rows = tuple(
        CostRow("paid_search", wide, wide, f"{i:08d}{wide[8:]}", 1, "CNY") for i in range(1400)
    )
    with pytest.raises(CostFileError, match=r"its record is 1.* bytes, above the limit of 1000000"):
        encode_days([CostDay("2026-11-01", T0, "x.csv", rows)], CODEC)


# -- sending and the command ---------------------------------------------------------------


class FakeMetadata:
    def __init__(self, partition: int, offset: int) -> None:
        self.partition = partition
        self.offset = offset


class FakeProducer:
    def __init__(self, fail_on: str | None = None, fail_start: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.started = self.stopped = False
        self.fail_on = fail_on
        self.fail_start = fail_start

    async def start(self) -> None:
        from aiokafka.errors import KafkaConnectionError

        if self.fail_start:
            raise KafkaConnectionError("connection refused")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, *, key: bytes) -> asyncio.Future[Any]:
        from aiokafka.errors import KafkaTimeoutError

        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if key.decode() == self.fail_on:
            future.set_exception(KafkaTimeoutError("no metadata"))
        else:
            self.sent.append((topic, key, value))
            future.set_result(FakeMetadata(0, len(self.sent) - 1))
        return future


def test_send_days_keys_each_record_by_its_day() -> None:
    days = [CostDay("2026-11-01", T0, "x.csv", (SEARCH,)), CostDay("2026-11-02", T0, "x.csv")]
    producer = FakeProducer()
    sent = asyncio.run(
        send_days(days, encode_days(days, CODEC), "b:1", "costs", lambda _b: producer)
    )
    assert [(s.day, s.offset) for s in sent] == [("2026-11-01", 0), ("2026-11-02", 1)]
    assert [(t, k) for t, k, _ in producer.sent] == [
        ("costs", b"2026-11-01"),
        ("costs", b"2026-11-02"),
    ]
    assert [CODEC.decode(v, T0) for _, _, v in producer.sent] == days
    assert producer.stopped


def test_send_days_failures_say_what_was_sent() -> None:
    days = [CostDay("2026-11-01", T0, "x.csv", (SEARCH,)), CostDay("2026-11-02", T0, "x.csv")]
    values = encode_days(days, CODEC)
    with pytest.raises(CostImportError, match=r"cannot connect to Kafka at b:1.*nothing was sent"):
        asyncio.run(send_days(days, values, "b:1", "t", lambda _b: FakeProducer(fail_start=True)))
    failing = FakeProducer(fail_on="2026-11-02")
    with pytest.raises(
        CostImportError, match=r"acknowledged: 2026-11-01\. Importing the file again is safe"
    ):
        asyncio.run(send_days(days, values, "b:1", "t", lambda _b: failing))
    assert failing.stopped


@pytest.fixture
def producers(monkeypatch: pytest.MonkeyPatch) -> list[FakeProducer]:
    made: list[FakeProducer] = []

    def factory(bootstrap: str) -> FakeProducer:
        made.append(FakeProducer())
        return made[-1]

    monkeypatch.setattr(cli_costs, "new_producer", factory)
    for name in ("FUNNEL_TOPICS__MARKETING_COSTS", "FUNNEL_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    return made


def sim_csv(tmp_path: Path) -> Path:
    path = tmp_path / "costs.csv"
    write_costs(campaign_costs(SimConfig(days=3)), path)
    return path


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(costs_app, list(args), env={"COLUMNS": "200"})


def test_import_sends_one_record_per_day(tmp_path: Path, producers: list[FakeProducer]) -> None:
    path = sim_csv(tmp_path)
    result = run_cli("import", str(path), "--bootstrap-servers", "k:9")
    assert result.exit_code == 0, result.output
    [producer] = producers
    rows = read_costs_csv(path)
    decoded = [CODEC.decode(v, 2**62) for _, _, v in producer.sent]
    assert all(isinstance(d, CostDay) for d in decoded)
    days = [d for d in decoded if isinstance(d, CostDay)]
    assert [k.decode() for _, k, _ in producer.sent] == [d.day for d in days]
    assert [d.day for d in days] == sorted({r.day for r in rows})
    assert len({d.imported_at_ms for d in days}) == 1
    assert {d.origin for d in days} == {"costs.csv"}
    assert [(d.day, row) for d in days for row in d.rows] == [(r.day, r.row) for r in rows]
    assert {t for t, _, _ in producer.sent} == {"shop.marketing_costs"}
    total = sum(r.row.cost_minor for r in rows)
    assert f"sent {len(days)} day record(s), {len(rows)} row(s)" in result.output
    assert f"total {total / 100:,.2f} CNY" in result.output
    assert "at k:9" in result.output


def test_import_dry_run_sends_nothing(tmp_path: Path, producers: list[FakeProducer]) -> None:
    result = run_cli("import", str(sim_csv(tmp_path)), "--dry-run", "--clear-day", "2026-10-31")
    assert result.exit_code == 0, result.output
    assert producers == []
    assert "dry run: 4 day record(s), 45 row(s)" in result.output
    assert "(clears the day)" in result.output


def test_import_of_a_bad_file_exits_2_without_connecting(
    tmp_path: Path, producers: list[FakeProducer]
) -> None:
    path = write(tmp_path, HEADER + "2026-11-01,kol,a,b,c,1,CNY\n2026-11-01,kol,a,b,c,12.99,CNY\n")
    result = run_cli("import", str(path))
    assert result.exit_code == 2
    assert producers == []
    assert "line 3: cost_minor '12.99' is not a whole number" in result.output
    assert "nothing sent" in result.output
    header_only = write(tmp_path, HEADER, "empty.csv")
    result = run_cli("import", str(header_only))
    assert result.exit_code == 2
    assert "no cost lines: nothing to import" in result.output


def test_import_with_only_a_cleared_day(tmp_path: Path, producers: list[FakeProducer]) -> None:
    result = run_cli(
        "import", str(write(tmp_path, HEADER)), "--clear-day", "2026-11-03", "--origin", "ops"
    )
    assert result.exit_code == 0, result.output
    [(_, key, value)] = producers[0].sent
    day = CODEC.decode(value, 2**62)
    assert key == b"2026-11-03"
    assert isinstance(day, CostDay) and (day.rows, day.origin) == ((), "ops")


def test_import_kafka_failure_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_costs, "new_producer", lambda _b: FakeProducer(fail_start=True))
    result = run_cli("import", str(sim_csv(tmp_path)), "--bootstrap-servers", "k:9")
    assert result.exit_code == 1
    assert "cannot connect to Kafka at k:9" in result.output


# -- the worker's intake -------------------------------------------------------------------


class FakeWriter:
    def __init__(self) -> None:
        self.rows: list[tuple[TableSpec, list[Sequence[Any]]]] = []

    async def submit(self, table: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        self.rows.append((table, list(rows)))


class FakeDeadLetters:
    def __init__(self) -> None:
        self.sent: list[DeadLetter] = []

    async def send(self, letter: DeadLetter) -> None:
        self.sent.append(letter)


def sample(metrics: PipelineMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_intake_writes_valid_days_and_dead_letters_the_rest() -> None:
    writer, letters = FakeWriter(), FakeDeadLetters()
    metrics = PipelineMetrics(CollectorRegistry())
    intake = CostIntake("t.costs", CODEC, writer, letters, metrics)
    good = asyncio.run(intake.handle(CODEC.encode(DAY), b"2024-05-01", 2, 10, T0 + 5))
    assert good == DAY
    assert writer.rows == [(family.TABLE, family.build_rows(DAY, 2, 10))]
    assert letters.sent == []

    bad_raw = CODEC.encode(replace(DAY, rows=(replace(SEARCH, channel="tv"),)))
    bad = asyncio.run(intake.handle(bad_raw, b"2024-05-01", 2, 11, T0 + 6))
    assert isinstance(bad, DeadLetter)
    assert (bad.reason, bad.source_topic, bad.source_partition, bad.source_offset) == (
        "invalid_cost_record",
        "t.costs",
        2,
        11,
    )
    assert (bad.raw, bad.key, bad.received_at_ms) == (bad_raw, b"2024-05-01", T0 + 6)
    assert "rows[0].channel 'tv'" in bad.detail
    assert letters.sent == [bad]
    assert writer.rows[-1] == (dead_letters.TABLE, [dead_letters.build_row(bad)])

    tombstone = asyncio.run(intake.handle(None, b"2024-05-01", 2, 12, T0 + 7))
    assert isinstance(tombstone, DeadLetter) and tombstone.reason == "undecodable"
    assert (intake.days_written, intake.rejected) == (1, 2)
    assert sample(metrics, "shopfunnel_events_ingested_total", topic="t.costs") == 3
    assert (
        sample(
            metrics,
            "shopfunnel_dead_letters_total",
            topic="t.costs",
            reason="invalid_cost_record",
        )
        == 1
    )


# -- ClickHouse: the table and the view of each day's latest import ------------------------

DATABASE = "marketing_costs_test"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    admin = clickhouse_connect.get_client(dsn="chdb://memory")
    admin.command(f"DROP DATABASE IF EXISTS {DATABASE}")
    admin.command(f"CREATE DATABASE {DATABASE}")
    migrated = clickhouse_connect.get_client(dsn="chdb://memory", database=DATABASE)
    apply_migrations(migrated)
    yield migrated
    admin.command(f"DROP DATABASE IF EXISTS {DATABASE}")


@pytest.fixture
def costs(client: Any) -> Any:
    client.command("TRUNCATE TABLE marketing_costs")
    return client


class Topic:
    """Records of the costs topic as the agent writes them: day records at offsets."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.offset = 0

    def send(self, day: CostDay, partition: int = 0, offset: int | None = None) -> None:
        if offset is None:
            offset = self.offset
            self.offset += 1
        self.client.insert(
            family.TABLE.name,
            family.build_rows(day, partition, offset),
            column_names=list(family.TABLE.columns),
        )

    def view(self) -> set[tuple[Any, ...]]:
        rows = self.client.query(
            "SELECT toString(day), channel, utm_source, utm_medium, campaign, currency, "
            "cost_minor, origin FROM v_marketing_costs"
        ).result_rows
        assert len(rows) == len(set(rows)), "the view repeats a row"
        return {tuple(r) for r in rows}


def expected(*days: CostDay) -> set[tuple[Any, ...]]:
    return {
        (
            d.day,
            r.channel,
            r.utm_source,
            r.utm_medium,
            r.campaign,
            r.currency,
            r.cost_minor,
            d.origin,
        )
        for d in days
        for r in d.rows
    }


D1 = CostDay("2026-11-01", T0, "a.csv", (SEARCH, KOL, SOCIAL))
D2 = CostDay("2026-11-02", T0, "a.csv", (replace(SEARCH, cost_minor=1), KOL))


def test_family_matches_the_ddl(client: Any) -> None:
    columns = [
        r[0]
        for r in client.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND "
            "table = 'marketing_costs' ORDER BY position",
            parameters={"db": DATABASE},
        ).result_rows
    ]
    assert list(family.TABLE.columns) == columns
    key, engine = client.query(
        "SELECT sorting_key, engine_full FROM system.tables WHERE database = {db:String} "
        "AND name = 'marketing_costs'",
        parameters={"db": DATABASE},
    ).result_rows[0]
    assert tuple(c.strip() for c in key.split(",")) == family.TABLE.order_by
    assert engine.startswith("ReplacingMergeTree ")


def test_a_day_reads_back_with_its_types(costs: Any) -> None:
    topic = Topic(costs)
    topic.send(D1)
    row = costs.query(
        "SELECT day, cost_minor, toUnixTimestamp64Milli(imported_at) FROM v_marketing_costs "
        "WHERE channel = 'kol'"
    ).result_rows
    assert [(str(d), c, t) for d, c, t in row] == [("2026-11-01", KOL.cost_minor, T0)]
    assert topic.view() == expected(D1)


def test_importing_twice_gives_the_same_result(costs: Any) -> None:
    topic = Topic(costs)
    topic.send(D1)
    topic.send(D2)
    first = topic.view()
    topic.send(replace(D1, imported_at_ms=T0 + 60_000))
    topic.send(replace(D2, imported_at_ms=T0 + 60_000))
    assert topic.view() == first == expected(D1, D2)


def test_replaying_a_record_is_harmless(costs: Any) -> None:
    topic = Topic(costs)
    topic.send(D1, offset=5)
    topic.send(D1, offset=5)  # read again after a restart
    assert topic.view() == expected(D1)
    assert costs.command("SELECT count() FROM marketing_costs FINAL") == 1 + len(D1.rows)
    costs.command("OPTIMIZE TABLE marketing_costs FINAL")
    assert costs.command("SELECT count() FROM marketing_costs") == 1 + len(D1.rows)


def test_a_reimport_with_fewer_rows_drops_the_missing_ones(costs: Any) -> None:
    topic = Topic(costs)
    topic.send(D1)
    topic.send(D2)
    fewer = CostDay(D1.day, T0 + 1, "b.csv", (replace(SEARCH, cost_minor=42),))
    topic.send(fewer)
    assert topic.view() == expected(fewer, D2)  # the other day is untouched


def test_an_empty_day_clears_it_and_a_later_import_fills_it_again(costs: Any) -> None:
    topic = Topic(costs)
    topic.send(D1)
    topic.send(D2)
    topic.send(CostDay(D1.day, T0 + 1, "ops"))
    assert topic.view() == expected(D2)
    again = replace(D1, imported_at_ms=T0 + 2)
    topic.send(again)
    assert topic.view() == expected(again, D2)


def test_the_latest_import_wins_whatever_the_arrival_order(costs: Any) -> None:
    topic = Topic(costs)
    newer = CostDay(D1.day, T0 + 10, "new.csv", (KOL,))
    topic.send(newer)
    topic.send(D1)  # an older import read later (another partition, a replay)
    assert topic.view() == expected(newer)
    # Two records with the same import time: the later Kafka position wins.
    tie = CostDay(D1.day, T0 + 10, "tie.csv", (SOCIAL,))
    topic.send(tie)
    assert topic.view() == expected(tie)
