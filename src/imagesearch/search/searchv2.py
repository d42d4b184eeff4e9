"""Rendering a search page in the exact shape of ``aliexpress.ds.image.searchV2``.

Types follow the published sample: every value is a string except ``shop_id``
and the pagination numbers; prices are integer strings in the currency's
minor units; ``discount`` is floor((1 - sale/original) x 100), computed on the
catalog's exact prices; ``similarity_score`` has three decimals.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypedDict

from ..errors import RequestError
from ..pricing.money import minor_units
from .engine import SearchPage
from .presentation import BoxFields, CategoryName, Presented, box_fields


class Money(TypedDict):
    value: str
    currency: str


class Prices(TypedDict):
    sale: Money
    original: Money


class CategoryLevel(TypedDict):
    name: str
    id: str


class Categories(TypedDict):
    first_level: CategoryLevel
    second_level: CategoryLevel


class Product(TypedDict, total=False):
    """One product; ``offers`` (our extension) lists every listing of the item when results are collapsed."""

    volume: str
    category: Categories
    product_detail_url: str
    price: Prices
    discount: str
    image_url: str
    evaluate_rate: str
    title: str
    shop_id: int
    product_id: str
    similarity_score: str
    offers: list[Product]


class Data(TypedDict):
    products: list[Product]


class Pagination(TypedDict):
    has_next: bool
    page_no: int
    page_count: int
    page_size: int


class SearchV2Result(TypedDict, total=False):
    """The ``result`` object of a successful searchV2 response (plain dicts: this is on every search's path).

    ``region`` and ``subject`` are our extensions: the box searched, when the request gave one (or asked ``crop``),
    and the main subject located in the photo, when the request asked ``crop``.
    """

    ret: bool
    next_start_row_key: str
    data: Data
    total_count: int
    pagination: Pagination
    empty: bool
    region: BoxFields
    subject: BoxFields


class SearchV2Error(TypedDict):
    """The ``result`` object of a refused searchV2 request."""

    ret: bool
    code: str
    messages: str
    empty: bool


def format_volume(volume: int) -> str:
    """Orders as AliExpress shows them: exact below 100, else floored with a "+".

    Below 10,000 to the hundred ("700+", "1500+"), from 10,000 to the thousand ("12000+").
    """
    if volume < 100:
        return str(volume)
    step = 100 if volume < 10_000 else 1000
    return f"{volume // step * step}+"


def format_score(score: float) -> str:
    """Three decimals in [0, 1]; an identical image (cosine 0.99999) gives "1.000"."""
    return f"{min(1.0, max(0.0, score)):.3f}"


def format_rate(rate: Decimal | None) -> str:
    """"4.9" as in the sample; one decimal at least, more only if the catalog has them."""
    if rate is None:
        return ""
    exponent = rate.normalize().as_tuple().exponent
    return f"{rate:.1f}" if isinstance(exponent, int) and exponent >= -1 else f"{rate.normalize():f}"


def _level(category: CategoryName | None) -> CategoryLevel:
    return {"name": category.name, "id": category.id} if category else {"name": "", "id": ""}


def render_product(item: Presented) -> Product:
    """One product in the sample's field order and types (and its ``offers`` when collapsed)."""
    price = item.price
    product: Product = {
        "volume": format_volume(item.volume),
        "category": {"first_level": _level(item.first_category), "second_level": _level(item.second_category)},
        "product_detail_url": item.detail_url,
        "price": {
            "sale": {"value": minor_units(price.sale, price.currency), "currency": price.currency},
            "original": {"value": minor_units(price.original, price.currency), "currency": price.currency},
        },
        "discount": str(item.discount),
        "image_url": item.image_url,
        "evaluate_rate": format_rate(item.evaluate_rate),
        "title": item.title,
        "shop_id": item.shop_id,
        "product_id": item.product_id,
        "similarity_score": format_score(item.score or 0.0),
    }
    if item.offers:
        product["offers"] = [render_product(offer) for offer in item.offers]
    return product


def render_flat(item: Presented) -> dict[str, object]:
    """A product in the flat field set of the older ``aliexpress.ds.image.search``.

    Prices are decimal strings there (``"12.34"``), the discount and the rating
    percentages (``"50%"``, ``"98.0%"``), the volume an integer.
    """
    price = item.price
    rate = item.evaluate_rate
    return {
        "product_id": item.product_id,
        "product_title": item.title,
        "product_main_image_url": item.image_url,
        "product_detail_url": item.detail_url,
        "shop_id": item.shop_id,
        "shop_url": "",
        "target_sale_price": f"{price.sale:f}",
        "target_sale_price_currency": price.currency,
        "target_original_price": f"{price.original:f}",
        "target_original_price_currency": price.currency,
        "discount": f"{item.discount}%",
        "evaluate_rate": "" if rate is None else f"{rate / 5 * 100:.1f}%",
        "lastest_volume": item.volume,
        "first_level_category_id": item.first_category.id if item.first_category else "",
        "first_level_category_name": item.first_category.name if item.first_category else "",
        "second_level_category_id": item.second_category.id if item.second_category else "",
        "second_level_category_name": item.second_category.name if item.second_category else "",
        "ship_from": item.ship_from or "",
        "similarity_score": format_score(item.score or 0.0),
    }


def render(page: SearchPage, items: list[Presented]) -> SearchV2Result:
    """The searchV2 ``result`` for ``page``, whose products are ``items``."""
    result: SearchV2Result = {
        "ret": True,
        "next_start_row_key": page.next_start_row_key,
        "data": {"products": [render_product(item) for item in items]},
        "total_count": page.total_count,
        "pagination": {"has_next": page.has_next, "page_no": page.page_no, "page_count": page.page_count, "page_size": page.page_size},
        "empty": not items,
    }
    if page.region is not None:
        result["region"] = box_fields(page.region)
    if page.subject is not None:
        result["subject"] = box_fields(page.subject)
    return result


def render_error(error: RequestError) -> SearchV2Error:
    """The searchV2 ``result`` for a refused request."""
    return {"ret": False, "code": error.code.value, "messages": error.message, "empty": True}
