"""The catalog's tables (SQLAlchemy Core).

Prices are exact decimals: PostgreSQL's NUMERIC, decimal *text* in SQLite
(which has no exact decimal type; SQLAlchemy's Numeric would pass through
float there): :class:`ExactDecimal`.  Image pixels are stored once
per distinct content in ``image_blobs`` (keyed by SHA-256): a thumbnail for
pages and the embedding, so identical photos listed by several shops are
embedded once, and a re-import re-embeds only bytes it has not seen.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine


class ExactDecimal(TypeDecorator[Decimal]):
    """A Decimal stored exactly: NUMERIC where the database has it, its text in SQLite."""

    impl = String(40)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(Numeric(asdecimal=True) if dialect.name == "postgresql" else String(40))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return Decimal(value) if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("product_id", String(64), nullable=False, unique=True),
    Column("shop_id", Integer, nullable=False),
    Column("first_category_id", String(64)),
    Column("second_category_id", String(64)),
    Column("sale_price", ExactDecimal(), nullable=False),
    Column("original_price", ExactDecimal()),
    Column("currency", String(3), nullable=False),
    Column("volume", Integer, nullable=False, default=0),
    Column("evaluate_rate", ExactDecimal()),
    Column("ship_from", String(2)),
    Column("ships_everywhere", Boolean, nullable=False),
    Column("detail_url", Text, nullable=False, default=""),
    Column("updated_at", Float, nullable=False),
    #: SHA-256 of the product as last written (record, image sources and contents): an unchanged
    #: product in a re-imported file is recognised with one read and costs no write.
    Column("fingerprint", String(64)),
    # For the clean-up of categories no product uses any more (and category filters).
    Index("ix_products_first_category", "first_category_id"),
    Index("ix_products_second_category", "second_category_id"),
    sqlite_autoincrement=True,
)

product_titles = Table(
    "product_titles",
    metadata,
    Column("product_pk", Integer, ForeignKey("products.pk", ondelete="CASCADE"), primary_key=True),
    Column("lang", String(16), primary_key=True),
    Column("title", Text, nullable=False),
)

product_ship_to = Table(
    "product_ship_to",
    metadata,
    Column("product_pk", Integer, ForeignKey("products.pk", ondelete="CASCADE"), primary_key=True),
    Column("country", String(2), primary_key=True),
    Index("ix_ship_to_country", "country", "product_pk"),
)

categories = Table(
    "categories",
    metadata,
    Column("category_id", String(64), primary_key=True),
    Column("level", Integer, nullable=False),
)

category_names = Table(
    "category_names",
    metadata,
    Column("category_id", String(64), ForeignKey("categories.category_id", ondelete="CASCADE"), primary_key=True),
    Column("lang", String(16), primary_key=True),
    Column("name", Text, nullable=False),
)

image_blobs = Table(
    "image_blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("thumbnail", LargeBinary, nullable=False),
    Column("embedding", LargeBinary, nullable=False),
    #: How ``embedding`` is encoded: float16 (written since 2026-11-29: half the bytes, no measurable change
    #: in retrieval, see BENCHMARKS.md) or float32 (earlier rows, read as they are).
    Column("embedding_format", String(8), nullable=False, server_default="float32"),
)

images = Table(
    "images",
    metadata,
    # The id is also the vector id in the index.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("product_pk", Integer, ForeignKey("products.pk", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("sha256", String(64), ForeignKey("image_blobs.sha256"), nullable=False),
    Index("ix_images_product", "product_pk", "position"),
    Index("ix_images_sha", "sha256"),
    sqlite_autoincrement=True,
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
