"""PostgreSQL connections, for the two parts that can live there: the catalog and the pgvector index."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from .config import ConfigError

#: Connections each process keeps open (searches run on a few threads; more wait for one).
POOL_SIZE = 8


def postgres_engine(url: str, setting: str, read_only: bool = False) -> Engine:
    """An engine for ``url`` (the value of ``setting``) through psycopg 3; ``postgresql://`` means ``postgresql+psycopg://``."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"{setting} is not a database URL: {exc}") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if not parsed.drivername.startswith("postgresql"):
        raise ConfigError(f"{setting} must be a postgresql:// URL, not {parsed.drivername}://")
    options = {"options": "-c default_transaction_read_only=on"} if read_only else {}
    try:
        return create_engine(parsed, pool_size=POOL_SIZE, pool_pre_ping=True, connect_args=options)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise ConfigError(f"PostgreSQL needs psycopg: pip install 'imagesearch[postgres]' ({exc})") from None
