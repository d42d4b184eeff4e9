"""What a vector store is, for the code that uses one: ids and vectors in, (scores, ids) out.

The search and ingest pipelines depend on these types only; FAISS (the
embedded default, ``index/faiss_store.py``) fills them, and a second engine
(Milvus, pgvector) fills them the same way.  A store knows image ids and
vectors, nothing of products, prices or countries: a filter reaches it as an
:class:`IdSet`.

Writes are *published* as numbered generations.  The caller records the
generation number in its own (catalog) transaction, so the catalog and the
index always agree; files or rows of a generation never recorded are swept.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

#: Reads the full-precision vectors of some image ids from the catalog: (ids found, vectors), in ascending id
#: order.  Ids it cannot find (removed meanwhile) are simply left out.
VectorReader = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
#: Reads the filter labels of some image ids from the catalog (opaque strings to a store: see ``catalog/labels.py``).
LabelReader = Callable[[np.ndarray], Mapping[int, frozenset[str]]]


class IdSet:
    """The ids a search may return (e.g. the images of products that ship to a country), as a bitmap.

    A store applies it inside its kNN, so a selective filter costs one search,
    not a search grown until enough results pass.  ``derived`` lets a backend
    keep what it builds from the set (a FAISS selector, per-segment positions)
    for as long as the set lives.  ``clauses`` says the same set as labels (an
    image is in it if it has one label of every clause), for a store that keeps
    labels and filters on them in its own expression.
    """

    def __init__(self, ids: np.ndarray, clauses: tuple[frozenset[str], ...] = ()) -> None:
        self.clauses = clauses
        ids = np.asarray(ids, dtype=np.int64)
        self.mask = np.zeros(int(ids.max()) + 1 if len(ids) else 0, dtype=bool)
        self.mask[ids] = True
        self.derived: dict[Any, Any] = {}

    def __len__(self) -> int:
        return int(self.mask.sum())

    def contains(self, image_id: int) -> bool:
        return 0 <= image_id < len(self.mask) and bool(self.mask[image_id])

    def kept(self, ids: np.ndarray) -> np.ndarray:
        """For each of ``ids``: is it in the set?"""
        inside = (ids >= 0) & (ids < len(self.mask))
        result = np.zeros(len(ids), dtype=bool)
        result[inside] = self.mask[ids[inside]]
        return result


@dataclass(frozen=True)
class IndexState:
    """What one generation of the index is made of (a backend without files leaves the names empty)."""

    generation: int
    embedder_name: str
    embedder_version: str
    dim: int
    #: Segment names, the base first.
    segments: tuple[str, ...] = ()
    #: Vectors in each segment (tombstones included), in the same order.
    segment_sizes: tuple[int, ...] = ()
    #: File of removed ids still present in some segment, or None.
    tombstones: str | None = None
    tombstone_count: int = 0
    created_at: float = field(default_factory=time.time)
    compacted_at: float | None = None
    #: Learned reductions the segments use (files), the base's first.
    projections: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        """Live (searchable) vectors."""
        return sum(self.segment_sizes) - self.tombstone_count

    @property
    def delta_vectors(self) -> int:
        """Vectors outside the base segment."""
        return sum(self.segment_sizes[1:])

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> IndexState:
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in json.loads(text).items()})


class PreparedBase(Protocol):
    """A base built off to the side, waiting to be published."""

    @property
    def count(self) -> int:
        ...


class VectorIndex(Protocol):
    """One generation, opened for searching (shared by threads; never changes)."""

    dim: int

    @property
    def kind(self) -> str:
        """The structure as people read it: "ivf-sq8 + 2 deltas"."""
        ...

    @property
    def segment_count(self) -> int:
        ...

    @property
    def tombstone_count(self) -> int:
        ...

    def __len__(self) -> int:
        ...

    def search(self, queries: np.ndarray, k: int, only: IdSet | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query, best first; missing slots have id -1; ``only`` applied inside the kNN."""
        ...

    def live_ids(self) -> np.ndarray:
        """Every searchable id (for compaction)."""
        ...

    def warm(self) -> None:
        """Make the first searches as fast as the next (a searcher calls it on opening a generation; a compaction,
        which only reads the ids, does not): memory-mapped data paged in, or nothing where there is none."""
        ...


class VectorStore(Protocol):
    """Generations of vectors: published by writers, opened by searchers, compacted now and then."""

    #: Whether the store keeps each image's filter labels (and so must hear of label changes).
    keeps_labels: bool

    def state(self, generation: int) -> IndexState | None:
        ...

    def open(
        self, generation: int, embedder: tuple[str, str, int], reuse: VectorIndex | None = None
    ) -> VectorIndex:
        """Open ``generation`` (0: empty), refusing another embedder's vectors; what ``reuse`` already holds is not read again."""
        ...

    def publish_delta(
        self,
        previous: IndexState | None,
        generation: int,
        embedder: tuple[str, str, int],
        added_ids: np.ndarray,
        read: VectorReader,
        removed_ids: np.ndarray,
        relabelled_ids: np.ndarray | None = None,
        labels: LabelReader | None = None,
    ) -> IndexState:
        """``previous`` plus ``added_ids`` (vectors read in batches with ``read``), minus ``removed_ids``; a store
        that keeps labels also reads them (``labels``) for the added and the ``relabelled_ids``."""
        ...

    def build_base(
        self, embedder: tuple[str, str, int], ids: np.ndarray, read: VectorReader, folds: IndexState | None = None,
        labels: LabelReader | None = None,
    ) -> PreparedBase:
        """A new base of ``ids`` (vectors read in batches), prepared without the write lock; nothing is in force yet.

        A compaction names the state it folds (``folds``).
        """
        ...

    def discard(self, base: Any) -> None:
        """Drop a prepared base that will not be published."""
        ...

    def publish_base(
        self,
        generation: int,
        embedder: tuple[str, str, int],
        base: Any,
        later: IndexState | None = None,
        compacted: bool = False,
    ) -> IndexState:
        """A state whose base is ``base`` (from this store's :meth:`build_base`).

        A compaction passes the state in force now (``later``): what writes
        added or removed since the state it folded is kept.
        """
        ...

    def sweep(self, keep: int) -> None:
        """Drop what generation ``keep`` does not use (after it is recorded, or after a crash)."""
        ...

    def describe(self, state: IndexState | None) -> Mapping[str, Any]:
        """Structure, sizes and dates of ``state`` for ``imagesearch info`` (without opening the vectors)."""
        ...


def batches(ids: np.ndarray, size: int) -> Iterable[np.ndarray]:
    """``ids`` in slices of ``size``."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
