"""Money as people read it: minor units scaled by each currency's ISO 4217 exponent.

Amounts are stored as integer minor units (``schemas/iso4217.py``): 1299 is 12.99 USD but
1,299 JPY and 1.299 KWD. Dividing every currency by 100 shows yen and won 100 times too
small. Formatting (symbol, grouping) is babel's, for the CLDR locale given.
"""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency

from schemas.iso4217 import MINOR_UNIT_EXPONENT

DEFAULT_LOCALE = "en"


def to_major(amount_minor: int | float | Decimal, currency: str) -> Decimal:
    """The major-unit amount; exact for integers (an average is rounded to its cents)."""
    exponent = MINOR_UNIT_EXPONENT[currency]
    amount = amount_minor if isinstance(amount_minor, Decimal) else Decimal(str(amount_minor))
    return amount.scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))


def format_money(
    amount_minor: int | float | Decimal, currency: str, locale: str = DEFAULT_LOCALE
) -> str:
    """``format_money(169914, "JPY") == "¥169,914"``; ``format_money(1299, "USD") ==
    "$12.99"``. A code outside ISO 4217 shows its minor units, so that nothing is scaled
    by a guess."""
    exponent = MINOR_UNIT_EXPONENT.get(currency)
    if exponent is None:
        return f"{amount_minor:,} minor units {currency or '(no currency)'}".strip()
    pattern = "¤#,##0" + ("." + "0" * exponent if exponent else "")
    return str(
        format_currency(
            to_major(amount_minor, currency),
            currency,
            format=pattern,
            locale=locale,
            currency_digits=False,
        )
    )
