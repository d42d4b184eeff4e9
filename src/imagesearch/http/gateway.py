"""``/sync``: the endpoint the official AliExpress SDKs call, unchanged but for the base URL.

Parameters may come in the query string, a urlencoded form or a multipart
form (the TOP SDK puts system parameters in the query and business ones in
the body; the IOP SDK puts everything in the body).  The checks run in the
platform's order: required parameters, app key, timestamp window, signature,
access token, API name; then the method runs.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import urllib.parse
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ..access.store import AccessStore
from ..errors import SearchError
from ..search.engine import SearchEngine
from ..search.searchv2 import render, render_error, render_flat
from .iop import GatewayError, missing, response_key
from .ratelimit import RateLimiter, ban_seconds
from .signing import SIGN_METHODS, verify

SEARCH_V2 = "aliexpress.ds.image.searchV2"
SEARCH_V1 = "aliexpress.ds.image.search"
CHINA = dt.timezone(dt.timedelta(hours=8))


def parse_timestamp(value: str) -> float:
    """Epoch milliseconds, or the legacy ``yyyy-MM-dd HH:mm:ss`` in GMT+8; returns epoch seconds."""
    text = value.strip()
    if text.isdigit():
        return int(text) / 1000.0
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA).timestamp()
    except ValueError:
        raise GatewayError("InvalidTimestamp", "The timestamp is neither epoch milliseconds nor yyyy-MM-dd HH:mm:ss") from None


async def collect(request: Request, body_limit: int) -> tuple[dict[str, str], dict[str, bytes]]:
    """All text parameters (query + body) and file parts, with the body capped at ``body_limit``."""
    too_large = GatewayError("RequestEntityTooLarge", f"The request body is larger than the limit of {body_limit} bytes")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > body_limit:
        raise too_large
    received = bytearray()
    async for chunk in request.stream():
        received.extend(chunk)
        if len(received) > body_limit:
            raise too_large
    request._body = bytes(received)  # let the form parser read what was already received
    params: dict[str, str] = dict(request.query_params)
    files: dict[str, bytes] = {}
    content_type = request.headers.get("content-type", "")
    if received and "application/x-www-form-urlencoded" in content_type:
        # parse_qsl is several times faster than the generic form parser on a large param0.
        charset = "utf-8"
        try:
            text = bytes(received).decode(charset)
        except UnicodeDecodeError:
            raise GatewayError("InvalidParameter", "the form body is not valid UTF-8") from None
        params.update(urllib.parse.parse_qsl(text, keep_blank_values=True))
    elif received and "multipart/form-data" in content_type:
        form = await request.form(max_part_size=body_limit)
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                files[key] = await value.read()
            else:
                params[key] = value
    return params, files


def build_router(engine: SearchEngine, access: AccessStore, limiter: RateLimiter, timestamp_window: float, body_limit: int) -> APIRouter:
    router = APIRouter()
    settings = engine.settings

    async def handle(request: Request) -> JSONResponse:
        request_id = request.state.request_id
        try:
            params, files = await collect(request, body_limit)
            request.state.api = params.get("method", "")
            request.state.app_key = params.get("app_key", "")
            for name in ("method", "app_key", "timestamp", "sign"):
                if not params.get(name):
                    raise missing(name)
            app = access.get_app(params["app_key"])
            if app is None or not app.active:
                raise GatewayError("InvalidAppKey", "The specified app key is invalid or has been revoked")
            if abs(time.time() - parse_timestamp(params["timestamp"])) > timestamp_window:
                raise GatewayError(
                    "InvalidTimestamp", f"The timestamp is more than {int(timestamp_window)} seconds away from the server's time"
                )
            sign_method = params.get("sign_method", "md5").lower()
            if sign_method not in SIGN_METHODS:
                raise GatewayError("IncompleteSignature", f"sign_method must be one of {', '.join(SIGN_METHODS)}", sub_code="invalid-sign-method")
            if not verify(params, app.secret, sign_method, params["sign"]):
                raise GatewayError("IncompleteSignature", "The request signature does not conform to platform standards")
            wait = limiter.acquire(app.app_key, app.rate_limit)
            if wait > 0:
                raise GatewayError(
                    "ApiCallLimit",
                    f"The request has exceeded the limit of {app.rate_limit:g} calls per second; this ban will last {ban_seconds(wait)} seconds",
                    sub_code="accesscontrol.limited-by-app-access-count",
                )
            token = params.get("access_token") or params.get("session")
            if token and not access.token_valid(token, app.app_key):
                raise GatewayError("IllegalAccessToken", "The specified access token is invalid or expired")
            method = params["method"]
            if method in (SEARCH_V2, SEARCH_V1) and not app.may_call(method):
                raise GatewayError("InsufficientPermission", f"This app is not allowed to call {method}")
            if method == SEARCH_V2:
                body = {"result": await search_v2(params, request)}
            elif method == SEARCH_V1:
                body = await search_v1(params, files)
            else:
                raise GatewayError("InvalidApiPath", f"The specified API {method} does not exist on this service")
            request.state.outcome = "ok"
            return JSONResponse({response_key(method): {**body, "request_id": request_id}}, headers={"X-Request-Id": request_id})
        except GatewayError as error:
            request.state.outcome = error.code
            return JSONResponse(error.body(request_id), headers={"X-Request-Id": request_id})

    async def search_v2(params: dict[str, str], request: Request) -> dict[str, Any]:
        try:
            try:
                param0 = json.loads(params.get("param0") or "{}")
            except json.JSONDecodeError as exc:
                raise SearchError("InvalidParam0", f"param0 is not valid JSON: {exc.msg} at position {exc.pos}", "param0") from None
            if not isinstance(param0, dict):
                raise SearchError("InvalidParam0", "param0 must be a JSON object", "param0")
            for extension in ("page_no", "page_size", "start_row_key"):
                if extension in params and extension not in param0:
                    param0[extension] = params[extension]
            page = await run_in_threadpool(engine.search_request, param0)
            request.state.timings = page.timings
            return render(page, settings.default_lang, settings.public_url).model_dump()
        except SearchError as error:
            return render_error(error).model_dump()

    async def search_v1(params: dict[str, str], files: dict[str, bytes]) -> dict[str, Any]:
        """The older ``aliexpress.ds.image.search``: a multipart image and flat product fields."""
        try:
            image = files.get("image_file_bytes")
            if not image:
                raise SearchError("MissingImage", "image_file_bytes (a multipart file part) is required", "image_file_bytes")
            if len(image) > settings.max_image_bytes:
                raise SearchError("ImageTooLarge", f"image_file_bytes is larger than {settings.max_image_bytes} bytes", "image_file_bytes")
            raw = {
                "image_base64": base64.b64encode(image).decode(),
                "ship_to": params.get("shpt_to") or params.get("ship_to"),
                "currency": params.get("target_currency"),
                "lang": params.get("target_language"),
                "page_size": params.get("product_cnt"),
            }
            page = await run_in_threadpool(engine.search_request, {key: value for key, value in raw.items() if value})
            products = render_flat(page, settings.default_lang, settings.public_url)
            return {"data": {"total_record_count": page.total_count, "products": {"traffic_image_product_d_t_o": products}}, "rsp_code": "200", "rsp_msg": "success"}
        except SearchError as error:
            return {"rsp_code": error.code, "rsp_msg": error.message}

    router.add_api_route("/sync", handle, methods=["GET", "POST"], include_in_schema=False)
    return router
