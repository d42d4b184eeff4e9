"""FAISS backend: exact search for small catalogs, HNSW above a size threshold.

Why these two: exact inner product over a flat array is perfect recall and
fast up to a few tens of thousands of vectors (a few ms per query on two
cores); above that, HNSW answers in about a millisecond even at a million
vectors, with recall close to 1 at ``efSearch`` 128 (see BENCHMARKS.md).

HNSW cannot delete in place, so removed ids become tombstones that searches
skip (through an ``IDSelector``); once tombstones pass a fraction of the index,
it is rebuilt from its own stored vectors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

IndexKind = Literal["auto", "flat", "hnsw"]
#: Below this share of an HNSW segment's vectors, a filtered search scans the kept vectors exactly:
#: a graph walk that may only step on a few percent of its nodes loses recall (see BENCHMARKS.md).
EXACT_BELOW = 0.05
INDEX_FILE = "vectors.faiss"
STATE_FILE = "index.json"


@dataclass(frozen=True)
class FaissSettings:
    """Index structure and its knobs; ``kind="auto"`` switches to HNSW at ``hnsw_threshold``."""

    kind: IndexKind = "auto"
    hnsw_threshold: int = 20_000
    hnsw_m: int = 32
    ef_construction: int = 100
    ef_search: int = 128
    rebuild_tombstone_ratio: float = 0.2


class IdFilter:
    """The ids a search may return (e.g. the images of products that ship to a country), as a bitmap.

    Searches apply it inside FAISS (an ``IDSelectorBitmap``), so a selective
    filter costs one search, not a search grown until enough results pass.
    """

    def __init__(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        self.mask = np.zeros(int(ids.max()) + 1 if len(ids) else 0, dtype=bool)
        self.mask[ids] = True
        self._packed = np.packbits(self.mask, bitorder="little")
        # FAISS takes the bitmap's length in bytes (ids past it are outside the set).
        self.selector = faiss.IDSelectorBitmap(len(self._packed), faiss.swig_ptr(self._packed))
        #: Per segment (by identity): the kept positions as a selector over that segment's internal ids.
        self._internal: dict[int, tuple[int, np.ndarray, faiss.IDSelector]] = {}

    def contains(self, image_id: int) -> bool:
        return 0 <= image_id < len(self.mask) and bool(self.mask[image_id])

    def internal(self, key: int, external_ids: np.ndarray) -> tuple[int, faiss.IDSelector]:
        """(how many kept, a selector over positions) for a segment whose position i holds ``external_ids[i]``."""
        if key not in self._internal:
            inside = external_ids < len(self.mask)
            kept = np.zeros(len(external_ids), dtype=bool)
            kept[inside] = self.mask[external_ids[inside]]
            packed = np.packbits(kept, bitorder="little")
            self._internal[key] = (int(kept.sum()), packed, faiss.IDSelectorBitmap(len(packed), faiss.swig_ptr(packed)))
        count, _, selector = self._internal[key]
        return count, selector


def set_search_threads(count: int) -> None:
    """Threads FAISS may use in this process (OpenMP)."""
    faiss.omp_set_num_threads(count)


class FaissIndex:
    """A FAISS index with stable int64 ids (an ``IndexIDMap2`` around flat or HNSW storage)."""

    def __init__(self, dim: int, settings: FaissSettings = FaissSettings()) -> None:
        self.dim = dim
        self.settings = settings
        self._structure = "flat"
        self._index = self._empty("flat")
        self._tombstones: set[int] = set()
        self._selector: faiss.IDSelector | None = None
        self._selector_for: np.ndarray | None = None
        self._ids: np.ndarray | None = None

    # -- structure -------------------------------------------------------------

    def _empty(self, structure: str) -> faiss.IndexIDMap2:
        if structure == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, self.settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.settings.ef_construction
            inner.hnsw.efSearch = self.settings.ef_search
        else:
            inner = faiss.IndexFlatIP(self.dim)
        return faiss.IndexIDMap2(inner)

    def _wanted_structure(self, live: int) -> str:
        if self.settings.kind != "auto":
            return self.settings.kind
        return "hnsw" if live >= self.settings.hnsw_threshold else "flat"

    @property
    def kind(self) -> str:
        return f"hnsw{self.settings.hnsw_m}" if self._structure == "hnsw" else "flat"

    def __len__(self) -> int:
        return int(self._index.ntotal) - len(self._tombstones)

    def live_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every live vector (tombstones left out)."""
        return self._live_vectors()

    def _live_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        vectors = self._index.index.reconstruct_n(0, self._index.ntotal) if len(ids) else np.zeros((0, self.dim), np.float32)
        if self._tombstones:
            keep = ~np.isin(ids, np.fromiter(self._tombstones, dtype=np.int64))
            ids, vectors = ids[keep], vectors[keep]
        return ids, vectors

    def _rebuild(self, structure: str, extra_ids: np.ndarray | None = None, extra: np.ndarray | None = None) -> None:
        ids, vectors = self._live_vectors()
        if extra_ids is not None and extra is not None and len(extra_ids):
            ids = np.concatenate([ids, extra_ids])
            vectors = np.concatenate([vectors, extra]) if len(vectors) else extra
        self._index = self._empty(structure)
        self._structure = structure
        self._tombstones = set()
        self._selector = None
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    # -- updates ---------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        wanted = self._wanted_structure(len(self) + len(ids))
        if wanted != self._structure:
            self._rebuild(wanted, ids, vectors)
            return
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        if self._structure == "flat":
            self._index.remove_ids(faiss.IDSelectorBatch(ids))
        else:
            present = set(faiss.vector_to_array(self._index.id_map).tolist())
            self._tombstones.update(int(i) for i in ids if int(i) in present)
            self._selector = None
            if len(self._tombstones) > self.settings.rebuild_tombstone_ratio * max(1, self._index.ntotal):
                self._rebuild(self._wanted_structure(len(self)))
                return
        wanted = self._wanted_structure(len(self))
        if wanted != self._structure:
            self._rebuild(wanted)

    # -- queries ---------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None, only: IdFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query; ids in ``exclude`` are skipped, and with ``only`` so is every id outside it.

        An HNSW segment that ``only`` keeps less than :data:`EXACT_BELOW` of
        is scanned exactly over the kept vectors instead of walked.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(k, max(1, len(self))))
        selector = self._exclusion(exclude)
        if only is not None:
            if self._structure == "hnsw":
                ids = self._external_ids()
                kept, positions = only.internal(id(self), ids)
                if kept < EXACT_BELOW * len(ids):
                    return self._scan(queries, k, positions, ids, exclude)
            selector = only.selector if selector is None else faiss.IDSelectorAnd(only.selector, selector)
        if self._structure == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(self.settings.ef_search, k)
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return self._index.search(queries, k, params=params)

    def _external_ids(self) -> np.ndarray:
        """The id of each position (cached: a loaded segment does not change)."""
        if self._ids is None or len(self._ids) != self._index.ntotal:
            self._ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        return self._ids

    def _scan(
        self, queries: np.ndarray, k: int, positions: faiss.IDSelector, ids: np.ndarray, exclude: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner products with the kept positions only (HNSW keeps its vectors in a flat storage).

        Tombstones are dropped from the answer, so the scan asks for that many more.
        """
        excluded = np.fromiter(self._tombstones, dtype=np.int64)
        if exclude is not None and len(exclude):
            excluded = np.concatenate([excluded, exclude])
        storage = faiss.downcast_index(faiss.downcast_index(self._index.index).storage)
        params = faiss.SearchParameters()
        params.sel = positions
        scores, found = storage.search(queries, min(len(ids), k + len(excluded)), params=params)
        result = np.where(found >= 0, ids[np.maximum(found, 0)], -1)
        if len(excluded):
            dropped = np.isin(result, excluded)
            result, scores = np.where(dropped, -1, result), np.where(dropped, -np.inf, scores)
            order = np.argsort(-scores, axis=1, kind="stable")
            result, scores = np.take_along_axis(result, order, axis=1), np.take_along_axis(scores, order, axis=1)
        return scores[:, :k], result[:, :k]

    def _exclusion(self, exclude: np.ndarray | None) -> faiss.IDSelector | None:
        """A selector skipping this index's own tombstones and ``exclude`` (cached for the same array)."""
        if not self._tombstones and (exclude is None or not len(exclude)):
            return None
        if self._selector is None or self._selector_for is not exclude:
            excluded = np.fromiter(self._tombstones, dtype=np.int64)
            if exclude is not None and len(exclude):
                excluded = np.concatenate([excluded, exclude])
            self._selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(excluded))
            self._selector_for = exclude
        return self._selector

    # -- persistence -------------------------------------------------------------

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, str(directory / INDEX_FILE))
        state = {
            "structure": self._structure,
            "dim": self.dim,
            "tombstones": sorted(self._tombstones),
        }
        (directory / STATE_FILE).write_text(json.dumps(state))

    @classmethod
    def load(cls, directory: Path, settings: FaissSettings = FaissSettings(), mmap: bool = False) -> FaissIndex:
        state = json.loads((directory / STATE_FILE).read_text())
        index = cls(int(state["dim"]), settings)
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        index._index = faiss.read_index(str(directory / INDEX_FILE), flags)
        index._structure = state["structure"]
        index._tombstones = set(int(i) for i in state["tombstones"])
        return index
