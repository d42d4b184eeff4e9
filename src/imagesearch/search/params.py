"""searchV2 parameters: parsing and validation, one error code per kind of mistake.

``parse_params`` takes the decoded ``param0`` object (plus our extensions
``page_no``, ``page_size``, ``start_row_key``) and returns a
:class:`SearchParams` whose every field is known good.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import SearchError
from ..i18n import parse_country, parse_language
from ..pricing.money import parse_currency
from ..pricing.rates import RatesTable

SearchType = Literal["similar", "same"]
SortType = Literal["best", "price", "orders"]
SortOrder = Literal["asc", "desc"]

SEARCH_TYPES: tuple[str, ...] = ("similar", "same")
SORT_TYPES: tuple[str, ...] = ("best", "price", "orders")
SORT_ORDERS: tuple[str, ...] = ("asc", "desc")
#: Natural order of each sort when the client does not say.
DEFAULT_ORDER: dict[str, SortOrder] = {"best": "desc", "price": "asc", "orders": "desc"}
MAX_PAGE_SIZE = 50
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_NO = 10_000
KNOWN_FIELDS = frozenset(
    {"search_type", "image_base64", "currency", "lang", "sort_type", "sort_order", "ship_to", "page_no", "page_size", "start_row_key"}
)
DATA_URL = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)
ROW_KEY = re.compile(r"^([0-9a-f]{32}):([0-9]{1,5})$")


@dataclass(frozen=True)
class SearchParams:
    """A validated search request; ``None`` means "not given"."""

    image: bytes | None = None
    search_type: SearchType = "similar"
    currency: str = "USD"
    lang: str | None = None
    ship_to: str | None = None
    sort_type: SortType = "best"
    sort_order: SortOrder = "desc"
    page_size: int | None = None
    page_no: int | None = None
    start_row_key: tuple[str, int] | None = None


def _text(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SearchError("InvalidParameterType", f"{name} must be a string, got {type(value).__name__}", name)
    return value.strip()


def _choice(raw: Mapping[str, Any], name: str, allowed: tuple[str, ...], code: str) -> str | None:
    value = _text(raw, name)
    if value is None:
        return None
    if value.lower() not in allowed:
        raise SearchError(code, f"{name} {value!r} is not allowed; use one of: {', '.join(allowed)}", name)
    return value.lower()


def _integer(raw: Mapping[str, Any], name: str, low: int, high: int, code: str) -> int | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        raise SearchError(code, f"{name} must be a whole number from {low} to {high}, got {value!r}", name)
    number = int(value)
    if not low <= number <= high:
        raise SearchError(code, f"{name} must be from {low} to {high}, got {number}", name)
    return number


def decode_base64_image(value: str, max_bytes: int, name: str = "image_base64") -> bytes:
    """Decode standard or URL-safe base64 (a ``data:`` URL prefix and line breaks allowed)."""
    text = DATA_URL.sub("", value.strip())
    text = re.sub(r"\s+", "", text).replace("-", "+").replace("_", "/")
    if len(text) > (max_bytes * 4) // 3 + 8:
        raise SearchError("ImageTooLarge", f"{name} decodes to more than the limit of {max_bytes} bytes", name)
    text += "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SearchError("InvalidBase64", f"{name} is not valid base64", name) from None
    if not data:
        raise SearchError("EmptyImage", f"{name} decodes to an empty image", name)
    return data


def parse_row_key(value: str) -> tuple[str, int]:
    match = ROW_KEY.match(value)
    if not match:
        raise SearchError(
            "InvalidStartRowKey", "start_row_key is not a key this service issued (use next_start_row_key from a response)", "start_row_key"
        )
    return match.group(1), int(match.group(2))


def parse_params(raw: Mapping[str, Any], rates: RatesTable, default_currency: str, max_image_bytes: int) -> SearchParams:
    """Validate a param0-like mapping; raises :class:`SearchError` on the first bad field."""
    if not isinstance(raw, Mapping):
        raise SearchError("InvalidParameterType", "param0 must be a JSON object", "param0")
    row_key_text = _text(raw, "start_row_key")
    row_key = parse_row_key(row_key_text) if row_key_text else None
    image_text = _text(raw, "image_base64")
    if image_text is None and row_key is None:
        raise SearchError("MissingImage", "image_base64 is required (a base64-encoded JPEG, PNG, WebP, GIF or BMP)", "image_base64")
    image = decode_base64_image(image_text, max_image_bytes) if image_text is not None else None
    search_type = _choice(raw, "search_type", SEARCH_TYPES, "InvalidSearchType") or "similar"
    sort_type = _choice(raw, "sort_type", SORT_TYPES, "InvalidSortType") or "best"
    sort_order = _choice(raw, "sort_order", SORT_ORDERS, "InvalidSortOrder") or DEFAULT_ORDER[sort_type]
    currency_text = _text(raw, "currency")
    currency = parse_currency(currency_text, rates) if currency_text else parse_currency(default_currency, rates)
    lang_text = _text(raw, "lang")
    ship_text = _text(raw, "ship_to")
    return SearchParams(
        image=image,
        search_type=search_type,  # type: ignore[arg-type]
        currency=currency,
        lang=parse_language(lang_text) if lang_text else None,
        ship_to=parse_country(ship_text) if ship_text else None,
        sort_type=sort_type,  # type: ignore[arg-type]
        sort_order=sort_order,  # type: ignore[arg-type]
        page_size=_integer(raw, "page_size", 1, MAX_PAGE_SIZE, "InvalidPageSize"),
        page_no=_integer(raw, "page_no", 1, MAX_PAGE_NO, "InvalidPageNo"),
        start_row_key=row_key,
    )
