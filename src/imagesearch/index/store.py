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
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import CatalogError
from .faiss_index import STATE_FILE, FaissIndex, FaissSettings
from .segments import SegmentedIndex, describe

LEGACY_MANIFEST = "manifest.json"
SEGMENT = re.compile(r"seg-(\d{8})")


@dataclass(frozen=True)
class IndexState:
    """What one generation of the index is made of."""

    generation: int
    embedder_name: str
    embedder_version: str
    dim: int
    #: Segment folder names, the base first.
    segments: tuple[str, ...] = ()
    #: Vectors in each segment (tombstones included), in the same order.
    segment_sizes: tuple[int, ...] = ()
    #: File of removed ids still present in some segment, or None.
    tombstones: str | None = None
    tombstone_count: int = 0
    created_at: float = field(default_factory=time.time)
    compacted_at: float | None = None

    @property
    def count(self) -> int:
        """Live (searchable) vectors."""
        return sum(self.segment_sizes) - self.tombstone_count

    @property
    def delta_vectors(self) -> int:
        """Vectors outside the base segment."""
        return sum(self.segment_sizes[1:])


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


class IndexStore:
    """The ``index/`` folder of a data directory."""

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
        if path.exists():
            data = json.loads(path.read_text())
            return IndexState(**{**data, "segments": tuple(data["segments"]), "segment_sizes": tuple(data["segment_sizes"])})
        legacy = self.legacy_path(generation) / LEGACY_MANIFEST
        if legacy.exists():  # the earlier layout: one whole index; its own tombstones live inside it
            data = json.loads(legacy.read_text())
            return IndexState(
                generation, data["embedder_name"], data["embedder_version"], int(data["dim"]),
                (self.legacy_path(generation).name,), (int(data["count"]),), None, 0, float(data["created_at"]),
            )
        return None

    def load(
        self,
        generation: int,
        embedder_name: str,
        embedder_version: str,
        dim: int,
        mmap: bool = False,
        cache: Mapping[str, FaissIndex] | None = None,
    ) -> SegmentedIndex:
        """Open ``generation`` (0: a new, empty index), refusing another embedder's vectors.

        Segments already in ``cache`` (by name: a segment never changes) are
        reused, so a serving process only opens the new ones.
        """
        if generation == 0:
            return SegmentedIndex(dim, [])
        state = self.state(generation)
        if state is None:
            raise CatalogError(
                f"index generation {generation} is missing from {self.root}; rebuild it from the catalog with `imagesearch reindex`"
            )
        if (state.embedder_name, state.embedder_version) != (embedder_name, embedder_version):
            raise CatalogError(
                f"the index was built with embedder {state.embedder_name} ({state.embedder_version}) "
                f"but the configured embedder is {embedder_name} ({embedder_version}); "
                "either configure the original embedder again, or re-embed the catalog with "
                "`imagesearch reindex --re-embed`"
            )
        cache = cache or {}
        segments = [
            (name, cache[name] if name in cache else FaissIndex.load(self.root / name, self.settings, mmap=mmap)) for name in state.segments
        ]
        tombstones = np.load(self.root / state.tombstones) if state.tombstones else None
        return SegmentedIndex(state.dim, segments, tombstones)

    # -- writing -------------------------------------------------------------

    def _next_segment(self) -> str:
        numbers = [int(match.group(1)) for path in self.root.iterdir() if (match := SEGMENT.fullmatch(path.name))]
        return f"seg-{max(numbers, default=0) + 1:08d}"

    def _write_segment(self, index: FaissIndex) -> str:
        """``index`` as a new segment folder: complete and durable before it has its name."""
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            index.save(staging)
            _fsync_dir(staging)
            name = self._next_segment()
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

    def _publish(self, state: IndexState, tombstones: np.ndarray) -> IndexState:
        if len(tombstones):
            name = f"tomb-{state.generation:08d}.npy"
            self._write_file(name, lambda handle: np.save(handle, tombstones))
            state = replace(state, tombstones=name, tombstone_count=len(tombstones))
        else:
            state = replace(state, tombstones=None, tombstone_count=0)
        document = json.dumps(asdict(state)).encode()
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
        added_vectors: np.ndarray,
        removed_ids: np.ndarray,
    ) -> IndexState:
        """The next state: ``previous`` plus a segment of the added vectors, minus the removed ids.

        Writes only the new segment (if anything was added), the tombstones and
        the state file; the caller records ``generation`` in its transaction.
        """
        name, version, dim = embedder
        segments, sizes = (previous.segments, previous.segment_sizes) if previous else ((), ())
        if len(added_ids):
            segment = FaissIndex(dim, replace(self.settings, kind="flat") if previous else self.settings)
            segment.add(added_ids, added_vectors)
            segments, sizes = (*segments, self._write_segment(segment)), (*sizes, len(segment))
        tombstones = np.union1d(self.tombstones_of(previous), np.asarray(removed_ids, dtype=np.int64))
        state = IndexState(generation, name, version, dim, segments, sizes, compacted_at=previous.compacted_at if previous else None)
        return self._publish(state, tombstones)

    def publish_base(
        self,
        index: FaissIndex,
        generation: int,
        embedder: tuple[str, str, int],
        later: tuple[tuple[str, int], ...] = (),
        tombstones: np.ndarray | None = None,
        compacted: bool = False,
    ) -> IndexState:
        """A state whose base is ``index`` (a rebuild, or a compaction).

        A compaction keeps the ``later`` segments (name, size) written while it
        ran, and the ``tombstones`` recorded meanwhile.
        """
        name, version, dim = embedder
        segments = ((self._write_segment(index), len(index)), *later)
        state = IndexState(
            generation, name, version, dim, tuple(item[0] for item in segments), tuple(item[1] for item in segments),
            compacted_at=time.time() if compacted else None,
        )
        return self._publish(state, np.asarray(tombstones if tombstones is not None else [], dtype=np.int64))

    def sweep(self, keep: int) -> None:
        """Delete every file the state of generation ``keep`` does not use, and staging leftovers."""
        state = self.state(keep)
        used = set(state.segments) | {state.tombstones} if state else set()
        used.add(self._state_path(keep).name)
        for path in self.root.iterdir():
            if path.name in used:
                continue
            if path.name.startswith((".staging-", "seg-", "gen-", "tomb-", "state-")):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    def describe(self, state: IndexState | None) -> str | None:
        """The structure of ``state`` as people read it ("hnsw32 + 2 deltas"), without opening the vectors."""
        if state is None or not state.segments:
            return None
        base = json.loads((self.root / state.segments[0] / STATE_FILE).read_text())["structure"]
        return describe(f"hnsw{self.settings.hnsw_m}" if base == "hnsw" else base, len(state.segments) - 1)

    def size_bytes(self, state: IndexState | None) -> int:
        """Bytes on disk of the files ``state`` uses."""
        if state is None:
            return 0
        total = 0
        for name in [*state.segments, state.tombstones]:
            if not name:
                continue
            path = self.root / name
            total += sum(item.stat().st_size for item in path.iterdir()) if path.is_dir() else path.stat().st_size
        return total

