"""What a catalog is, for the code that uses one: products, their images and embeddings, and meta values.

The pipelines depend on these types only.  SQLite (``catalog/store.py``) is
the embedded default; a PostgreSQL catalog fills the same two protocols.  A
write happens inside :meth:`Catalog.writer`, a transaction the caller commits
only once the index generation matching it is published, so the catalog and
the index change together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

import numpy as np

from .records import ProductRecord


@dataclass(frozen=True)
class Category:
    """One category level of a product, with its names per language."""

    id: str
    names: dict[str, str]


@dataclass(frozen=True)
class ProductView:
    """Everything a search result needs about a product."""

    pk: int
    product_id: str
    shop_id: int
    titles: dict[str, str]
    first_category: Category | None
    second_category: Category | None
    sale_price: Decimal
    original_price: Decimal | None
    currency: str
    volume: int
    evaluate_rate: Decimal | None
    ship_from: str | None
    ship_to: tuple[str, ...] | None
    detail_url: str
    image_ids: tuple[int, ...] = field(default=())
    image_sources: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class SortKey:
    """The fields results are sorted by."""

    product_id: str
    sale_price: Decimal
    currency: str
    volume: int


@dataclass(frozen=True)
class Blob:
    """A distinct image content: thumbnail and embedding, keyed by SHA-256."""

    sha256: str
    width: int
    height: int
    thumbnail: bytes
    embedding: np.ndarray


class CatalogWriter(Protocol):
    """One write transaction."""

    unchanged: int
    #: Images kept by products whose shipping or categories changed (their filter labels changed).
    relabelled: set[int]

    def get_meta(self, key: str, default: str | None = None) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def upsert_product(self, record: ProductRecord, image_sources: Sequence[str], image_shas: Sequence[str]) -> tuple[list[int], list[int]]:
        """Insert or update a product; (image ids added, image ids removed)."""
        ...

    def delete_products(self, product_ids: Sequence[str]) -> tuple[list[str], list[int]]:
        """(product ids deleted, their image ids)."""
        ...

    def product_ids_not_in(self, keep: set[str]) -> list[str]: ...

    def vectors_for(self, image_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids found, float32 embeddings) as this transaction sees them."""
        ...

    def image_ids(self) -> np.ndarray: ...

    def image_labels(self, image_ids: Sequence[int]) -> dict[int, frozenset[str]]:
        """The filter labels (``labels.py``) of the given images, as this transaction sees them."""
        ...

    def replace_embeddings(self, embeddings: dict[str, np.ndarray]) -> None: ...

    def drop_unused_blobs(self, everything: bool = False) -> int: ...


class Catalog(Protocol):
    """The products of one service: read by searches (from many threads), written by one writer at a time."""

    def close(self) -> None: ...

    def writer(self) -> AbstractContextManager[CatalogWriter]: ...

    def exclusive(self, wait: float) -> AbstractContextManager[None]:
        """Held by a whole write, so writers on other machines queue (``wait`` seconds, then CatalogError)."""
        ...

    def get_meta(self, key: str, default: str | None = None) -> str | None: ...

    def currencies(self) -> set[str]: ...

    def counts(self) -> dict[str, int]: ...

    def category_tree(self) -> list[tuple[Category, int, str | None, int]]:
        """Every category in use: (category with its names, level 1 or 2, its first-level parent for a second-level
        one when its products agree on one, else None; how many products it has), by level then id."""
        ...

    def size_bytes(self) -> int: ...

    def owners_since(self, generation_key: str, after_id: int) -> tuple[int, np.ndarray, np.ndarray]:
        """(the generation recorded, ids of images after ``after_id``, their product keys), read together."""
        ...

    def sample_images(self, count: int, seed: int) -> list[tuple[int, int, list[int]]]: ...

    def sort_keys(self, product_pks: Sequence[int]) -> dict[int, SortKey]: ...

    def images_matching(self, ship_to: str | None, category_id: str | None) -> tuple[str, np.ndarray]:
        """(the filters' version, ids of the images of products that ship to ``ship_to`` and are in
        ``category_id``, first or second level; None: no condition), read together."""
        ...

    def image_labels(self, image_ids: Sequence[int]) -> dict[int, frozenset[str]]: ...

    def products_by_pk(self, product_pks: Sequence[int]) -> dict[int, ProductView]: ...

    def product_by_id(self, product_id: str) -> ProductView | None: ...

    def thumbnails(self, image_ids: Sequence[int]) -> dict[int, bytes]: ...

    def known_blobs(self, shas: Iterable[str]) -> set[str]: ...

    def all_blob_shas(self) -> list[str]: ...

    def vectors(self, image_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids found, float32 embeddings) of the given images."""
        ...

    def thumbnail_by_sha(self, sha: str) -> bytes | None: ...

    def sources_of(self, sha: str) -> list[str]: ...

    def store_blobs(self, blobs: Sequence[Blob]) -> None: ...
