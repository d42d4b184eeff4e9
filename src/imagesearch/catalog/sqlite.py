"""The embedded catalog: one SQLite file (WAL mode) in the data directory.

Readers (searches, possibly in several server workers) never block the single
writer (an import) thanks to WAL; the writer takes SQLite's write lock when
its transaction begins (``BEGIN IMMEDIATE``), so two writers queue instead of
failing half-way.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from ..errors import ReadOnlyError
from .sql import SqlCatalog

CATALOG_FILE = "catalog.sqlite"


def _read_only_engine(path: Path) -> Engine:
    """An engine that reads ``path`` without writing anything beside it.

    ``mode=ro`` still sees what other processes commit, but SQLite must be
    able to create the WAL's shared-memory file for it; where it cannot (a
    read-only file system, a full disk) the database is opened ``immutable``:
    as it is now, until a restart.
    """
    base = f"sqlite:///file:{quote(str(path))}?mode=ro&uri=true"
    engine = _sqlite_engine(base, read_only=True)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
        return engine
    except OperationalError:
        engine.dispose()
        return _sqlite_engine(base.replace("&uri=true", "&immutable=1&uri=true"), read_only=True)


def _sqlite_engine(url: str, read_only: bool = False) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        if not read_only:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        # Let SQLAlchemy's BEGIN be a real, immediate write lock (not the driver's lazy one).
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if connection.info.get("write") else "BEGIN")

    return engine


class SqliteCatalog(SqlCatalog):
    """The catalog of one data directory, in ``catalog.sqlite``."""

    def __init__(self, data_dir: Path, read_only: bool = False) -> None:
        self.path = data_dir / CATALOG_FILE
        if read_only:
            if not self.path.exists():
                raise ReadOnlyError(f"there is no catalog in {data_dir}, and it is opened read-only")
            super().__init__(_read_only_engine(self.path), read_only=True, where=f"in {data_dir}")
            return
        data_dir.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # SQLite gives its -wal and -shm files the database file's permissions.
            self.path.touch(mode=0o600)
        super().__init__(_sqlite_engine(f"sqlite:///{self.path}"), where=f"in {data_dir}")

    def size_bytes(self) -> int:
        """Bytes on disk: the database and its write-ahead log."""
        return sum(path.stat().st_size for path in self.path.parent.glob(f"{CATALOG_FILE}*"))
