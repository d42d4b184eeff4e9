"""Exact currency arithmetic, minor units, discounts and rates files."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagesearch.errors import RequestError
from imagesearch.pricing.money import (
    convert,
    discount_percent,
    minor_digits,
    minor_units,
    parse_currency,
)
from imagesearch.pricing.rates import (
    RatesError,
    RatesTable,
    load_rates,
    packaged_rates,
    parse_rates,
    save_rates,
)

RATES = RatesTable(
    base="EUR",
    date=dt.date(2025, 1, 2),
    rates={"USD": Decimal("1.0350"), "JPY": Decimal("162.90"), "KWD": Decimal("0.3193"), "GBP": Decimal("0.8290")},
)

ECB_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
  <gesmes:subject>Reference rates</gesmes:subject>
  <Cube><Cube time="2025-03-14"><Cube currency="USD" rate="1.0896"/><Cube currency="JPY" rate="161.63"/></Cube></Cube>
</gesmes:Envelope>"""


def test_minor_digits_come_from_cldr() -> None:
    assert (minor_digits("USD"), minor_digits("JPY"), minor_digits("KWD")) == (2, 0, 3)


def test_same_currency_is_exact() -> None:
    amount = convert(Decimal("0.99"), "USD", "USD", RATES)
    assert minor_units(amount, "USD") == "99"


def test_zero_decimal_currency() -> None:
    # 10.00 USD = 10 / 1.035 * 162.9 = 1573.913... JPY -> 1574 yen
    amount = convert(Decimal("10.00"), "USD", "JPY", RATES)
    assert amount == Decimal("1574")
    assert minor_units(amount, "JPY") == "1574"


def test_three_decimal_currency() -> None:
    # 10.00 USD = 10 / 1.035 * 0.3193 = 3.08502... KWD -> 3.085 -> 3085 fils
    amount = convert(Decimal("10.00"), "USD", "KWD", RATES)
    assert amount == Decimal("3.085")
    assert minor_units(amount, "KWD") == "3085"


def test_half_up_rounding() -> None:
    table = RatesTable(base="USD", date=dt.date(2025, 1, 1), rates={"EUR": Decimal("0.5")})
    assert convert(Decimal("0.01"), "USD", "EUR", table) == Decimal("0.01")  # 0.005 -> 0.01
    assert convert(Decimal("0.03"), "USD", "EUR", table) == Decimal("0.02")  # 0.015 -> 0.02


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2))
def test_round_trip_stays_within_one_cent(amount: Decimal) -> None:
    there = convert(amount, "USD", "EUR", RATES)
    back = convert(there, "EUR", "USD", RATES)
    assert abs(back - amount) <= Decimal("0.02")


@pytest.mark.parametrize(
    ("sale", "original", "expected"),
    [("0.99", "7.95", 87), ("1.11", "11.48", 90), ("10", "10", 0), ("12", "10", 0), ("5", None, 0), ("9.99", "10", 0)],
)
def test_discount_is_floored(sale: str, original: str | None, expected: int) -> None:
    assert discount_percent(Decimal(sale), Decimal(original) if original else None) == expected


def test_currency_codes() -> None:
    assert parse_currency("usd", RATES) == "USD"
    with pytest.raises(RequestError) as error:
        parse_currency("DOLLARS", RATES)
    assert error.value.code == "InvalidCurrency"
    with pytest.raises(RequestError) as error:
        parse_currency("CHF", RATES)  # real currency, no rate in this table
    assert error.value.code == "UnsupportedCurrency"


def test_ecb_xml() -> None:
    table = parse_rates(ECB_XML)
    assert table.base == "EUR" and table.date == dt.date(2025, 3, 14)
    assert table.rates["USD"] == Decimal("1.0896") and table.rates["EUR"] == Decimal(1)


def test_json_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    save_rates(RATES, tmp_path)
    assert load_rates(tmp_path) == RATES


def test_packaged_table_has_date_and_common_currencies() -> None:
    table = packaged_rates()
    assert table.date.year >= 2024
    assert {"USD", "EUR", "JPY", "GBP", "KWD", "CNY"} <= set(table.rates)


@pytest.mark.parametrize(
    "data",
    [
        b"{}",
        b'{"base": "EUR", "date": "2025-01-01", "rates": {"XYZ": "1"}}',
        b'{"base": "EUR", "date": "2025-01-01", "rates": {"USD": "-1"}}',
        b'{"base": "EUR", "date": "yesterday", "rates": {"USD": "1"}}',
        b"<xml>not ecb</xml>",
        b"<broken",
    ],
)
def test_bad_rates_files(data: bytes) -> None:
    with pytest.raises(RatesError):
        parse_rates(data)
