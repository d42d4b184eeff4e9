"""The ASGI application: the gateway at ``/sync``, thumbnails, ``/healthz``.

Every response carries ``X-Request-Id``, and every request leaves one
structured (JSON) access-log line, without image bytes or secrets.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from .. import __version__
from ..access.store import AccessStore
from ..config import Settings, load_settings
from ..search.engine import SearchEngine
from ..workspace import Workspace
from .gateway import build_router
from .ratelimit import RateLimiter

access_log = logging.getLogger("imagesearch.access")


def create_app(settings: Settings) -> FastAPI:
    """One application over one data directory (each server worker builds its own)."""
    workspace = Workspace(settings)
    engine = SearchEngine(workspace)
    access = AccessStore(workspace.catalog.engine)
    limiter = RateLimiter(share=1.0 / max(1, settings.workers))
    app = FastAPI(title="imagesearch", version=__version__)
    app.include_router(build_router(engine, access, limiter, settings.timestamp_window_seconds, settings.max_request_bytes))

    @app.middleware("http")
    async def request_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.request_id = uuid.uuid4().hex
        started = time.perf_counter()
        response = await call_next(request)
        response.headers.setdefault("X-Request-Id", request.state.request_id)
        access_log.info(json.dumps({
            "request_id": request.state.request_id,
            "method": request.method,
            "path": request.url.path,
            "status": response.status_code,
            "ms": round((time.perf_counter() - started) * 1000, 1),
            "api": getattr(request.state, "api", ""),
            "app_key": getattr(request.state, "app_key", ""),
            "outcome": getattr(request.state, "outcome", ""),
        }))
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        snapshot = engine.snapshot()
        return {"status": "ok", "generation": snapshot.generation, "vectors": len(snapshot.index)}

    @app.get("/thumbnails/{image_id}.jpg")
    def thumbnail(image_id: int) -> Response:
        """A stored 256 px thumbnail; an image id never changes content, so it is cached for long."""
        data = workspace.catalog.thumbnails([image_id]).get(image_id)
        if data is None:
            return JSONResponse({"error": "NotFound", "message": f"no image {image_id}"}, status_code=404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=31536000, immutable"})

    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` and multi-worker serving: settings from the environment."""
    return create_app(load_settings())
