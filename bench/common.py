"""Shared helpers of the benchmarks: dataset discovery, image loading, batching, the machine."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from PIL import Image

from imagesearch.vision.decode import decode_image

T = TypeVar("T")
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


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (itertools.batched arrives in Python 3.12)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def today() -> str:
    return time.strftime("%Y-%m-%d")
