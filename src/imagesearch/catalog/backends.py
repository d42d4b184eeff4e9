"""Catalogs by name, as configuration chooses them (``catalog_store``; default ``sqlite``)."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings, choose_backend
from .base import Catalog
from .sqlite import SqliteCatalog

#: Each backend, built from the settings (a server catalog reads its URL from them).
BACKENDS: dict[str, Callable[[Settings], Catalog]] = {
    "sqlite": lambda settings: SqliteCatalog(settings.data_dir, read_only=settings.read_only),
}


def open_catalog(settings: Settings) -> Catalog:
    """The catalog ``settings.catalog_store`` names."""
    return choose_backend("catalog_store", BACKENDS, settings)
