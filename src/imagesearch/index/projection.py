"""The learned reduction of embeddings before they enter the index (e.g. 1280 -> 256 dimensions).

Why an *uncentred* principal subspace, not PCA or whitening: the index must
keep answering cosine similarities, because the ``same``/``similar``
thresholds are cosines.  Projecting on the top eigenvectors of the catalog's
second-moment matrix keeps the inner product of two vectors up to the part of
them outside the subspace (``q.x = Pq.Px + q.r``), so scores keep their
meaning, and a catalog smaller than the target dimension is kept exactly.
Centring would shift every score; whitening reweights the dimensions and
lowered retrieval quality on our data (see ``notes/quality-levers.md``).
The projection is learned from the catalog at each base build and stored
beside the segments that use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np

#: Vectors used to learn a projection (a random sample of the catalog above this).
SAMPLE = 100_000


class Projection:
    """A (input dim x output dim) orthonormal basis; vectors are multiplied by it."""

    def __init__(self, basis: np.ndarray) -> None:
        self.basis = np.ascontiguousarray(basis, dtype=np.float32)

    @property
    def dim_in(self) -> int:
        return int(self.basis.shape[0])

    @property
    def dim(self) -> int:
        return int(self.basis.shape[1])

    @classmethod
    def learn(cls, sample: np.ndarray | Iterable[np.ndarray], dim: int) -> Projection | None:
        """The top-``dim`` principal subspace of ``sample`` (uncentred); None when nothing would be reduced.

        ``sample`` may come in batches: only the (dim in x dim in) second-moment
        matrix is kept, so learning from 100,000 vectors needs no more memory than one batch.
        """
        moment: np.ndarray | None = None
        for batch in [sample] if isinstance(sample, np.ndarray) else sample:
            batch = np.asarray(batch, dtype=np.float32)
            if not len(batch):
                continue
            part = (batch.T @ batch).astype(np.float64)
            moment = part if moment is None else moment + part
        if moment is None or dim <= 0 or len(moment) <= dim:
            return None
        _, vectors = np.linalg.eigh(moment)  # ascending eigenvalues
        return cls(vectors[:, ::-1][:, :dim])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(vectors, dtype=np.float32) @ self.basis)

    def save(self, handle: BinaryIO) -> None:
        np.save(handle, self.basis)

    @classmethod
    def load(cls, path: Path) -> Projection:
        return cls(np.load(path))
