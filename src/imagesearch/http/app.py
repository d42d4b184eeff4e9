"""The ASGI application: the gateway at ``/sync``, thumbnails, ``/healthz``.

Every response carries ``X-Request-Id``, and every request leaves one
structured (JSON) access-log line, without image bytes or secrets.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import Awaitable, Callable

import swagger_ui_bundle
from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from .. import __version__
from ..access.store import AccessStore
from ..config import Settings, load_settings
from ..search.engine import SearchEngine
from ..workspace import Workspace
from .gateway import build_router
from .native import build_native_router
from .ratelimit import RateLimiter

access_log = logging.getLogger("imagesearch.access")
STATIC = Path(__file__).parent / "static"

REQUESTS = Counter("imagesearch_requests_total", "HTTP requests", ["api", "outcome"])
LATENCY = Histogram(
    "imagesearch_request_seconds", "Request latency", ["api", "outcome"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
)
EMBED = Histogram("imagesearch_embed_seconds", "Query decode + embed time", buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25))
RANK = Histogram("imagesearch_rank_seconds", "kNN + ranking time", buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1))


def create_app(settings: Settings) -> FastAPI:
    """One application over one data directory (each server worker builds its own)."""
    workspace = Workspace(settings)
    engine = SearchEngine(workspace)
    access = AccessStore(workspace.catalog.engine)
    limiter = RateLimiter(share=1.0 / max(1, settings.workers))
    app = FastAPI(title="imagesearch", version=__version__, docs_url=None, redoc_url=None)
    app.include_router(build_router(engine, access, limiter, settings.timestamp_window_seconds, settings.max_request_bytes))
    app.include_router(build_native_router(engine))

    @app.middleware("http")
    async def request_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.request_id = uuid.uuid4().hex
        started = time.perf_counter()
        response = await call_next(request)
        response.headers.setdefault("X-Request-Id", request.state.request_id)
        seconds = time.perf_counter() - started
        api = getattr(request.state, "api", "") or request.url.path.split("/thumbnails/")[0] or "/"
        outcome = getattr(request.state, "outcome", "") or str(response.status_code)
        if not request.url.path.startswith("/thumbnails/"):
            REQUESTS.labels(api, outcome).inc()
            LATENCY.labels(api, outcome).observe(seconds)
        timings = getattr(request.state, "timings", None) or {}
        if "embed_ms" in timings:
            EMBED.observe(timings["embed_ms"] / 1000)
            RANK.observe(timings.get("rank_ms", 0.0) / 1000)
        access_log.info(json.dumps({
            "request_id": request.state.request_id,
            "method": request.method,
            "path": request.url.path,
            "status": response.status_code,
            "ms": round(seconds * 1000, 1),
            "api": api,
            "app_key": getattr(request.state, "app_key", ""),
            "outcome": outcome,
        }))
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        snapshot = engine.snapshot()
        return {"status": "ok", "generation": snapshot.generation, "vectors": len(snapshot.index)}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # The API docs page from a packaged Swagger UI, so /docs works offline (FastAPI's default uses a CDN).
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="imagesearch API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/thumbnails/{image_id}.jpg")
    def thumbnail(image_id: int) -> Response:
        """A stored 256 px thumbnail; an image id never changes content, so it is cached for long."""
        data = workspace.catalog.thumbnails([image_id]).get(image_id)
        if data is None:
            return JSONResponse({"error": "NotFound", "message": f"no image {image_id}"}, status_code=404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=31536000, immutable"})

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
