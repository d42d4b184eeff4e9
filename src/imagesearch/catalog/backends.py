"""The catalog ``catalog_url`` names: empty for the embedded SQLite file of the data directory (the default),
``postgresql+psycopg://...`` for a PostgreSQL database."""

from __future__ import annotations

from ..config import ConfigError, Settings
from .base import Catalog
from .sqlite import SqliteCatalog


def open_catalog(settings: Settings) -> Catalog:
    """The catalog ``settings.catalog_url`` names."""
    url = settings.catalog_url
    if not url:
        return SqliteCatalog(settings.data_dir, read_only=settings.read_only)
    if url.startswith(("postgresql:", "postgresql+")):
        from .postgres import PostgresCatalog  # psycopg is needed only here

        return PostgresCatalog(url, read_only=settings.read_only)
    raise ConfigError(f"catalog_url must be empty (SQLite in the data directory) or a postgresql:// URL, not {url.split(':')[0]!r}")
