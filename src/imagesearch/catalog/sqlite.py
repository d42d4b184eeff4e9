"""The embedded catalog: one SQLite file (WAL mode) behind the catalog protocols of ``base.py``.

Readers (searches, possibly in several server workers) never block the single
writer (an import) thanks to WAL.  Writes go through :meth:`SqliteCatalog.writer`, a
transaction the caller commits only once the index matching it is on disk, so
the catalog and the index change together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import numpy as np
from sqlalchemy import (
    Connection,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from ..errors import ReadOnlyError
from .base import Blob, Category, ProductView, SortKey
from .meta import FILTERS_KEY
from .records import ProductRecord
from .schema import (
    categories,
    category_names,
    image_blobs,
    images,
    meta,
    metadata,
    product_ship_to,
    product_titles,
    products,
)

CATALOG_FILE = "catalog.sqlite"
#: SQLite's bound-parameter limit is 32766; stay well below it.
CHUNK = 900
#: Embeddings are kept at half precision: the index is rebuilt and its reduction re-learned from them.
STORED_AS = "float16"
FORMATS = {"float16": np.float16, "float32": np.float32}


def _chunks(items: Sequence, size: int = CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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


class SqliteCatalog:
    """Products, texts, shipping, categories and images of one data directory."""

    def __init__(self, data_dir: Path, read_only: bool = False) -> None:
        self.path = data_dir / CATALOG_FILE
        if read_only:
            if not self.path.exists():
                raise ReadOnlyError(f"there is no catalog in {data_dir}, and it is opened read-only")
            self.engine = _read_only_engine(self.path)
            if self._migrations():
                raise ReadOnlyError(f"the catalog in {data_dir} was made by an earlier version: open it once with write access to upgrade it")
            return
        data_dir.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # SQLite gives its -wal and -shm files the database file's permissions.
            self.path.touch(mode=0o600)
        self.engine = _sqlite_engine(f"sqlite:///{self.path}")
        metadata.create_all(self.engine)
        with self.engine.begin() as connection:
            for statement in self._migrations():
                connection.exec_driver_sql(statement)
        for table in metadata.sorted_tables:
            for index in table.indexes:
                index.create(self.engine, checkfirst=True)

    def _migrations(self) -> list[str]:
        """What brings a catalog made by an earlier version up to this schema (columns added since; indexes are created apart)."""
        with self.engine.connect() as connection:  # (a table that does not exist has no columns)
            products = {row[1] for row in connection.exec_driver_sql("PRAGMA table_info(products)")}
            blobs = {row[1] for row in connection.exec_driver_sql("PRAGMA table_info(image_blobs)")}
        statements = []
        if "fingerprint" not in products:
            statements.append("ALTER TABLE products ADD COLUMN fingerprint VARCHAR(64)")
        if "embedding_format" not in blobs:
            statements.append("ALTER TABLE image_blobs ADD COLUMN embedding_format VARCHAR(8) NOT NULL DEFAULT 'float32'")
        return statements

    def close(self) -> None:
        self.engine.dispose()

    def size_bytes(self) -> int:
        """Bytes on disk: the database and its write-ahead log."""
        return sum(path.stat().st_size for path in self.path.parent.glob(f"{CATALOG_FILE}*"))

    # -- reading -------------------------------------------------------------

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        """A consistent read snapshot."""
        with self.engine.connect() as connection:
            with connection.begin():
                yield connection

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.reader() as connection:
            return _get_meta(connection, key, default)

    def currencies(self) -> set[str]:
        """The currencies the catalog's prices are in."""
        with self.reader() as connection:
            return set(connection.scalars(select(products.c.currency.distinct())))

    def counts(self) -> dict[str, int]:
        with self.reader() as connection:
            return {
                "products": connection.scalar(select(func.count()).select_from(products)) or 0,
                "images": connection.scalar(select(func.count()).select_from(images)) or 0,
                "distinct_images": connection.scalar(select(func.count(images.c.sha256.distinct()))) or 0,
                "categories": connection.scalar(select(func.count()).select_from(categories)) or 0,
                "shops": connection.scalar(select(func.count(products.c.shop_id.distinct()))) or 0,
            }

    def category_tree(self) -> list[tuple[Category, int, str | None, int]]:
        with self.reader() as connection:
            names: dict[str, dict[str, str]] = {}
            for category_id, lang, name in connection.execute(select(category_names.c.category_id, category_names.c.lang, category_names.c.name)):
                names.setdefault(category_id, {})[lang] = name
            first = dict(connection.execute(
                select(products.c.first_category_id, func.count()).where(products.c.first_category_id.is_not(None))
                .group_by(products.c.first_category_id)
            ).all())
            second: dict[str, tuple[int, set[str]]] = {}
            for category_id, parent, count in connection.execute(
                select(products.c.second_category_id, products.c.first_category_id, func.count())
                .where(products.c.second_category_id.is_not(None)).group_by(products.c.second_category_id, products.c.first_category_id)
            ):
                total, parents = second.get(category_id, (0, set()))
                second[category_id] = (total + count, parents | ({parent} if parent else set()))
        tree: list[tuple[Category, int, str | None, int]] = [
            (Category(category_id, names.get(category_id, {})), 1, None, count) for category_id, count in sorted(first.items())
        ]
        tree += [
            (Category(category_id, names.get(category_id, {})), 2, next(iter(parents)) if len(parents) == 1 else None, count)
            for category_id, (count, parents) in sorted(second.items())
        ]
        return tree

    def owners_since(self, generation_key: str, after_id: int) -> tuple[int, np.ndarray, np.ndarray]:
        """(generation, image ids, their product pks) of the images with an id above ``after_id``, in one snapshot.

        Searches aggregate hundreds of neighbours per query through an array
        (image id -> product pk): microseconds where an SQL ``IN`` query takes
        milliseconds.  Image ids only grow, so a reader extends its array with
        what is new instead of reading every image again.
        """
        with self.reader() as connection:
            generation = int(_get_meta(connection, generation_key, "0") or 0)
            pairs = connection.execute(select(images.c.id, images.c.product_pk).where(images.c.id > after_id)).all()
        if not pairs:
            return generation, np.zeros(0, np.int64), np.zeros(0, np.int64)
        ids, owners = np.array(pairs, dtype=np.int64).T
        return generation, ids, owners

    def sample_images(self, count: int, seed: int) -> list[tuple[int, int, list[int]]]:
        """Up to ``count`` main images, chosen at random: (image id, product pk, every product showing that photo)."""
        with self.reader() as connection:
            mains = connection.execute(select(images.c.id, images.c.product_pk, images.c.sha256).where(images.c.position == 0)).all()
            chosen = [mains[i] for i in sorted(np.random.default_rng(seed).permutation(len(mains))[:count].tolist())]
            sample = []
            for image_id, product_pk, sha in chosen:
                owners = list(connection.scalars(select(images.c.product_pk).where(images.c.sha256 == sha).distinct()))
                sample.append((image_id, product_pk, owners))
        return sample

    def sort_keys(self, product_pks: Sequence[int]) -> dict[int, SortKey]:
        """What sorting needs of each product, without loading whole products."""
        keys: dict[int, SortKey] = {}
        with self.reader() as connection:
            for chunk in _chunks(list(product_pks)):
                for pk, product_id, price, currency, volume in connection.execute(
                    select(products.c.pk, products.c.product_id, products.c.sale_price, products.c.currency, products.c.volume)
                    .where(products.c.pk.in_(chunk))
                ):
                    keys[pk] = SortKey(product_id, Decimal(price), currency, volume)
        return keys

    def images_matching(self, ship_to: str | None, category_id: str | None) -> tuple[str, np.ndarray]:
        """(filters version, ids of the images of the products that ship to ``ship_to`` and are in
        ``category_id``, at either level), in one snapshot.

        The version (the time of the last write that changed what a filter selects) tells a reader when to ask again.
        """
        query = select(images.c.id).join(products, products.c.pk == images.c.product_pk)
        if category_id is not None:
            query = query.where(or_(products.c.first_category_id == category_id, products.c.second_category_id == category_id))
        if ship_to is not None:
            listed = select(product_ship_to.c.product_pk).where(product_ship_to.c.country == ship_to)
            query = query.where(or_(products.c.ships_everywhere.is_(True), products.c.pk.in_(listed)))
        with self.reader() as connection:
            version = _get_meta(connection, FILTERS_KEY, "") or ""
            ids = np.fromiter(connection.scalars(query.order_by(images.c.id)), dtype=np.int64)
        return version, ids

    def products_by_pk(self, product_pks: Sequence[int]) -> dict[int, ProductView]:
        """Full views of the given products (missing ones are left out)."""
        with self.reader() as connection:
            return _load_views(connection, list(product_pks))

    def product_by_id(self, product_id: str) -> ProductView | None:
        with self.reader() as connection:
            pk = connection.scalar(select(products.c.pk).where(products.c.product_id == product_id))
            return _load_views(connection, [pk]).get(pk) if pk is not None else None

    def thumbnails(self, image_ids: Sequence[int]) -> dict[int, bytes]:
        """image id -> stored JPEG thumbnail."""
        found: dict[int, bytes] = {}
        with self.reader() as connection:
            for chunk in _chunks([int(image_id) for image_id in image_ids]):
                for image_id, thumbnail in connection.execute(
                    select(images.c.id, image_blobs.c.thumbnail)
                    .join(image_blobs, images.c.sha256 == image_blobs.c.sha256)
                    .where(images.c.id.in_(chunk))
                ):
                    found[image_id] = thumbnail
        return found

    def known_blobs(self, shas: Iterable[str]) -> set[str]:
        """Which contents are already stored (their embedding can be reused)."""
        found: set[str] = set()
        with self.reader() as connection:
            for chunk in _chunks(list(set(shas))):
                found.update(connection.scalars(select(image_blobs.c.sha256).where(image_blobs.c.sha256.in_(chunk))))
        return found

    def all_blob_shas(self) -> list[str]:
        with self.reader() as connection:
            return list(connection.scalars(select(image_blobs.c.sha256)))

    def vectors(self, image_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, embeddings) of the given images (e.g. to show how each matched a query)."""
        with self.reader() as connection:
            return _vectors_for(connection, image_ids)

    def thumbnail_by_sha(self, sha: str) -> bytes | None:
        with self.reader() as connection:
            return connection.scalar(select(image_blobs.c.thumbnail).where(image_blobs.c.sha256 == sha))

    def sources_of(self, sha: str) -> list[str]:
        with self.reader() as connection:
            return list(connection.scalars(select(images.c.source).where(images.c.sha256 == sha)))

    # -- writing -------------------------------------------------------------

    def store_blobs(self, blobs: Sequence[Blob]) -> None:
        """Store image contents ahead of an import, in their own short transaction.

        A blob that no image row references is harmless (a cache entry), so this
        may commit before the import does; compaction and reindex remove
        leftovers (:meth:`CatalogWriter.drop_unused_blobs`).
        """
        if not blobs:
            return
        with self.writer() as writer:
            writer.connection.execute(
                sqlite_insert(image_blobs).on_conflict_do_nothing(),
                [
                    {
                        "sha256": blob.sha256,
                        "width": blob.width,
                        "height": blob.height,
                        "thumbnail": blob.thumbnail,
                        "embedding": _encode(blob.embedding),
                        "embedding_format": STORED_AS,
                    }
                    for blob in blobs
                ],
            )

    @contextmanager
    def writer(self) -> Iterator[SqliteCatalogWriter]:
        """A write transaction (BEGIN IMMEDIATE): committed if the block ends normally."""
        with self.engine.connect() as connection:
            connection.info["write"] = True
            try:
                with connection.begin():
                    yield SqliteCatalogWriter(connection)
            finally:
                connection.info.pop("write", None)


class SqliteCatalogWriter:
    """Write operations inside one transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        #: Contents and categories this transaction stopped using: the only ones the clean-up looks at.
        self._released_shas: set[str] = set()
        self._released_categories: set[str] = set()
        #: Products an upsert found exactly as stored (nothing written).
        self.unchanged = 0
        self._filters_marked = False

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        return _get_meta(self.connection, key, default)

    def set_meta(self, key: str, value: str) -> None:
        self.connection.execute(
            sqlite_insert(meta).values(key=key, value=value).on_conflict_do_update(index_elements=["key"], set_={"value": value})
        )

    def upsert_product(self, record: ProductRecord, image_sources: Sequence[str], image_shas: Sequence[str]) -> tuple[list[int], list[int]]:
        """Insert or update a product; returns (image ids added, image ids removed).

        ``image_sources`` are the canonical sources (absolute paths or URLs).

        Images whose content (SHA-256) and position are unchanged keep their id,
        hence their vector in the index; only new or changed images are added.
        A product exactly as stored (same fingerprint) is left alone: no write.
        """
        fingerprint = hashlib.sha256(
            json.dumps([record.model_dump(mode="json"), list(image_sources), list(image_shas)], sort_keys=True).encode()
        ).hexdigest()
        row = self.connection.execute(
            select(products.c.pk, products.c.first_category_id, products.c.second_category_id, products.c.fingerprint)
            .where(products.c.product_id == record.product_id)
        ).first()
        if row is not None and row.fingerprint == fingerprint:
            self.unchanged += 1
            return [], []
        first = record.category.get("first_level")
        second = record.category.get("second_level")
        if (row is None or self._ships_to(row.pk) != (None if record.ship_to is None else set(record.ship_to))
                or (row.first_category_id, row.second_category_id) != (first.id if first else None, second.id if second else None)):
            self._filters_changed()
        now = time.time()
        for level, category in ((1, first), (2, second)):
            if category is not None:
                self._upsert_category(category.id, level, category.name)
        values = {
            "shop_id": record.shop_id,
            "first_category_id": first.id if first else None,
            "second_category_id": second.id if second else None,
            "sale_price": str(record.price.sale),
            "original_price": str(record.price.original) if record.price.original is not None else None,
            "currency": record.price.currency,
            "volume": record.volume,
            "evaluate_rate": str(record.evaluate_rate) if record.evaluate_rate is not None else None,
            "ship_from": record.ship_from,
            "ships_everywhere": record.ship_to is None,
            "detail_url": record.product_detail_url,
            "updated_at": now,
            "fingerprint": fingerprint,
        }
        if row is None:
            pk = self.connection.execute(insert(products).values(product_id=record.product_id, **values)).inserted_primary_key[0]
        else:
            pk = row.pk
            self._released_categories.update(category for category in (row.first_category_id, row.second_category_id) if category)
            self.connection.execute(update(products).where(products.c.pk == pk).values(**values))
        self.connection.execute(delete(product_titles).where(product_titles.c.product_pk == pk))
        self.connection.execute(
            insert(product_titles), [{"product_pk": pk, "lang": lang, "title": title} for lang, title in record.title.items()]
        )
        self.connection.execute(delete(product_ship_to).where(product_ship_to.c.product_pk == pk))
        if record.ship_to:
            self.connection.execute(
                insert(product_ship_to), [{"product_pk": pk, "country": country} for country in record.ship_to]
            )
        added, removed = self._replace_images(pk, image_sources, image_shas)
        if added:  # new image ids are not in the filters yet (removed ones are tombstones: never returned anyway)
            self._filters_changed()
        return added, removed

    def _ships_to(self, pk: int) -> set[str] | None:
        """The countries a stored product ships to (None: everywhere)."""
        if self.connection.scalar(select(products.c.ships_everywhere).where(products.c.pk == pk)):
            return None
        return set(self.connection.scalars(select(product_ship_to.c.country).where(product_ship_to.c.product_pk == pk)))

    def _filters_changed(self) -> None:
        if not self._filters_marked:
            self._filters_marked = True
            self.set_meta(FILTERS_KEY, str(time.time()))

    def _replace_images(self, pk: int, sources: Sequence[str], shas: Sequence[str]) -> tuple[list[int], list[int]]:
        existing = list(
            self.connection.execute(
                select(images.c.id, images.c.position, images.c.sha256).where(images.c.product_pk == pk)
            )
        )
        kept: dict[tuple[int, str], int] = {(position, sha): image_id for image_id, position, sha in existing}
        wanted = {(position, sha) for position, sha in enumerate(shas)}
        removed = [image_id for key, image_id in kept.items() if key not in wanted]
        self._released_shas.update(sha for position, sha in kept if (position, sha) not in wanted)
        if removed:
            self.connection.execute(delete(images).where(images.c.id.in_(removed)))
        added: list[int] = []
        for position, (source, sha) in enumerate(zip(sources, shas)):
            if (position, sha) in kept:
                self.connection.execute(update(images).where(images.c.id == kept[(position, sha)]).values(source=source))
                continue
            result = self.connection.execute(
                insert(images).values(product_pk=pk, position=position, source=source, sha256=sha)
            )
            added.append(result.inserted_primary_key[0])
        return added, removed

    def _upsert_category(self, category_id: str, level: int, names: dict[str, str]) -> None:
        self.connection.execute(
            sqlite_insert(categories)
            .values(category_id=category_id, level=level)
            .on_conflict_do_update(index_elements=["category_id"], set_={"level": level})
        )
        for lang, name in names.items():
            self.connection.execute(
                sqlite_insert(category_names)
                .values(category_id=category_id, lang=lang, name=name)
                .on_conflict_do_update(index_elements=["category_id", "lang"], set_={"name": name})
            )

    def delete_products(self, product_ids: Sequence[str]) -> tuple[list[str], list[int]]:
        """Delete products by id; returns (ids actually deleted, their image ids)."""
        deleted: list[str] = []
        image_ids: list[int] = []
        for chunk in _chunks(list(product_ids)):
            rows = list(self.connection.execute(
                select(products.c.pk, products.c.product_id, products.c.first_category_id, products.c.second_category_id)
                .where(products.c.product_id.in_(chunk))
            ))
            pks = [row.pk for row in rows]
            deleted.extend(row.product_id for row in rows)
            self._released_categories.update(category for row in rows for category in (row.first_category_id, row.second_category_id) if category)
            for image_id, sha in self.connection.execute(select(images.c.id, images.c.sha256).where(images.c.product_pk.in_(pks))):
                image_ids.append(image_id)
                self._released_shas.add(sha)
            self.connection.execute(delete(images).where(images.c.product_pk.in_(pks)))
            self.connection.execute(delete(products).where(products.c.pk.in_(pks)))
        return deleted, image_ids

    def product_ids_not_in(self, keep: set[str]) -> list[str]:
        return [product_id for product_id in self.connection.scalars(select(products.c.product_id)) if product_id not in keep]

    def vectors_for(self, image_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, embeddings) of the given images, for adding them to the index."""
        return _vectors_for(self.connection, image_ids)

    def image_ids(self) -> np.ndarray:
        """Every image id, ascending (to rebuild an index, reading their vectors in batches)."""
        return np.fromiter(self.connection.scalars(select(images.c.id).order_by(images.c.id)), dtype=np.int64)

    def replace_embeddings(self, embeddings: dict[str, np.ndarray]) -> None:
        """Overwrite stored embeddings (re-embedding with a new model)."""
        for sha, vector in embeddings.items():
            self.connection.execute(
                update(image_blobs).where(image_blobs.c.sha256 == sha).values(embedding=_encode(vector), embedding_format=STORED_AS)
            )

    def drop_unused_blobs(self, everything: bool = False) -> int:
        """Delete contents and categories no longer used: those this transaction released (a write costs
        what it changed), or with ``everything`` all of them, left-over cache entries included (compaction, reindex)."""
        shas = None if everything else sorted(self._released_shas)
        names = None if everything else sorted(self._released_categories)
        removed = 0
        for chunk in [None] if shas is None else list(_chunks(shas)):
            used = select(images.c.sha256)
            query = delete(image_blobs)
            if chunk is not None:
                used, query = used.where(images.c.sha256.in_(chunk)), query.where(image_blobs.c.sha256.in_(chunk))
            removed += self.connection.execute(query.where(~image_blobs.c.sha256.in_(used))).rowcount or 0
        for chunk in [None] if names is None else list(_chunks(names)):
            query = delete(categories)
            first = select(products.c.first_category_id).where(products.c.first_category_id.is_not(None))
            second = select(products.c.second_category_id).where(products.c.second_category_id.is_not(None))
            if chunk is not None:
                query = query.where(categories.c.category_id.in_(chunk))
                first, second = first.where(products.c.first_category_id.in_(chunk)), second.where(products.c.second_category_id.in_(chunk))
            self.connection.execute(query.where(~categories.c.category_id.in_(first), ~categories.c.category_id.in_(second)))
        self._released_shas.clear()
        self._released_categories.clear()
        return removed


def _encode(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=STORED_AS).tobytes()


def _vectors_for(connection: Connection, image_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(ids found, float32 embeddings) in ascending id order.

    Index builds read every embedding through it (a million at a time for a
    compaction), so it talks to the driver directly: a few hundred rows cost
    about a millisecond instead of three.
    """
    driver = connection.connection.driver_connection
    rows: list[tuple[int, bytes, str]] = []
    for chunk in _chunks(sorted({int(image_id) for image_id in image_ids})):
        rows.extend(driver.execute(  # type: ignore[union-attr]
            "SELECT images.id, image_blobs.embedding, image_blobs.embedding_format FROM images "
            f"JOIN image_blobs ON images.sha256 = image_blobs.sha256 WHERE images.id IN ({','.join('?' * len(chunk))}) "
            "ORDER BY images.id",
            chunk,
        ).fetchall())
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    if all(row[2] == STORED_AS for row in rows):
        return ids, np.frombuffer(b"".join(row[1] for row in rows), dtype=FORMATS[STORED_AS]).reshape(len(rows), -1).astype(np.float32)
    return ids, np.stack([np.frombuffer(row[1], dtype=FORMATS[row[2]]).astype(np.float32) for row in rows])


def _get_meta(connection: Connection, key: str, default: str | None) -> str | None:
    value = connection.scalar(select(meta.c.value).where(meta.c.key == key))
    return default if value is None else value


def _load_views(connection: Connection, pks: list[int]) -> dict[int, ProductView]:
    views: dict[int, ProductView] = {}
    for chunk in _chunks(pks):
        rows = list(connection.execute(select(products).where(products.c.pk.in_(chunk))))
        titles: dict[int, dict[str, str]] = {}
        for product_pk, lang, title in connection.execute(
            select(product_titles.c.product_pk, product_titles.c.lang, product_titles.c.title).where(product_titles.c.product_pk.in_(chunk))
        ):
            titles.setdefault(product_pk, {})[lang] = title
        ship: dict[int, list[str]] = {}
        for product_pk, country in connection.execute(
            select(product_ship_to.c.product_pk, product_ship_to.c.country).where(product_ship_to.c.product_pk.in_(chunk))
        ):
            ship.setdefault(product_pk, []).append(country)
        pictures: dict[int, list[tuple[int, str]]] = {}
        for product_pk, image_id, source in connection.execute(
            select(images.c.product_pk, images.c.id, images.c.source).where(images.c.product_pk.in_(chunk)).order_by(images.c.product_pk, images.c.position)
        ):
            pictures.setdefault(product_pk, []).append((image_id, source))
        category_ids = {row.first_category_id for row in rows} | {row.second_category_id for row in rows}
        names: dict[str, dict[str, str]] = {}
        category_ids.discard(None)
        if category_ids:
            for category_id, lang, name in connection.execute(
                select(category_names.c.category_id, category_names.c.lang, category_names.c.name).where(category_names.c.category_id.in_(category_ids))
            ):
                names.setdefault(category_id, {})[lang] = name
        for row in rows:
            views[row.pk] = ProductView(
                pk=row.pk,
                product_id=row.product_id,
                shop_id=row.shop_id,
                titles=titles.get(row.pk, {}),
                first_category=Category(row.first_category_id, names.get(row.first_category_id, {})) if row.first_category_id else None,
                second_category=Category(row.second_category_id, names.get(row.second_category_id, {})) if row.second_category_id else None,
                sale_price=Decimal(row.sale_price),
                original_price=Decimal(row.original_price) if row.original_price is not None else None,
                currency=row.currency,
                volume=row.volume,
                evaluate_rate=Decimal(row.evaluate_rate) if row.evaluate_rate is not None else None,
                ship_from=row.ship_from,
                ship_to=None if row.ships_everywhere else tuple(sorted(ship.get(row.pk, []))),
                detail_url=row.detail_url,
                image_ids=tuple(image_id for image_id, _ in pictures.get(row.pk, [])),
                image_sources=tuple(source for _, source in pictures.get(row.pk, [])),
            )
    return views
