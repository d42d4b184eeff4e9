"""The ASGI application: the gateway at ``/sync``, the JSON API at ``/v1``, the page, docs and thumbnails.

Every response carries ``X-Request-Id``, and every request leaves one
structured (JSON) access-log line, without image bytes or secrets.  Metrics
labels come only from a fixed set (route templates, known API names, error
codes), never from raw client input.  Refusals are :class:`RequestError`
exceptions mapped here, once, to ``/v1``'s error shape with the code's status.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..access.store import AccessStore
from ..config import Settings, load_settings
from ..errors import ErrorCode, RequestError
from ..search.engine import SearchEngine
from ..workspace import Workspace
from .admission import RETRY_AFTER, Admission
from .gateway import Gateway, sync_endpoint
from .native import ErrorBody, NativeApi, build_native_router
from .ratelimit import RateLimiter, SharedRateLimiter
from .threads import base_url

access_log = logging.getLogger("imagesearch.access")
STATIC = Path(__file__).parent / "static"
#: Swagger UI 5 (reads OpenAPI 3.1) as packaged by fastapi-offline: /docs works without a CDN.
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"

REQUESTS = Counter("imagesearch_requests_total", "HTTP requests", ["api", "outcome"])
LATENCY = Histogram(
    "imagesearch_request_seconds", "Request latency", ["api", "outcome"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
)
EMBED = Histogram("imagesearch_embed_seconds", "Query decode + embed time", buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25))
RANK = Histogram("imagesearch_rank_seconds", "kNN + ranking time", buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1))
OUTCOMES = frozenset(code.value for code in ErrorCode) | {"ok"}
#: On every response: no content-type sniffing, and no framing by other sites (clickjacking).
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)


#: Below this much free space in the data directory, /healthz reports "degraded": imports, cursors
#: and compactions may fail (searches go on, answering their first page without a cursor).
LOW_DISK_BYTES = 256 * 1024 * 1024


def disk_trouble(data_dir: Path) -> list[str]:
    """Why writes to ``data_dir`` may fail now: little free space, or no permission to write."""
    reasons = []
    free = shutil.disk_usage(data_dir).free
    if free < LOW_DISK_BYTES:
        reasons.append(f"the data directory's disk has {free // (1024 * 1024)} MiB free")
    if not os.access(data_dir, os.W_OK):
        reasons.append("the data directory is not writable")
    return reasons


def documented_errors_only(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI document without its default 422 answers: a request that fails validation gets
    400 ``InvalidRequest`` in our error shape here (see the handler of ``RequestValidationError``)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def error_json(error: RequestError, request_id: str) -> JSONResponse:
    """``/v1``'s error shape, with the code's HTTP status."""
    body = {"error": {"code": error.code.value, "message": error.message, "param": error.param}, "request_id": request_id}
    return JSONResponse(body, status_code=error.status)


class AccessLog:
    """Pure ASGI middleware: request id and security headers, one access-log line, metrics, and a JSON 500 for any bug.

    Pure ASGI rather than ``@app.middleware``: it adds no task or stream copy
    per request, which matters on the search path.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        request_id = state["request_id"] = uuid.uuid4().hex
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode()), *SECURITY_HEADERS]
            await send(message)

        try:
            host = self._host(scope)
            if self.allowed_hosts and host not in self.allowed_hosts:
                state["outcome"] = ErrorCode.InvalidHost.value
                await error_json(RequestError(ErrorCode.InvalidHost, "Host", value=host[:100]), request_id)(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except Exception:
            access_log.exception("request %s failed", request_id)
            state["outcome"] = ErrorCode.InternalError.value
            if not response_started:
                await error_json(RequestError(ErrorCode.InternalError, request_id=request_id), request_id)(scope, receive, send_with_id)
        self._record(scope, state, status, time.perf_counter() - started)

    @staticmethod
    def _host(scope: Scope) -> str:
        """The Host header's name, without its port, lower-case ("" when absent)."""
        for name, value in scope.get("headers", []):
            if name == b"host":
                text = value.decode("latin-1").strip().lower()
                return text.rsplit(":", 1)[0] if not text.endswith("]") else text
        return ""

    @staticmethod
    def _record(scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "other"
        api = state.get("api") or path
        outcome = state.get("outcome") or str(status)
        outcome = outcome if outcome in OUTCOMES or outcome.isdigit() else "other"
        if path != "/thumbnails/{image_id}.jpg":
            REQUESTS.labels(api, outcome).inc()
            LATENCY.labels(api, outcome).observe(seconds)
        timings = state.get("timings") or {}
        if "embed_ms" in timings:
            EMBED.observe(timings["embed_ms"] / 1000)
            RANK.observe(timings.get("rank_ms", 0.0) / 1000)
        access_log.info(json.dumps({
            "request_id": state["request_id"],
            "method": scope["method"],
            "path": scope["path"][:200],
            "status": status,
            "ms": round(seconds * 1000, 1),
            "api": api,
            "app_key": state.get("app_key", ""),
            "outcome": outcome,
        }))


def create_app(settings: Settings) -> FastAPI:
    """One application over one data directory (each server worker builds its own)."""
    workspace = Workspace(settings)
    engine = SearchEngine(workspace)
    access = AccessStore(workspace.catalog.engine, read_only=settings.read_only)
    # One budget per app: across this machine's workers, or across every machine's (a shared catalog database).
    limiter = SharedRateLimiter(workspace.cursor_database()) if settings.catalog_url else RateLimiter(share=1.0 / max(1, settings.workers))
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(engine.warm_up)
        yield
        engine.close()
        workspace.close()

    app = FastAPI(
        lifespan=lifespan,
        title="imagesearch",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        description="Visual product search over your own catalog. The AliExpress gateway is at /sync; this is the JSON API.",
    )

    def public_url(request: Request) -> str:
        """Where our thumbnails are served: the setting, else the address this request reached."""
        return base_url(request, settings.public_url)

    admission = Admission(settings.max_pending_searches)
    app.add_route("/sync", sync_endpoint(Gateway(engine, access, limiter), public_url, admission), methods=["GET", "POST"], include_in_schema=False)
    app.include_router(build_native_router(NativeApi(engine, access, limiter), public_url, admission))

    def request_id(request: Request) -> str:
        return str(request.scope.get("state", {}).get("request_id", ""))

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError) -> JSONResponse:
        request.state.outcome = error.code.value
        response = error_json(error, request_id(request))
        if error.code == ErrorCode.Overloaded:
            response.headers["Retry-After"] = str(RETRY_AFTER)
        elif error.code == ErrorCode.RateLimited:
            response.headers["Retry-After"] = str(error.values["seconds"])
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        code = {404: ErrorCode.NotFound, 405: ErrorCode.MethodNotAllowed}.get(error.status_code, ErrorCode.InvalidRequest)
        reason = f"{request.method} {request.url.path[:200]}: {error.detail}"
        response = error_json(RequestError(code, reason=reason), request_id(request))
        response.headers.update(error.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return error_json(RequestError(ErrorCode.InvalidRequest, where, reason=f"{where} is not valid here"), request_id(request))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, object]:
        """Up, with the index in force; "degraded" with the reasons when writes are at risk (searches still answer)."""
        snapshot = await run_in_threadpool(engine.snapshot)
        reasons = disk_trouble(workspace.data_dir)
        if settings.read_only:
            reasons.insert(0, "serving read-only: catalog writes are refused and searches answer their first page only")
        return {"status": "degraded" if reasons else "ok", "reasons": reasons, "generation": snapshot.generation,
                "vectors": len(snapshot.index), "pid": os.getpid()}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/docs-assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="imagesearch API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        """This machine's metrics: every worker's, added up when ``serve --workers`` runs several (each machine
        is its own scrape target; Prometheus labels them by ``instance``)."""
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/thumbnails/{image_id}.jpg", summary="A catalog image's stored 256 px thumbnail", response_class=Response, responses={
        200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}, "description": "the JPEG"},
        404: {"model": ErrorBody, "description": "NotFound: no image with this id"},
    })
    async def thumbnail(image_id: str) -> Response:
        """An image id never changes content, so thumbnails are cached for long."""
        data = await run_in_threadpool(workspace.catalog.thumbnails, [int(image_id)]) if image_id.isascii() and image_id.isdigit() and len(image_id) <= 18 else {}
        if not data:
            raise RequestError(ErrorCode.NotFound, reason=f"no image {image_id[:32]}")
        return Response(next(iter(data.values())), media_type="image/jpeg", headers={"Cache-Control": "public, max-age=31536000, immutable"})

    app.openapi = lambda: documented_errors_only(app)  # type: ignore[method-assign]
    allowed = frozenset(host.strip().lower() for host in settings.allowed_hosts.split(",") if host.strip())
    app.add_middleware(AccessLog, allowed_hosts=allowed)
    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` and multi-worker serving: settings from the environment.

    Worker processes start fresh, so the access log is configured here too.
    """
    if not access_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False
    return create_app(load_settings())
