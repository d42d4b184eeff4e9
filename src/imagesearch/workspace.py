"""A data directory opened with its settings: the composition root.

It builds each part from configuration (catalog, index store, embedder,
rates) and hands them to the pipelines; the parts never reach back here.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from .catalog.store import Catalog
from .config import Settings
from .errors import CatalogError
from .index.faiss_index import FaissIndex, FaissSettings, set_search_threads
from .index.store import IndexStore
from .ingest.sources import FetchSettings
from .pricing.rates import RatesTable, load_rates
from .vision.decode import DecodeLimits
from .vision.efficientnet import EfficientNetLiteEmbedder, EfficientNetSettings
from .vision.embedder import Embedder

GENERATION_KEY = "index_generation"
EMBEDDER_KEY = "embedder"
CALIBRATION_KEY = "same_calibration"


class Workspace:
    """Everything that lives in one data directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        self.catalog = Catalog(self.data_dir)
        self.index_store = IndexStore(
            self.data_dir / "index",
            FaissSettings(
                kind=settings.index_kind,  # type: ignore[arg-type]
                hnsw_threshold=settings.hnsw_threshold,
                hnsw_m=settings.hnsw_m,
                ef_construction=settings.ef_construction,
                ef_search=settings.ef_search,
            ),
        )
        if settings.index_threads:
            set_search_threads(settings.index_threads)
        self.decode_limits = DecodeLimits(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
        self.fetch_settings = FetchSettings(
            timeout=settings.fetch_timeout,
            retries=settings.fetch_retries,
            concurrency=settings.fetch_concurrency,
            max_bytes=settings.max_image_bytes,
        )

    def close(self) -> None:
        self.catalog.close()

    @cached_property
    def embedder(self) -> Embedder:
        """The configured embedder (exported to ONNX on first use, then cached)."""
        return EfficientNetLiteEmbedder(
            EfficientNetSettings(
                model=self.settings.model,
                resize=self.settings.resize,
                flip=self.settings.flip,
                trim=self.settings.trim,
                precision=self.settings.precision,  # type: ignore[arg-type]
            ),
            cache_dir=Path(self.settings.model_cache_dir) if self.settings.model_cache_dir else self.data_dir / "models",
            threads=self.settings.threads,
        )

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

    def load_index(self, generation: int, mmap: bool = False) -> FaissIndex:
        return self.index_store.load(generation, self.embedder.name, self.embedder.version, self.embedder.dim, mmap=mmap)

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """One writer (import, delete, reindex) per data directory at a time, across processes."""
        path = self.data_dir / ".write.lock"
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CatalogError(f"another import or reindex is writing to {self.data_dir}; try again when it ends") from None
            yield
        finally:
            os.close(descriptor)

