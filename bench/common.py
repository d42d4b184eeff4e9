"""Shared helpers of the benchmarks: dataset discovery, embedding with a cache, timing."""

from __future__ import annotations

import hashlib
import os
import platform
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from imagesearch.vision.decode import decode_image
from imagesearch.vision.embedder import Embedder

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("IMAGESEARCH_DATASETS", ROOT.parent / "shared" / "datasets"))
RESULTS = ROOT / "bench" / "results"


def dataset_split(name: str, split: str) -> list[tuple[Path, str]]:
    """(path, class) pairs of a folder-per-class split, sorted for determinism."""
    root = DATASETS / name / split
    if not root.is_dir():
        raise SystemExit(f"dataset not found: {root} (set IMAGESEARCH_DATASETS)")
    return [(path, path.parent.name) for path in sorted(root.glob("*/*")) if path.suffix.lower() in (".jpg", ".jpeg", ".png")]


def load_image(path: Path, draft: int | None = None) -> Image.Image:
    return decode_image(path.read_bytes(), draft_size=draft)


def embed_images(embedder: Embedder, images: Sequence[Image.Image], batch: int = 32) -> np.ndarray:
    parts = [embedder.embed(list(images[start : start + batch])) for start in range(0, len(images), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, embedder.dim), np.float32)


def cached_embeddings(embedder: Embedder, key: str, paths: Sequence[Path]) -> np.ndarray:
    """Embeddings of files, cached on disk by embedder version and file list."""
    digest = hashlib.sha256((embedder.name + embedder.version + key + "".join(map(str, paths))).encode()).hexdigest()[:16]
    cache = RESULTS / "cache" / f"{key}-{digest}.npy"
    if cache.exists():
        return np.load(cache)
    vectors = embed_images(embedder, [load_image(path, embedder.input_size) for path in paths])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def today() -> str:
    return time.strftime("%Y-%m-%d")
