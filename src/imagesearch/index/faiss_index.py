"""FAISS segments: immutable indexes of (id, vector), built once, searched by many threads.

Structures, chosen by size (``kind="auto"``) or by configuration:

* ``flat``: every vector in float16, scanned exactly; small segments and deltas.
* ``ivf``: an inverted file (k-means cells) with 8-bit scalar-quantised vectors:
  about 260 bytes per 256-d vector, built in seconds even at a million vectors,
  a search scans the ``nprobe`` nearest cells (see BENCHMARKS.md).  The default
  above ``ann_threshold``.
* ``hnsw``: a graph over float32 vectors: the fastest single queries, but
  hours of build at ten million and ten times the memory of ``ivf``.

A filter (:class:`~.base.IdSet`) is applied inside the search through an
``IDSelector``.  When it keeps less than :data:`EXACT_BELOW` of a segment, an
approximate search would walk mostly refused vectors and lose recall, so the
kept vectors are scanned exactly instead (every cell of an ``ivf``, the flat
storage of an ``hnsw``).
"""

from __future__ import annotations

import json
import mmap
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from .base import IdSet

IndexKind = Literal["auto", "flat", "ivf", "hnsw"]
#: Below this share of an approximate segment's vectors, a filtered search scans the kept vectors exactly.
EXACT_BELOW = 0.05
INDEX_FILE = "vectors.faiss"
STATE_FILE = "index.json"
#: A compact segment's full-precision vectors (float16 rows, ascending id) and their ids, read through mmap to re-rank.
EXACT_FILE = "exact.f16"
EXACT_IDS_FILE = "exact-ids.npy"
#: Training points per k-means cell of an ``ivf`` segment (FAISS warns below 39), and the k-means iterations.
TRAIN_PER_CELL = 40
TRAIN_ITERATIONS = 10
#: ``ivf`` segments smaller than this are ``flat``: too few vectors to learn cells from, and an exact scan is as fast.
MIN_ANN = 4096
#: A dense id -> row table is kept while the ids span at most this many times their count (else a binary search).
DENSE_SPAN = 4


@dataclass(frozen=True)
class FaissSettings:
    """Index structure and its knobs; ``kind="auto"`` is ``flat`` below ``ann_threshold`` vectors, else ``ivf``."""

    kind: IndexKind = "auto"
    ann_threshold: int = 20_000
    #: Dimensions kept by the learned reduction (0: keep the embedder's).
    dim: int = 256
    nprobe: int = 32
    #: Candidates a compact segment re-ranks on its full-precision vectors (at least the k asked for).
    rerank: int = 800
    hnsw_m: int = 32
    ef_construction: int = 100
    ef_search: int = 128

    def structure_for(self, count: int) -> str:
        if self.kind == "auto":
            return "ivf" if count >= max(self.ann_threshold, MIN_ANN) else "flat"
        if self.kind == "ivf" and count < MIN_ANN:  # too few vectors to learn the cells from
            return "flat"
        return self.kind


def set_search_threads(count: int) -> None:
    """Threads FAISS (OpenMP) and NumPy's BLAS (the re-ranking, the reduction) may use in this process.

    Both, because a BLAS call leaves its threads spinning for a while: beside a
    one-thread search they took a second core and starved the embedder and a
    background compaction (measured in bench/scale.py).
    """
    faiss.omp_set_num_threads(count)
    threadpool_limits(count, user_api="blas")


def cells_for(count: int) -> int:
    """k-means cells of an ``ivf`` segment of ``count`` vectors: the usual 4 sqrt(n) (4,000 at a million),
    fewer when there are not enough vectors to train that many."""
    return max(16, min(int(4 * count**0.5), count // TRAIN_PER_CELL))


class SegmentBuilder:
    """Builds one segment from batches: ``train`` on a sample first (``ivf`` needs it), then ``add``."""

    def __init__(self, dim: int, structure: str, count: int, settings: FaissSettings) -> None:
        self.dim = dim
        self.structure = structure
        self.settings = settings
        if structure == "ivf":
            quantizer = faiss.IndexFlatIP(dim)
            self.index = faiss.IndexIVFScalarQuantizer(
                quantizer, dim, cells_for(count), faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
            self.index.cp.niter = TRAIN_ITERATIONS
            self.index.own_fields = True
            quantizer.this.disown()
        elif structure == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = settings.ef_construction
            inner.hnsw.efSearch = settings.ef_search
            self.index = faiss.IndexIDMap(inner)
        else:
            self.index = faiss.IndexIDMap(faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT))

    @property
    def train_size(self) -> int:
        """Sample size ``train`` wants (0: no training)."""
        return self.index.nlist * TRAIN_PER_CELL if self.structure == "ivf" else 0

    def train(self, sample: np.ndarray) -> None:
        if self.structure == "ivf":
            self.index.train(np.ascontiguousarray(sample, dtype=np.float32))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            if vectors.shape != (len(ids), self.dim):
                raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def finish(self) -> FaissIndex:
        return FaissIndex(self.index, self.structure, self.settings)


class FaissIndex:
    """One immutable segment: a FAISS index whose ids are image ids, searched in its own (reduced) space.

    ``projection`` names the reduction its vectors went through (None: the
    embedder's own vectors); the caller projects queries accordingly.
    """

    def __init__(
        self,
        index: faiss.Index,
        structure: str,
        settings: FaissSettings = FaissSettings(),
        projection: str | None = None,
        tombstones: np.ndarray | None = None,
    ) -> None:
        self._index = index
        self.structure = structure
        self.settings = settings
        self.projection = projection
        self.dim = int(index.d)
        #: Removed ids kept inside a segment of the earlier, single-index layout.
        self.own_tombstones = np.asarray(tombstones if tombstones is not None else [], dtype=np.int64)
        self._ids: np.ndarray | None = None
        #: The full-precision vectors of a compact segment, else None.
        self.exact: ExactRows | None = None

    @property
    def kind(self) -> str:
        if self.structure == "ivf":
            return f"ivf{self._index.nlist}-sq8"
        if self.structure == "hnsw":
            return f"hnsw{self.settings.hnsw_m}"
        return "flat"

    def __len__(self) -> int:
        return int(self._index.ntotal) - len(self.own_tombstones)

    def ids(self) -> np.ndarray:
        """The id at each internal position (read once: a segment never changes)."""
        if self._ids is None:
            if self.structure == "ivf":
                lists = faiss.extract_index_ivf(self._index).invlists
                parts = [
                    faiss.rev_swig_ptr(lists.get_ids(cell), lists.list_size(cell)).copy()
                    for cell in range(lists.nlist) if lists.list_size(cell)
                ]
                self._ids = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
            else:
                self._ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        return self._ids

    def warm(self) -> None:
        """Fill the page tables of the full-precision vectors' map (see :class:`ExactRows`)."""
        if self.exact is not None:
            self.exact.warm()

    def live_ids(self) -> np.ndarray:
        ids = self.ids()
        return ids[~np.isin(ids, self.own_tombstones)] if len(self.own_tombstones) else ids

    def search(
        self,
        queries: np.ndarray,
        full: np.ndarray,
        k: int,
        exclude: faiss.IDSelector | None,
        excluded: np.ndarray,
        only: IdSet | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) of ``queries`` (projected into this segment's space; ``full``: as embedded),
        skipping ``excluded`` (``exclude`` is its selector).

        A compact segment finds ``rerank`` candidates on its codes, then scores
        them on its full-precision vectors: the scores returned are exact cosines.
        """
        if self.exact is None:
            return self._search(queries, k, exclude, excluded, only)
        _, candidates = self._search(queries, max(k, self.settings.rerank), exclude, excluded, only)
        scores = np.full((len(candidates), k), -np.inf, np.float32)
        found_ids = np.full((len(candidates), k), -1, np.int64)
        for row, (query, found) in enumerate(zip(full, candidates, strict=True)):
            found = found[found >= 0]
            best, at = _rescore(self.exact.vectors, self.exact.rows(found), query, k)
            scores[row, : len(best)], found_ids[row, : len(best)] = best, found[at]
        return scores, found_ids

    def _search(
        self, queries: np.ndarray, k: int, exclude: faiss.IDSelector | None, excluded: np.ndarray, only: IdSet | None
    ) -> tuple[np.ndarray, np.ndarray]:
        k = max(1, min(k, int(self._index.ntotal)))
        if len(self.own_tombstones):
            excluded = np.union1d(excluded, self.own_tombstones)
            exclude = exclusion(excluded)
        selector = exclude
        exact = False
        if only is not None:
            if self.structure in ("hnsw", "ivf"):
                kept, positions = self._kept(only)
                exact = kept < EXACT_BELOW * self._index.ntotal
                if exact and self.structure == "hnsw":
                    return self._scan(queries, k, positions, excluded)
            allowed = _selector(only)
            selector = allowed if selector is None else faiss.IDSelectorAnd(allowed, selector)
        if self.structure == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(self.settings.ef_search, k)
        elif self.structure == "ivf":
            params = faiss.SearchParametersIVF()
            params.nprobe = self._index.nlist if exact else min(self._index.nlist, self.settings.nprobe)
            params.max_codes = 0
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return self._index.search(queries, k, params=params)

    def _kept(self, only: IdSet) -> tuple[int, faiss.IDSelector]:
        """(how many of this segment ``only`` keeps, a selector over the kept internal positions), kept with ``only``."""
        cached = only.derived.get(("positions", id(self)))
        if cached is None or cached[0] is not self:
            kept = only.kept(self.ids())
            packed = np.packbits(kept, bitorder="little")
            cached = (self, int(kept.sum()), packed, faiss.IDSelectorBitmap(len(packed), faiss.swig_ptr(packed)))
            only.derived[("positions", id(self))] = cached
        return cached[1], cached[3]

    def _scan(self, queries: np.ndarray, k: int, positions: faiss.IDSelector, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner products with the kept positions of an HNSW's flat storage; tombstones dropped after."""
        ids = self.ids()
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

    # -- persistence -------------------------------------------------------------

    def save(self, directory: Path, full_dim: int | None = None) -> None:
        """Write the index (beside the exact vectors the build may have written there, of ``full_dim``)."""
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, str(directory / INDEX_FILE))
        state = {"structure": self.structure, "dim": self.dim, "projection": self.projection, "tombstones": [], "full_dim": full_dim}
        (directory / STATE_FILE).write_text(json.dumps(state))

    @classmethod
    def load(cls, directory: Path, settings: FaissSettings = FaissSettings()) -> FaissIndex:
        """Read a segment: its codes into memory (an ``ivf`` scans three times faster than through a memory map),
        its full-precision vectors, the bulk of it, through a memory map (read only where a query re-ranks)."""
        state = json.loads((directory / STATE_FILE).read_text())
        index = faiss.read_index(str(directory / INDEX_FILE))
        segment = cls(index, state["structure"], settings, state.get("projection"), np.asarray(state.get("tombstones", []), np.int64))
        if (directory / EXACT_IDS_FILE).exists() and index.ntotal:
            segment.exact = ExactRows.open(directory, int(state["full_dim"]))
        return segment


class ExactRows:
    """A compact segment's full-precision vectors (float16 rows in ascending id order), read through a memory map.

    Re-ranking reads a few hundred random rows a search, so two lookups are
    kept off its path: the row of an id comes from a dense table (a binary
    search over a million ids took 0.2-0.4 ms a search, the table 0.01 ms),
    and a searcher fills the map's page tables when it opens the segment
    (:meth:`warm`), while the file fits in memory: each first touch of a page
    was otherwise a fault (800 rows read in 1.0 ms instead of 0.5).  A
    compaction, which opens the index only for its ids, leaves them empty
    (filled, they counted 2.8 GB against it at a million).
    """

    def __init__(self, ids: np.ndarray, vectors: np.ndarray, path: Path | None = None) -> None:
        self.ids = ids
        self.vectors = vectors
        self._path = path
        self._warm = False
        self._table: np.ndarray | None = None
        if len(ids) and int(ids[-1] - ids[0]) < DENSE_SPAN * len(ids):
            self._table = np.full(int(ids[-1] - ids[0]) + 1, -1, np.int32)
            self._table[ids - ids[0]] = np.arange(len(ids), dtype=np.int32)

    @classmethod
    def open(cls, directory: Path, dim: int) -> ExactRows:
        ids = np.load(directory / EXACT_IDS_FILE)
        return cls(ids, _mapped(directory / EXACT_FILE, 0).reshape(len(ids), dim), directory / EXACT_FILE)

    def warm(self) -> None:
        """Map the file again with its page tables filled (``MAP_POPULATE``), if it takes less than half the memory
        available now; once."""
        if self._warm or self._path is None:
            return
        self._warm = True
        populate = getattr(mmap, "MAP_POPULATE", 0)
        if populate and self._path.stat().st_size < _available_memory() // 2:
            self.vectors = _mapped(self._path, populate).reshape(self.vectors.shape)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The row of each of ``ids`` (all of them held here)."""
        if self._table is not None:
            return self._table[ids - self.ids[0]]
        return np.searchsorted(self.ids, ids)


def _mapped(path: Path, flags: int) -> np.ndarray:
    """The float16 contents of ``path``, read-only through a shared memory map (``flags`` added to its flags)."""
    with open(path, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, flags=mmap.MAP_SHARED | flags, prot=mmap.PROT_READ)
    return np.frombuffer(mapped, dtype=np.float16)


def _available_memory() -> int:
    """Bytes of memory available without swapping (Linux), or 0 when unknown: nothing is then populated."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class _Scratch(threading.local):
    """Each search thread's float16 flat index, whose code buffer re-ranking gathers candidate rows into.

    Scoring there runs FAISS's SIMD float16 inner products; decoding the rows to
    float32 first, then a matrix product, took four times as long (3 ms for
    1,000 rows of 1280 dims at a million, bench/scale.py).
    """

    index: faiss.IndexScalarQuantizer | None = None
    rows: np.ndarray | None = None

    def buffer(self, count: int, dim: int) -> tuple[faiss.IndexScalarQuantizer, np.ndarray]:
        if self.rows is None or self.rows.shape[1] != dim or len(self.rows) < count:
            capacity = max(count, 2048)
            index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
            index.codes.resize(capacity * dim * 2)
            self.index = index
            self.rows = faiss.rev_swig_ptr(index.codes.data(), capacity * dim * 2).view(np.float16).reshape(capacity, dim)
        assert self.index is not None
        return self.index, self.rows


_scratch = _Scratch()


def _rescore(vectors: np.ndarray, rows: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of ``vectors[rows]`` by inner product with ``query``: (scores, indexes into ``rows``)."""
    if not len(rows):
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    index, buffer = _scratch.buffer(len(rows), vectors.shape[1])
    np.take(vectors, rows, axis=0, out=buffer[: len(rows)])
    index.ntotal = len(rows)
    scores, at = index.search(query.reshape(1, -1), min(k, len(rows)))
    return scores[0], at[0]


def _selector(only: IdSet) -> faiss.IDSelector:
    """``only`` as a FAISS bitmap selector over ids (built once per set)."""
    cached = only.derived.get("faiss")
    if cached is None:
        packed = np.packbits(only.mask, bitorder="little")
        # FAISS takes the bitmap's length in bytes (ids past it are outside the set).
        cached = only.derived.setdefault("faiss", (packed, faiss.IDSelectorBitmap(len(packed), faiss.swig_ptr(packed))))
    return cached[1]


def exclusion(ids: np.ndarray) -> faiss.IDSelector | None:
    """A selector refusing ``ids`` (the tombstones of a state), or None when there are none."""
    return faiss.IDSelectorNot(faiss.IDSelectorBatch(ids)) if len(ids) else None

