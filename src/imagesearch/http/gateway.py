"""``/sync``: the endpoint the official AliExpress SDKs call, unchanged but for the base URL.

Parameters may come in the query string, a urlencoded form or a multipart
form (the TOP SDK puts system parameters in the query and business ones in
the body; the IOP SDK puts everything in the body).  The checks run in the
platform's order: required parameters, app key, timestamp window, signature,
rate limit, access token, API name; then the method runs.  The handler only
reads the capped body on the event loop; parsing, checks (SQLite) and the
search run in one worker thread.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..access.store import AccessStore, App
from ..errors import ErrorCode, RequestError
from ..search.engine import SearchEngine
from ..search.presentation import present_page
from ..search.searchv2 import (
    SearchV2Error,
    SearchV2Result,
    render,
    render_error,
    render_flat,
)
from .admission import RETRY_AFTER, Admission
from .forms import parse_form, read_body
from .iop import error_body, response_key
from .ratelimit import RateLimiter, SharedRateLimiter, ban_seconds
from .signing import SIGN_METHODS, verify
from .threads import json_bytes, json_from_thread

errors_log = logging.getLogger("imagesearch.errors")
SEARCH_V2 = "aliexpress.ds.image.searchV2"
SEARCH_V1 = "aliexpress.ds.image.search"
METHODS = (SEARCH_V2, SEARCH_V1)
CHINA = dt.timezone(dt.timedelta(hours=8))
#: The legacy method's options, once mapped to searchV2 names.
LEGACY_FIELDS = frozenset({"ship_to", "currency", "lang", "page_size"})
#: param0 options that may also come as top-level parameters (our paging extensions).
TOP_LEVEL_EXTENSIONS = ("page_no", "page_size", "start_row_key")


def parse_timestamp(value: str) -> float:
    """Epoch milliseconds, or the legacy ``yyyy-MM-dd HH:mm:ss`` in GMT+8; returns epoch seconds."""
    text = value.strip()
    if text.isdigit() and len(text) <= 15:
        return int(text) / 1000.0
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA).timestamp()
    except ValueError:
        raise RequestError(ErrorCode.InvalidTimestamp, reason="The timestamp is neither epoch milliseconds nor yyyy-MM-dd HH:mm:ss") from None


def parse_param0(text: str) -> dict[str, Any]:
    """searchV2's ``param0``: a JSON object, or ``InvalidParam0`` saying what is wrong."""
    try:
        param0 = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise RequestError(ErrorCode.InvalidParam0, reason=f"is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise RequestError(ErrorCode.InvalidParam0, reason="is nested too deeply") from None
    if not isinstance(param0, dict):
        raise RequestError(ErrorCode.InvalidParam0, reason="must be a JSON object")
    return param0


class Gateway:
    """Authenticates a gateway call and runs its method; every step is a plain (blocking) function."""

    def __init__(self, engine: SearchEngine, access: AccessStore, limiter: RateLimiter | SharedRateLimiter) -> None:
        self.engine = engine
        self.access = access
        self.limiter = limiter
        self.settings = engine.settings
        self.methods: dict[str, Callable[[dict[str, str], dict[str, bytes], str, dict[str, Any]], dict[str, Any]]] = {
            SEARCH_V2: self.search_v2,
            SEARCH_V1: self.search_v1,
        }

    def authenticate(self, params: Mapping[str, str]) -> App:
        """The calling app, once its key, timestamp, signature, rate and token pass; else the platform's error."""
        for name in ("method", "app_key", "timestamp", "sign"):
            if not params.get(name):
                raise RequestError(ErrorCode.MissingParameter, name, sub_code=f"missing-{name}")
        app = self.access.cached_app(params["app_key"])
        if app is None or not app.active:
            raise RequestError(ErrorCode.InvalidAppKey)
        window = self.settings.timestamp_window_seconds
        if abs(time.time() - parse_timestamp(params["timestamp"])) > window:
            raise RequestError(ErrorCode.InvalidTimestamp, reason=f"The timestamp is more than {window} seconds away from the server's time")
        sign_method = params.get("sign_method", "md5").lower()
        if sign_method not in SIGN_METHODS:
            raise RequestError(
                ErrorCode.IncompleteSignature, reason=f"sign_method must be one of {', '.join(SIGN_METHODS)}", sub_code="invalid-sign-method"
            )
        if not verify(params, app.secret, sign_method, params["sign"]):
            raise RequestError(ErrorCode.IncompleteSignature, reason="The request signature does not conform to platform standards")
        wait = self.limiter.acquire(app.app_key, app.rate_limit)
        if wait > 0:
            raise RequestError(
                ErrorCode.ApiCallLimit, reason=f"The request has exceeded the limit of {app.rate_limit:g} calls per second",
                seconds=ban_seconds(wait),
                sub_code="accesscontrol.limited-by-app-access-count",
            )
        token = params.get("access_token") or params.get("session")
        if token and not self.access.token_valid(token, app.app_key):
            raise RequestError(ErrorCode.IllegalAccessToken)
        return app

    def answer(self, query: dict[str, str], body: bytes, content_type: str, public_url: str, state: dict[str, Any]) -> dict[str, Any]:
        """The response document of one call: the method's answer, or the gateway's error envelope."""
        request_id = state.get("request_id", "")
        try:
            fields, files = parse_form(body, content_type, ErrorCode.InvalidParameter) if body else ({}, {})
            params = {**query, **fields}
            method = params.get("method", "")
            state["api"] = method if method in METHODS else "other"
            state["app_key"] = params.get("app_key", "")[:64]
            app = self.authenticate(params)
            run = self.methods.get(method)
            if run is None:
                raise RequestError(ErrorCode.InvalidApiPath, method=method[:200])
            if not app.may_call(method):
                raise RequestError(ErrorCode.InsufficientPermission, method=method)
            document = run(params, files, public_url, state)
        except RequestError as error:
            return self.refusal(error, state)
        except Exception:  # a bug: the SDKs still get their envelope (HTTP 200), the log gets the trace
            errors_log.exception("request %s failed", request_id)
            return self.refusal(RequestError(ErrorCode.InternalError, request_id=request_id), state)
        state["outcome"] = "ok"
        # The IOP SDKs read the top-level code ("0": success) and request_id; the TOP SDKs the method's key.
        return {response_key(method): {**document, "request_id": request_id}, "code": "0", "request_id": request_id}

    @staticmethod
    def refusal(error: RequestError, state: dict[str, Any]) -> dict[str, Any]:
        state["outcome"] = error.code.value
        return error_body(error, state.get("request_id", ""))

    def search_v2(self, params: dict[str, str], files: dict[str, bytes], public_url: str, state: dict[str, Any]) -> dict[str, Any]:
        """``aliexpress.ds.image.searchV2``: business failures are ``result.ret = false``."""
        try:
            param0 = parse_param0(params.get("param0", ""))
            for name in TOP_LEVEL_EXTENSIONS:
                if name in params and name not in param0:
                    param0[name] = params[name]
            page = self.engine.search(self.engine.parse(param0))
            state["timings"] = page.timings
            result: SearchV2Result | SearchV2Error = render(page, present_page(page, self.settings.default_lang, public_url))
        except RequestError as error:
            result = render_error(error)
        return {"result": result}

    def search_v1(self, params: dict[str, str], files: dict[str, bytes], public_url: str, state: dict[str, Any]) -> dict[str, Any]:
        """The older ``aliexpress.ds.image.search``: a multipart image, its own parameter names, flat products."""
        options = {
            "ship_to": params.get("shpt_to") or params.get("ship_to"),
            "currency": params.get("target_currency"),
            "lang": params.get("target_language"),
            "page_size": params.get("product_cnt"),
        }
        try:
            page = self.engine.search(self.engine.parse(
                {key: value for key, value in options.items() if value},
                image=files.get("image_file_bytes"), image_param="image_file_bytes", fields=LEGACY_FIELDS,
            ))
            state["timings"] = page.timings
            products = [render_flat(item) for item in present_page(page, self.settings.default_lang, public_url)]
        except RequestError as error:
            return {"rsp_code": error.code.value, "rsp_msg": error.message}
        return {
            "data": {"total_record_count": page.total_count, "products": {"traffic_image_product_d_t_o": products}},
            "rsp_code": "200",
            "rsp_msg": "success",
        }


def sync_endpoint(
    gateway: Gateway, public_url: Callable[[Request], str], admission: Admission
) -> Callable[[Request], Awaitable[Response]]:
    """The ``/sync`` handler: a plain Starlette endpoint (no dependency injection on this hot path).

    When every search slot is taken, the call is refused at once with the
    platform's own overload answer, ``ApiCallLimit`` ("this ban will last 1 seconds").
    """
    body_limit = gateway.settings.max_request_bytes

    async def sync(request: Request) -> Response:
        state = request.scope.setdefault("state", {})
        try:
            with admission.slot():  # before reading the body: turning a request away must cost next to nothing
                body = await read_body(request, body_limit)
                content_type = request.headers.get("content-type", "")
                return await json_from_thread(gateway.answer, dict(request.query_params), body, content_type, public_url(request), state)
        except RequestError as error:
            if error.code == ErrorCode.Overloaded:
                error = RequestError(
                    ErrorCode.ApiCallLimit, reason="The server is busy: all its search slots are taken", seconds=RETRY_AFTER,
                    sub_code="isp.overload",
                )
            return Response(json_bytes(gateway.refusal(error, state)), media_type="application/json")

    return sync
