"""Marketing costs: one record per UTC day (Avro ``marketing_costs.v1``), decoded and checked.

Costs arrive on the ``shop.marketing_costs`` topic keyed by the day, from ``funnel costs
import FILE.csv`` or any other producer (docs/semantics.md section 10, "Marketing cost").
A day's record replaces everything known for that day: the one with the latest
``imported_at_ms`` wins, rows it lacks are gone, and an empty ``rows`` array clears it.

:meth:`CostCodec.decode` never raises on bad input: it returns a :class:`CostDay` or a
:class:`~schemas.reasons.Rejection` for the dead-letter topic. Framing problems have the
event reasons (``payload_too_large``, ``undecodable``, ``unknown_schema_id``); any problem
with the content is ``invalid_cost_record`` (:func:`cost_day_problem`), its detail naming
the field, the value and the fix. The CSV import applies the same checks per line
(:func:`day_problem`, :func:`channel_problem`, ...), so a file the import accepts is never
dead-lettered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from io import BytesIO
from typing import Any, Final

import fastavro
from fastavro.validation import ValidationError, validate

from schemas.avroread import Reader, UnsupportedSchemaError, compile_reader, fastavro_reader
from schemas.channels import CHANNELS
from schemas.errors import EncodeError
from schemas.iso4217 import is_active_currency
from schemas.reasons import CostReason, Reason, Rejection
from schemas.registry import RegisteredSchema, SchemaRegistry, strip_logical_types
from schemas.validation import EARLIEST_EVENT_TIME_MS, MAX_MONEY_MINOR

COST_SCHEMA: Final = "marketing_costs"
# Below Kafka's default record limit (message.max.bytes, 1 MiB + 12 bytes). A row of
# typical names is ~60 bytes, so MAX_COST_ROWS rows fit with room to spare.
MAX_COST_RECORD_BYTES: Final = 1_000_000
MAX_COST_ROWS: Final = 10_000
# The event bound (docs/semantics.md section 9): a day's sum stays below 10^17, so a
# quarter of saturated days still sums in Int64.
MAX_COST_MINOR: Final = MAX_MONEY_MINOR
MAX_TEXT_CHARS: Final = 256
EARLIEST_DAY: Final = date(2000, 1, 1)
LATEST_DAY: Final = date(2099, 12, 31)
EARLIEST_IMPORT_MS: Final = EARLIEST_EVENT_TIME_MS  # 2000-01-01T00:00:00Z
KNOWN_CHANNELS: Final = frozenset(CHANNELS)
# How far ahead of the record's Kafka timestamp imported_at_ms may be (clock skew).
DEFAULT_MAX_FUTURE_MS: Final = 300_000
TEXT_FIELDS: Final = ("utm_source", "utm_medium", "campaign")

_DAY_TEXT: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# C0 and C1 control characters and lone surrogates.
_CONTROL_CHARS: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_DETAIL_LIMIT: Final = 400
_CHANNEL_LIST: Final = ", ".join(CHANNELS)


@dataclass(frozen=True, slots=True)
class CostRow:
    """One day's spend of one (channel, utm_source, utm_medium, campaign) in one currency."""

    channel: str
    utm_source: str
    utm_medium: str
    campaign: str
    cost_minor: int
    currency: str

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """What identifies the row within its day: at most one row per key."""
        return (self.channel, self.utm_source, self.utm_medium, self.campaign, self.currency)


@dataclass(frozen=True, slots=True)
class CostDay:
    """Everything spent on one UTC day, as of one import (Avro ``marketing_costs.v1``)."""

    day: str  # YYYY-MM-DD
    imported_at_ms: int
    origin: str
    rows: tuple[CostRow, ...] = ()

    @property
    def day_date(self) -> date:
        return date.fromisoformat(self.day)

    def totals(self) -> dict[str, int]:
        """The day's cost per currency (minor units)."""
        out: dict[str, int] = {}
        for row in self.rows:
            out[row.currency] = out.get(row.currency, 0) + row.cost_minor
        return out


# -- the checks, one value at a time (shared with the CSV import) -------------------------


def shown(value: str) -> str:
    """A value for an error message: quoted, escaped, at most 40 characters."""
    return ascii(value if len(value) <= 40 else value[:40] + "...")


def day_problem(text: str) -> str | None:
    """Why ``text`` is not a valid cost day (a phrase naming the fix), or None."""
    if not _DAY_TEXT.fullmatch(text):
        return f"{shown(text)} is not a date written YYYY-MM-DD (a UTC day such as 2026-11-01)"
    try:
        value = date.fromisoformat(text)
    except ValueError:
        return f"{shown(text)} is not a calendar date; check the month and the day"
    if not EARLIEST_DAY <= value <= LATEST_DAY:
        return (
            f"{text} is outside {EARLIEST_DAY.isoformat()}..{LATEST_DAY.isoformat()}; "
            "check the year"
        )
    return None


def channel_problem(channel: str) -> str | None:
    if channel in KNOWN_CHANNELS:
        return None
    lower = channel.strip().lower()
    hint = f" (did you mean {lower!r}?)" if lower in KNOWN_CHANNELS else ""
    return f"{shown(channel)} is not a known channel{hint}; use one of {_CHANNEL_LIST}"


def text_problem(value: str) -> str | None:
    """Length and characters of a free-text field (utm_source, utm_medium, campaign, origin)."""
    if len(value) > MAX_TEXT_CHARS:
        return f"is {len(value)} characters long; at most {MAX_TEXT_CHARS}"
    bad = _CONTROL_CHARS.search(value)
    if bad is not None:
        return (
            f"{shown(value)} contains the control character U+{ord(bad.group()):04X} at "
            f"position {bad.start()}; remove it"
        )
    return None


def cost_problem(cost_minor: int) -> str | None:
    if cost_minor < 0:
        return (
            f"{cost_minor} is negative; costs are >= 0 (money back from an ad platform "
            "lowers that day's cost)"
        )
    if cost_minor > MAX_COST_MINOR:
        return (
            f"{cost_minor} is above the limit of {MAX_COST_MINOR} minor units (10^13); "
            "costs are integer minor units (1299 for 12.99): fix the unit or the amount"
        )
    return None


def currency_problem(currency: str) -> str | None:
    if is_active_currency(currency):
        return None
    upper = currency.strip().upper()
    hint = f" (did you mean {upper!r}?)" if is_active_currency(upper) else ""
    return (
        f"{shown(currency)} is not an active ISO 4217 code{hint}; use an upper-case code "
        "such as CNY or USD"
    )


def key_text(row: CostRow) -> str:
    return (
        f"channel={shown(row.channel)}, utm_source={shown(row.utm_source)}, "
        f"utm_medium={shown(row.utm_medium)}, campaign={shown(row.campaign)}, "
        f"currency={shown(row.currency)}"
    )


def row_problem(row: CostRow) -> str | None:
    """The first problem of one row, as ``<field> <what is wrong>``, or None."""
    problem = channel_problem(row.channel)
    if problem is not None:
        return f"channel {problem}"
    for name in TEXT_FIELDS:
        problem = text_problem(getattr(row, name))
        if problem is not None:
            return f"{name} {problem}"
    problem = cost_problem(row.cost_minor)
    if problem is not None:
        return f"cost_minor {problem}"
    problem = currency_problem(row.currency)
    if problem is not None:
        return f"currency {problem}"
    return None


def imported_at_problem(imported_at_ms: int, now_ms: int, max_future_ms: int) -> str | None:
    if imported_at_ms < EARLIEST_IMPORT_MS:
        return (
            f"{imported_at_ms} is before 2000-01-01; it is epoch milliseconds UTC "
            "(seconds sent as milliseconds look like 1970)"
        )
    ahead = imported_at_ms - now_ms
    if ahead > max_future_ms:
        return (
            f"{imported_at_ms} ({_utc(imported_at_ms)}) is {ahead / 1000:.0f} s after the "
            f"record reached Kafka ({_utc(now_ms)}); send the time of the import, in "
            "epoch milliseconds UTC, and check the producer's clock"
        )
    return None


def cost_day_problem(
    day: CostDay, now_ms: int, max_future_ms: int = DEFAULT_MAX_FUTURE_MS
) -> str | None:
    """Why ``day`` is not a valid cost record (field, problem and fix), or None.

    ``now_ms`` is the record's Kafka timestamp (the import may not claim a later time).
    """
    problem = day_problem(day.day)
    if problem is not None:
        return f"day {problem}"
    problem = imported_at_problem(day.imported_at_ms, now_ms, max_future_ms)
    if problem is not None:
        return f"imported_at_ms {problem}"
    if not day.origin:
        return "origin is empty; name the file or the system the costs come from"
    problem = text_problem(day.origin)
    if problem is not None:
        return f"origin {problem}"
    if len(day.rows) > MAX_COST_ROWS:
        return (
            f"rows has {len(day.rows)} entries; at most {MAX_COST_ROWS} per day: add up "
            "rows of the same channel and campaign"
        )
    seen: dict[tuple[str, str, str, str, str], int] = {}
    for index, row in enumerate(day.rows):
        problem = row_problem(row)
        if problem is not None:
            return f"rows[{index}].{problem}"
        first = seen.setdefault(row.key, index)
        if first != index:
            return (
                f"rows[{index}] repeats the key of rows[{first}] ({key_text(row)}) on "
                f"{day.day}; send one row per (channel, utm_source, utm_medium, campaign, "
                "currency), with the costs added up"
            )
    return None


# -- Avro -----------------------------------------------------------------------------------


class CostCodec:
    """Encode and decode ``marketing_costs`` records (Confluent-framed Avro); build once.

    ``decode`` accepts every registered version of the schema; ``encode`` writes the latest.
    ``max_future_ms`` bounds how far ``imported_at_ms`` may be ahead of the record's Kafka
    timestamp (the worker passes ``FUNNEL_MAX_FUTURE_SECONDS``).
    """

    def __init__(
        self,
        registry: SchemaRegistry | None = None,
        *,
        max_future_ms: int = DEFAULT_MAX_FUTURE_MS,
        max_payload_bytes: int = MAX_COST_RECORD_BYTES,
    ) -> None:
        self.registry = registry if registry is not None else SchemaRegistry.load()
        self.max_future_ms = max_future_ms
        self.max_payload_bytes = max_payload_bytes
        self._parsed: dict[int, Any] = {}
        self._readers: dict[int, Reader] = {}
        for schema in self.registry.versions(COST_SCHEMA):
            stripped = strip_logical_types(schema.definition)
            self._parsed[schema.schema_id] = fastavro.parse_schema(stripped, {})
            try:
                self._readers[schema.schema_id] = compile_reader(stripped)
            except UnsupportedSchemaError:
                self._readers[schema.schema_id] = fastavro_reader(self._parsed[schema.schema_id])
        self._latest: RegisteredSchema = self.registry.latest(COST_SCHEMA)

    @property
    def schema_ids(self) -> tuple[int, ...]:
        return tuple(self._readers)

    def encode(self, day: CostDay) -> bytes:
        """Confluent-framed Avro of ``day`` (types checked; content rules are not: see
        :func:`cost_day_problem`)."""
        record = {
            "day": day.day,
            "imported_at_ms": day.imported_at_ms,
            "origin": day.origin,
            "rows": [
                {
                    "channel": r.channel,
                    "utm_source": r.utm_source,
                    "utm_medium": r.utm_medium,
                    "campaign": r.campaign,
                    "cost_minor": r.cost_minor,
                    "currency": r.currency,
                }
                for r in day.rows
            ],
        }
        schema = self._latest
        parsed = self._parsed[schema.schema_id]
        if not validate(record, parsed, raise_errors=False):
            try:
                validate(record, parsed, raise_errors=True)
            except ValidationError as exc:
                raise EncodeError(
                    f"cost record of {day.day!r} does not fit schema {schema.name} "
                    f"v{schema.version}: {_clip(str(exc))}; fix the field types"
                ) from exc
        out = BytesIO()
        out.write(schema.header)
        fastavro.schemaless_writer(out, parsed, record)
        return out.getvalue()

    def decode(self, raw: bytes, now_ms: int) -> CostDay | Rejection:
        """The checked day, or why ``raw`` belongs on the dead-letter topic."""
        if len(raw) > self.max_payload_bytes:
            return Rejection(
                Reason.PAYLOAD_TOO_LARGE,
                f"cost record is {len(raw)} bytes; the limit is {self.max_payload_bytes}",
            )
        if raw[:1] != b"\x00":
            return Rejection(
                Reason.UNDECODABLE,
                "cost record is not Confluent Avro (first byte 0x00, schema id, body; starts "
                f"with {bytes(raw[:8])!r}); send marketing_costs records, e.g. with "
                "`funnel costs import FILE.csv`",
            )
        if len(raw) < 5:
            return Rejection(Reason.UNDECODABLE, f"Avro frame of {len(raw)} bytes has no schema id")
        schema_id = int.from_bytes(raw[1:5], "big")
        reader = self._readers.get(schema_id)
        if reader is None:
            return Rejection(Reason.UNKNOWN_SCHEMA_ID, self._unknown_id_detail(schema_id))
        try:
            record, end = reader(raw, 5)
        except Exception as exc:  # any parse failure of hostile bytes is a dead letter
            failure = f"{type(exc).__name__}: {exc}"
            return Rejection(
                Reason.UNDECODABLE,
                _clip(f"Avro body does not match schema id {schema_id}: {failure}"),
            )
        if end != len(raw):
            problem = "is truncated" if end > len(raw) else f"has {len(raw) - end} trailing bytes"
            return Rejection(Reason.UNDECODABLE, f"Avro body for schema id {schema_id} {problem}")
        day = _cost_day(record)
        wrong = cost_day_problem(day, now_ms, self.max_future_ms)
        if wrong is not None:
            return Rejection(CostReason.INVALID_COST_RECORD, _clip(wrong))
        return day

    def _unknown_id_detail(self, schema_id: int) -> str:
        known = ", ".join(str(i) for i in self._readers)
        other = self.registry.by_id(schema_id)
        if other is not None:
            return (
                f"schema id {schema_id} is {other.name} v{other.version}, not a {COST_SCHEMA} "
                f"schema (expected one of {known}); produce to the right topic"
            )
        return (
            f"schema id {schema_id} is not registered for {COST_SCHEMA} (expected one of "
            f"{known}); register the schema in schemas/registry.json or fix the producer"
        )


def _cost_day(record: Mapping[str, Any]) -> CostDay:
    return CostDay(
        day=record["day"],
        imported_at_ms=record["imported_at_ms"],
        origin=record["origin"],
        rows=tuple(
            CostRow(
                r["channel"],
                r["utm_source"],
                r["utm_medium"],
                r["campaign"],
                r["cost_minor"],
                r["currency"],
            )
            for r in record["rows"]
        ),
    )


def _utc(t_ms: int) -> str:
    try:
        return datetime.fromtimestamp(t_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "out of range"


def _clip(text: str) -> str:
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 3] + "..."
