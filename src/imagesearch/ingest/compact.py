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

from ..catalog.meta import GENERATION_KEY
from ..index.base import IndexState
from ..parts import Parts
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


def compact(parts: Parts, force: bool = True) -> CompactReport:
    """Compact now (``force``), or only when :func:`due` says so under the configured thresholds."""
    started = time.perf_counter()
    settings = parts.settings
    generation = parts.generation()
    before = parts.index_state(generation)
    reason = due(before, settings.compact_max_deltas, settings.compact_delta_ratio)
    if before is None or (not force and not reason) or (len(before.segments) <= 1 and not before.tombstone_count):
        return CompactReport(reason=reason or "nothing to fold", generation=generation)
    parts.check_embedder(f"{before.embedder_name} {before.embedder_version}")
    ids = parts.open_index(generation).live_ids()
    base = parts.vectors.build_base(parts.embedder_identity, ids, parts.catalog.vectors, folds=before, labels=parts.catalog.image_labels)
    with parts.write_lock(wait=SWAP_WAIT_SECONDS):
        with parts.catalog.writer() as writer:
            current = int(writer.get_meta(GENERATION_KEY, "0") or 0)
            now = parts.index_state(current)
            folded = len(before.segments)
            if now is None or now.segments[:folded] != before.segments:
                # A reindex (or another compaction) replaced the base meanwhile: this build is stale.
                parts.vectors.discard(base)
                return CompactReport(reason="the index was rebuilt meanwhile", generation=current)
            state = parts.vectors.publish_base(current + 1, parts.embedder_identity, base, later=now, compacted=True)
            record_generation(parts, writer, current + 1)
            writer.drop_unused_blobs(everything=True)  # also the cache entries of imports that were refused
        # Under the lock: a writer between its publish and its commit has files no state names yet.
        parts.vectors.sweep(keep=current + 1)
    return CompactReport(
        True, reason or "asked for", current + 1, state.count, folded, before.tombstone_count, time.perf_counter() - started
    )
