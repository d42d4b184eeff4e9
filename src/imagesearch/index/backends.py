"""Vector stores by name, as configuration chooses them (``vector_store``; default ``faiss``)."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings, choose_backend
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


#: Each backend, built from the settings (a server engine reads its address from them).
BACKENDS: dict[str, Callable[[Settings], VectorStore]] = {"faiss": _faiss}


def open_vector_store(settings: Settings) -> VectorStore:
    """The vector store ``settings.vector_store`` names."""
    return choose_backend("vector_store", BACKENDS, settings)
