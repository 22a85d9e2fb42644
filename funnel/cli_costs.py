"""``funnel costs import FILE.csv``: send daily marketing costs to the costs topic.

The file has the simulator's columns (``simulator/costs.py``): ``day, channel,
utm_source, utm_medium, campaign, cost_minor, currency``, one line per UTC day and
(channel, utm_source, utm_medium, campaign, currency). The whole file is checked first,
with the rules the worker applies (``schemas/costs.py``); on any problem the command
lists every problem with its line number and the fix, and exits with code 2 without
sending anything. Otherwise the rows are grouped by day and each day goes out as one
``marketing_costs`` record keyed by the day, all with the same ``imported_at_ms``: each
record replaces everything known for its day (docs/semantics.md section 10), so running
the same import again changes nothing, and a day imported again with fewer rows loses the
missing ones. Days not in the file are left alone; ``--clear-day`` empties one.

Exit codes: 0 sent (or checked, with ``--dry-run``), 2 bad input or settings, 1 Kafka
failed (some days may have been sent; importing again is safe).

Mounted by ``funnel/cli.py`` as ``app.add_typer(costs_app, name="costs")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Protocol

import typer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from funnel.errors import FunnelError
from funnel.kafka_out import idempotent_producer
from funnel.settings import Settings, load_settings
from schemas.costs import (
    MAX_COST_RECORD_BYTES,
    MAX_COST_ROWS,
    TEXT_FIELDS,
    CostCodec,
    CostDay,
    CostRow,
    channel_problem,
    cost_day_problem,
    cost_problem,
    currency_problem,
    day_problem,
    key_text,
    text_problem,
)
from schemas.iso4217 import MINOR_UNIT_EXPONENT, to_major

COLUMNS: Final = (
    "day", "channel", "utm_source", "utm_medium", "campaign", "cost_minor", "currency"
)  # fmt: skip
EXIT_BAD_INPUT: Final = 2
EXIT_KAFKA: Final = 1
CONNECT_TIMEOUT_S: Final = 15.0
DELIVERY_TIMEOUT_S: Final = 60.0
# Problems printed before "... and N more".
MAX_PROBLEMS_SHOWN: Final = 30
_WHOLE_NUMBER: Final = re.compile(r"-?[0-9]+")
_DECIMAL: Final = re.compile(r"-?[0-9]*[.,][0-9]+")

costs_app = typer.Typer(
    help="Marketing costs (ROAS, CPA, CAC): import daily spend from CSV.",
    no_args_is_help=True,
)


class CostFileError(FunnelError):
    """The cost file cannot be imported; ``problems`` lists each one with its line."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        shown = self.problems[:MAX_PROBLEMS_SHOWN]
        more = len(self.problems) - len(shown)
        text = "\n".join(f"  {p}" for p in shown)
        if more:
            text += f"\n  ... and {more} more"
        super().__init__(f"{path}: {len(self.problems)} problem(s), nothing sent:\n{text}")


class CostImportError(FunnelError):
    """Kafka did not take the records; the message says which days were sent and the fix."""


@dataclass(frozen=True, slots=True)
class CsvCostRow:
    """One line of the file, checked."""

    line: int
    day: str
    row: CostRow


# -- reading and checking the file ----------------------------------------------------------


def read_costs_csv(path: Path) -> list[CsvCostRow]:
    """Every cost line of ``path``, checked; raises :class:`CostFileError` listing every
    problem (line numbers count from 1, the header included)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return _read_rows(path, csv.reader(handle))
    except FileNotFoundError:
        raise CostFileError(path, ["the file does not exist; check the path"]) from None
    except IsADirectoryError:
        raise CostFileError(path, ["is a directory; pass the CSV file"]) from None
    except UnicodeDecodeError as exc:
        raise CostFileError(
            path, [f"is not UTF-8 text (byte {exc.start}); save the file as UTF-8 CSV"]
        ) from None
    except csv.Error as exc:
        raise CostFileError(path, [f"is not valid CSV: {exc}"]) from None
    except OSError as exc:
        raise CostFileError(path, [f"cannot be read: {exc.strerror or exc}"]) from None


def _read_rows(path: Path, reader: Iterable[list[str]]) -> list[CsvCostRow]:
    lines = iter(reader)
    header: list[str] | None = None
    for fields in lines:
        if any(f.strip() for f in fields):
            header = [f.strip().lower() for f in fields]
            break
    if header is None:
        raise CostFileError(
            path, [f"the file is empty; its first line must be the header {','.join(COLUMNS)}"]
        )
    header_line = _line_num(reader)
    problems = _header_problems(header, header_line)
    if problems:
        raise CostFileError(path, problems)
    position = {name: header.index(name) for name in COLUMNS}
    rows: list[CsvCostRow] = []
    first_of_key: dict[tuple[str, ...], int] = {}
    for fields in lines:
        line = _line_num(reader)
        if not any(f.strip() for f in fields):
            continue  # blank line
        if len(fields) != len(header):
            problems.append(
                f"line {line}: has {len(fields)} fields, the header has {len(header)}; "
                "quote values that contain commas"
            )
            continue
        values = {name: fields[i].strip() for name, i in position.items()}
        row, line_problems = _parse_line(values)
        problems.extend(f"line {line}: {p}" for p in line_problems)
        if row is None:
            continue
        key = (values["day"], *row.key)
        first = first_of_key.setdefault(key, line)
        if first != line:
            problems.append(
                f"line {line}: repeats line {first} (day {values['day']}, {key_text(row)}); "
                "one line per day, channel, utm_source, utm_medium, campaign and currency: "
                "add the costs up in one line"
            )
            continue
        rows.append(CsvCostRow(line, values["day"], row))
    if problems:
        raise CostFileError(path, problems)
    return rows


def _line_num(reader: Iterable[list[str]]) -> int:
    number = getattr(reader, "line_num", 0)
    return number if isinstance(number, int) else 0


def _header_problems(header: list[str], line: int) -> list[str]:
    problems = []
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        problems.append(f"line {line}: the header repeats column(s) {', '.join(repeated)}")
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        problems.append(
            f"line {line}: the header lacks column(s) {', '.join(missing)}; it must name "
            f"{', '.join(COLUMNS)} (the columns of the simulator's costs.csv)"
        )
    return problems


def _parse_line(values: dict[str, str]) -> tuple[CostRow | None, list[str]]:
    problems = []
    problem = day_problem(values["day"])
    if problem is not None:
        problems.append(f"day {problem}")
    problem = channel_problem(values["channel"])
    if problem is not None:
        problems.append(f"channel {problem}")
    for name in TEXT_FIELDS:
        problem = text_problem(values[name])
        if problem is not None:
            problems.append(f"{name} {problem}")
    currency = values["currency"]
    problem = currency_problem(currency)
    if problem is not None:
        problems.append(f"currency {problem}")
    cost, problem = _parse_cost(values["cost_minor"], currency)
    if problem is not None:
        problems.append(f"cost_minor {problem}")
    if problems or cost is None:
        return None, problems
    row = CostRow(
        channel=values["channel"],
        utm_source=values["utm_source"],
        utm_medium=values["utm_medium"],
        campaign=values["campaign"],
        cost_minor=cost,
        currency=currency,
    )
    return row, []


def _parse_cost(text: str, currency: str) -> tuple[int | None, str | None]:
    if not text:
        return None, "is empty; write the cost in minor units (1299 for 12.99 CNY)"
    if _WHOLE_NUMBER.fullmatch(text):
        cost = int(text)
        return cost, cost_problem(cost)
    if _DECIMAL.fullmatch(text):
        return None, f"{text!r} is not a whole number: {_minor_units_hint(text, currency)}"
    return None, f"{text!r} is not a whole number of minor units (1299 for 12.99 CNY)"


def _minor_units_hint(text: str, currency: str) -> str:
    exponent = MINOR_UNIT_EXPONENT.get(currency)
    if exponent is None:
        return "costs are integer minor units (1299 for 12.99 CNY)"
    minor = Decimal(text.replace(",", ".")).scaleb(exponent)
    if minor != minor.to_integral_value():
        return (
            f"costs are integer minor units, and {currency} has {exponent} decimal "
            f"place(s): round the amount to whole minor units"
        )
    return f"costs are integer minor units: write {int(minor)} for {text} {currency}"


def group_by_day(
    rows: Sequence[CsvCostRow],
    imported_at_ms: int,
    origin: str,
    *,
    clear_days: Iterable[str] = (),
    path: Path = Path("costs.csv"),
) -> list[CostDay]:
    """One record per day (sorted by day; rows in file order), every one with the same
    ``imported_at_ms``; each of ``clear_days`` gets a record without rows. Raises
    :class:`CostFileError` for a day over the row limit or a cleared day with rows."""
    by_day: dict[str, list[CsvCostRow]] = {}
    for row in rows:
        by_day.setdefault(row.day, []).append(row)
    problems = []
    for day, day_rows in sorted(by_day.items()):
        if len(day_rows) > MAX_COST_ROWS:
            problems.append(
                f"day {day} has {len(day_rows)} lines (lines {day_rows[0].line}-"
                f"{day_rows[-1].line}); at most {MAX_COST_ROWS} per day: add up lines of "
                "the same channel and campaign"
            )
    for day in sorted(set(clear_days)):
        problem = day_problem(day)
        if problem is not None:
            problems.append(f"--clear-day {problem}")
        elif day in by_day:
            problems.append(
                f"--clear-day {day}: the file has {len(by_day[day])} line(s) for that day "
                f"(line {by_day[day][0].line}, ...); drop the option or those lines"
            )
        else:
            by_day[day] = []
    if problems:
        raise CostFileError(path, problems)
    return [
        CostDay(day, imported_at_ms, origin, tuple(r.row for r in day_rows))
        for day, day_rows in sorted(by_day.items())
    ]


def encode_days(
    days: Sequence[CostDay], codec: CostCodec, *, path: Path = Path("costs.csv")
) -> list[bytes]:
    """The records, checked as the worker will check them (their time is the import's)."""
    problems = []
    encoded = []
    for day in days:
        problem = cost_day_problem(day, day.imported_at_ms, codec.max_future_ms)
        if problem is not None:
            problems.append(f"day {day.day}: {problem}")
            continue
        value = codec.encode(day)
        if len(value) > MAX_COST_RECORD_BYTES:
            problems.append(
                f"day {day.day}: its record is {len(value)} bytes, above the limit of "
                f"{MAX_COST_RECORD_BYTES}; shorten the utm and campaign values or add up rows"
            )
        encoded.append(value)
    if problems:
        raise CostFileError(path, problems)
    return encoded


# -- sending --------------------------------------------------------------------------------


class ProducerLike(Protocol):
    """What the import uses of :class:`aiokafka.AIOKafkaProducer` (tests fake it)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, topic: str, value: bytes, *, key: bytes) -> asyncio.Future[Any]: ...


@dataclass(frozen=True, slots=True)
class Sent:
    day: str
    partition: int
    offset: int


def new_producer(bootstrap: str) -> ProducerLike:
    producer: ProducerLike = idempotent_producer(
        bootstrap, "funnel-costs-import", MAX_COST_RECORD_BYTES
    )
    return producer


def _kafka_hint(bootstrap: str) -> str:
    return (
        f"check that a Kafka broker listens on {bootstrap} (`funnel broker start` for the "
        "local one) or pass --bootstrap-servers host:port / set KAFKA_BOOTSTRAP_SERVERS"
    )


async def send_days(
    days: Sequence[CostDay],
    values: Sequence[bytes],
    bootstrap: str,
    topic: str,
    producer_factory: Callable[[str], ProducerLike] | None = None,
) -> list[Sent]:
    """Produce one record per day keyed by the day; return where each landed."""
    producer = (producer_factory or new_producer)(bootstrap)
    try:
        await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT_S)
    except (TimeoutError, KafkaError) as exc:
        with contextlib.suppress(Exception):
            await producer.stop()
        raise CostImportError(
            f"cannot connect to Kafka at {bootstrap}: {exc or 'timed out'}; nothing was "
            f"sent; {_kafka_hint(bootstrap)}"
        ) from exc
    sent: list[Sent] = []
    try:
        futures = []
        for day, value in zip(days, values, strict=True):
            futures.append((day, await producer.send(topic, value, key=day.day.encode())))
        for day, future in futures:
            metadata = await asyncio.wait_for(future, DELIVERY_TIMEOUT_S)
            sent.append(Sent(day.day, metadata.partition, metadata.offset))
    except (TimeoutError, KafkaError) as exc:
        done = ", ".join(s.day for s in sent) or "none"
        missing_topic = isinstance(exc, KafkaTimeoutError | TimeoutError)
        fix = (
            f"the topic {topic} may not exist (and the broker does not create topics): "
            "create it with `funnel topics` or by starting a worker, or "
            if missing_topic
            else ""
        ) + _kafka_hint(bootstrap)
        raise CostImportError(
            f"Kafka did not take the cost records: {type(exc).__name__}: {exc}; days "
            f"acknowledged: {done}. Importing the file again is safe (each day's latest "
            f"import replaces it); {fix}"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), CONNECT_TIMEOUT_S)
    return sent


# -- the command ----------------------------------------------------------------------------


def _money(amount_minor: int, currency: str) -> str:
    return f"{to_major(amount_minor, currency):,} {currency}"


def _totals_text(totals: dict[str, int]) -> str:
    return ", ".join(_money(v, c) for c, v in sorted(totals.items())) or "-"


def summary_table(days: Sequence[CostDay], sent: Sequence[Sent] | None) -> Table:
    where = {s.day: s for s in sent or ()}
    table = Table("day", "rows", "cost", *(("partition@offset",) if sent else ()))
    for day in days:
        cells = [
            day.day,
            str(len(day.rows)),
            _totals_text(day.totals()) if day.rows else "(clears the day)",
        ]
        if sent:
            s = where.get(day.day)
            cells.append(f"{s.partition}@{s.offset}" if s else "-")
        table.add_row(*cells)
    return table


def currency_totals(days: Iterable[CostDay]) -> dict[str, int]:
    out: dict[str, int] = {}
    for day in days:
        for currency, amount in day.totals().items():
            out[currency] = out.get(currency, 0) + amount
    return out


def _utc_text(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, UTC).isoformat(timespec="milliseconds")


@costs_app.callback()
def _costs() -> None:
    """Marketing costs (ROAS, CPA, CAC): import daily spend from CSV."""


@costs_app.command("import")
def import_costs(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with the columns day,channel,utm_source,utm_medium,campaign,"
            "cost_minor,currency (the simulator's costs.csv).",
            show_default=False,
        ),
    ],
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            "--bootstrap-servers",
            help="Kafka host:port (default: FUNNEL_BOOTSTRAP_SERVERS / KAFKA_BOOTSTRAP_SERVERS).",
        ),
    ] = None,
    origin: Annotated[
        str | None,
        typer.Option(help="Where the costs come from, kept with them (default: the file name)."),
    ] = None,
    clear_day: Annotated[
        list[str] | None,
        typer.Option(
            "--clear-day",
            help="Also send this day (YYYY-MM-DD) with no rows, which removes its costs; "
            "repeat for more days. The file must have no line for it.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file and show what would be sent.")
    ] = False,
) -> None:
    """Check FILE and send one cost record per day to the costs topic.

    Each day sent replaces that day's costs; importing a file twice changes nothing.
    """
    console = Console(soft_wrap=True, highlight=False)
    err = Console(stderr=True, soft_wrap=True, highlight=False)

    def fail(exc: Exception, code: int) -> None:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(code)

    try:
        settings: Settings = load_settings()
    except FunnelError as exc:
        fail(exc, EXIT_BAD_INPUT)
        raise  # unreachable: fail exits
    imported_at_ms = int(time.time() * 1000)
    codec = CostCodec(max_future_ms=settings.max_future_seconds * 1000)
    try:
        rows = read_costs_csv(file)
        days = group_by_day(
            rows, imported_at_ms, origin or file.name, clear_days=clear_day or (), path=file
        )
        if not days:
            raise CostFileError(
                file,
                [
                    "has a header but no cost lines: nothing to import (to remove a day's "
                    "costs, pass --clear-day DAY)"
                ],
            )
        values = encode_days(days, codec, path=file)
    except FunnelError as exc:
        fail(exc, EXIT_BAD_INPUT)
        raise  # unreachable: fail exits
    topic = settings.topics.marketing_costs
    bootstrap = bootstrap_servers or settings.bootstrap_servers
    total_rows = sum(len(d.rows) for d in days)
    totals = _totals_text(currency_totals(days))
    if dry_run:
        console.print(summary_table(days, None))
        console.print(
            f"dry run: {len(days)} day record(s), {total_rows} row(s), total {totals}; "
            f"nothing sent to {escape(topic)}"
        )
        return
    try:
        sent = asyncio.run(send_days(days, values, bootstrap, topic))
    except CostImportError as exc:
        fail(exc, EXIT_KAFKA)
        raise  # unreachable: fail exits
    console.print(summary_table(days, sent))
    console.print(
        f"sent {len(sent)} day record(s), {total_rows} row(s), total {totals} to "
        f"{escape(topic)} at {bootstrap} (imported_at {_utc_text(imported_at_ms)}, "
        f"origin {escape(repr(origin or file.name))})"
    )


if __name__ == "__main__":  # `python -m funnel.cli_costs import FILE.csv`
    costs_app()
