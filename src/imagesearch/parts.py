"""What the pipelines are handed: the parts of one service, built by the composition root.

``workspace.py`` builds them from configuration; the search and ingest
pipelines depend on this protocol only, never on the root itself, so they can
be given other parts (a PostgreSQL catalog, a Milvus store, test doubles).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import Engine

from .catalog.base import Catalog
from .config import Settings
from .index.base import IndexState, VectorIndex, VectorStore
from .pricing.rates import RatesTable
from .vision.decode import DecodeLimits
from .vision.embedder import Embedder


class Parts(Protocol):
    settings: Settings
    data_dir: Path
    catalog: Catalog
    vectors: VectorStore
    decode_limits: DecodeLimits

    @property
    def embedder(self) -> Embedder:
        """The configured embedder (loaded on first use)."""
        ...

    @property
    def embedder_identity(self) -> tuple[str, str, int]:
        """(name, version, dimension) of the configured embedder, as index states record it."""
        ...

    def rates(self) -> RatesTable: ...

    def generation(self) -> int:
        """The index generation the catalog records as current."""
        ...

    def index_state(self, generation: int | None = None) -> IndexState | None: ...

    def open_index(self, generation: int, reuse: VectorIndex | None = None) -> VectorIndex: ...

    def check_embedder(self, recorded: str | None) -> None:
        """Refuse to mix vectors of two embedders in one catalog."""
        ...

    def cursor_database(self) -> Engine:
        """Where paging cursors are kept: a database every worker that may serve the next page can read."""
        ...

    def write_lock(self, wait: float = 0.0) -> AbstractContextManager[None]:
        """One writer per data directory at a time, across processes."""
        ...
