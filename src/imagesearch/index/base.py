"""The vector-index interface the search pipeline uses.

An index maps int64 ids to unit-length float32 vectors and answers
inner-product (= cosine) nearest-neighbour queries.  Implementations: FAISS
(:mod:`.faiss_index`, embedded, the default); a Milvus backend can implement the
same protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class VectorIndex(Protocol):
    """What the pipeline needs from a vector index."""

    dim: int

    @property
    def kind(self) -> str:
        """Human-readable structure in use (e.g. "flat", "hnsw32")."""
        ...

    def __len__(self) -> int:
        """Number of live (searchable) vectors."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under ``ids`` (ids must not be present)."""
        ...

    def remove(self, ids: np.ndarray) -> None:
        """Remove ids; unknown ids are ignored."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query, best first; missing slots have id -1."""
        ...

    def save(self, directory: Path) -> None:
        """Write the index into ``directory`` (which the caller then publishes atomically)."""
        ...
