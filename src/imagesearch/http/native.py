"""The service's own JSON API under ``/v1`` (documented by OpenAPI at ``/docs``).

Unlike searchV2, prices are decimal strings with their currency and scores
are numbers.  Catalog writes need the admin token (``Authorization: Bearer``).
Handlers are thin: read the (capped) body, then in one worker thread parse
it, call the search engine or the catalog, and render; refusals are
:class:`RequestError` exceptions that the application maps to the error shape.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..access.store import AccessStore
from ..catalog.base import ProductView
from ..errors import CatalogError, ErrorCode, ReadOnlyError, RequestError
from ..fetcher import FetchPolicy, fetch
from ..i18n import parse_language
from ..ingest.compact import due
from ..ingest.importer import (
    ImportRejected,
    ImportReport,
    delete_products,
    import_product,
)
from ..pricing.money import parse_currency
from ..search.engine import PREVIEW_SIDE, SearchEngine, SearchPage
from ..search.params import MAX_PAGE_NO, MAX_PAGE_SIZE, SIMILAR_FIELDS, V1_FIELDS
from ..search.presentation import (
    Presented,
    Reader,
    box_fields,
    present,
    present_page,
    thumbnail_url,
)
from .admission import Admission
from .background import BackgroundCompaction
from .forms import parse_form, read_body
from .ratelimit import RateLimiter, SharedRateLimiter, ban_seconds
from .threads import json_from_thread

#: A live write waits this long for another one (or a compaction's swap) to finish before answering 409:
#: concurrent PUTs and DELETEs queue instead of failing.
WRITE_WAIT_SECONDS = 30.0


class SearchRequest(BaseModel):
    """``POST /v1/search`` as JSON, or the same fields in a multipart form with a ``file`` part.

    Documentation only: the request is validated by the one validator every
    entry point shares (``search/params.py``), so its errors are the same everywhere.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "anyOf": [{"required": ["image_base64"]}, {"required": ["image_url"]}, {"required": ["text"]}]})
    image_base64: str | None = Field(None, description="the photo, base64 (standard or URL-safe; a data: URL prefix is fine)")
    image_url: str | None = Field(None, description="or the photo's http(s) URL (public addresses only, unless allowed)")
    text: str | None = Field(None, max_length=300, description=(
        "or words to search the images with, instead of a photo (\"red summer dress\"): needs a CLIP-family embedder "
        "(embedder = \"clip\"; otherwise TextSearchUnavailable); similar only, no region"))
    search_type: str | None = Field(None, description="similar (default) or same")
    currency: str | None = Field(None, description="ISO 4217 code of the prices (default: the service's default currency)")
    lang: str | None = Field(None, description="language of titles and categories, e.g. en, fr, pt-BR")
    ship_to: str | None = Field(None, description="ISO 3166-1 alpha-2 country the products must ship to")
    sort_type: str | None = Field(None, description="best (default), price or orders")
    sort_order: str | None = Field(None, description="asc or desc (default: desc for best and orders, asc for price)")
    page_size: int | None = Field(None, ge=1, le=MAX_PAGE_SIZE)
    page_no: int | None = Field(None, ge=1, le=MAX_PAGE_NO)
    start_row_key: str | None = Field(None, description="next_start_row_key of an earlier page")
    category_id: str | None = Field(None, description="only products in this category (a first- or second-level category id)")
    min_score: float | None = Field(None, ge=0, le=1, description="only results scoring at least this (default: the service's floor)")
    collapse: bool | None = Field(
        None, description="one result per item sold by several listings (near-identical images), shown as its cheapest listing "
                          "with every listing in offers, cheapest first")
    region: list[float] | str | None = Field(
        None, description="search this box of the photo: [x, y, width, height] in pixels, or in fractions of the photo when every "
                          "value is at most 1 (in a form: \"x,y,width,height\"); clipped to the photo; the answer's region is the box in pixels")
    crop: bool | None = Field(
        None, description="search the main subject the service locates in the photo instead of the whole photo (default: the "
                          "service's subject_crop, off unless configured); the answer's subject and region are its box in pixels")
    groups: bool | None = Field(
        None, description="also answer groups: one first page of results per product located in the photo (up to 5, the main "
                          "subject first), each with its box as region and its own next_start_row_key")


class ErrorDetail(BaseModel):
    code: str = Field(description="one of the codes in the README's error tables (e.g. InvalidPageSize)")
    message: str = Field(description="what is wrong, naming the parameter and what it accepts")
    param: str | None = Field(None, description="the parameter at fault, if one is")


class ErrorBody(BaseModel):
    """Every refusal of ``/v1`` (documentation: the handlers raise ``RequestError``)."""

    error: ErrorDetail
    request_id: str


def product_json(item: Presented) -> dict[str, Any]:
    """A product in ``/v1``'s shape (prices as decimal strings)."""
    price = item.price
    body: dict[str, Any] = {
        "product_id": item.product_id,
        "shop_id": item.shop_id,
        "title": item.title,
        "price": {"sale": f"{price.sale:f}", "original": f"{price.original:f}", "currency": price.currency, "converted": price.converted},
        "discount_percent": item.discount,
        "volume": item.volume,
        "evaluate_rate": float(item.evaluate_rate) if item.evaluate_rate is not None else None,
        "category": {
            level: {"id": category.id, "name": category.name} if category else None
            for level, category in (("first_level", item.first_category), ("second_level", item.second_category))
        },
        "ship_from": item.ship_from,
        "ship_to": list(item.ship_to) if item.ship_to is not None else "*",
        "product_detail_url": item.detail_url,
        "image_url": item.image_url,
        **({"offers": [product_json(offer) for offer in item.offers]} if item.offers else {}),
    }
    if item.score is not None:
        body["score"] = round(item.score, 4)
    return body


def page_json(page: SearchPage, items: list[Presented], public_url: str, default_lang: str) -> dict[str, Any]:
    def result(item: Presented) -> dict[str, Any]:
        assert item.image_id is not None
        return {**product_json(item), "matched_image_id": item.image_id, "matched_thumbnail_url": thumbnail_url(public_url, item.image_id)}

    groups = [page_json(group, present_page(group, default_lang, public_url), public_url, default_lang) for group in page.groups]
    return {
        "total_count": page.total_count,
        "total_is_capped": page.capped,
        "page": {"number": page.page_no, "size": page.page_size, "count": len(items), "pages": page.page_count, "has_next": page.has_next},
        "next_start_row_key": page.next_start_row_key or None,
        "products": [result(item) for item in items],
        "timings_ms": {key: round(value, 2) for key, value in page.timings.items()},
        "warnings": page.warnings,
        **({"region": box_fields(page.region)} if page.region is not None else {}),
        **({"subject": box_fields(page.subject)} if page.subject is not None else {}),
        **({"groups": [{key: value for key, value in group.items() if key != "warnings"} for group in groups]} if page.groups else {}),
    }


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        raise RequestError(ErrorCode.InvalidRequest, reason=f"the body must be {what} as a JSON object (it is not valid JSON)") from None
    if not isinstance(document, dict):
        raise RequestError(ErrorCode.InvalidRequest, reason=f"the body must be {what} as a JSON object")
    return document


class NativeApi:
    """What each ``/v1`` route does, as plain blocking functions the handlers run in a thread."""

    def __init__(self, engine: SearchEngine, access: AccessStore, limiter: RateLimiter | SharedRateLimiter) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.access = access
        self.limiter = limiter
        self.compaction = BackgroundCompaction(engine.settings)

    def check_app(self, headers: Mapping[str, str]) -> None:
        """A known, active app with the right secret, within its rate limit (``v1_requires_app_key``)."""
        key, secret = headers.get("x-app-key", ""), headers.get("x-app-secret", "")
        app = self.access.cached_app(key) if key else None
        if app is None or not app.active or not hmac.compare_digest(secret.encode(), app.secret.encode()):
            raise RequestError(ErrorCode.AppKeyRequired)
        wait = self.limiter.acquire(app.app_key, app.rate_limit)
        if wait > 0:
            raise RequestError(ErrorCode.RateLimited, limit=f"{app.rate_limit:g}", seconds=ban_seconds(wait))

    def _image_and_fields(self, body: bytes, content_type: str) -> tuple[dict[str, Any], bytes | None]:
        """The options and the uploaded file of a JSON or form body."""
        if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            fields, files = parse_form(body, content_type, ErrorCode.InvalidRequest)
            if "file" in fields:
                raise RequestError(ErrorCode.InvalidParameterType, "file", expected="a file part", got="a text field")
            unknown = sorted(set(files) - {"file"})
            if unknown:
                raise RequestError(ErrorCode.UnknownParameter, unknown[0][:64], known=", ".join(sorted(V1_FIELDS | {"file"})))
            return fields, files.get("file")
        if content_type and not content_type.startswith("application/json"):
            raise RequestError(ErrorCode.InvalidRequest, reason="send JSON (application/json) or a multipart form with a file part")
        return _json_object(body, "the search options"), None

    def search(self, body: bytes, content_type: str, public_url: str, state: dict[str, Any]) -> dict[str, Any]:
        raw, image = self._image_and_fields(body, content_type)
        params = self.engine.parse(raw, image=image, image_param="file", fields=V1_FIELDS)
        if params.image_url is not None:
            params = params.with_image(fetch(params.image_url, FetchPolicy.for_queries(self.settings)))
        page = self.engine.search(params)
        return self._page_body(page, public_url, state)

    def similar(self, product_id: str, query: dict[str, str], public_url: str, state: dict[str, Any]) -> dict[str, Any]:
        """More like ``product_id``: its main image's look-alikes, with a search's options."""
        product = self._product(product_id)
        params = self.engine.parse(query, fields=SIMILAR_FIELDS)
        page = self.engine.search(params) if params.start_row_key is not None else self.engine.similar_to(product, params)
        return self._page_body(page, public_url, state)

    def _page_body(self, page: SearchPage, public_url: str, state: dict[str, Any]) -> dict[str, Any]:
        state["timings"] = page.timings
        lang = self.settings.default_lang
        return {"request_id": state.get("request_id", ""), **page_json(page, present_page(page, lang, public_url), public_url, lang)}

    def _product(self, product_id: str) -> ProductView:
        product = self.engine.parts.catalog.product_by_id(product_id)
        if product is None:
            raise RequestError(ErrorCode.ProductNotFound, "product_id", value=product_id[:64])
        return product

    def product(self, product_id: str, currency: str | None, lang: str | None, public_url: str) -> dict[str, Any]:
        product = self._product(product_id)
        rates = self.engine.rates()
        reader = Reader(
            parse_currency(currency, rates) if currency else product.currency,
            parse_language(lang) if lang else None,
            self.settings.default_lang,
            rates,
            public_url,
        )
        body = product_json(present(product, reader))
        body["titles"] = product.titles
        body["category_names"] = {
            level: category.names if category else None
            for level, category in (("first_level", product.first_category), ("second_level", product.second_category))
        }
        body["images"] = [
            {"image_id": image_id, "source": source if source.startswith(("http://", "https://")) else None,
             "thumbnail_url": thumbnail_url(public_url, image_id)}
            for image_id, source in zip(product.image_ids, product.image_sources, strict=True)
        ]
        body["price_in_catalog"] = {
            "sale": str(product.sale_price),
            "original": str(product.original_price) if product.original_price is not None else None,
            "currency": product.currency,
        }
        return body

    def match(self, product_id: str, body: bytes, content_type: str) -> dict[str, Any]:
        product = self._product(product_id)
        scores = self.engine.match_images(product, _uploaded_file(body, content_type), "file")
        return {
            "product_id": product_id,
            "images": [{"image_id": image_id, "score": round(scores.get(image_id, 0.0), 4)} for image_id in product.image_ids],
        }

    def preview(self, body: bytes, content_type: str) -> Response:
        jpeg, (width, height) = self.engine.preview(_uploaded_file(body, content_type), "file")
        return Response(jpeg, media_type="image/jpeg", headers={"X-Image-Width": str(width), "X-Image-Height": str(height)})

    def check_admin(self, authorization: str) -> None:
        if not self.settings.admin_token:
            raise RequestError(ErrorCode.AdminDisabled)
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.settings.admin_token.encode()):
            raise RequestError(ErrorCode.Unauthorized)

    def write(self, operation: Callable[..., ImportReport], *args: Any) -> ImportReport:
        """A catalog write; refusals become ``InvalidProduct`` (422) or ``WriteConflict`` (409).

        When the index's deltas have grown past the thresholds, a compaction
        follows in the background: the answer does not wait for it.
        """
        parts = self.engine.parts
        try:
            report = operation(parts, *args, wait=WRITE_WAIT_SECONDS)
        except ReadOnlyError as exc:
            raise RequestError(ErrorCode.ReadOnly, reason=str(exc)) from None
        except ImportRejected as rejected:
            raise RequestError(ErrorCode.InvalidProduct, reason="; ".join(error.reason for error in rejected.errors)) from None
        except CatalogError as exc:
            raise RequestError(ErrorCode.WriteConflict, reason=str(exc)) from None
        if due(parts.index_state(), self.settings.compact_max_deltas, self.settings.compact_delta_ratio):
            self.compaction.start()
        return report

    def put(self, product_id: str, body: bytes) -> dict[str, Any]:
        document = _json_object(body, "a product")
        document.setdefault("product_id", product_id)
        if document["product_id"] != product_id:
            raise RequestError(ErrorCode.InvalidRequest, "product_id", reason="product_id in the body differs from the URL")
        report = self.write(import_product, document)
        return {"product_id": product_id, **report.as_dict()}

    def delete(self, product_id: str) -> dict[str, Any]:
        report = self.write(delete_products, [product_id])
        if not report.products_deleted:
            raise RequestError(ErrorCode.ProductNotFound, "product_id", value=product_id[:64])
        return {"product_id": product_id, "deleted": True, "generation": report.generation}


def build_native_router(api: NativeApi, public_url: Callable[[Request], str], admission: Admission) -> APIRouter:
    router = APIRouter(prefix="/v1", responses={
        "4XX": {"model": ErrorBody, "description": "Refused: the code says why (see the README's error tables)"},
        "5XX": {"model": ErrorBody, "description": "InternalError, or CatalogUnavailable (503)"},
    })
    limit = api.settings.max_request_bytes

    def state(request: Request) -> dict[str, Any]:
        return request.scope.setdefault("state", {})

    @router.post("/search", summary="Search the catalog with a photo (or a text, with a CLIP-family model)", openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": SearchRequest.model_json_schema()},
        "multipart/form-data": {"schema": {
            "type": "object",
            "anyOf": [{"required": ["file"]}, {"required": ["image_url"]}, {"required": ["text"]}],
            "properties": {"file": {"type": "string", "format": "binary", "description": "the photo"},
                           **{key: value for key, value in SearchRequest.model_json_schema()["properties"].items() if key != "image_base64"}},
        }},
    }}})
    async def search(request: Request) -> Response:
        if api.settings.v1_requires_app_key:  # an app lookup may read SQLite: off the event loop, and only when asked
            await run_in_threadpool(api.check_app, request.headers)
        with admission.slot():  # before reading the body: turning a request away must cost next to nothing
            body = await read_body(request, limit)
            content_type = request.headers.get("content-type", "")
            return await json_from_thread(api.search, body, content_type, public_url(request), state(request))

    @router.get("/products/{product_id}", summary="A product with all its images, titles and categories")
    async def get_product(request: Request, product_id: str, currency: str | None = None, lang: str | None = None) -> Response:
        return await json_from_thread(api.product, product_id, currency, lang, public_url(request))

    @router.get("/products/{product_id}/similar", summary="More like this product: look-alike products, the product itself left out")
    async def similar_products(
        request: Request, product_id: str, currency: str | None = None, lang: str | None = None, ship_to: str | None = None,
        category_id: str | None = None, min_score: str | None = None, sort_type: str | None = None, sort_order: str | None = None,
        page_size: str | None = None, page_no: str | None = None, start_row_key: str | None = None, collapse: str | None = None,
    ) -> Response:
        """The options are /v1/search's (as query parameters, validated by the same validator); the query is the
        product's main image, as stored."""
        if api.settings.v1_requires_app_key:
            await run_in_threadpool(api.check_app, request.headers)
        return await json_from_thread(api.similar, product_id, dict(request.query_params), public_url(request), state(request))

    @router.post("/products/{product_id}/match", summary="How well each image of a product matches a query photo (multipart file)")
    async def match_product(request: Request, product_id: str) -> Response:
        if api.settings.v1_requires_app_key:  # an app lookup may read SQLite: off the event loop, and only when asked
            await run_in_threadpool(api.check_app, request.headers)
        with admission.slot():
            body = await read_body(request, limit)
            return await json_from_thread(api.match, product_id, body, request.headers.get("content-type", ""))

    @router.post("/preview", summary=f"The photo as the service sees it: upright, a JPEG of at most {PREVIEW_SIDE:,} px a side (multipart file)",
                 response_class=Response, responses={200: {
                     "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                     "description": "the JPEG; its headers give the upright photo's size, in which regions and boxes are measured",
                     "headers": {"X-Image-Width": {"schema": {"type": "integer"}}, "X-Image-Height": {"schema": {"type": "integer"}}},
                 }})
    async def preview(request: Request) -> Response:
        """For a page whose browser cannot show the photo (HEIC, in most browsers), and to see the rotation applied."""
        if api.settings.v1_requires_app_key:
            await run_in_threadpool(api.check_app, request.headers)
        with admission.slot():
            body = await read_body(request, limit)
            return await run_in_threadpool(api.preview, body, request.headers.get("content-type", ""))

    @router.get("/categories", summary="The categories in use (first and second level), named in a language, with product counts")
    async def categories(lang: str | None = None) -> Response:
        """Their ids are what category_id takes on /v1/search."""
        return await json_from_thread(lambda: {"categories": api.engine.categories(parse_language(lang) if lang else None)})

    @router.get("/catalog", summary="Catalog overview: counts, embedder, index, last import, rates")
    async def catalog_overview() -> Response:
        return await json_from_thread(api.engine.overview)

    @router.put("/products/{product_id}", summary="Insert or replace a product (admin)")
    async def put_product(request: Request, product_id: str) -> Response:
        api.check_admin(request.headers.get("authorization", ""))
        body = await read_body(request, limit)
        return await json_from_thread(api.put, product_id, body)

    @router.delete("/products/{product_id}", summary="Delete a product (admin)")
    async def delete_product(request: Request, product_id: str) -> Response:
        api.check_admin(request.headers.get("authorization", ""))
        return await json_from_thread(api.delete, product_id)

    return router


def _uploaded_file(body: bytes, content_type: str) -> bytes:
    """The ``file`` part of a multipart (or urlencoded) body; MissingImage without one."""
    _, files = parse_form(body, content_type, ErrorCode.InvalidRequest)
    if "file" not in files:
        raise RequestError(ErrorCode.MissingImage, "file")
    return files["file"]
