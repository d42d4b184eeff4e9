"""Search parameters: the one validator every entry point calls.

``parse_params`` takes the textual options of a request (searchV2's decoded
``param0``, the fields of a ``/v1`` JSON body or multipart form, the CLI's
options) plus, where the entry point received raw bytes (an uploaded file, the
legacy method's image part, the CLI's photo), the image itself.  It returns a
:class:`SearchParams` whose every field is known good, or raises
:class:`RequestError` with one code per kind of mistake; the same bad value
gets the same code and message everywhere.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from ..errors import ErrorCode, RequestError
from ..i18n import parse_country, parse_language
from ..pricing.money import parse_currency
from ..pricing.rates import RatesTable
from ..vision.decode import check_size

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
#: The fields of searchV2's param0, with our extensions page_no, page_size, start_row_key, category_id,
#: min_score, region, crop and collapse.
PARAM0_FIELDS = frozenset(
    {"search_type", "image_base64", "currency", "lang", "sort_type", "sort_order", "ship_to", "page_no", "page_size", "start_row_key",
     "category_id", "min_score", "region", "crop", "collapse"}
)
#: /v1/search also takes an image by URL (and a multipart ``file``, passed as bytes), or a text (a CLIP-family embedder),
#: and can answer per product found in the photo (``groups``).
V1_FIELDS = PARAM0_FIELDS | {"image_url", "text", "groups"}
#: The longest text query, in characters (CLIP reads 77 tokens at most).
MAX_TEXT = 300
#: "More like this product" (/v1/products/{id}/similar): a search's options, without an image or a region, and
#: "similar" only (so no search_type).
SIMILAR_FIELDS = PARAM0_FIELDS - {"image_base64", "region", "crop", "search_type"}
DATA_URL = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)
URL_SAFE = str.maketrans("-_", "+/")
ROW_KEY = re.compile(r"([0-9a-f]{32}):([0-9]{1,5})")
CATEGORY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: A region: x, y, width, height; in pixels, or fractions of the photo when every value is at most 1.
Region = tuple[float, float, float, float]


@dataclass(frozen=True)
class SearchParams:
    """A validated search request; ``None`` means "not given".

    ``image_param`` names where the image came from, so image errors found
    later (decoding) name the parameter the client used.
    """

    image: bytes | None = None
    image_url: str | None = None
    image_param: str = "image_base64"
    search_type: SearchType = "similar"
    currency: str = "USD"
    lang: str | None = None
    ship_to: str | None = None
    sort_type: SortType = "best"
    sort_order: SortOrder = "desc"
    page_size: int | None = None
    page_no: int | None = None
    start_row_key: tuple[str, int] | None = None
    #: Only products in this category (first or second level).
    category_id: str | None = None
    #: Only results scoring at least this (cosine, 0-1).
    min_score: float | None = None
    #: Search this box of the photo instead of the whole photo.
    region: Region | None = None
    #: Search the main subject the service locates in the photo instead of the whole photo (None: the service's default).
    crop: bool | None = None
    #: Also answer one group of results per product located in the photo, with its box.
    groups: bool = False
    #: One result per item sold by several listings (near-identical images), with its offers.
    collapse: bool = False
    #: A text to search the images with instead of a photo ("red summer dress"; needs an embedder with a text tower).
    text: str | None = None

    def with_image(self, image: bytes) -> SearchParams:
        """The same request with the image fetched from ``image_url``."""
        return replace(self, image=image, image_url=None, image_param="image_url")


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _text(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RequestError(ErrorCode.InvalidParameterType, name, expected="a string", got=_type_name(value))
    return value.strip()


def _query_text(raw: Mapping[str, Any]) -> str | None:
    """The ``text`` query: 1 to :data:`MAX_TEXT` characters, not only spaces or control characters."""
    if raw.get("text") is None:
        return None
    text = _text(raw, "text")
    if not text or not any(character.isprintable() and not character.isspace() for character in text):
        raise RequestError(ErrorCode.InvalidText, "text", reason="is empty: give the words to search for")
    if len(text) > MAX_TEXT:
        raise RequestError(ErrorCode.InvalidText, "text", reason=f"is longer than {MAX_TEXT} characters")
    return text


def _choice(raw: Mapping[str, Any], name: str, allowed: tuple[str, ...], code: ErrorCode) -> str | None:
    value = _text(raw, name)
    if value is None:
        return None
    if value.lower() not in allowed:
        raise RequestError(code, name, value=value, allowed=", ".join(allowed))
    return value.lower()


def _integer(raw: Mapping[str, Any], name: str, low: int, high: int, code: ErrorCode) -> int | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    whole = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 9:
        value, whole = int(value), True
    if not whole or not low <= value <= high:
        raise RequestError(code, name, low=low, high=high, value=value)
    return int(value)


def _min_score(raw: Mapping[str, Any]) -> float | None:
    value = raw.get("min_score")
    if value is None or value == "":
        return None
    number: float | None = None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str) and len(value) <= 32:
            number = float(value)
    except (ValueError, OverflowError):  # (an integer too large for a float, text that is not a number)
        number = None
    if number is None or not 0.0 <= number <= 1.0:  # (NaN fails both comparisons)
        raise RequestError(ErrorCode.InvalidMinScore, "min_score", value=value if not isinstance(value, str) else value[:32])
    return number


def _flag(raw: Mapping[str, Any], name: str) -> bool:
    return bool(_optional_flag(raw, name))


def _optional_flag(raw: Mapping[str, Any], name: str) -> bool | None:
    """A boolean option (true/false, 1/0 in a form or query string); None when not given."""
    value = raw.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "false", "0"):
        return value.strip().lower() in ("true", "1")
    raise RequestError(ErrorCode.InvalidParameterType, name, expected="true or false", got=_type_name(value) if not isinstance(value, str) else repr(value[:32]))


def _category_id(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("category_id")
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # category ids are numbers in AliExpress's data
    if not isinstance(value, str) or not CATEGORY_ID.fullmatch(value.strip()):
        raise RequestError(ErrorCode.InvalidCategoryId, "category_id", value=value if not isinstance(value, str) else value[:64])
    return value.strip()


def parse_region(value: Any) -> Region | None:
    """``[x, y, width, height]`` (a JSON array, or "x,y,width,height" in a form), validated for shape, not yet for the photo."""
    if value is None or value == "":
        return None
    parts = value.split(",") if isinstance(value, str) and len(value) <= 200 else value
    if not isinstance(parts, (list, tuple)) or len(parts) != 4:
        raise RequestError(ErrorCode.InvalidRegion, "region", reason="must be four numbers: x, y, width, height")
    numbers = []
    for part in parts:
        try:
            number = float(part) if not isinstance(part, bool) and isinstance(part, (int, float, str)) else None
        except (ValueError, OverflowError):
            number = None
        if number is None or not (0.0 <= number < 1e6):
            raise RequestError(ErrorCode.InvalidRegion, "region", reason="must be four numbers from 0 (x, y, width, height)")
        numbers.append(number)
    if numbers[2] <= 0 or numbers[3] <= 0:
        raise RequestError(ErrorCode.InvalidRegion, "region", reason="must have a width and a height above 0")
    return (numbers[0], numbers[1], numbers[2], numbers[3])


def decode_base64_image(value: str, max_bytes: int, name: str = "image_base64") -> bytes:
    """Decode standard or URL-safe base64 (a ``data:`` URL prefix and line breaks allowed).

    Each clean-up pass runs only when needed: this is on every search's path.
    """
    text = value.strip()
    if text[:5].lower() == "data:":
        text = DATA_URL.sub("", text)
    if any(space in text for space in " \n\r\t"):
        text = "".join(text.split())
    if "-" in text or "_" in text:
        text = text.translate(URL_SAFE)
    check_size(len(text) * 3 // 4, max_bytes, name)
    text += "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(ErrorCode.InvalidBase64, name) from None
    if not data:
        raise RequestError(ErrorCode.EmptyImage, name)
    return data


def parse_row_key(value: str) -> tuple[str, int]:
    match = ROW_KEY.fullmatch(value)
    if not match:
        raise RequestError(ErrorCode.InvalidStartRowKey, "start_row_key")
    return match.group(1), int(match.group(2))


def parse_params(
    raw: Mapping[str, Any],
    rates: RatesTable,
    default_currency: str,
    max_image_bytes: int,
    *,
    image: bytes | None = None,
    image_param: str | None = None,
    fields: frozenset[str] = PARAM0_FIELDS,
) -> SearchParams:
    """Validate the options ``raw`` (and an ``image`` received as bytes); raises on the first mistake.

    ``image_param`` names the entry point's own image-bytes parameter (a
    multipart ``file``, the legacy ``image_file_bytes``), if it has one.
    ``fields`` are the option names it takes: any other name is refused with
    ``UnknownParameter``, so a typo never passes silently.
    """
    if not isinstance(raw, Mapping):
        raise RequestError(ErrorCode.InvalidParameterType, "param0", expected="a JSON object", got=_type_name(raw))
    for name in raw:
        if name not in fields:
            known = fields | {image_param} if image_param else fields
            raise RequestError(ErrorCode.UnknownParameter, str(name)[:64], known=", ".join(sorted(known)))
    row_key_text = _text(raw, "start_row_key")
    row_key = parse_row_key(row_key_text) if row_key_text else None
    base64_given = raw.get("image_base64") is not None
    image_text = raw.get("image_base64")
    if base64_given and not isinstance(image_text, str):
        raise RequestError(ErrorCode.InvalidParameterType, "image_base64", expected="a string", got=_type_name(image_text))
    url = _text(raw, "image_url")
    text = _query_text(raw)
    candidates = [(image_param or "image", image is not None), ("image_base64", base64_given), ("image_url", url is not None)]
    sources = [name for name, _ in candidates if name in fields or name == image_param]
    image_param = image_param or "image"
    given = [name for name, present in candidates if present]
    if text is not None and given:
        raise RequestError(ErrorCode.InvalidText, "text", reason=f"is sent with a photo ({given[0]}): send one or the other")
    if len(given) > 1:
        raise RequestError(ErrorCode.AmbiguousImage, given=", ".join(given))
    if image is not None:
        if not image:
            raise RequestError(ErrorCode.EmptyImage, image_param)
        check_size(len(image), max_image_bytes, image_param)
    elif base64_given:
        image, image_param = decode_base64_image(str(image_text), max_image_bytes), "image_base64"
    elif url is not None:
        if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", url, re.IGNORECASE):
            raise RequestError(ErrorCode.InvalidImageUrl, "image_url")
        image_param = "image_url"
    elif row_key is None and text is None and sources:  # (an entry point that takes no image, like "more like this", needs none)
        raise RequestError(ErrorCode.MissingImage, " or ".join([*sources, *(["text"] if "text" in fields else [])]))
    search_type = _choice(raw, "search_type", SEARCH_TYPES, ErrorCode.InvalidSearchType) or "similar"
    if text is not None and search_type == "same":
        raise RequestError(ErrorCode.InvalidText, "text", reason="finds similar products only: search_type same needs a photo")
    if text is not None and raw.get("region") is not None:
        raise RequestError(ErrorCode.InvalidText, "text", reason="cannot take a region: a region is a box of a photo")
    crop, groups = _optional_flag(raw, "crop"), _flag(raw, "groups")
    for name, asked in (("crop", crop), ("groups", groups)):
        if asked and text is not None:
            raise RequestError(ErrorCode.InvalidSubjectOption, name, reason="locates products in a photo: a text search has none")
        if asked and raw.get("region") is not None:
            raise RequestError(ErrorCode.InvalidSubjectOption, name, reason="cannot take a region: the region is already the box to search")
    sort_type = _choice(raw, "sort_type", SORT_TYPES, ErrorCode.InvalidSortType) or "best"
    sort_order = _choice(raw, "sort_order", SORT_ORDERS, ErrorCode.InvalidSortOrder) or DEFAULT_ORDER[sort_type]
    currency_text = _text(raw, "currency")
    lang_text = _text(raw, "lang")
    ship_text = _text(raw, "ship_to")
    return SearchParams(
        image=image,
        image_url=url if image is None else None,
        image_param=image_param,
        search_type=search_type,  # type: ignore[arg-type]
        currency=parse_currency(currency_text or default_currency, rates),
        lang=parse_language(lang_text) if lang_text else None,
        ship_to=parse_country(ship_text) if ship_text else None,
        sort_type=sort_type,  # type: ignore[arg-type]
        sort_order=sort_order,  # type: ignore[arg-type]
        page_size=_integer(raw, "page_size", 1, MAX_PAGE_SIZE, ErrorCode.InvalidPageSize),
        page_no=_integer(raw, "page_no", 1, MAX_PAGE_NO, ErrorCode.InvalidPageNo),
        start_row_key=row_key,
        category_id=_category_id(raw),
        min_score=_min_score(raw),
        region=parse_region(raw.get("region")),
        crop=crop,
        groups=groups,
        collapse=_flag(raw, "collapse"),
        text=text,
    )
