"""Index states on disk: immutable segments, tombstone files and one small state file per generation.

A write publishes a new *state* (``state-<n>.json``) that names its segments
(``seg-<m>/``, each an immutable FAISS index) and its tombstone file
(``tomb-<n>.npy``, the removed ids not yet compacted away).  Only what the
write changes is written: a new segment for added images, a tombstone file
for removed ones, and the state.  Everything is written to a temporary name,
fsynced and renamed *before* the catalog transaction that records ``n``
commits, so the catalog and the index always match; files no state in force
refers to are swept after the commit (or after a crash, by the next write).

Data directories of the earlier layout (one whole index per ``gen-<n>/``)
are read as a state of one segment, and rewritten by the next write.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import CatalogError
from .base import IndexState, LabelReader, VectorIndex, VectorReader, batches
from .faiss_index import (
    EXACT_FILE,
    EXACT_IDS_FILE,
    STATE_FILE,
    FaissIndex,
    FaissSettings,
    SegmentBuilder,
)
from .live import embedder_mismatch
from .projection import SAMPLE, Projection
from .segments import SegmentedIndex, describe

LEGACY_MANIFEST = "manifest.json"
#: The state file's layout: 1 had no reductions, 2 names them.  A newer one is refused with the way out.
LAYOUT = 2
KNOWN_FIELDS = {item.name for item in fields(IndexState)}
NUMBERED = re.compile(r"(?:seg|proj)-(\d{8})(?:\.npy)?")
#: Vectors read from the catalog at a time while a segment is built (about 64 MB of 1280-d float32).
BUILD_BATCH = 12_500
#: A reduction is learned only from at least this many vectors (fewer are kept at full dimension).
MIN_LEARN = 1024


@dataclass
class BaseBuild:
    """A base segment built in memory, with the reduction its vectors went through."""

    segment: FaissIndex
    reduction: Projection | None
    #: Where its files are being written (renamed to a segment folder at publication).
    staging: Path
    #: The segments and tombstones of the state it folds (a compaction), read when the build began.
    folded: tuple[str, ...] = ()
    folded_tombstones: np.ndarray | None = None

    @property
    def count(self) -> int:
        return len(self.segment)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(directory: Path) -> None:
    """Make the files of ``directory`` and its entries durable."""
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class FaissStore:
    """The ``index/`` folder of a data directory: the embedded (FAISS) vector store."""

    #: Filters reach FAISS as id sets read from SQL: a label change costs it nothing.
    keeps_labels = False

    def __init__(self, root: Path, settings: FaissSettings = FaissSettings()) -> None:
        self.root = root
        self.settings = settings
        root.mkdir(parents=True, exist_ok=True)

    # -- reading -------------------------------------------------------------

    def _state_path(self, generation: int) -> Path:
        return self.root / f"state-{generation:08d}.json"

    def legacy_path(self, generation: int) -> Path:
        return self.root / f"gen-{generation:08d}"

    def state(self, generation: int) -> IndexState | None:
        """The state of ``generation`` (None for 0, a new catalog, or if it is missing)."""
        if generation == 0:
            return None
        path = self._state_path(generation)
        try:
            text = path.read_text()
        except FileNotFoundError:  # (swept by a newer generation meanwhile, or never written)
            text = None
        if text is not None:
            data = json.loads(text)
            layout = data.pop("layout", 1)
            if layout > LAYOUT or not set(data) <= KNOWN_FIELDS:
                raise CatalogError(
                    f"{path} was written by a newer version of imagesearch (index layout {layout}; this version reads up to "
                    f"{LAYOUT}): upgrade imagesearch, or rebuild the index from the catalog with `imagesearch reindex`"
                )
            return IndexState(**{
                **data, **{key: tuple(data.get(key, ())) for key in ("segments", "segment_sizes", "projections")},
            })
        legacy = self.legacy_path(generation) / LEGACY_MANIFEST
        if legacy.exists():  # the earlier layout: one whole index; its own tombstones live inside it
            data = json.loads(legacy.read_text())
            return IndexState(
                generation, data["embedder_name"], data["embedder_version"], int(data["dim"]),
                (self.legacy_path(generation).name,), (int(data["count"]),), None, 0, float(data["created_at"]),
            )
        return None

    def open(
        self, generation: int, embedder: tuple[str, str, int], reuse: VectorIndex | None = None
    ) -> SegmentedIndex:
        """Open ``generation`` (0: a new, empty index), refusing another embedder's vectors.

        Segments and reductions ``reuse`` already holds (a segment never
        changes) are not read again, so a serving process opens only the new ones.
        """
        name, version, dim = embedder
        if generation == 0:
            return SegmentedIndex(dim, [])
        state = self.state(generation)
        if state is None:
            raise CatalogError(
                f"index generation {generation} is missing from {self.root}; rebuild it from the catalog with `imagesearch reindex`"
            )
        if (state.embedder_name, state.embedder_version) != (name, version):
            raise CatalogError(embedder_mismatch(state, name, version))
        known = dict(reuse.segments) if isinstance(reuse, SegmentedIndex) else {}
        projections = reuse.projections if isinstance(reuse, SegmentedIndex) else {}
        try:
            segments = [
                (segment, known[segment] if segment in known else FaissIndex.load(self.root / segment, self.settings))
                for segment in state.segments
            ]
            tombstones = np.load(self.root / state.tombstones) if state.tombstones else None
            reductions = {item: projections[item] if item in projections else Projection.load(self.root / item) for item in state.projections}
        except FileNotFoundError:
            # A writer published a newer generation and swept this one's files while they were being opened:
            # the caller reads the current generation again.
            raise CatalogError(f"index generation {generation} was replaced while it was being opened") from None
        return SegmentedIndex(state.dim, segments, tombstones, reductions)

    def projection_of(self, state: IndexState | None) -> str | None:
        """The reduction new segments of ``state`` use: its base's (None: full dimension)."""
        return self._segment_projection(state.segments[0]) if state is not None and state.segments else None

    # -- writing -------------------------------------------------------------

    def _next_name(self, prefix: str) -> str:
        numbers = [int(match.group(1)) for path in self.root.iterdir() if (match := NUMBERED.fullmatch(path.name))]
        return f"{prefix}-{max(numbers, default=0) + 1:08d}"

    def _staging(self, building: bool = False) -> Path:
        """A folder for a segment being built: ``.staging-*`` under the write lock; ``.building-<pid>-*`` for a
        compaction's base, built without the lock, which a sweep leaves alone while that process lives."""
        return Path(tempfile.mkdtemp(prefix=f".building-{os.getpid()}-" if building else ".staging-", dir=self.root))

    def _write_segment(self, index: FaissIndex, staging: Path, full_dim: int) -> str:
        """``index`` (its exact vectors already in ``staging``) as a new segment folder, durable before it has its name."""
        try:
            index.save(staging, full_dim)
            _fsync_dir(staging)
            name = self._next_name("seg")
            os.rename(staging, self.root / name)
            return name
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _write_file(self, name: str, write: Callable[[BinaryIO], object]) -> None:
        """A file written under a temporary name, fsynced, then renamed to ``name``."""
        descriptor, temporary = tempfile.mkstemp(prefix=".staging-", dir=self.root)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(temporary, self.root / name)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)

    def _learn(self, ids: np.ndarray, read: VectorReader) -> Projection | None:
        """A reduction learned from a random sample of ``ids``' vectors; None when the vectors stay as they are."""
        if self.settings.dim <= 0 or len(ids) < MIN_LEARN:
            return None
        sample = np.random.default_rng(len(ids)).choice(ids, min(len(ids), SAMPLE), replace=False)
        return Projection.learn((read(part)[1] for part in batches(np.sort(sample), BUILD_BATCH)), self.settings.dim)

    def _write_projection(self, projection: Projection) -> str:
        name = f"{self._next_name('proj')}.npy"
        self._write_file(name, projection.save)
        return name

    def _build(self, ids: np.ndarray, read: VectorReader, reduction: Projection | None, dim: int, staging: Path) -> FaissIndex:
        """A segment of ``ids``, their vectors read and reduced a batch at a time (memory: the segment plus one batch).

        A compact segment (reduced, or 8-bit codes) also gets its full-precision
        vectors, written to ``staging`` as they stream by, to re-rank its candidates.
        A build that fails removes ``staging``.
        """
        try:
            return self._build_into(ids, read, reduction, dim, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _build_into(self, ids: np.ndarray, read: VectorReader, reduction: Projection | None, dim: int, staging: Path) -> FaissIndex:
        ids = np.sort(np.asarray(ids, dtype=np.int64))
        reduce = reduction.apply if reduction else (lambda vectors: vectors)
        builder = SegmentBuilder(reduction.dim if reduction else dim, self.settings.structure_for(len(ids)), len(ids), self.settings)
        compact = reduction is not None or builder.structure == "ivf"
        if builder.train_size:
            sample = np.random.default_rng(len(ids) + 1).choice(ids, min(len(ids), builder.train_size), replace=False)
            builder.train(np.concatenate([reduce(read(part)[1]) for part in batches(np.sort(sample), BUILD_BATCH)]))
        kept: list[np.ndarray] = []
        with open(staging / EXACT_FILE, "wb") as exact:
            for part in batches(ids, BUILD_BATCH):
                found, vectors = read(part)  # ascending ids: the exact rows follow the same order
                if not len(found):
                    continue
                builder.add(found, reduce(vectors))
                if compact:
                    exact.write(np.ascontiguousarray(vectors, dtype=np.float16).tobytes())
                    kept.append(found)
        if compact and kept:
            np.save(staging / EXACT_IDS_FILE, np.concatenate(kept))
        else:
            (staging / EXACT_FILE).unlink()
        return builder.finish()

    def _publish(self, state: IndexState, tombstones: np.ndarray) -> IndexState:
        if len(tombstones):
            name = f"tomb-{state.generation:08d}.npy"
            self._write_file(name, lambda handle: np.save(handle, tombstones))
            state = replace(state, tombstones=name, tombstone_count=len(tombstones))
        else:
            state = replace(state, tombstones=None, tombstone_count=0)
        document = json.dumps({"layout": LAYOUT, **asdict(state)}).encode()
        self._write_file(self._state_path(state.generation).name, lambda handle: handle.write(document))
        _fsync_dir(self.root)
        return state

    def tombstones_of(self, state: IndexState | None) -> np.ndarray:
        if state is None or not state.tombstones:
            return np.zeros(0, np.int64)
        return np.asarray(np.load(self.root / state.tombstones), dtype=np.int64)

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
        """The next state: ``previous`` plus a segment of the added vectors, minus the removed ids (no labels:
        filters reach this store as id sets).

        Writes only the new segment (if anything was added), the tombstones and
        the state file; the caller records ``generation`` in its transaction.
        The first segment of an index learns the reduction; later ones use the base's.
        """
        name, version, dim = embedder
        added_ids = np.asarray(added_ids, dtype=np.int64)
        segments, sizes = (previous.segments, previous.segment_sizes) if previous else ((), ())
        projections = previous.projections if previous else ()
        if len(added_ids):
            if segments:
                projection = self.projection_of(previous)
                reduction = Projection.load(self.root / projection) if projection else None
            else:  # the first segment of an index learns the reduction
                reduction = self._learn(added_ids, read)
                projection = self._write_projection(reduction) if reduction else None
            staging = self._staging()
            segment = self._build(added_ids, read, reduction, dim, staging)
            segment.projection = projection
            segments, sizes = (*segments, self._write_segment(segment, staging, dim)), (*sizes, len(segment))
            if projection and projection not in projections:
                projections = (*projections, projection)
        tombstones = np.union1d(self.tombstones_of(previous), np.asarray(removed_ids, dtype=np.int64))
        state = IndexState(
            generation, name, version, dim, segments, sizes,
            compacted_at=previous.compacted_at if previous else None, projections=projections,
        )
        return self._publish(state, tombstones)

    def build_base(
        self, embedder: tuple[str, str, int], ids: np.ndarray, read: VectorReader, folds: IndexState | None = None,
        labels: LabelReader | None = None,
    ) -> BaseBuild:
        """A new base of ``ids`` in memory, its reduction learned anew; nothing is written (see :meth:`publish_base`).

        A compaction builds it without the write lock, folding the state
        ``folds``: files written now could be swept by a concurrent write, so
        they are written at publication, and the tombstones folded are read now.
        """
        folded_tombstones = self.tombstones_of(folds)
        ids = np.asarray(ids, dtype=np.int64)
        reduction = self._learn(ids, read)
        staging = self._staging(building=True)
        segment = self._build(ids, read, reduction, embedder[2], staging)
        return BaseBuild(segment, reduction, staging, folds.segments if folds else (), folded_tombstones)

    def discard(self, base: BaseBuild) -> None:
        """Drop a base that will not be published (its compaction found the index rebuilt meanwhile)."""
        shutil.rmtree(base.staging, ignore_errors=True)

    def publish_base(
        self,
        generation: int,
        embedder: tuple[str, str, int],
        base: BaseBuild,
        later: IndexState | None = None,
        compacted: bool = False,
    ) -> IndexState:
        """A state whose base is ``base`` (a rebuild, or a compaction).

        A compaction's base folded an earlier state; the segments and
        tombstones that writes added since (in ``later``, the state in force
        now) are kept as they are.
        """
        name, version, dim = embedder
        kept: tuple[tuple[str, int], ...] = ()
        newer = np.zeros(0, np.int64)
        if later is not None and base.folded:
            folded = len(base.folded)
            kept = tuple(zip(later.segments[folded:], later.segment_sizes[folded:], strict=True))
            newer = np.setdiff1d(self.tombstones_of(later), base.folded_tombstones if base.folded_tombstones is not None else [])
        base.segment.projection = self._write_projection(base.reduction) if base.reduction else None
        segments = ((self._write_segment(base.segment, base.staging, dim), len(base.segment)), *kept)
        used = [base.segment.projection, *(self._segment_projection(segment) for segment, _ in kept)]
        state = IndexState(
            generation, name, version, dim, tuple(item[0] for item in segments), tuple(item[1] for item in segments),
            compacted_at=time.time() if compacted else None, projections=tuple(dict.fromkeys(item for item in used if item)),
        )
        return self._publish(state, newer)

    def _segment_projection(self, segment: str) -> str | None:
        return json.loads((self.root / segment / STATE_FILE).read_text()).get("projection")

    def sweep(self, keep: int) -> None:
        """Delete every file the state of generation ``keep`` does not use, and staging leftovers."""
        state = self.state(keep)
        used = set(state.segments) | set(state.projections) | {state.tombstones} if state else set()
        used.add(self._state_path(keep).name)
        for path in self.root.iterdir():
            if path.name in used:
                continue
            if path.name.startswith(".building-") and _alive(int(path.name.split("-")[1])):
                continue  # a compaction of a live process is building its base here
            if path.name.startswith((".staging-", ".building-", "seg-", "gen-", "tomb-", "state-", "proj-")):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    # -- describing ------------------------------------------------------------

    def describe(self, state: IndexState | None) -> dict[str, Any]:
        """Structure, sizes and dates of ``state`` (for ``imagesearch info``), without opening the vectors."""
        if state is None or not state.segments:
            return {"kind": None, "vectors": 0, "segments": 0, "tombstones": 0, "bytes": 0}
        base = json.loads((self.root / state.segments[0] / STATE_FILE).read_text())
        kind = {"hnsw": f"hnsw{self.settings.hnsw_m}", "ivf": "ivf-sq8"}.get(base["structure"], base["structure"])
        reduction = self._segment_projection(state.segments[0])
        dims = Projection.load(self.root / reduction).dim if reduction else state.dim
        return {
            "kind": describe(kind, len(state.segments) - 1),
            "vectors": state.count,
            "dimensions": dims,
            "segments": len(state.segments),
            "tombstones": state.tombstone_count,
            "bytes": self.size_bytes(state),
            "compacted_at": state.compacted_at,
        }

    def size_bytes(self, state: IndexState | None) -> int:
        """Bytes on disk of the files ``state`` uses."""
        if state is None:
            return 0
        total = 0
        for name in [*state.segments, *state.projections, state.tombstones]:
            if not name:
                continue
            path = self.root / name
            total += sum(item.stat().st_size for item in path.iterdir()) if path.is_dir() else path.stat().st_size
        return total
