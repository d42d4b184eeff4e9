"""Publishing index generations atomically next to the catalog.

Each import writes a complete new index into ``index/gen-<n>`` (through a
temporary folder that is fsynced and then renamed), and only then commits the
catalog transaction that records ``n`` as current.  A crash before that commit
leaves the old generation in force (the orphan folder is swept on the next
write); a crash after it finds the new one complete.  So the catalog and the
index always match.  The manifest records the embedder that made the vectors.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import CatalogError
from .faiss_index import FaissIndex, FaissSettings

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """What is stored with an index generation."""

    generation: int
    embedder_name: str
    embedder_version: str
    dim: int
    count: int
    created_at: float


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

    def path(self, generation: int) -> Path:
        return self.root / f"gen-{generation:08d}"

    def manifest(self, generation: int) -> Manifest | None:
        path = self.path(generation) / MANIFEST
        if generation == 0 or not path.exists():
            return None
        return Manifest(**json.loads(path.read_text()))

    def load(self, generation: int, embedder_name: str, embedder_version: str, dim: int, mmap: bool = False) -> FaissIndex:
        """Open generation ``generation`` (0 means a new, empty index), refusing a foreign embedder."""
        if generation == 0:
            return FaissIndex(dim, self.settings)
        manifest = self.manifest(generation)
        if manifest is None:
            raise CatalogError(
                f"index generation {generation} is missing from {self.root}; "
                "rebuild it from the catalog with `imagesearch reindex`"
            )
        if (manifest.embedder_name, manifest.embedder_version) != (embedder_name, embedder_version):
            raise CatalogError(
                f"the index was built with embedder {manifest.embedder_name} ({manifest.embedder_version}) "
                f"but the configured embedder is {embedder_name} ({embedder_version}); "
                "either configure the original embedder again, or re-embed the catalog with "
                "`imagesearch reindex --re-embed`"
            )
        return FaissIndex.load(self.path(generation), self.settings, mmap=mmap)

    def publish(self, index: FaissIndex, generation: int, embedder_name: str, embedder_version: str) -> Path:
        """Write ``index`` as ``generation``: complete and durable before it becomes visible."""
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            index.save(staging)
            manifest = Manifest(generation, embedder_name, embedder_version, index.dim, len(index), time.time())
            (staging / MANIFEST).write_text(json.dumps(manifest.__dict__))
            _fsync_dir(staging)
            final = self.path(generation)
            if final.exists():  # left by a crash after publish but before the catalog commit
                shutil.rmtree(final)
            os.rename(staging, final)
            _fsync_dir(self.root)
            return final
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def sweep(self, keep: int) -> None:
        """Delete every generation but ``keep``, and staging leftovers."""
        for path in self.root.iterdir():
            if path.name != self.path(keep).name and (path.name.startswith("gen-") or path.name.startswith(".staging-")):
                shutil.rmtree(path, ignore_errors=True)

    def size_bytes(self, generation: int) -> int:
        path = self.path(generation)
        return sum(item.stat().st_size for item in path.iterdir()) if path.exists() else 0
