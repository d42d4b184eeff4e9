"""The ASGI application: the gateway at ``/sync`` and ``/healthz``."""

from __future__ import annotations

from fastapi import FastAPI

from .. import __version__
from ..access.store import AccessStore
from ..config import Settings, load_settings
from ..search.engine import SearchEngine
from ..workspace import Workspace
from .gateway import build_router


def create_app(settings: Settings) -> FastAPI:
    """One application over one data directory (each server worker builds its own)."""
    workspace = Workspace(settings)
    engine = SearchEngine(workspace)
    access = AccessStore(workspace.catalog.engine)
    app = FastAPI(title="imagesearch", version=__version__)
    app.include_router(build_router(engine, access, settings.timestamp_window_seconds, settings.max_request_bytes))

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        snapshot = engine.snapshot()
        return {"status": "ok", "generation": snapshot.generation, "vectors": len(snapshot.index)}

    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` and multi-worker serving: settings from the environment."""
    return create_app(load_settings())
