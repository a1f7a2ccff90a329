"""Money is integer minor units plus a lower-case ISO 4217 currency. This is
the one place that knows how many minor units a currency's major unit has,
and how amounts are written for people."""

from __future__ import annotations

from decimal import Decimal

from django.utils.translation import get_language

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
# Written after the amount in French; the dollars say whose (CLDR's French names).
FRENCH_SYMBOLS = {
    **{code: symbol.strip() for code, symbol in SYMBOLS.items()},
    "aud": "$\u00a0AU",
    "cad": "$\u00a0CA",
    "hkd": "$\u00a0HK",
    "mxn": "$\u00a0MX",
    "nzd": "$\u00a0NZ",
    "sgd": "$\u00a0SG",
    "usd": "$\u00a0US",
}
MINUS = "\u2212"


def minor_unit_digits(currency: str) -> int:
    """Digits after the decimal point of the major unit (2 for eur, 0 for jpy)."""
    code = (currency or "").lower()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


NBSP = "\u00a0"
NARROW_NBSP = "\u202f"  # French groups thousands with it: 1 200 ¥


def format_money(
    amount: int | None, currency: str, *, symbol: bool = True, language: str | None = None
) -> str:
    """`1250, "eur"` → `€12.50` (or `12.50 EUR` without the symbol); `1200, "jpy"`
    → `¥1,200`. In French (the active language unless `language` says otherwise)
    `12,50 €`, `1 200 ¥`, `12,50 EUR`. An unknown amount is an empty string."""
    if amount is None or amount == "":
        return ""
    amount = int(amount)
    code = (currency or "").lower()
    digits = minor_unit_digits(code)
    whole, fraction = divmod(abs(amount), 10**digits)
    sign = MINUS if amount < 0 else ""
    if (language or get_language() or "en").startswith("fr"):
        number = f"{whole:,}".replace(",", NARROW_NBSP) + (
            f",{fraction:0{digits}d}" if digits else ""
        )
        unit = FRENCH_SYMBOLS.get(code, "") if symbol else ""
        return f"{sign}{number}{NBSP if symbol else ' '}{unit or code.upper()}"
    number = f"{whole:,}" + (f".{fraction:0{digits}d}" if digits else "")
    if symbol and code in SYMBOLS:
        return f"{sign}{SYMBOLS[code]}{number}"
    return f"{sign}{number}{NBSP if symbol else ' '}{code.upper()}"


def to_minor_units(amount: Decimal, currency: str) -> int:
    """A major-unit amount typed by a person (Decimal) in minor units; ValueError
    if it has more decimal places than the currency."""
    digits = minor_unit_digits(currency)
    if amount.as_tuple().exponent < -digits:
        raise ValueError(f"{currency.upper()} has {digits} decimal places.")
    return int(amount.scaleb(digits))
