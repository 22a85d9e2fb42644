"""Numbers as people of one locale read them: counts, percentages, ratios, durations and
money (each currency with its ISO 4217 exponent, like the terminal tables: the same
:func:`reports.money.format_money`).

``NumberFormat("de_DE").count(1234567) == "1.234.567"``;
``NumberFormat("en_US").money(1299, "KWD") == "KWD1.299"`` (three decimals);
``NumberFormat("en_US").money(1299, "JPY") == "¥1,299"`` (none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime, format_skeleton
from babel.numbers import format_decimal, format_percent

from reports.durations import duration_text
from reports.errors import ReportError
from reports.money import format_money
from schemas.iso4217 import MINOR_UNIT_EXPONENT

DEFAULT_LOCALE = "en_US"


def parse_locale(text: str) -> Locale:
    """A CLDR locale from ``en_US``, ``de-DE`` or ``ja``; ReportError names the fix."""
    try:
        return Locale.parse(text.strip().replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        raise ReportError(
            f"unknown locale {text!r}: give a CLDR locale such as en_US, de_DE, fr_FR or ja_JP"
        ) from None


@dataclass(frozen=True)
class NumberFormat:
    """Formatting for one locale (validated on creation)."""

    locale: str = DEFAULT_LOCALE
    _locale: Locale = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_locale", parse_locale(self.locale))

    @property
    def tag(self) -> str:
        """The BCP 47 language tag (``de-DE``) for ``<html lang>``."""
        return str(self._locale).replace("_", "-")

    def count(self, value: int | float) -> str:
        """A whole number with the locale's grouping (an average may keep two decimals)."""
        if isinstance(value, float) and not value.is_integer():
            return str(format_decimal(value, format="#,##0.##", locale=self._locale))
        return str(format_decimal(int(value), format="#,##0", locale=self._locale))

    def decimal(self, value: float, digits: int = 2) -> str:
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return str(format_decimal(value, format=pattern, locale=self._locale))

    def percent(self, value: float | None, digits: int = 1) -> str:
        """``0.1234`` as ``12.3%`` (``12,3%`` in de_DE: the pattern is fixed, the decimal
        and grouping symbols are the locale's). None: ``-``."""
        if value is None or math.isnan(value):
            return "-"
        if math.isinf(value):
            return ("+" if value > 0 else "-") + "∞"
        pattern = "#,##0" + ("." + "0" * digits if digits else "") + "%"
        return str(format_percent(value, format=pattern, locale=self._locale))

    def signed_percent(self, value: float | None, digits: int = 1) -> str:
        """``+12.3%``, ``-4.0%``; zero has no sign."""
        text = self.percent(value, digits)
        if value is None or value <= 0 or text.startswith(("+", "-")):
            return text
        return "+" + text

    def ratio(self, value: float | None) -> str:
        """A ROAS: revenue per unit of cost, two decimals."""
        return "-" if value is None else self.decimal(value, 2)

    def money(self, amount_minor: int | float | Decimal, currency: str) -> str:
        return format_money(amount_minor, currency, self.locale)

    def duration(self, seconds: float | None) -> str:
        """Like the terminal's time to convert: 42.5s, 3m 20s, 2h 05m, 1d 03h."""
        return duration_text(seconds, lambda s: self.decimal(s, 1))

    def pvalue(self, p: float) -> str:
        """A p-value with three decimals, ``<0.001`` below that."""
        if p < 0.001:
            return "<" + self.decimal(0.001, 3)
        return self.decimal(p, 3)

    # -- dates and times (UTC) ------------------------------------------------------------

    def day(self, value: date) -> str:
        """``Nov 1`` (en_US), ``1. Nov.`` (de_DE)."""
        return str(format_skeleton("MMMd", _as_utc(value), locale=self._locale))

    def hour(self, value: datetime) -> str:
        """``Nov 1 14:00``: the day and the 24-hour time, UTC."""
        at = _as_utc(value)
        clock = format_skeleton("Hm", at, tzinfo=UTC, locale=self._locale)
        return f"{self.day(at)} {clock}"

    def month(self, value: date) -> str:
        return str(format_skeleton("yMMM", _as_utc(value), locale=self._locale))

    def timestamp(self, value: datetime) -> str:
        return str(format_datetime(_as_utc(value), "medium", tzinfo=UTC, locale=self._locale))


def _as_utc(value: date) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def minor_per_major(currency: str) -> int:
    """10 ** the currency's ISO 4217 exponent (1 for an unknown code: never scaled)."""
    return int(10 ** MINOR_UNIT_EXPONENT.get(currency, 0))
