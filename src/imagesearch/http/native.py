"""The service's own JSON API under ``/v1`` (documented by OpenAPI at ``/docs``).

Unlike searchV2, prices are decimal strings with their currency and scores
are numbers.  Catalog writes need the admin token (``Authorization: Bearer``).
"""

from __future__ import annotations

import base64
import hmac
from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ..catalog.store import ProductView
from ..errors import CatalogError, SearchError
from ..i18n import pick_text
from ..ingest.importer import (
    ImportRejected,
    ImportReport,
    delete_products,
    import_product,
)
from ..pricing.money import convert, discount_percent
from ..search.engine import PageItem, SearchEngine, SearchPage
from ..search.searchv2 import image_url as main_image_url
from ..workspace import EMBEDDER_KEY
from .remote import fetch_image


class SearchRequest(BaseModel):
    """JSON body of ``POST /v1/search`` (or the fields of a multipart form with a ``file``)."""

    image_base64: str | None = None
    image_url: str | None = None
    search_type: str | None = Field(None, description="similar (default) or same")
    currency: str | None = None
    lang: str | None = None
    ship_to: str | None = None
    sort_type: str | None = Field(None, description="best (default), price or orders")
    sort_order: str | None = Field(None, description="asc or desc")
    page_size: int | None = Field(None, ge=1, le=50)
    page_no: int | None = Field(None, ge=1)
    start_row_key: str | None = None


def _status(code: str) -> int:
    return 413 if code == "ImageTooLarge" else 400


def error_response(code: str, message: str, status: int, request: Request, param: str | None = None, **extra: Any) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "param": param, **extra}, "request_id": request.state.request_id}
    return JSONResponse(body, status_code=status)


def product_json(product: ProductView, page_currency: str, engine: SearchEngine, lang: str | None) -> dict[str, Any]:
    settings = engine.settings
    rates = engine.rates()
    sale = convert(product.sale_price, product.currency, page_currency, rates)
    original = convert(product.original_price or product.sale_price, product.currency, page_currency, rates)
    return {
        "product_id": product.product_id,
        "shop_id": product.shop_id,
        "title": pick_text(product.titles, lang, settings.default_lang),
        "price": {"sale": f"{sale:f}", "original": f"{original:f}", "currency": page_currency},
        "discount_percent": int(discount_percent(product.sale_price, product.original_price)),
        "volume": product.volume,
        "evaluate_rate": float(product.evaluate_rate) if product.evaluate_rate is not None else None,
        "category": {
            level: {"id": category.id, "name": pick_text(category.names, lang, settings.default_lang)} if category else None
            for level, category in (("first_level", product.first_category), ("second_level", product.second_category))
        },
        "ship_from": product.ship_from,
        "ship_to": list(product.ship_to) if product.ship_to is not None else "*",
        "product_detail_url": product.detail_url,
        "image_url": main_image_url(product, product.image_ids[0] if product.image_ids else 0, settings.public_url),
    }


def page_json(page: SearchPage, engine: SearchEngine, request: Request) -> dict[str, Any]:
    def item_json(item: PageItem) -> dict[str, Any]:
        return {
            **product_json(item.product, page.currency, engine, page.lang),
            "score": round(item.score, 4),
            "matched_image_id": item.image_id,
            "matched_thumbnail_url": f"/thumbnails/{item.image_id}.jpg",
        }

    return {
        "request_id": request.state.request_id,
        "total_count": page.total_count,
        "page": {"number": page.page_no, "size": page.page_size, "count": page.page_count, "has_next": page.has_next},
        "next_start_row_key": page.next_start_row_key or None,
        "products": [item_json(item) for item in page.items],
        "timings_ms": {key: round(value, 2) for key, value in page.timings.items()},
    }


def build_native_router(engine: SearchEngine) -> APIRouter:
    router = APIRouter(prefix="/v1")
    settings = engine.settings
    workspace = engine.workspace

    def admin_refusal(request: Request) -> JSONResponse | None:
        if not settings.admin_token:
            return error_response("AdminDisabled", "catalog writes over HTTP are disabled: set IMAGESEARCH_ADMIN_TOKEN", 403, request)
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), settings.admin_token.encode()):
            return error_response("Unauthorized", "a valid admin token is required (Authorization: Bearer <token>)", 401, request)
        return None

    async def read_upload(upload: UploadFile) -> bytes:
        """The uploaded photo, reading at most one byte past the limit."""
        data = await upload.read(settings.max_image_bytes + 1)
        if len(data) > settings.max_image_bytes:
            raise SearchError("ImageTooLarge", f"file is larger than {settings.max_image_bytes} bytes", "file")
        return data

    async def write(request: Request, operation: Callable[..., ImportReport], *args: Any) -> ImportReport | JSONResponse:
        """Run a catalog write off the event loop; refusals become 422 (invalid) or 409 (busy)."""
        try:
            return await run_in_threadpool(operation, *args)
        except ImportRejected as rejected:
            return error_response("InvalidProduct", rejected.errors[0].reason, 422, request)
        except CatalogError as exc:
            return error_response("Conflict", str(exc), 409, request)

    @router.post("/search", summary="Search the catalog with a photo", openapi_extra={"requestBody": {"content": {
        "application/json": {"schema": SearchRequest.model_json_schema()},
        "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}},
    }}})
    async def search(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        fields: dict[str, Any]
        if "multipart/form-data" in content_type:
            form = await request.form(max_part_size=settings.max_request_bytes)
            fields = {key: value for key, value in form.items() if not isinstance(value, UploadFile)}
            upload = form.get("file")
            if isinstance(upload, UploadFile):
                try:
                    fields["image_base64"] = base64.b64encode(await read_upload(upload)).decode()
                except SearchError as error:
                    return error_response(error.code, error.message, _status(error.code), request, error.param)
        else:
            try:
                fields = SearchRequest.model_validate_json(await request.body()).model_dump(exclude_none=True)
            except ValueError as exc:
                return error_response("InvalidRequest", f"the body must be a JSON object of search options ({exc})", 400, request)
        try:
            url = fields.pop("image_url", None)
            if url and "image_base64" not in fields:
                data = await run_in_threadpool(fetch_image, url, settings.max_image_bytes, settings.fetch_timeout, settings.allow_private_image_urls)
                fields["image_base64"] = base64.b64encode(data).decode()
            page = await run_in_threadpool(engine.search_request, fields)
        except SearchError as error:
            return error_response(error.code, error.message, _status(error.code), request, error.param)
        request.state.timings = page.timings
        return JSONResponse(page_json(page, engine, request))

    @router.get("/products/{product_id}", summary="A product with all its images, titles and categories")
    def get_product(product_id: str, request: Request, currency: str | None = None) -> Response:
        product = workspace.catalog.product_by_id(product_id)
        if product is None:
            return error_response("ProductNotFound", f"no product {product_id}", 404, request, "product_id")
        body = product_json(product, product.currency if currency is None else currency.upper(), engine, None)
        body["titles"] = product.titles
        body["category_names"] = {
            level: category.names if category else None
            for level, category in (("first_level", product.first_category), ("second_level", product.second_category))
        }
        body["images"] = [
            {"image_id": image_id, "source": source if source.startswith(("http://", "https://")) else None,
             "thumbnail_url": f"/thumbnails/{image_id}.jpg"}
            for image_id, source in zip(product.image_ids, product.image_sources, strict=True)
        ]
        body["price_in_catalog"] = {
            "sale": str(product.sale_price),
            "original": str(product.original_price) if product.original_price is not None else None,
            "currency": product.currency,
        }
        return JSONResponse(body)

    @router.post("/products/{product_id}/match", summary="How well each image of a product matches a query photo")
    async def match_product(product_id: str, request: Request) -> Response:
        product = workspace.catalog.product_by_id(product_id)
        if product is None:
            return error_response("ProductNotFound", f"no product {product_id}", 404, request, "product_id")
        form = await request.form(max_part_size=settings.max_request_bytes)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return error_response("MissingImage", "send the query photo as a multipart part named file", 400, request, "file")
        try:
            _, vector = await run_in_threadpool(engine.embed_query, await read_upload(upload))
        except SearchError as error:
            return error_response(error.code, error.message, _status(error.code), request, error.param)
        ids, vectors = workspace.catalog.vectors(list(product.image_ids))
        scores = dict(zip(ids.tolist(), (vectors @ vector).tolist(), strict=True)) if len(ids) else {}
        return JSONResponse({
            "product_id": product_id,
            "images": [{"image_id": image_id, "score": round(min(1.0, max(0.0, scores.get(image_id, 0.0))), 4)} for image_id in product.image_ids],
        })

    @router.get("/catalog", summary="Catalog overview: counts, embedder, index, last import, rates")
    def catalog_overview() -> dict[str, Any]:
        snapshot = engine.snapshot()
        rates = engine.rates()
        last = workspace.catalog.get_meta("last_write_at")
        return {
            **workspace.catalog.counts(),
            "embedder": workspace.catalog.get_meta(EMBEDDER_KEY),
            "index": {"kind": snapshot.index.kind, "vectors": len(snapshot.index), "generation": snapshot.generation},
            "last_write_at": float(last) if last else None,
            "rates": {"base": rates.base, "date": rates.date.isoformat(), "currencies": sorted(rates.rates)},
            "default_currency": settings.default_currency,
            "default_lang": settings.default_lang,
        }

    @router.put("/products/{product_id}", summary="Insert or replace a product (admin)")
    async def put_product(product_id: str, request: Request) -> Response:
        refusal = admin_refusal(request)
        if refusal:
            return refusal
        try:
            document = await request.json()
        except ValueError:
            return error_response("InvalidRequest", "the body must be a product as a JSON object", 400, request)
        if not isinstance(document, dict):
            return error_response("InvalidRequest", "the body must be a product as a JSON object", 400, request)
        document.setdefault("product_id", product_id)
        if document["product_id"] != product_id:
            return error_response("InvalidRequest", "product_id in the body differs from the URL", 400, request, "product_id")
        report = await write(request, import_product, workspace, document)
        if isinstance(report, JSONResponse):
            return report
        return JSONResponse({"product_id": product_id, **report.as_dict()})

    @router.delete("/products/{product_id}", summary="Delete a product (admin)")
    async def delete_product(product_id: str, request: Request) -> Response:
        refusal = admin_refusal(request)
        if refusal:
            return refusal
        report = await write(request, delete_products, workspace, [product_id])
        if isinstance(report, JSONResponse):
            return report
        if not report.products_deleted:
            return error_response("ProductNotFound", f"no product {product_id}", 404, request, "product_id")
        return JSONResponse({"product_id": product_id, "deleted": True, "generation": report.generation})

    return router

