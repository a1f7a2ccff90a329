"""Money is integer minor units plus a lower-case ISO 4217 currency. This is
the one place that knows how many minor units a currency's major unit has,
and how amounts are written for people."""

from __future__ import annotations

from decimal import Decimal

# Currencies counted in whole units (Stripe's zero-decimal list) ...
ZERO_DECIMAL = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "isk",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)
# ... and those counted in thousandths.
THREE_DECIMAL = frozenset({"bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"})
# Symbols written before the amount on the website; others show their code.
SYMBOLS = {
    "aud": "A$",
    "brl": "R$",
    "cad": "CA$",
    "chf": "CHF\u00a0",
    "cny": "CN¥",
    "eur": "€",
    "gbp": "£",
    "hkd": "HK$",
    "inr": "₹",
    "jpy": "¥",
    "krw": "₩",
    "mxn": "MX$",
    "nzd": "NZ$",
    "sgd": "S$",
    "usd": "$",
}
MINUS = "\u2212"


def minor_unit_digits(currency: str) -> int:
    """Digits after the decimal point of the major unit (2 for eur, 0 for jpy)."""
    code = (currency or "").lower()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def format_money(amount: int | None, currency: str, *, symbol: bool = True) -> str:
    """`1250, "eur"` → `€12.50` (or `12.50 EUR` without the symbol); `1200, "jpy"`
    → `¥1,200`. An unknown amount is an empty string."""
    if amount is None or amount == "":
        return ""
    amount = int(amount)
    code = (currency or "").lower()
    digits = minor_unit_digits(code)
    whole, fraction = divmod(abs(amount), 10**digits)
    number = f"{whole:,}" + (f".{fraction:0{digits}d}" if digits else "")
    sign = MINUS if amount < 0 else ""
    if symbol and code in SYMBOLS:
        return f"{sign}{SYMBOLS[code]}{number}"
    return f"{sign}{number}{chr(0xA0) if symbol else ' '}{code.upper()}"


def to_minor_units(amount: Decimal, currency: str) -> int:
    """A major-unit amount typed by a person (Decimal) in minor units; ValueError
    if it has more decimal places than the currency."""
    digits = minor_unit_digits(currency)
    if amount.as_tuple().exponent < -digits:
        raise ValueError(f"{currency.upper()} has {digits} decimal places.")
    return int(amount.scaleb(digits))
