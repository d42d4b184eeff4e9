"""What the server vector stores (pgvector, Milvus) share: one live table of rows versioned by generation.

Each row carries the generation that added it and the one that removed it;
an index "opened" at generation G is a view of the rows visible at G, not a
snapshot of files.  There are no segments or tombstones to count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import CatalogError
from .base import IndexState


def checked_state(state_of: Callable[[int], IndexState | None], generation: int, embedder: tuple[str, str, int], where: str) -> IndexState:
    """The recorded state of ``generation`` in ``where``, refusing a missing one or another embedder's vectors."""
    state = state_of(generation)
    if state is None:
        raise CatalogError(f"index generation {generation} is missing from {where}; rebuild it with `imagesearch reindex`")
    name, version, _ = embedder
    if (state.embedder_name, state.embedder_version) != (name, version):
        raise CatalogError(embedder_mismatch(state, name, version))
    return state


def embedder_mismatch(state: IndexState, name: str, version: str) -> str:
    return (
        f"the index was built with embedder {state.embedder_name} ({state.embedder_version}) "
        f"but the configured embedder is {name} ({version}); "
        "either configure the original embedder again, or re-embed the catalog with `imagesearch reindex --re-embed`"
    )


class LiveIndex:
    """The rows of a server store visible at ``generation`` (0: an empty catalog)."""

    def __init__(self, kind: str, generation: int, dim: int, count: int) -> None:
        self._kind = kind
        self.generation = generation
        self.dim = dim
        self.count = count

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def segment_count(self) -> int:
        return 1

    @property
    def tombstone_count(self) -> int:
        return 0

    def __len__(self) -> int:
        return self.count

    def warm(self) -> None:
        """Nothing to page in: the server holds the vectors."""


def describe_live(kind: str, state: IndexState | None, size: int = 0) -> dict[str, Any]:
    """What ``imagesearch info`` shows of a server store's ``state``: one live table, no segments to count."""
    if state is None:
        return {"kind": "empty", "vectors": 0, "segments": 0, "tombstones": 0, "bytes": 0}
    return {"kind": kind, "vectors": state.count, "segments": 1, "tombstones": 0, "bytes": size,
            "created_at": state.created_at, "compacted_at": state.compacted_at}

