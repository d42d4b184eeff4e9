"""Vectors in PostgreSQL with pgvector: one table, an HNSW index, for users who want one database server.

Chosen by ``vector_store = "pgvector"``; the database is ``index_url``, by
default the catalog's own (``catalog_url``).  Rows are updated in place (an
added image is one row, a removed one is marked), so there is no segment and
nothing to compact: PostgreSQL keeps its HNSW graph up to date and VACUUM
reclaims removed rows.

**Two systems, one truth.**  The vectors are written in their own transaction,
before the catalog records the generation that contains them.  Each row
carries the generation that added it (``added_in``) and the one that removed
it (``removed_in``), and a search at generation G sees exactly the rows added
at or before G and not removed by then.  A write killed between the two
commits therefore leaves rows of a generation the catalog never recorded:
invisible to every search, and undone by the next write (which starts by
undoing whatever is newer than the generation it builds on, then sweeps).  Nothing is lost either: the catalog
keeps every full-precision embedding, so ``imagesearch reindex`` rebuilds the
table from it.

Vectors are stored at full dimension in half precision (``halfvec``; HNSW
indexes it up to 4,000 dimensions) and scored by inner product, so scores
are the same cosines as the embedded index's re-ranked ones (to float16
rounding).  Each row also keeps its image's filter labels (``ship:FR``,
``cat:101``; ``catalog/labels.py``), so a filter is a condition on them in
the same query (``labels && ARRAY[...]``, a GIN index), walked with pgvector's
iterative index scan; one that keeps few rows is scanned exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from ..config import ConfigError
from .base import IdSet, IndexState, LabelReader, VectorReader, batches
from .live import LiveIndex, checked_state, describe_live

TABLE = "image_vectors"
STATES = "vector_generations"
#: Rows read from the catalog and written per batch.
BATCH = 2_000
#: pgvector's largest ``hnsw.ef_search``; the engine asks for k up to a few hundred.
MAX_EF_SEARCH = 1_000
#: Earlier generation states kept after a write (a search that read the generation just before may still open it).
KEPT_STATES = 8
#: Below this share of the rows, a filter's ids are scanned exactly (the HNSW walk would refuse most nodes).
EXACT_BELOW = 0.05


@dataclass(frozen=True)
class PgVectorSettings:
    hnsw_m: int = 16
    ef_construction: int = 64
    ef_search: int = 128

    @property
    def kind(self) -> str:
        return f"pgvector-hnsw{self.hnsw_m}"


def _vector_text(vector: np.ndarray) -> str:
    """pgvector's text form of a vector, for COPY (float16 keeps about 3 significant digits; 7 lose nothing)."""
    return "[" + ",".join(f"{value:.7g}" for value in np.asarray(vector, dtype=np.float32)) + "]"


@dataclass(frozen=True)
class PreparedTable:
    """A base built into a table of its own (``reindex``), swapped in by :meth:`PgVectorStore.publish_base`."""

    table: str
    count: int
    dim: int


class PgVectorIndex(LiveIndex):
    """The rows visible at one generation (the table itself is shared and live)."""

    def __init__(self, engine: Engine, generation: int, dim: int, count: int, settings: PgVectorSettings) -> None:
        super().__init__(settings.kind, generation, dim, count)
        self.engine = engine
        self.settings = settings

    def _visible(self) -> str:
        return f"added_in <= {int(self.generation)} AND (removed_in IS NULL OR removed_in > {int(self.generation)})"

    def search(self, queries: np.ndarray, k: int, only: IdSet | None = None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(queries)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        if not self.count or self.generation == 0:
            return scores, ids
        condition, parameters = self._visible(), {}
        exact = False
        if only is not None:
            if only.clauses:
                for number, clause in enumerate(only.clauses):
                    condition += f" AND labels && CAST(:clause{number} AS text[])"
                    parameters[f"clause{number}"] = sorted(clause)
            else:
                condition += " AND id = ANY(:only)"
                parameters["only"] = np.flatnonzero(only.mask).tolist()
            exact = len(only) < EXACT_BELOW * self.count
        with self.engine.connect() as connection, connection.begin():
            connection.execute(text(f"SET LOCAL hnsw.ef_search = {min(MAX_EF_SEARCH, max(self.settings.ef_search, k))}"))
            connection.execute(text("SET LOCAL hnsw.iterative_scan = strict_order"))
            if exact:  # a few kept rows: read them all rather than walk a graph that refuses most of it
                connection.execute(text("SET LOCAL enable_indexscan = off"))
            for row, query in enumerate(queries):
                found = connection.execute(
                    text(f"SELECT id, -(embedding <#> CAST(CAST(:query AS real[]) AS halfvec)) AS score FROM {TABLE} WHERE {condition} "
                         "ORDER BY embedding <#> CAST(CAST(:query AS real[]) AS halfvec) LIMIT :k"),
                    {"query": query.tolist(), "k": k, **parameters},
                ).all()
                if found:
                    ids[row, : len(found)] = [item[0] for item in found]
                    scores[row, : len(found)] = [item[1] for item in found]
        return scores, ids

    def live_ids(self) -> np.ndarray:
        with self.engine.connect() as connection:
            return np.fromiter(connection.scalars(text(f"SELECT id FROM {TABLE} WHERE {self._visible()} ORDER BY id")), np.int64)


class PgVectorStore:
    """Generations of one ``image_vectors`` table (see the module's docstring for how they stay in step)."""

    keeps_labels = True

    def __init__(self, engine: Engine, settings: PgVectorSettings = PgVectorSettings(), read_only: bool = False) -> None:
        self.engine = engine
        self.settings = settings
        where = engine.url.render_as_string(hide_password=True)
        try:
            with engine.connect() as connection:
                version = connection.scalar(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
            if read_only:
                return
            with self._transaction() as connection:
                if version is None:
                    connection.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
                connection.execute(text(f"CREATE TABLE IF NOT EXISTS {STATES} (generation integer PRIMARY KEY, state text NOT NULL)"))
        except OperationalError as exc:
            raise ConfigError(f"cannot open the pgvector database {where}: {str(exc.orig).strip().splitlines()[0]}") from None
        except DBAPIError as exc:  # e.g. not allowed to create the extension
            raise ConfigError(
                f"the pgvector database {where} has no usable `vector` extension (pgvector >= 0.8; an administrator runs "
                f"CREATE EXTENSION vector): {str(exc.orig).strip().splitlines()[0]}"
            ) from None

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A write transaction; writers of the vectors queue on their own advisory lock."""
        with self.engine.connect() as connection, connection.begin():
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('imagesearch vectors'))"))
            yield connection

    def _create(self, connection: Connection, table: str, dim: int) -> None:
        connection.execute(text(
            f"CREATE TABLE IF NOT EXISTS {table} (id bigint PRIMARY KEY, embedding halfvec({int(dim)}) NOT NULL, "
            "added_in integer NOT NULL, removed_in integer, labels text[] NOT NULL DEFAULT '{}', labelled_in integer NOT NULL DEFAULT 0)"
        ))
        connection.execute(text(f"CREATE INDEX IF NOT EXISTS {table}_labels ON {table} USING gin (labels)"))

    def _index(self, connection: Connection, table: str) -> None:
        """The HNSW index, built once the first rows are in (a bulk build is much faster than one insert at a time)."""
        connection.execute(text(
            f"CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} USING hnsw (embedding halfvec_ip_ops) "
            f"WITH (m = {int(self.settings.hnsw_m)}, ef_construction = {int(self.settings.ef_construction)})"
        ))

    def state(self, generation: int) -> IndexState | None:
        with self.engine.connect() as connection:
            raw = connection.scalar(text(f"SELECT state FROM {STATES} WHERE generation = :generation"), {"generation": generation})
        if raw is None:
            return None
        return IndexState.from_json(raw)

    def open(self, generation: int, embedder: tuple[str, str, int], reuse: Any = None) -> PgVectorIndex:
        dim = embedder[2]
        if generation == 0:
            return PgVectorIndex(self.engine, 0, dim, 0, self.settings)
        state = checked_state(self.state, generation, embedder, "the pgvector table")
        return PgVectorIndex(self.engine, generation, state.dim, state.count, self.settings)

    def _record(self, connection: Connection, state: IndexState) -> IndexState:
        connection.execute(
            text(f"INSERT INTO {STATES} (generation, state) VALUES (:generation, :state) "
                 "ON CONFLICT (generation) DO UPDATE SET state = EXCLUDED.state"),
            {"generation": state.generation, "state": state.to_json()},
        )
        return state

    def _count(self, connection: Connection, table: str, generation: int) -> int:
        return int(connection.scalar(text(
            f"SELECT count(*) FROM {table} WHERE added_in <= :g AND (removed_in IS NULL OR removed_in > :g)"
        ), {"g": generation}) or 0)

    def _undo_after(self, connection: Connection, generation: int, labels: LabelReader | None = None) -> None:
        """Forget what generations after ``generation`` wrote: rows they added, marks of rows they removed, and
        (read again from the catalog with ``labels``) labels they changed."""
        connection.execute(text(f"DELETE FROM {TABLE} WHERE added_in > :g"), {"g": generation})
        connection.execute(text(f"UPDATE {TABLE} SET removed_in = NULL WHERE removed_in > :g"), {"g": generation})
        if labels is not None:
            stale = np.fromiter(connection.scalars(text(f"SELECT id FROM {TABLE} WHERE labelled_in > :g"), {"g": generation}), np.int64)
            self._relabel(connection, stale, labels, generation)

    def _relabel(self, connection: Connection, ids: np.ndarray, labels: LabelReader, generation: int) -> None:
        for chunk in batches(ids, BATCH):
            found = labels(chunk)
            if found:
                connection.execute(
                    text(f"UPDATE {TABLE} SET labels = :labels, labelled_in = :generation WHERE id = :id"),
                    [{"id": int(image_id), "labels": sorted(values), "generation": generation} for image_id, values in found.items()],
                )

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
        """Add rows (``added_in`` = ``generation``), mark removed ones and relabel changed ones, in one transaction."""
        name, version, dim = embedder
        with self._transaction() as connection:
            self._create(connection, TABLE, dim)
            self._undo_after(connection, generation - 1, labels)  # a write that died before the catalog recorded it
            for chunk in batches(np.asarray(added_ids, dtype=np.int64), BATCH):
                found, vectors = read(chunk)
                tags = labels(found) if labels is not None and len(found) else {}
                if len(found):
                    connection.execute(
                        text(f"INSERT INTO {TABLE} (id, embedding, added_in, labels, labelled_in) "
                             "VALUES (:id, CAST(CAST(:embedding AS real[]) AS halfvec), :generation, :labels, :generation) "
                             "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, added_in = EXCLUDED.added_in, removed_in = NULL, "
                             "labels = EXCLUDED.labels, labelled_in = EXCLUDED.labelled_in"),
                        [{"id": int(i), "embedding": v.tolist(), "generation": generation, "labels": sorted(tags.get(int(i), ()))}
                         for i, v in zip(found, vectors)],
                    )
            if labels is not None and relabelled_ids is not None and len(relabelled_ids):
                self._relabel(connection, np.asarray(relabelled_ids, dtype=np.int64), labels, generation)
            self._index(connection, TABLE)
            removed = np.asarray(removed_ids, dtype=np.int64)
            if len(removed):
                connection.execute(
                    text(f"UPDATE {TABLE} SET removed_in = :generation WHERE id = ANY(:ids) AND removed_in IS NULL"),
                    {"generation": generation, "ids": removed.tolist()},
                )
            count = self._count(connection, TABLE, generation)
            state = IndexState(generation, name, version, dim, (TABLE,), (count,),
                               compacted_at=previous.compacted_at if previous else None)
            return self._record(connection, state)

    def build_base(
        self, embedder: tuple[str, str, int], ids: np.ndarray, read: VectorReader, folds: IndexState | None = None,
        labels: LabelReader | None = None,
    ) -> PreparedTable:
        """Every vector of ``ids`` copied into a new table (visible at every generation), indexed after the copy."""
        _, _, dim = embedder
        staging = f"{TABLE}_next"
        with self._transaction() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {staging}"))
            self._create(connection, staging, dim)
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            count = 0
            with cursor.copy(f"COPY {staging} (id, embedding, added_in, labels) FROM STDIN") as copy:
                for chunk in batches(np.asarray(ids, dtype=np.int64), BATCH):
                    found, vectors = read(chunk)
                    tags = labels(found) if labels is not None and len(found) else {}
                    for image_id, vector in zip(found, vectors):
                        copy.write_row((int(image_id), _vector_text(vector), 0, sorted(tags.get(int(image_id), ()))))
                    count += len(found)
            self._index(connection, staging)
        return PreparedTable(staging, count, dim)

    def discard(self, base: Any) -> None:
        with self._transaction() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {base.table}"))

    def publish_base(
        self, generation: int, embedder: tuple[str, str, int], base: Any, later: IndexState | None = None, compacted: bool = False
    ) -> IndexState:
        """Swap the prepared table in (one transaction).  ``later`` never has changes to carry: a base is built only by
        ``reindex``, under the write lock (compaction has nothing to fold here)."""
        name, version, _ = embedder
        with self._transaction() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
            connection.execute(text(f"ALTER TABLE {base.table} RENAME TO {TABLE}"))
            connection.execute(text(f"ALTER INDEX {base.table}_hnsw RENAME TO {TABLE}_hnsw"))
            connection.execute(text(f"ALTER INDEX {base.table}_labels RENAME TO {TABLE}_labels"))
            state = IndexState(generation, name, version, base.dim, (TABLE,), (base.count,))
            return self._record(connection, state)

    def sweep(self, keep: int) -> None:
        """Undo what generations after ``keep`` wrote (never recorded by the catalog), and drop rows removed by ``keep``."""
        with self._transaction() as connection:
            if not connection.scalar(text("SELECT to_regclass(:table)"), {"table": TABLE}):
                return
            self._undo_after(connection, keep)
            connection.execute(text(f"DELETE FROM {TABLE} WHERE removed_in <= :keep"), {"keep": keep})
            # States past ``keep`` were never recorded; a few before it stay for searches still opening them.
            connection.execute(text(f"DELETE FROM {STATES} WHERE generation > :keep OR generation < :keep - {KEPT_STATES}"), {"keep": keep})

    def describe(self, state: IndexState | None) -> Mapping[str, Any]:
        if state is None:
            return describe_live(self.settings.kind, None)
        with self.engine.connect() as connection:
            size = connection.scalar(text("SELECT pg_total_relation_size(to_regclass(:table))"), {"table": TABLE}) or 0
        return describe_live(self.settings.kind, state, int(size))
