"""Numbers, money and percentages for people to read, per language, with Babel (CLDR locale data).

Every text the project shows (reasons, exclusion details, the meeting sheet, the model card)
formats its numbers here. Languages map to locales: "nl" is nl_NL (`€ 1.234,50`, `1.234,5`,
`12%`), "en" is en_GB (`€1,234.50`, `1,234.5`, `12%`; en_GB because the amounts are euros in
Amsterdam, and for these three forms en_GB and en_US agree). Babel's nl_NL money keeps a
no-break space after the euro sign, so an amount never breaks over two lines. Negative numbers
get the typographic minus (−, U+2212) instead of a hyphen, and a value that rounds to zero shows
no sign. Rounding is half-to-even on the decimal value as written (2.675 -> 2.68).
"""

from __future__ import annotations

import functools
import math
from decimal import ROUND_HALF_EVEN, Decimal

from babel import Locale
from babel.numbers import format_currency, format_decimal, format_percent

LOCALES = {"en": "en_GB", "nl": "nl_NL"}
MINUS = "\u2212"
CURRENCY = "EUR"
ERR_LANG = "language must be one of {known}; got {lang!r}"


@functools.cache
def _locale(lang: str) -> Locale:
    if lang not in LOCALES:
        raise ValueError(ERR_LANG.format(known=", ".join(sorted(LOCALES)), lang=lang))
    return Locale.parse(LOCALES[lang])


@functools.cache
def _quantum(decimals: int) -> Decimal:
    return Decimal(1).scaleb(-decimals)


def _rounded(value: float, decimals: int) -> Decimal:
    if not math.isfinite(value):
        return Decimal(repr(float(value)))  # Babel writes NaN and ∞ itself
    q = Decimal(repr(float(value))).quantize(_quantum(decimals), rounding=ROUND_HALF_EVEN)
    return abs(q) if q == 0 else q


def _fraction(decimals: int) -> str:
    return "." + "0" * decimals if decimals > 0 else ""


def _typographic(text: str, locale: Locale) -> str:
    return text.replace(locale.number_symbols["latn"]["minusSign"], MINUS)


@functools.lru_cache(maxsize=2**17)
def number(value: float, lang: str, decimals: int = 0) -> str:
    """`value` with `decimals` decimals and grouped thousands: 1234.5 -> "1,234.5" (en), "1.234,5" (nl).

    Cached per (value, language, decimals): reasons repeat the same feature values thousands of times.
    """
    locale = _locale(lang)
    rounded = _rounded(value, decimals)
    if not rounded.is_finite():
        return _typographic(format_decimal(rounded, format="#,##0" + _fraction(decimals), locale=locale), locale)
    return _decimal_text(rounded, lang, decimals)


@functools.lru_cache(maxsize=2**16)
def _decimal_text(rounded: Decimal, lang: str, decimals: int) -> str:
    # Babel parses the locale and pattern on every call (the meeting app's reasons format ~10^5 numbers);
    # the same rounded value in the same language always reads the same, so it is formatted once
    # (likewise for money and percentages below).
    locale = _locale(lang)
    return _typographic(format_decimal(rounded, format="#,##0" + _fraction(decimals), locale=locale), locale)


def money(value: float, lang: str, decimals: int = 2) -> str:
    """Euros: 1234.5 -> "€1,234.50" (en), "€\u00a01.234,50" (nl); `decimals=0` for whole euros."""
    _locale(lang)
    rounded = _rounded(value, decimals)
    return (
        _money_text(rounded, lang, decimals)
        if rounded.is_finite()
        else _money_text.__wrapped__(rounded, lang, decimals)
    )


@functools.lru_cache(maxsize=2**16)
def _money_text(rounded: Decimal, lang: str, decimals: int) -> str:
    locale = _locale(lang)
    pattern = locale.currency_formats["standard"].pattern.replace("#,##0.00", "#,##0" + _fraction(decimals))
    text = format_currency(rounded, CURRENCY, format=pattern, locale=locale, currency_digits=False)
    return _typographic(text, locale)


def percent(share: float, lang: str, decimals: int = 0) -> str:
    """A share (0.123) as a percentage with `decimals` decimals: "12%" (en and nl), "12,3%" (nl, 1 decimal)."""
    _locale(lang)
    rounded = _rounded(100 * share, decimals)
    return (
        _percent_text(rounded, lang, decimals)
        if rounded.is_finite()
        else _percent_text.__wrapped__(rounded, lang, decimals)
    )


@functools.lru_cache(maxsize=2**16)
def _percent_text(rounded: Decimal, lang: str, decimals: int) -> str:
    locale = _locale(lang)
    pattern = locale.percent_formats[None].pattern.replace("#,##0", "#,##0" + _fraction(decimals))
    return _typographic(format_percent(rounded / 100, format=pattern, locale=locale), locale)


def signed(value: float, lang: str = "en", decimals: int = 2) -> str:
    """A contribution with its sign always shown: "+0.21", "−0.40" (en), "−1,50" (nl); zero is "+0.00"."""
    rounded = _rounded(value, decimals)  # once: the sign and the digits come from the same rounding
    text = _decimal_text(abs(rounded), lang, decimals) if rounded.is_finite() else number(abs(value), lang, decimals)
    return (MINUS if rounded < 0 else "+") + text


def significant(value: float, lang: str, digits: int = 4) -> str:
    """At most `digits` significant digits, trailing zeros dropped: 0.123456 -> "0.1235", 1234.5 -> "1,234" (en)."""
    locale = _locale(lang)
    text = format_decimal(float(value), format="@" + "#" * (digits - 1), locale=locale)
    return _typographic(text, locale)


def warm() -> None:
    """Load every language's CLDR locale data now (Babel loads it lazily: ~0.3 s on first use).

    A server calls this at start, so the first meeting it loads is not charged for it.
    """
    for lang in LOCALES:
        number(1234.5, lang, 1)
        money(1234.5, lang)
        percent(0.5, lang)
