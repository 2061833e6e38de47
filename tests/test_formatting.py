"""Numbers, money and percentages per language (features.formatting), as literal strings."""

from __future__ import annotations

import pytest

from features.formatting import money, number, percent, signed, significant

NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("value", "decimals", "en", "nl"),
    [
        (1234.5, 2, "€1,234.50", f"€{NBSP}1.234,50"),
        (1234.5, 0, "€1,234", f"€{NBSP}1.234"),  # half to even
        (1235.5, 0, "€1,236", f"€{NBSP}1.236"),
        (647.19, 2, "€647.19", f"€{NBSP}647,19"),
        (24000.0, 0, "€24,000", f"€{NBSP}24.000"),
        (-52.81, 2, "−€52.81", f"€{NBSP}−52,81"),
        (-0.004, 2, "€0.00", f"€{NBSP}0,00"),  # rounds to zero: no sign
    ],
)
def test_money(value, decimals, en, nl):
    assert money(value, "en", decimals) == en
    assert money(value, "nl", decimals) == nl


@pytest.mark.parametrize(
    ("value", "decimals", "en", "nl"),
    [
        (1234.567, 1, "1,234.6", "1.234,6"),
        (12.0, 0, "12", "12"),
        (2.675, 2, "2.68", "2,68"),  # the decimal value as written, not its binary neighbour
        (-3.25, 1, "−3.2", "−3,2"),  # typographic minus, half to even
        (-0.3, 0, "0", "0"),
        (1234567.0, 0, "1,234,567", "1.234.567"),
    ],
)
def test_number(value, decimals, en, nl):
    assert number(value, "en", decimals) == en
    assert number(value, "nl", decimals) == nl


@pytest.mark.parametrize(
    ("share", "decimals", "en", "nl"),
    [
        (0.12, 0, "12%", "12%"),
        (0.123, 1, "12.3%", "12,3%"),
        (0.555, 0, "56%", "56%"),
        (1.0, 0, "100%", "100%"),
        (0.0, 1, "0.0%", "0,0%"),
        (-0.05, 0, "−5%", "−5%"),
    ],
)
def test_percent(share, decimals, en, nl):
    assert percent(share, "en", decimals) == en
    assert percent(share, "nl", decimals) == nl


def test_signed_contributions_keep_the_typographic_minus():
    assert signed(-0.404) == "−0.40" and signed(0.2) == "+0.20"
    assert signed(-0.001) == "+0.00"  # rounds to zero: no minus
    assert signed(-1.5, lang="nl") == "−1,50" and signed(1234.5, lang="nl", decimals=1) == "+1.234,5"


def test_significant_digits():
    assert significant(0.123456, "en") == "0.1235"
    assert significant(0.5, "en") == "0.5"
    assert significant(12.0, "en") == "12"
    assert significant(0.123456, "nl") == "0,1235"


def test_unknown_language_is_a_clear_error():
    with pytest.raises(ValueError, match="en, nl"):
        money(1.0, "de")
