"""A segmented index: one base segment, small delta segments, and tombstones.

Why segments (as Lucene and Milvus do): a write must cost what it changes, not
what the catalog holds.  Adding images writes a new small segment; removing
images writes their ids as tombstones; the base is untouched.  A search asks
every segment for its best ``k`` (tombstones skipped inside the search, by an
``IDSelector``) and merges them: exact with respect to each segment's own
search.  Compaction folds the deltas and tombstones into a new base once they
grow.

Each segment is searched in the space it was built in: queries are projected
once per learned reduction (segments written between two compactions share
the base's), so a compaction that re-learns the reduction never has to
rewrite the deltas written while it ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .base import IdSet
from .faiss_index import FaissIndex, exclusion
from .projection import Projection


def describe(base_kind: str, deltas: int) -> str:
    """A segmented structure as people read it: "ivf4096-sq8", "flat + 2 deltas"."""
    return base_kind if not deltas else f"{base_kind} + {deltas} delta{'s' if deltas > 1 else ''}"


class SegmentedIndex:
    """The segments of one index state, minus its tombstones: what searches see."""

    def __init__(
        self,
        dim: int,
        segments: Sequence[tuple[str, FaissIndex]],
        tombstones: np.ndarray | None = None,
        projections: Mapping[str, Projection] | None = None,
    ) -> None:
        self.dim = dim
        self.segments = list(segments)
        self.tombstones = np.unique(np.asarray(tombstones if tombstones is not None else [], dtype=np.int64))
        self.projections = dict(projections or {})
        self._exclude = exclusion(self.tombstones)

    @property
    def kind(self) -> str:
        return describe(self.segments[0][1].kind, len(self.segments) - 1) if self.segments else "flat"

    @property
    def segment_count(self) -> int:
        return len(self.segments)

    @property
    def tombstone_count(self) -> int:
        return len(self.tombstones)

    def warm(self) -> None:
        for _, segment in self.segments:
            segment.warm()

    def __len__(self) -> int:
        return sum(len(index) for _, index in self.segments) - len(self.tombstones)

    def search(self, queries: np.ndarray, k: int, only: IdSet | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query over every segment, best first; missing slots have id -1.

        ``only`` restricts the search to its ids, inside each segment's search.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        projected: dict[str | None, np.ndarray] = {None: queries}
        found = []
        for _, index in self.segments:
            if not len(index):
                continue
            if index.projection not in projected:
                projected[index.projection] = self.projections[index.projection].apply(queries)  # type: ignore[index]
            found.append(index.search(projected[index.projection], queries, k, self._exclude, self.tombstones, only))
        if not found:
            return np.full((len(queries), 1), -np.inf, np.float32), np.full((len(queries), 1), -1, np.int64)
        if len(found) == 1:
            return found[0]
        scores = np.concatenate([item[0] for item in found], axis=1)
        ids = np.concatenate([item[1] for item in found], axis=1)
        scores = np.where(ids >= 0, scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)

    def live_ids(self) -> np.ndarray:
        """Every searchable id of every segment (for compaction)."""
        parts = [index.live_ids() for _, index in self.segments]
        ids = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return ids[~np.isin(ids, self.tombstones)] if len(self.tombstones) else ids
