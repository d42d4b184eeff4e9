"""Blocking work off the event loop, answered as JSON encoded in the same worker thread.

Every handler's real work (SQLite, decoding, embedding, rendering) is
blocking, so it runs in a worker thread; encoding the JSON answer there too
keeps the event loop free for other connections and saves a second hop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response


def json_bytes(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def json_from_thread(function: Callable[..., Any], *args: Any, status: int = 200) -> Response:
    """``function(*args)`` in a worker thread, its result encoded as JSON there as well."""
    body = await run_in_threadpool(lambda: json_bytes(function(*args)))
    return Response(body, status_code=status, media_type="application/json")


def base_url(request: Request, configured: str) -> str:
    """Where this service is reached: ``configured`` (``public_url``), else the scheme and Host of the request.

    Read straight from the ASGI scope: this runs on every search.
    """
    if configured:
        return configured.rstrip("/")
    host = request.headers.get("host")
    if not host:
        server = request.scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{request.scope.get('scheme', 'http')}://{host}"
