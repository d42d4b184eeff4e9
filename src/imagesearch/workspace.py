"""A data directory opened with its settings: the composition root.

It builds each part from configuration (catalog, index store, embedder,
rates) and hands them to the pipelines; the parts never reach back here.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from sqlalchemy.engine import Engine

from .catalog.backends import open_catalog
from .catalog.meta import GENERATION_KEY
from .config import Settings
from .errors import CatalogError, ReadOnlyError
from .index.backends import open_vector_store
from .index.base import IndexState, VectorIndex
from .pg import postgres_engine
from .pricing.rates import RatesTable, load_rates
from .search.results import results_file
from .vision.decode import DecodeLimits
from .vision.embedder import Embedder
from .vision.embedders import open_embedder

#: Bytes the start-up probe writes: enough that a full disk refuses them (an empty file may still be created).
PROBE_BYTES = 64 * 1024


def write_problem(data_dir: Path) -> str | None:
    """Why ``data_dir`` cannot be written now (a full or read-only disk, no permission), or None if it can."""
    probe = data_dir / f".write-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"\0" * PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        return f"{data_dir} cannot be written ({exc.strerror or exc})"
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
    return None


class Workspace:
    """Everything that lives in one data directory (it fills :class:`~.parts.Parts` for the pipelines)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        if not self.data_dir.exists() and not settings.read_only:
            # App secrets, tokens and the catalog live here: readable by the service's user only.
            self.data_dir.mkdir(parents=True, mode=0o700)
        self.catalog = open_catalog(settings)
        self.vectors = open_vector_store(settings)
        self.decode_limits = DecodeLimits(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)

    def close(self) -> None:
        self.catalog.close()

    @cached_property
    def _cursors(self) -> Engine:
        if self.settings.catalog_url:  # workers on several machines: the page-2 request may reach any of them
            return postgres_engine(self.settings.catalog_url, "catalog_url")
        return results_file(self.data_dir)

    def cursor_database(self) -> Engine:
        """Paging cursors: beside a PostgreSQL catalog (every machine's workers), else one file in the data directory."""
        return self._cursors

    @cached_property
    def embedder(self) -> Embedder:
        """The configured embedder (the default one is exported to ONNX on first use, then cached)."""
        return open_embedder(self.settings)

    def rates(self) -> RatesTable:
        return load_rates(self.data_dir)

    def generation(self) -> int:
        return int(self.catalog.get_meta(GENERATION_KEY, "0") or 0)

    def check_embedder(self, recorded: str | None) -> None:
        """Refuse to mix vectors of two embedders in one catalog."""
        current = f"{self.embedder.name} {self.embedder.version}"
        if recorded and recorded != current:
            raise CatalogError(
                f"this catalog was embedded with {recorded} but the configured embedder is {current}; "
                "configure the original embedder again, or re-embed with `imagesearch reindex --re-embed`"
            )

    @property
    def embedder_identity(self) -> tuple[str, str, int]:
        """(name, version, dimension) of the configured embedder, as index states record it."""
        return self.embedder.name, self.embedder.version, self.embedder.dim

    def open_index(self, generation: int, reuse: VectorIndex | None = None) -> VectorIndex:
        return self.vectors.open(generation, self.embedder_identity, reuse=reuse)

    def index_state(self, generation: int | None = None) -> IndexState | None:
        """The index state of ``generation`` (default: the current one)."""
        return self.vectors.state(self.generation() if generation is None else generation)

    @contextmanager
    def write_lock(self, wait: float = 0.0) -> Iterator[None]:
        """One writer (import, delete, reindex, compaction's swap) per data directory at a time, across processes.

        ``wait`` seconds are allowed for another writer to finish; past them the write is refused.
        """
        if self.settings.read_only:
            raise ReadOnlyError(f"{self.data_dir} is opened read-only: catalog writes are refused until the service "
                                "is restarted with a writable data directory")
        path = self.data_dir / ".write.lock"
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        try:
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise CatalogError(f"another import or reindex is writing to {self.data_dir}; try again when it ends") from None
                    time.sleep(0.05)
            with self.catalog.exclusive(max(0.0, deadline - time.monotonic())):  # writers on other machines (PostgreSQL)
                yield
        finally:
            os.close(descriptor)

