"""Rendering a search page in the exact shape of ``aliexpress.ds.image.searchV2``.

Types follow the published sample: every value is a string except ``shop_id``
and the pagination numbers; prices are integer strings in the currency's
minor units; ``discount`` is floor((1 - sale/original) x 100), computed on the
catalog's exact prices; ``similarity_score`` has three decimals.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel

from ..catalog.store import Category, ProductView
from ..errors import SearchError
from ..i18n import pick_text
from ..pricing.money import convert, discount_percent, minor_digits, minor_units
from .engine import PageItem, SearchPage


class Money(BaseModel):
    value: str
    currency: str


class Prices(BaseModel):
    sale: Money
    original: Money


class CategoryLevel(BaseModel):
    name: str
    id: str


class Categories(BaseModel):
    first_level: CategoryLevel
    second_level: CategoryLevel


class Product(BaseModel):
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


class Data(BaseModel):
    products: list[Product]


class Pagination(BaseModel):
    has_next: bool
    page_no: int
    page_count: int
    page_size: int


class SearchV2Result(BaseModel):
    """The ``result`` object of a successful searchV2 response."""

    ret: bool = True
    next_start_row_key: str
    data: Data
    total_count: int
    pagination: Pagination
    empty: bool


class SearchV2Error(BaseModel):
    """The ``result`` object of a refused searchV2 request."""

    ret: bool = False
    code: str
    messages: str
    empty: bool = True


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


def _level(category: Category | None, lang: str | None, default_lang: str) -> CategoryLevel:
    if category is None:
        return CategoryLevel(name="", id="")
    return CategoryLevel(name=pick_text(category.names, lang, default_lang), id=category.id)


def image_url(product: ProductView, image_id: int, public_url: str) -> str:
    """The main image's own URL when it came from the web, else our thumbnail URL."""
    source = product.image_sources[0] if product.image_sources else ""
    if source.lower().startswith(("http://", "https://")):
        return source
    main_id = product.image_ids[0] if product.image_ids else image_id
    return f"{public_url.rstrip('/')}/thumbnails/{main_id}.jpg"


def render_product(item: PageItem, page: SearchPage, default_lang: str, public_url: str) -> Product:
    product = item.product
    rates = page.rates
    sale = convert(product.sale_price, product.currency, page.currency, rates)
    original_amount = product.original_price if product.original_price is not None else product.sale_price
    original = convert(original_amount, product.currency, page.currency, rates)
    return Product(
        volume=format_volume(product.volume),
        category=Categories(
            first_level=_level(product.first_category, page.lang, default_lang),
            second_level=_level(product.second_category, page.lang, default_lang),
        ),
        product_detail_url=product.detail_url,
        price=Prices(
            sale=Money(value=minor_units(sale, page.currency), currency=page.currency),
            original=Money(value=minor_units(original, page.currency), currency=page.currency),
        ),
        discount=discount_percent(product.sale_price, product.original_price),
        image_url=image_url(product, item.image_id, public_url),
        evaluate_rate=format_rate(product.evaluate_rate),
        title=pick_text(product.titles, page.lang, default_lang),
        shop_id=product.shop_id,
        product_id=product.product_id,
        similarity_score=format_score(item.score),
    )


def format_rate(rate: Decimal | None) -> str:
    """"4.9" as in the sample; one decimal at least, more only if the catalog has them."""
    if rate is None:
        return ""
    exponent = rate.normalize().as_tuple().exponent
    return f"{rate:.1f}" if isinstance(exponent, int) and exponent >= -1 else f"{rate.normalize():f}"


def render_flat(page: SearchPage, default_lang: str, public_url: str) -> list[dict[str, object]]:
    """Products in the flat field set of the older ``aliexpress.ds.image.search``.

    Prices are decimal strings there (``"12.34"``), the discount and the rating
    percentages (``"50%"``, ``"98.0%"``), the volume an integer.
    """
    flat = []
    for item in page.items:
        nested = render_product(item, page, default_lang, public_url)
        product = item.product
        digits = minor_digits(page.currency)
        rate = product.evaluate_rate
        flat.append({
            "product_id": nested.product_id,
            "product_title": nested.title,
            "product_main_image_url": nested.image_url,
            "product_detail_url": nested.product_detail_url,
            "shop_id": nested.shop_id,
            "shop_url": "",
            "target_sale_price": f"{Decimal(nested.price.sale.value).scaleb(-digits):f}",
            "target_sale_price_currency": page.currency,
            "target_original_price": f"{Decimal(nested.price.original.value).scaleb(-digits):f}",
            "target_original_price_currency": page.currency,
            "discount": f"{nested.discount}%",
            "evaluate_rate": "" if rate is None else f"{rate / 5 * 100:.1f}%",
            "lastest_volume": product.volume,
            "first_level_category_id": nested.category.first_level.id,
            "first_level_category_name": nested.category.first_level.name,
            "second_level_category_id": nested.category.second_level.id,
            "second_level_category_name": nested.category.second_level.name,
            "ship_from": product.ship_from or "",
            "similarity_score": nested.similarity_score,
        })
    return flat


def render(page: SearchPage, default_lang: str, public_url: str) -> SearchV2Result:
    """The searchV2 ``result`` for ``page``."""
    products = [render_product(item, page, default_lang, public_url) for item in page.items]
    return SearchV2Result(
        next_start_row_key=page.next_start_row_key,
        data=Data(products=products),
        total_count=page.total_count,
        pagination=Pagination(has_next=page.has_next, page_no=page.page_no, page_count=page.page_count, page_size=page.page_size),
        empty=not products,
    )


def render_error(error: SearchError) -> SearchV2Error:
    """The searchV2 ``result`` for a refused request."""
    return SearchV2Error(code=error.code, messages=error.message)
