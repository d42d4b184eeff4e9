"""The vector-index interface searches use.

An index maps int64 ids to unit-length float32 vectors and answers
inner-product (= cosine) nearest-neighbour queries.  Implementations: one
FAISS segment (:mod:`.faiss_index`) and a segmented index over several
(:mod:`.segments`, what searches see); another engine (Milvus, pgvector) can
implement the same protocol.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class VectorIndex(Protocol):
    """What a search needs from a vector index."""

    dim: int

    @property
    def kind(self) -> str:
        """Human-readable structure in use (e.g. "flat", "hnsw32 + 2 deltas")."""
        ...

    def __len__(self) -> int:
        """Number of live (searchable) vectors."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query, best first; missing slots have id -1."""
        ...
