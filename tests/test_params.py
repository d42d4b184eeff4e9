"""searchV2 parameters: defaults, accepted forms, and one error code per mistake."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from imagesearch.errors import RequestError
from imagesearch.pricing.rates import packaged_rates
from imagesearch.search.params import parse_params

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
IMAGE = base64.b64encode(PNG).decode()


def parse(**fields: Any):  # type: ignore[no-untyped-def]
    return parse_params({"image_base64": IMAGE, **fields}, packaged_rates(), "USD", 1_000_000)


def error_code(**fields: Any) -> str:
    with pytest.raises(RequestError) as error:
        parse_params(fields, packaged_rates(), "USD", 1_000)
    return error.value.code


def test_defaults() -> None:
    params = parse()
    assert (params.search_type, params.sort_type, params.sort_order, params.currency) == ("similar", "best", "desc", "USD")
    assert params.image == PNG and params.page_size is None and params.ship_to is None


def test_natural_sort_orders() -> None:
    assert parse(sort_type="price").sort_order == "asc"
    assert parse(sort_type="orders").sort_order == "desc"
    assert parse(sort_type="price", sort_order="DESC").sort_order == "desc"


def test_accepted_forms() -> None:
    params = parse(lang="pt-BR", ship_to="uk", currency="jpy", search_type="SAME", page_size="20", page_no=2)
    assert (params.lang, params.ship_to, params.currency, params.search_type, params.page_size, params.page_no) == (
        "pt_BR", "GB", "JPY", "same", 20, 2,
    )


def test_data_url_and_urlsafe_base64() -> None:
    assert parse(image_base64="data:image/png;base64," + IMAGE).image == PNG
    urlsafe = base64.urlsafe_b64encode(PNG).decode().rstrip("=")
    assert parse(image_base64=urlsafe).image == PNG


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, "MissingImage"),
        ({"image_base64": "@@not base64@@"}, "InvalidBase64"),
        ({"image_base64": "A" * 5000}, "ImageTooLarge"),
        ({"image_base64": IMAGE, "search_type": "exact"}, "InvalidSearchType"),
        ({"image_base64": IMAGE, "sort_type": "cheapest"}, "InvalidSortType"),
        ({"image_base64": IMAGE, "sort_order": "up"}, "InvalidSortOrder"),
        ({"image_base64": IMAGE, "currency": "DOLLAR"}, "InvalidCurrency"),
        ({"image_base64": IMAGE, "currency": "XAU"}, "UnsupportedCurrency"),
        ({"image_base64": IMAGE, "lang": "klingon"}, "InvalidLanguage"),
        ({"image_base64": IMAGE, "ship_to": "XX"}, "InvalidShipTo"),
        ({"image_base64": IMAGE, "page_size": 51}, "InvalidPageSize"),
        ({"image_base64": IMAGE, "page_size": "ten"}, "InvalidPageSize"),
        ({"image_base64": IMAGE, "page_no": 0}, "InvalidPageNo"),
        ({"image_base64": IMAGE, "start_row_key": "abc"}, "InvalidStartRowKey"),
        ({"image_base64": 12345}, "InvalidParameterType"),
    ],
)
def test_each_mistake_has_its_code(fields: dict[str, Any], code: str) -> None:
    assert error_code(**fields) == code


def test_error_message_names_parameter_and_allowed_values() -> None:
    with pytest.raises(RequestError) as error:
        parse(sort_type="cheapest")
    assert error.value.param == "sort_type"
    assert "best, price, orders" in error.value.message
