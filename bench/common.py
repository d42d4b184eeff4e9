"""Shared helpers of the benchmarks: dataset discovery, image loading, batching, the machine, exact search, memory."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
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


def exact_top(read: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The true top-``k`` ids among ``ids`` for each query: inner products with the full-precision
    vectors ``read`` returns (the catalog's), streamed in batches so a million fit in memory."""
    best_ids = np.zeros((len(queries), 0), np.int64)
    best_scores = np.zeros((len(queries), 0), np.float32)
    for start in range(0, len(ids), 50_000):
        found, vectors = read(ids[start : start + 50_000])
        if not len(found):
            continue
        scores = np.concatenate([best_scores, queries @ vectors.T], axis=1)
        candidates = np.concatenate([best_ids, np.broadcast_to(found, (len(queries), len(found)))], axis=1)
        keep = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        best_scores, best_ids = np.take_along_axis(scores, keep, axis=1), np.take_along_axis(candidates, keep, axis=1)
    return best_ids


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean share of each query's true top-``k`` that ``found``'s first ``k`` hold."""
    return round(float(np.mean([len(set(f[:k].tolist()) & set(t[:k].tolist())) / min(k, len(t)) for f, t in zip(found, truth)])), 4)


def peak_rss_reset() -> None:
    """Start a new peak-memory measurement (Linux: VmHWM is reset by writing 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def status_bytes(field: str, pid: int | str = "self") -> int:
    """A memory field of ``/proc/<pid>/status`` in bytes (VmRSS: resident now; VmHWM: peak since start
    or :func:`peak_rss_reset`); 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_rss_bytes() -> int:
    """The process's peak resident memory since the last :func:`peak_rss_reset` (VmHWM)."""
    return status_bytes("VmHWM")


def rss_bytes() -> int:
    return status_bytes("VmRSS")


def whole_searches(engine: object, photos: int = 20, rounds: int = 5) -> dict[str, dict[str, float]]:
    """One search end to end (decode, embed, kNN, rank, sort, store, page) for real query photos, each searched
    once to warm up and then ``rounds`` times: p50/p99 of the whole and of its embedding and ranking parts."""
    import base64

    from imagesearch.search.params import parse_params

    rates = engine.rates()  # type: ignore[attr-defined]
    queries = [parse_params({"image_base64": base64.b64encode(path.read_bytes()).decode()}, rates, "USD", 10_000_000)
               for path, _ in dataset_split("clothing-small", "test")[:photos]]
    for params in queries:
        engine.search(params)  # type: ignore[attr-defined]
    samples: dict[str, list[float]] = {"search": [], "embed": [], "rank": []}
    for _ in range(rounds):
        for params in queries:
            started = time.perf_counter()
            page = engine.search(params)  # type: ignore[attr-defined]
            samples["search"].append((time.perf_counter() - started) * 1000)
            samples["embed"].append(page.timings["embed_ms"])
            samples["rank"].append(page.timings["rank_ms"])
    return {name: {"p50_ms": round(float(np.percentile(values, 50)), 2), "p99_ms": round(float(np.percentile(values, 99)), 2)}
            for name, values in samples.items()}

