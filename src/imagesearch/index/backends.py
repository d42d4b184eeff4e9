"""Vector stores by name, as configuration chooses them (``vector_store``; default ``faiss``)."""

from __future__ import annotations

from collections.abc import Callable

from ..config import ConfigError, Settings, choose_backend
from .base import VectorStore
from .faiss_index import FaissSettings, set_search_threads
from .faiss_store import FaissStore


def _faiss(settings: Settings) -> FaissStore:
    if settings.index_threads:
        set_search_threads(settings.index_threads)
    return FaissStore(
        settings.data_dir / "index",
        FaissSettings(
            kind=settings.index_kind,  # type: ignore[arg-type]
            ann_threshold=settings.ann_threshold,
            dim=settings.index_dim,
            nprobe=settings.ivf_nprobe,
            rerank=settings.index_rerank,
            hnsw_m=settings.hnsw_m,
            ef_construction=settings.ef_construction,
            ef_search=settings.ef_search,
        ),
    )


def _pgvector(settings: Settings) -> VectorStore:
    from ..pg import postgres_engine  # psycopg is needed only here
    from .pgvector_store import PgVectorSettings, PgVectorStore

    url = settings.index_url or settings.catalog_url
    if not url:
        raise ConfigError("vector_store = pgvector needs a PostgreSQL database: set index_url (or catalog_url)")
    return PgVectorStore(
        postgres_engine(url, "index_url" if settings.index_url else "catalog_url", settings.read_only),
        PgVectorSettings(hnsw_m=settings.hnsw_m, ef_construction=settings.ef_construction, ef_search=settings.ef_search),
        read_only=settings.read_only,
    )


def _milvus(settings: Settings) -> VectorStore:
    from .milvus_store import MilvusSettings, MilvusStore  # pymilvus is needed only here

    if not settings.index_url:
        raise ConfigError('vector_store = milvus needs index_url (e.g. "http://127.0.0.1:19530") and, for a cluster, index_token')
    try:
        return MilvusStore(settings.index_url, settings.index_token, MilvusSettings(
            collection=settings.milvus_collection, index_type=settings.milvus_index, hnsw_m=settings.hnsw_m,
            ef_construction=settings.ef_construction, ef_search=settings.ef_search,
        ))
    except ModuleNotFoundError as exc:
        raise ConfigError(f"vector_store = milvus needs pymilvus: pip install 'imagesearch[milvus]' ({exc})") from None
    except Exception as exc:  # pymilvus raises its own MilvusException (and grpc errors) when the server cannot be reached
        if type(exc).__module__.startswith(("pymilvus", "grpc")):
            raise ConfigError(f"cannot reach Milvus at {settings.index_url}: {str(exc).strip().splitlines()[0][:300]}") from None
        raise


#: Each backend, built from the settings (a server engine reads its address from them).
BACKENDS: dict[str, Callable[[Settings], VectorStore]] = {"faiss": _faiss, "milvus": _milvus, "pgvector": _pgvector}


def open_vector_store(settings: Settings) -> VectorStore:
    """The vector store ``settings.vector_store`` names."""
    return choose_backend("vector_store", BACKENDS, settings)
