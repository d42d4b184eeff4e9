"""Exact currency conversion and the searchV2 price encoding.

searchV2 answers prices as integer strings in the currency's minor units, as
the sample shows ("99" USD is 0.99 USD; "795" is 7.95): we convert with
:class:`~decimal.Decimal`, round half-up to the currency's number of decimals
(babel's CLDR data: 0 for JPY, 2 for USD, 3 for KWD), then scale to an integer.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext

from babel.numbers import get_currency_precision, is_currency

from ..errors import ErrorCode, RequestError
from .rates import RatesTable


def parse_currency(code: str, rates: RatesTable, param: str = "currency") -> str:
    """Upper-case ``code``; refuse non-ISO codes and codes the rates table lacks."""
    cleaned = code.strip().upper()
    if len(cleaned) != 3 or not cleaned.isalpha() or not is_currency(cleaned):
        raise RequestError(ErrorCode.InvalidCurrency, param, value=code)
    if cleaned not in rates.rates:
        raise RequestError(
            ErrorCode.UnsupportedCurrency, param, value=cleaned, date=rates.date, supported=", ".join(sorted(rates.rates))
        )
    return cleaned


def minor_digits(currency: str) -> int:
    """How many decimals ``currency`` uses (CLDR, via babel)."""
    return int(get_currency_precision(currency))


def convert(amount: Decimal, source: str, target: str, rates: RatesTable) -> Decimal | None:
    """``amount`` in ``source`` expressed in ``target``, rounded half-up to target's minor unit.

    None when the rates table has no rate for one of the two currencies (the
    rates were replaced after the product was imported): callers then show the
    catalog's own price rather than guess.
    """
    if source != target and (source not in rates.rates or target not in rates.rates):
        return None
    with localcontext() as context:
        context.prec = 34
        value = amount if source == target else amount * rates.rates[target] / rates.rates[source]
        return value.quantize(Decimal(1).scaleb(-minor_digits(target)), rounding=ROUND_HALF_UP)


def in_base(amount: Decimal, currency: str, rates: RatesTable) -> Decimal | None:
    """``amount`` in the table's base currency (for sorting by price across currencies); None without a rate."""
    rate = rates.rates.get(currency)
    return amount / rate if rate else None


def minor_units(amount: Decimal, currency: str) -> str:
    """An amount already rounded to ``currency``'s minor unit, as an integer string of minor units."""
    return str(int(amount.scaleb(minor_digits(currency))))


def discount_percent(sale: Decimal, original: Decimal | None) -> int:
    """floor((1 - sale / original) x 100); 0 when there is no real discount."""
    if original is None or original <= 0 or sale >= original:
        return 0
    with localcontext() as context:
        context.prec = 34
        return int(((1 - sale / original) * 100).to_integral_value(rounding=ROUND_FLOOR))
