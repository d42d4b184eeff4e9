"""Vectors in Milvus (standalone, a cluster, or Zilliz Cloud), through ``pymilvus.MilvusClient``.

Chosen by ``vector_store = "milvus"`` with ``index_url = "http://host:19530"``
(and ``index_token = "user:password"`` or an API key).  Each image is one
entity, upserted or marked removed per change: nothing is republished, and
there is nothing for ``imagesearch compact`` to fold (Milvus compacts its own
segments).

**Two systems, one truth**, as with pgvector (``pgvector_store.py``): each
entity carries the generation that added it (``added_in``) and the one that
removed it (``removed_in``; :data:`NEVER` while it is live), and a search at
generation G filters on them, so it sees exactly what the catalog recorded.
An import killed after the Milvus write and before the catalog's commit
leaves entities of a generation no search asks for; the next write starts by
undoing everything newer than the generation it builds on.  The catalog
keeps every full-precision embedding, so ``imagesearch reindex`` can always
rebuild the collection.

Index type and search parameters are configurable (``milvus_index``: HNSW by
default, with ``hnsw_m``, ``ef_construction`` and ``ef_search``).  Each
entity also keeps its image's filter labels (``ship:FR``, ``cat:101``;
``catalog/labels.py``) in an array field, so a ship-to or category filter is
pushed down as ``array_contains_any`` expressions in the search itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import IdSet, IndexState, LabelReader, VectorReader, batches
from .live import LiveIndex, checked_state, describe_live

#: ``removed_in`` of a live entity (Milvus scalar fields cannot be null in every version).
NEVER = 2**62
#: Entities per upsert, and ids per query expression.
BATCH = 1_000
#: Milvus's largest search limit (topk) and HNSW ef.
MAX_LIMIT = 16_384
#: Labels an entity may carry (every country of the world and two categories fit), and their length.
MAX_LABELS = 512
LABEL_LENGTH = 64


@dataclass(frozen=True)
class MilvusSettings:
    collection: str = "imagesearch_vectors"
    index_type: str = "HNSW"
    hnsw_m: int = 16
    ef_construction: int = 64
    ef_search: int = 128

    @property
    def kind(self) -> str:
        return f"milvus-{self.index_type.lower()}"

    @property
    def states(self) -> str:
        return f"{self.collection}_states"


@dataclass(frozen=True)
class PreparedCollection:
    """A base built into a collection of its own (``reindex``), swapped in by :meth:`MilvusStore.publish_base`."""

    name: str
    count: int
    dim: int


def _visible(generation: int) -> str:
    return f"added_in <= {int(generation)} and removed_in > {int(generation)}"


class MilvusIndex(LiveIndex):
    """The entities visible at one generation (the collection itself is shared and live)."""

    def __init__(self, client: Any, generation: int, dim: int, count: int, settings: MilvusSettings) -> None:
        super().__init__(settings.kind, generation, dim, count)
        self.client = client
        self.settings = settings

    def search(self, queries: np.ndarray, k: int, only: IdSet | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        scores = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        if not self.count or self.generation == 0:
            return scores, ids
        expression = _visible(self.generation)
        if only is not None and only.clauses:
            expression += "".join(f" and array_contains_any(labels, {json.dumps(sorted(clause))})" for clause in only.clauses)
        elif only is not None:
            expression += f" and id in {np.flatnonzero(only.mask).tolist()}"
        limit = min(k, MAX_LIMIT)
        results = self.client.search(
            self.settings.collection, data=queries.tolist(), filter=expression, limit=limit, anns_field="embedding",
            search_params={"metric_type": "IP", "params": {"ef": min(MAX_LIMIT, max(self.settings.ef_search, limit))}},
            output_fields=[], consistency_level="Strong",
        )
        for row, hits in enumerate(results):
            for column, hit in enumerate(hits):
                ids[row, column] = int(hit["id"])
                scores[row, column] = float(hit["distance"])
        return scores, ids

    def live_ids(self) -> np.ndarray:
        found: list[int] = []
        iterator = self.client.query_iterator(self.settings.collection, batch_size=BATCH * 10, filter=_visible(self.generation),
                                              output_fields=["id"], consistency_level="Strong")
        while rows := iterator.next():
            found.extend(int(row["id"]) for row in rows)
        iterator.close()
        return np.sort(np.asarray(found, dtype=np.int64))


class MilvusStore:
    """Generations of one Milvus collection (see the module's docstring for how they stay in step with the catalog)."""

    keeps_labels = True

    def __init__(self, uri: str, token: str = "", settings: MilvusSettings = MilvusSettings()) -> None:
        from pymilvus import MilvusClient  # only this backend needs it

        self.client = _connect(MilvusClient, uri, token)
        self.settings = settings
        if self.client.has_collection(settings.collection):  # loaded for searching (a restart of Milvus may release it)
            self.client.load_collection(settings.collection)
        if not self.client.has_collection(settings.states):
            schema = self.client.create_schema(auto_id=False)
            schema.add_field("generation", _types().INT64, is_primary=True)
            schema.add_field("state", _types().VARCHAR, max_length=65_535)
            schema.add_field("unused", _types().FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
            index = self.client.prepare_index_params()
            index.add_index("unused", index_type="FLAT", metric_type="L2")
            self.client.create_collection(settings.states, schema=schema, index_params=index, consistency_level="Strong")

    def _create(self, name: str, dim: int) -> None:
        if self.client.has_collection(name):
            return
        types = _types()
        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", types.INT64, is_primary=True)
        schema.add_field("embedding", types.FLOAT_VECTOR, dim=int(dim))
        schema.add_field("added_in", types.INT64)
        schema.add_field("removed_in", types.INT64)
        schema.add_field("labels", types.ARRAY, element_type=types.VARCHAR, max_capacity=MAX_LABELS, max_length=LABEL_LENGTH)
        schema.add_field("labelled_in", types.INT64)
        index = self.client.prepare_index_params()
        parameters = {"M": self.settings.hnsw_m, "efConstruction": self.settings.ef_construction} if self.settings.index_type.upper().startswith("HNSW") else {}
        index.add_index("embedding", index_type=self.settings.index_type, metric_type="IP", params=parameters)
        self.client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")

    def state(self, generation: int) -> IndexState | None:
        rows = self.client.query(self.settings.states, filter=f"generation == {int(generation)}", output_fields=["state"],
                                 consistency_level="Strong")
        if not rows:
            return None
        return IndexState.from_json(rows[0]["state"])

    def open(self, generation: int, embedder: tuple[str, str, int], reuse: Any = None) -> MilvusIndex:
        dim = embedder[2]
        if generation == 0:
            return MilvusIndex(self.client, 0, dim, 0, self.settings)
        state = checked_state(self.state, generation, embedder, "Milvus")
        return MilvusIndex(self.client, generation, state.dim, state.count, self.settings)

    def _record(self, state: IndexState) -> IndexState:
        self.client.upsert(self.settings.states, [{"generation": state.generation, "state": state.to_json(),
                                                    "unused": [0.0, 0.0]}])
        return state

    def _rows(self, collection: str, expression: str) -> list[dict[str, Any]]:
        return list(self.client.query(collection, filter=expression, output_fields=list(FIELDS), consistency_level="Strong"))

    def _mark(self, collection: str, ids: np.ndarray, removed_in: int) -> None:
        """Set ``removed_in`` of the given live entities (an upsert of the whole entity: the portable way)."""
        for chunk in batches(ids, BATCH):
            rows = self._rows(collection, f"id in {chunk.tolist()} and removed_in == {NEVER}")
            if rows:
                self.client.upsert(collection, [{**row, "removed_in": removed_in} for row in rows])

    def _undo_after(self, collection: str, generation: int, labels: LabelReader | None = None) -> None:
        """Forget what generations after ``generation`` wrote: entities they added, marks of entities they removed,
        and (read again from the catalog with ``labels``) labels they changed."""
        self.client.delete(collection, filter=f"added_in > {int(generation)}")
        rows = self._rows(collection, f"removed_in > {int(generation)} and removed_in < {NEVER}")
        if rows:
            self.client.upsert(collection, [{**row, "removed_in": NEVER} for row in rows])
        if labels is not None:
            stale = self.client.query(collection, filter=f"labelled_in > {int(generation)}", output_fields=["id"], consistency_level="Strong")
            self._relabel(collection, np.array([row["id"] for row in stale], np.int64), labels, generation)

    def _relabel(self, collection: str, ids: np.ndarray, labels: LabelReader, generation: int) -> None:
        """New labels for the given entities (an upsert of the whole entity: the portable way)."""
        for chunk in batches(ids, BATCH):
            found = labels(chunk)
            rows = self._rows(collection, f"id in {chunk.tolist()}")
            updated = [{**row, "labels": sorted(found[int(row["id"])]), "labelled_in": generation} for row in rows if int(row["id"]) in found]
            if updated:
                self.client.upsert(collection, updated)

    def _count(self, collection: str, generation: int) -> int:
        rows = self.client.query(collection, filter=_visible(generation), output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"]) if rows else 0

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
        """Upsert the added entities (``added_in`` = ``generation``), mark the removed ones, relabel the changed ones,
        record the state."""
        name, version, dim = embedder
        collection = self.settings.collection
        self._create(collection, dim)
        self._undo_after(collection, generation - 1, labels)
        for chunk in batches(np.asarray(added_ids, dtype=np.int64), BATCH):
            found, vectors = read(chunk)
            if len(found):
                self.client.upsert(collection, _entities(found, vectors, labels, generation, generation))
        self._mark(collection, np.asarray(removed_ids, dtype=np.int64), generation)
        if labels is not None and relabelled_ids is not None and len(relabelled_ids):
            self._relabel(collection, np.asarray(relabelled_ids, dtype=np.int64), labels, generation)
        state = IndexState(generation, name, version, dim, (collection,), (self._count(collection, generation),),
                           compacted_at=previous.compacted_at if previous else None)
        return self._record(state)

    def build_base(
        self, embedder: tuple[str, str, int], ids: np.ndarray, read: VectorReader, folds: IndexState | None = None,
        labels: LabelReader | None = None,
    ) -> PreparedCollection:
        """Every vector of ``ids`` in a new collection (visible at every generation)."""
        _, _, dim = embedder
        staging = f"{self.settings.collection}_next"
        if self.client.has_collection(staging):
            self.client.drop_collection(staging)
        self._create(staging, dim)
        count = 0
        for chunk in batches(np.asarray(ids, dtype=np.int64), BATCH):
            found, vectors = read(chunk)
            if len(found):
                self.client.upsert(staging, _entities(found, vectors, labels, 0, 0))
                count += len(found)
        return PreparedCollection(staging, count, dim)

    def discard(self, base: Any) -> None:
        if self.client.has_collection(base.name):
            self.client.drop_collection(base.name)

    def publish_base(
        self, generation: int, embedder: tuple[str, str, int], base: Any, later: IndexState | None = None, compacted: bool = False
    ) -> IndexState:
        """Swap the prepared collection in (a base is built only by ``reindex``, under the write lock)."""
        name, version, _ = embedder
        if self.client.has_collection(self.settings.collection):
            self.client.drop_collection(self.settings.collection)
        self.client.rename_collection(base.name, self.settings.collection)
        self.client.load_collection(self.settings.collection)  # a renamed collection is not necessarily loaded
        return self._record(IndexState(generation, name, version, base.dim, (self.settings.collection,), (base.count,)))

    def sweep(self, keep: int) -> None:
        """Undo generations after ``keep`` (never recorded) and drop entities removed by ``keep``."""
        collection = self.settings.collection
        if not self.client.has_collection(collection):
            return
        self._undo_after(collection, keep)
        self.client.delete(collection, filter=f"removed_in <= {int(keep)}")
        self.client.delete(self.settings.states, filter=f"generation > {int(keep)} or generation < {int(keep) - 8}")

    def describe(self, state: IndexState | None) -> Mapping[str, Any]:
        return describe_live(self.settings.kind, state)  # (Milvus does not say how much memory a collection takes)


FIELDS = ("id", "embedding", "added_in", "removed_in", "labels", "labelled_in")


def _entities(ids: np.ndarray, vectors: np.ndarray, labels: LabelReader | None, added_in: int, labelled_in: int) -> list[dict[str, Any]]:
    tags = labels(ids) if labels is not None else {}
    return [
        {"id": int(image_id), "embedding": vector.tolist(), "added_in": added_in, "removed_in": NEVER,
         "labels": sorted(tags.get(int(image_id), ())), "labelled_in": labelled_in}
        for image_id, vector in zip(ids, vectors)
    ]


#: Pauses between attempts to connect (a server starting, or a gRPC connection the server just closed).
CONNECT_RETRIES = (0.5, 1.0, 2.0)


def _connect(client: Any, uri: str, token: str) -> Any:
    """A client of ``uri``, retried briefly: gRPC servers close idle or over-pinged connections (GOAWAY), and the
    next connect can land in the moment the old one is being torn down."""
    def attempt() -> Any:
        connected = client(uri=uri, token=token)
        connected.list_collections()  # the connection is only known to work once a call went through
        return connected

    for pause in CONNECT_RETRIES:
        try:
            return attempt()
        except Exception:  # pymilvus's and grpc's own types
            time.sleep(pause)
    return attempt()  # the last attempt's error is the one reported


def _types() -> Any:
    from pymilvus import DataType

    return DataType
