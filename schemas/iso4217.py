"""ISO 4217 currency codes in use, with their minor-unit exponents (static, shipped here).

Money in this project is an integer count of minor units; the exponent says how many
minor units make one major unit (USD 2: 1299 = 12.99; JPY 0: 1299 = 1299; KWD 3).

The table lists the active codes of ISO 4217 List One (as amended up to 2025: XCG replaces
ANG, ZWG replaces ZWL, SLE replaces SLL, no HRK) that have a numeric minor unit. Codes with
no minor unit (precious metals XAU/XAG/XPD/XPT, bond units XBA-XBD, XDR, XSU, XUA) and the
testing/no-currency codes XTS/XXX are left out on purpose: money in them cannot be counted in
minor units. To accept another code, add it here with its exponent.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

# fmt: off
MINOR_UNIT_EXPONENT: Final[dict[str, int]] = {
    "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2, "AZN": 2,
    "BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2, "BOB": 2,
    "BOV": 2, "BRL": 2, "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2, "CAD": 2, "CDF": 2,
    "CHE": 2, "CHF": 2, "CHW": 2, "CLF": 4, "CLP": 0, "CNY": 2, "COP": 2, "COU": 2, "CRC": 2,
    "CUP": 2, "CVE": 2, "CZK": 2, "DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2, "EGP": 2, "ERN": 2,
    "ETB": 2, "EUR": 2, "FJD": 2, "FKP": 2, "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2,
    "GNF": 0, "GTQ": 2, "GYD": 2, "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2, "IDR": 2, "ILS": 2,
    "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0, "JMD": 2, "JOD": 3, "JPY": 0, "KES": 2, "KGS": 2,
    "KHR": 2, "KMF": 0, "KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2, "LAK": 2, "LBP": 2,
    "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3, "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2,
    "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2, "MVR": 2, "MWK": 2, "MXN": 2, "MXV": 2, "MYR": 2,
    "MZN": 2, "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2, "NZD": 2, "OMR": 3, "PAB": 2,
    "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0, "QAR": 2, "RON": 2, "RSD": 2,
    "RUB": 2, "RWF": 0, "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2,
    "SLE": 2, "SOS": 2, "SRD": 2, "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2, "THB": 2,
    "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2, "UAH": 2,
    "UGX": 0, "USD": 2, "USN": 2, "UYI": 0, "UYU": 2, "UYW": 4, "UZS": 2, "VED": 2, "VES": 2,
    "VND": 0, "VUV": 0, "WST": 2, "XAF": 0, "XCD": 2, "XCG": 2, "XOF": 0, "XPF": 0, "YER": 2,
    "ZAR": 2, "ZMW": 2, "ZWG": 2,
}
# fmt: on

ACTIVE_CODES: Final = frozenset(MINOR_UNIT_EXPONENT)


def is_active_currency(code: str) -> bool:
    """True for an upper-case active ISO 4217 code with a minor unit (``"CNY"``, ``"USD"``)."""
    return code in ACTIVE_CODES


def minor_unit_exponent(code: str) -> int:
    """Decimal places of ``code``'s minor unit; raises KeyError for an unknown code."""
    return MINOR_UNIT_EXPONENT[code]


def to_major(amount_minor: int, code: str) -> Decimal:
    """Exact major-unit amount: ``to_major(1299, "USD") == Decimal("12.99")``."""
    return Decimal(amount_minor).scaleb(-MINOR_UNIT_EXPONENT[code])
