"""Compaction: fold the delta segments and tombstones into a new base, off to the side.

Writes add small segments and tombstones; searches pay a little for each.
Compaction rebuilds one base from the live vectors of a state *without*
holding the write lock (imports, deletes and searches go on), then takes the
lock for the swap only: the new state is the new base, plus the segments and
tombstones that writes added while it ran, published and recorded in one
catalog transaction like any write.  A crash at any point leaves the previous
state in force; the next write sweeps what the compaction left behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..catalog.meta import GENERATION_KEY
from ..index.faiss_index import FaissIndex
from ..index.store import IndexState
from ..workspace import Workspace
from .importer import record_generation

#: How long the swap waits for a running import to finish before giving up (the compaction is then redone later).
SWAP_WAIT_SECONDS = 600.0


@dataclass
class CompactReport:
    compacted: bool = False
    reason: str = ""
    generation: int = 0
    vectors: int = 0
    segments_folded: int = 0
    tombstones_dropped: int = 0
    seconds: float = 0.0


def due(state: IndexState | None, max_deltas: int, delta_ratio: float) -> str:
    """Why ``state`` should be compacted now ("" when it should not)."""
    if state is None or len(state.segments) == 0:
        return ""
    deltas = len(state.segments) - 1
    if deltas > max_deltas:
        return f"{deltas} delta segments (more than {max_deltas})"
    base = state.segment_sizes[0] if state.segment_sizes else 0
    changed = state.delta_vectors + state.tombstone_count
    if changed and changed > delta_ratio * base:
        return f"{changed} vectors in deltas and tombstones (more than {delta_ratio:.0%} of the base's {base})"
    return ""


def compact(workspace: Workspace, force: bool = True) -> CompactReport:
    """Compact now (``force``), or only when :func:`due` says so under the configured thresholds."""
    started = time.perf_counter()
    settings = workspace.settings
    generation = workspace.generation()
    before = workspace.index_state(generation)
    reason = due(before, settings.compact_max_deltas, settings.compact_delta_ratio)
    if before is None or (not force and not reason) or (len(before.segments) <= 1 and not before.tombstone_count):
        return CompactReport(reason=reason or "nothing to fold", generation=generation)
    workspace.check_embedder(f"{before.embedder_name} {before.embedder_version}")
    folding = workspace.load_index(generation)
    older = folding.tombstones  # read now: writes during the build may sweep the file
    ids, vectors = folding.live_vectors()
    base = FaissIndex(before.dim, workspace.index_store.settings)
    base.add(ids, vectors)
    with workspace.write_lock(wait=SWAP_WAIT_SECONDS):
        with workspace.catalog.writer() as writer:
            current = int(writer.get_meta(GENERATION_KEY, "0") or 0)
            now = workspace.index_state(current)
            folded = len(before.segments)
            if now is None or now.segments[:folded] != before.segments:
                # A reindex (or another compaction) replaced the base meanwhile: this build is stale.
                return CompactReport(reason="the index was rebuilt meanwhile", generation=current)
            later = tuple(zip(now.segments[folded:], now.segment_sizes[folded:], strict=True))
            newer = np.setdiff1d(workspace.index_store.tombstones_of(now), older)
            workspace.index_store.publish_base(base, current + 1, workspace.embedder_identity, later, newer, compacted=True)
            record_generation(workspace, writer, current + 1)
            writer.drop_unused_blobs(everything=True)  # also the cache entries of imports that were refused
        # Under the lock: a writer between its publish and its commit has files no state names yet.
        workspace.index_store.sweep(keep=current + 1)
    return CompactReport(
        True, reason or "asked for", current + 1, len(base), folded, len(older), time.perf_counter() - started
    )
