"""The catalog in PostgreSQL, for several API servers on several machines reading one catalog.

Chosen by ``catalog_url = "postgresql+psycopg://user:password@host:5432/db"``.
The tables, the queries and the transactions are those of the SQLite catalog
(``sql.py``); prices are NUMERIC, writers queue on advisory locks, readers
see one snapshot per read (repeatable read).
"""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from ..config import ConfigError
from ..pg import postgres_engine
from .sql import SqlCatalog


class PostgresCatalog(SqlCatalog):
    """The catalog in the PostgreSQL database of ``url``."""

    def __init__(self, url: str, read_only: bool = False) -> None:
        engine = postgres_engine(url, "catalog_url", read_only)
        where = f"at {engine.url.render_as_string(hide_password=True)}"
        try:
            super().__init__(engine, read_only=read_only, where=where)
        except OperationalError as exc:  # unreachable, refused, wrong password: say which database, without the password
            engine.dispose()
            raise ConfigError(f"cannot open the catalog database {where}: {str(exc.orig).strip().splitlines()[0]}") from None
