"""The catalog in SQL, behind the protocols of ``base.py``: one SQLAlchemy Core code for SQLite and PostgreSQL.

What differs between the two databases is kept to a few places, each named
for it: how a writer excludes other writers (SQLite's ``BEGIN IMMEDIATE``, a
PostgreSQL advisory lock held until the transaction ends), how a reader gets
a consistent snapshot (a SQLite read transaction, PostgreSQL's repeatable
read), the dialect's upsert, and the driver's parameter style.  ``sqlite.py``
and ``postgres.py`` build the engine.  Writes go through
:meth:`SqlCatalog.writer`, a transaction the caller commits only once the
index matching it is published, so the catalog and the index change together
or not at all.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from sqlalchemy import (
    Connection,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from ..errors import CatalogError, ReadOnlyError
from .base import Blob, Category, ProductView, SortKey
from .labels import labels_of
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

#: Bound parameters per statement (SQLite's limit is 32766, PostgreSQL's 65535): stay well below both.
CHUNK = 900
#: The PostgreSQL advisory lock key writers hold (any constant; ``imagesea`` in ASCII).
WRITER_LOCK = 0x696D616765736561
#: The advisory lock a whole write holds (:meth:`SqlCatalog.exclusive`).
EXCLUSIVE_LOCK = WRITER_LOCK + 1
#: Embeddings are kept at half precision: the index is rebuilt and its reduction re-learned from them.
STORED_AS = "float16"
FORMATS = {"float16": np.float16, "float32": np.float32}


def migrations(bind: Engine | Connection) -> list[str]:
    """What brings a catalog made by an earlier version up to this schema (columns added since; indexes are
    created apart).  Read from the database's own description of its tables, so both databases share it:
    the schema has only ever grown by nullable or defaulted columns, which is all this needs (no Alembic)."""
    inspector = inspect(bind)
    if not inspector.has_table("products"):  # a new catalog: create_all makes everything
        return []
    product_columns = {column["name"] for column in inspector.get_columns("products")}
    blob_columns = {column["name"] for column in inspector.get_columns("image_blobs")}
    statements = []
    if "fingerprint" not in product_columns:
        statements.append("ALTER TABLE products ADD COLUMN fingerprint VARCHAR(64)")
    if "embedding_format" not in blob_columns:
        statements.append("ALTER TABLE image_blobs ADD COLUMN embedding_format VARCHAR(8) NOT NULL DEFAULT 'float32'")
    return statements


def _chunks(items: Sequence, size: int = CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqlCatalog:
    """Products, texts, shipping, categories and images, in the database of ``engine``.

    The schema is created, or brought up to date (:func:`migrations`), when the
    catalog is opened for writing; a read-only catalog refuses an outdated one.
    """

    def __init__(self, engine: Engine, read_only: bool = False, where: str = "") -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        if read_only:
            if migrations(engine):
                raise ReadOnlyError(f"the catalog {where} was made by an earlier version: open it once with write access to upgrade it")
            return
        with self.writer() as writer:  # one writer at a time: two processes opening a new catalog at once
            metadata.create_all(writer.connection)
            for statement in migrations(writer.connection):
                writer.connection.exec_driver_sql(statement)
            for table in metadata.sorted_tables:
                for index in table.indexes:
                    index.create(writer.connection, checkfirst=True)

    def close(self) -> None:
        self.engine.dispose()

    def size_bytes(self) -> int:
        """Bytes the catalog takes in its database."""
        with self.reader() as connection:
            return int(connection.scalar(text("SELECT pg_database_size(current_database())")) or 0)

    # -- reading -------------------------------------------------------------

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        """A consistent read snapshot: a SQLite read transaction; on PostgreSQL, repeatable read (its default,
        read committed, would let two queries of one read see two states)."""
        with self.engine.connect() as connection:
            if self.postgres:
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
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
                    keys[pk] = SortKey(product_id, price, currency, volume)
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

    def image_labels(self, image_ids: Sequence[int]) -> dict[int, frozenset[str]]:
        """The filter labels (``labels.py``) of the given images."""
        with self.reader() as connection:
            return _labels_for(connection, image_ids)

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
                upsert(writer.connection)(image_blobs).on_conflict_do_nothing(),
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
    def exclusive(self, wait: float) -> Iterator[None]:
        """The whole write (transaction, index publish, clean-up) for one writer at a time, on every machine.

        On PostgreSQL a session advisory lock, held past the transaction (the
        index is swept after the commit); SQLite's writers are one data
        directory's, which its file lock already serialises.
        """
        if not self.postgres:
            yield
            return
        deadline = time.monotonic() + wait
        with self.engine.connect() as connection:
            while not connection.scalar(select(func.pg_try_advisory_lock(EXCLUSIVE_LOCK))):
                connection.rollback()
                if time.monotonic() >= deadline:
                    raise CatalogError("another import or reindex is writing to the catalog; try again when it ends")
                time.sleep(0.05)
            connection.commit()
            try:
                yield
            finally:
                connection.execute(select(func.pg_advisory_unlock(EXCLUSIVE_LOCK)))
                connection.commit()

    @contextmanager
    def writer(self) -> Iterator[SqlCatalogWriter]:
        """A write transaction, the only one at a time: committed if the block ends normally.

        SQLite takes its write lock at the start (``BEGIN IMMEDIATE``, see
        ``sqlite.py``); PostgreSQL takes an advisory lock that ends with the
        transaction, so writers from any number of machines queue as they do
        on one SQLite file.
        """
        with self.engine.connect() as connection:
            connection.info["write"] = True
            try:
                with connection.begin():
                    if self.postgres:
                        connection.execute(select(func.pg_advisory_xact_lock(WRITER_LOCK)))
                    yield SqlCatalogWriter(connection)
            finally:
                connection.info.pop("write", None)


class SqlCatalogWriter:
    """Write operations inside one transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        #: Contents and categories this transaction stopped using: the only ones the clean-up looks at.
        self._released_shas: set[str] = set()
        self._released_categories: set[str] = set()
        #: Products an upsert found exactly as stored (nothing written).
        self.unchanged = 0
        #: Images kept by a product whose shipping or categories changed: their filter labels changed.
        self.relabelled: set[int] = set()
        self._filters_marked = False
        #: What this transaction last wrote of each category (level, names): a catalog repeats a few over all its rows.
        self._categories_written: dict[str, tuple[int, dict[str, str]]] = {}

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        return _get_meta(self.connection, key, default)

    def set_meta(self, key: str, value: str) -> None:
        self.connection.execute(
            upsert(self.connection)(meta).values(key=key, value=value).on_conflict_do_update(index_elements=["key"], set_={"value": value})
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
        relabel = row is not None and (
            self._ships_to(row.pk) != (None if record.ship_to is None else set(record.ship_to))
            or (row.first_category_id, row.second_category_id) != (first.id if first else None, second.id if second else None)
        )
        if row is None or relabel:
            self._filters_changed()
        now = time.time()
        for level, category in ((1, first), (2, second)):
            if category is not None:
                self._upsert_category(category.id, level, category.name)
        values = {
            "shop_id": record.shop_id,
            "first_category_id": first.id if first else None,
            "second_category_id": second.id if second else None,
            "sale_price": record.price.sale,
            "original_price": record.price.original,
            "currency": record.price.currency,
            "volume": record.volume,
            "evaluate_rate": record.evaluate_rate,
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
            # (a new product has no titles, countries or images to replace: three statements of nine saved)
            self.connection.execute(delete(product_titles).where(product_titles.c.product_pk == pk))
            self.connection.execute(delete(product_ship_to).where(product_ship_to.c.product_pk == pk))
        self.connection.execute(
            insert(product_titles), [{"product_pk": pk, "lang": lang, "title": title} for lang, title in record.title.items()]
        )
        if record.ship_to:
            self.connection.execute(
                insert(product_ship_to), [{"product_pk": pk, "country": country} for country in record.ship_to]
            )
        added, removed = self._replace_images(pk, image_sources, image_shas, new=row is None)
        if added:  # new image ids are not in the filters yet (removed ones are tombstones: never returned anyway)
            self._filters_changed()
        if relabel:
            kept = self.connection.scalars(select(images.c.id).where(images.c.product_pk == pk))
            self.relabelled.update(image_id for image_id in kept if image_id not in added)
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

    def _replace_images(self, pk: int, sources: Sequence[str], shas: Sequence[str], new: bool) -> tuple[list[int], list[int]]:
        existing = [] if new else list(
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
        if self._categories_written.get(category_id) == (level, names):
            return
        self._categories_written[category_id] = (level, dict(names))
        self.connection.execute(
            upsert(self.connection)(categories)
            .values(category_id=category_id, level=level)
            .on_conflict_do_update(index_elements=["category_id"], set_={"level": level})
        )
        for lang, name in names.items():
            self.connection.execute(
                upsert(self.connection)(category_names)
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

    def image_labels(self, image_ids: Sequence[int]) -> dict[int, frozenset[str]]:
        """The filter labels of the given images, as this transaction sees them."""
        return _labels_for(self.connection, image_ids)

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


def upsert(connection: Connection) -> Callable[..., Any]:
    """The dialect's ``INSERT`` with ``ON CONFLICT`` (the same API on SQLite and PostgreSQL)."""
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def _encode(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=STORED_AS).tobytes()


def _vectors_for(connection: Connection, image_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(ids found, float32 embeddings) in ascending id order.

    Index builds read every embedding through it (a million at a time for a
    compaction), so it talks to the driver directly: a few hundred rows cost
    about a millisecond instead of three.
    """
    driver = connection.connection.driver_connection
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    rows: list[tuple[int, bytes, str]] = []
    for chunk in _chunks(sorted({int(image_id) for image_id in image_ids})):
        rows.extend(driver.execute(  # type: ignore[union-attr]
            "SELECT images.id, image_blobs.embedding, image_blobs.embedding_format FROM images "
            f"JOIN image_blobs ON images.sha256 = image_blobs.sha256 WHERE images.id IN ({','.join([marker] * len(chunk))}) "
            "ORDER BY images.id",
            chunk,
        ).fetchall())
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    if all(row[2] == STORED_AS for row in rows):
        return ids, np.frombuffer(b"".join(row[1] for row in rows), dtype=FORMATS[STORED_AS]).reshape(len(rows), -1).astype(np.float32)
    return ids, np.stack([np.frombuffer(row[1], dtype=FORMATS[row[2]]).astype(np.float32) for row in rows])


def _labels_for(connection: Connection, image_ids: Sequence[int]) -> dict[int, frozenset[str]]:
    found: dict[int, frozenset[str]] = {}
    for chunk in _chunks(sorted({int(image_id) for image_id in image_ids})):
        rows = connection.execute(
            select(images.c.id, products.c.pk, products.c.ships_everywhere, products.c.first_category_id, products.c.second_category_id)
            .join(products, products.c.pk == images.c.product_pk).where(images.c.id.in_(chunk))
        ).all()
        countries: dict[int, set[str]] = {}
        for product_pk, country in connection.execute(
            select(product_ship_to.c.product_pk, product_ship_to.c.country).where(product_ship_to.c.product_pk.in_({row.pk for row in rows}))
        ):
            countries.setdefault(product_pk, set()).add(country)
        for row in rows:
            found[row.id] = labels_of(None if row.ships_everywhere else countries.get(row.pk, set()), (row.first_category_id, row.second_category_id))
    return found


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
                sale_price=row.sale_price,
                original_price=row.original_price,
                currency=row.currency,
                volume=row.volume,
                evaluate_rate=row.evaluate_rate,
                ship_from=row.ship_from,
                ship_to=None if row.ships_everywhere else tuple(sorted(ship.get(row.pk, []))),
                detail_url=row.detail_url,
                image_ids=tuple(image_id for image_id, _ in pictures.get(row.pk, [])),
                image_sources=tuple(source for _, source in pictures.get(row.pk, [])),
            )
    return views
