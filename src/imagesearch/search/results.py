"""Ranked result lists kept for paging: what makes ``next_start_row_key`` stable.

A search ranks its whole result list once and stores it; every later page is
cut from that stored list, so products never shift between pages even if the
catalog changes meanwhile.  The store is a table any server worker can read,
so any worker serves any page: a small SQLite file in the data directory for
the workers of one machine, or the catalog's PostgreSQL database for workers
on many (the composition root chooses).  Entries expire after a TTL (at least
10 minutes).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, fields
from pathlib import Path

from sqlalchemy import (
    Column,
    Float,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
)
from sqlalchemy.engine import Engine

RESULTS_FILE = "results.sqlite"
#: Expired sets are deleted at most this often (not on every search).
PURGE_EVERY_SECONDS = 60

_metadata = MetaData()
_result_sets = Table(
    "result_sets",
    _metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", Float, nullable=False, index=True),
    Column("payload", Text, nullable=False),
)


@dataclass(frozen=True)
class RankedItem:
    """One product of a ranked list: its catalog key, score and the image that matched.

    ``offers``: when results are collapsed, every listing of this item (product keys, cheapest first,
    this one among them); empty otherwise.
    """

    product_pk: int
    score: float
    image_id: int
    offers: tuple[int, ...] = ()


@dataclass(frozen=True)
class ResultSet:
    """A complete ranked list and the options that produced it."""

    items: list[RankedItem]
    search_type: str
    currency: str
    lang: str | None
    ship_to: str | None
    sort_type: str
    sort_order: str
    page_size: int
    #: True when the list was cut at the service's result cap (more products would have qualified).
    capped: bool = False


#: ResultSet fields other than the items, stored as they are.
OPTION_FIELDS = tuple(field.name for field in fields(ResultSet) if field.name != "items")


def results_file(data_dir: Path) -> Engine:
    """The SQLite file of one machine's cursors (WAL: workers read while one writes)."""
    engine = create_engine(f"sqlite:///{data_dir / RESULTS_FILE}", connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _wal(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    return engine


class ResultStore:
    """Stores result sets by id with a time-to-live, in the database of ``engine``."""

    def __init__(self, engine: Engine, ttl_seconds: int, read_only: bool = False) -> None:
        self.ttl = ttl_seconds
        self._purged_at = 0.0
        #: Cursors cannot be stored by a service opened read-only: searches answer their first page.
        self.read_only = read_only
        self.engine = engine
        if not read_only:
            _metadata.create_all(self.engine)

    def save(self, result: ResultSet) -> str:
        """Store ``result``; returns its id.  Expired sets are purged on the way."""
        key = uuid.uuid4().hex
        payload = {name: getattr(result, name) for name in OPTION_FIELDS}
        payload["items"] = [
            [item.product_pk, round(item.score, 6), item.image_id, *([list(item.offers)] if item.offers else [])] for item in result.items
        ]
        now = time.time()
        with self.engine.begin() as connection:
            if now - self._purged_at > PURGE_EVERY_SECONDS:
                connection.execute(delete(_result_sets).where(_result_sets.c.created_at < now - self.ttl))
                self._purged_at = now
            connection.execute(insert(_result_sets).values(id=key, created_at=now, payload=json.dumps(payload)))
        return key

    def load(self, key: str) -> ResultSet | None:
        """The set stored under ``key``, or None if unknown or expired."""
        if self.read_only:
            return None
        with self.engine.connect() as connection:
            row = connection.execute(
                select(_result_sets.c.created_at, _result_sets.c.payload).where(_result_sets.c.id == key)
            ).first()
        if row is None or row.created_at < time.time() - self.ttl:
            return None
        payload = json.loads(row.payload)
        payload["items"] = [
            RankedItem(int(row[0]), float(row[1]), int(row[2]), tuple(int(pk) for pk in row[3]) if len(row) > 3 else ()) for row in payload["items"]
        ]
        return ResultSet(**{key: value for key, value in payload.items() if key in OPTION_FIELDS or key == "items"})

    def close(self) -> None:
        self.engine.dispose()
