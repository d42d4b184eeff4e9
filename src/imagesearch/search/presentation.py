"""One presentation of a product for a reader: the single place prices are converted and texts chosen.

:func:`present` turns a catalog :class:`ProductView` into a :class:`Presented`
product for one reader (currency, language, public URL): prices converted
exactly, the discount, titles and category names in the language with
fallback, image URLs.  The output shapes (searchV2, the legacy method,
``/v1``) are thin adapters over it, so they can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TypedDict

from ..catalog.base import Category, ProductView
from ..i18n import pick_text
from ..pricing.money import convert, discount_percent
from ..pricing.rates import RatesTable
from .engine import SearchPage


@dataclass(frozen=True)
class Price:
    """Sale and original price in ``currency``.

    ``converted`` is False when the rates table has no rate between the
    catalog's currency and the one asked for (the rates were replaced after
    the import): the price is then the catalog's own, in its own currency.
    """

    sale: Decimal
    original: Decimal
    currency: str
    converted: bool


@dataclass(frozen=True)
class CategoryName:
    id: str
    name: str


@dataclass(frozen=True)
class Presented:
    """A product as one reader sees it; ``score`` and ``image_id`` say why it matched a search."""

    product_id: str
    shop_id: int
    title: str
    first_category: CategoryName | None
    second_category: CategoryName | None
    price: Price
    discount: int
    volume: int
    evaluate_rate: Decimal | None
    ship_from: str | None
    ship_to: tuple[str, ...] | None
    detail_url: str
    image_url: str
    score: float | None = None
    image_id: int | None = None
    #: Every listing of this item, cheapest first, when results are collapsed.
    offers: tuple[Presented, ...] = ()


@dataclass(frozen=True)
class Reader:
    """Who a product is presented to: currency, language and where our thumbnails are served."""

    currency: str
    lang: str | None
    default_lang: str
    rates: RatesTable
    public_url: str


def thumbnail_url(public_url: str, image_id: int) -> str:
    return f"{public_url.rstrip('/')}/thumbnails/{image_id}.jpg"


class BoxFields(TypedDict):
    """A box of the query photo (a searched region, a located subject) as every output shape writes it."""

    x: int
    y: int
    width: int
    height: int


def box_fields(box: tuple[int, int, int, int]) -> BoxFields:
    x, y, width, height = box
    return {"x": x, "y": y, "width": width, "height": height}


def main_image_url(product: ProductView, public_url: str) -> str:
    """The main image's own URL when it came from the web, else our thumbnail of it."""
    source = product.image_sources[0] if product.image_sources else ""
    if source.lower().startswith(("http://", "https://")):
        return source
    return thumbnail_url(public_url, product.image_ids[0]) if product.image_ids else ""


def _price(product: ProductView, currency: str, rates: RatesTable) -> Price:
    original = product.original_price if product.original_price is not None else product.sale_price
    sale_converted = convert(product.sale_price, product.currency, currency, rates)
    original_converted = convert(original, product.currency, currency, rates)
    if sale_converted is None or original_converted is None:
        return Price(product.sale_price, original, product.currency, converted=False)
    return Price(sale_converted, original_converted, currency, converted=True)


def _category(category: Category | None, reader: Reader) -> CategoryName | None:
    if category is None:
        return None
    return CategoryName(category.id, pick_text(category.names, reader.lang, reader.default_lang))


def present(product: ProductView, reader: Reader, score: float | None = None, image_id: int | None = None) -> Presented:
    """``product`` for ``reader``; the discount is computed on the catalog's exact prices."""
    return Presented(
        product_id=product.product_id,
        shop_id=product.shop_id,
        title=pick_text(product.titles, reader.lang, reader.default_lang),
        first_category=_category(product.first_category, reader),
        second_category=_category(product.second_category, reader),
        price=_price(product, reader.currency, reader.rates),
        discount=discount_percent(product.sale_price, product.original_price),
        volume=product.volume,
        evaluate_rate=product.evaluate_rate,
        ship_from=product.ship_from,
        ship_to=product.ship_to,
        detail_url=product.detail_url,
        image_url=main_image_url(product, reader.public_url),
        score=score,
        image_id=image_id,
    )


def present_page(page: SearchPage, default_lang: str, public_url: str) -> list[Presented]:
    """The products of a search page, in the page's currency and language."""
    reader = Reader(page.currency, page.lang, default_lang, page.rates, public_url)
    return [
        replace(present(item.product, reader, item.score, item.image_id), offers=tuple(present(offer, reader) for offer in item.offers))
        if item.offers else present(item.product, reader, item.score, item.image_id)
        for item in page.items
    ]
