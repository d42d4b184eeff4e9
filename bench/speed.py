"""Speed: embedding throughput, import throughput, and search latency from 10k to 1M images.

    python bench/speed.py                       # embed + import + search at 10k and 100k, kNN at 1M
    python bench/speed.py --sizes 10000 100000  # skip the 1M index (its HNSW build is long)

* Embedding: images per second at batch 1 and batch 32 (2 threads), for the
  configured embedder and, as a baseline in the same process, fp32.
* Import: images per second of ``import_file`` from local JPEG files (fresh
  data directory, model already exported), including decode, thumbnails,
  embedding, SQLite writes and the index commit.
* Search: one query = decode + embed + kNN + rank (+ paging store), through
  ``SearchEngine.search`` on a catalog of N products with one image each:
  real embeddings of real photos for the photos we have, the rest synthetic
  vectors drawn around them (clustered, like real catalogs), stored through the
  real catalog and index.  kNN alone is timed separately.  p50 / p99 over
  repeated queries.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import time
from pathlib import Path

import numpy as np
from common import (
    DATASETS,
    RESULTS,
    dataset_split,
    exact_top,
    load_image,
    machine,
    recall_at,
    today,
)
from sqlalchemy import insert

from imagesearch.catalog.base import CatalogWriter
from imagesearch.catalog.schema import image_blobs, images, products
from imagesearch.config import load_settings
from imagesearch.index.base import VectorIndex
from imagesearch.ingest.importer import commit_changes, import_file
from imagesearch.search.engine import INITIAL_K, SearchEngine
from imagesearch.search.params import parse_params
from imagesearch.vision.efficientnet import (
    EfficientNetLiteEmbedder,
    EfficientNetSettings,
)
from imagesearch.workspace import Workspace


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(samples_ms, 50)), 2), "p99_ms": round(float(np.percentile(samples_ms, 99)), 2)}


def photos(count: int) -> list[Path]:
    paths = [path for path, _ in dataset_split("clothing-small", "train")]
    return (paths * (count // len(paths) + 1))[:count]


def embedding_speed(settings_list: list[tuple[str, EfficientNetSettings]], threads: int) -> dict:
    images = [load_image(path, 256) for path in photos(64)]
    out = {}
    for label, settings in settings_list:
        embedder = EfficientNetLiteEmbedder(settings, RESULTS / "models", threads=threads)
        embedder.embed(images[:2])
        started = time.perf_counter()
        for image in images:
            embedder.embed([image])
        batch1 = len(images) / (time.perf_counter() - started)
        embedder.embed(images[:32])
        started = time.perf_counter()
        for _ in range(2):
            embedder.embed(images[:32])
            embedder.embed(images[32:64])
        batch32 = 4 * 32 / (time.perf_counter() - started)
        out[label] = {"batch1_images_per_s": round(batch1, 1), "batch32_images_per_s": round(batch32, 1)}
    return out


def import_speed(count: int) -> dict:
    root = DATASETS / "clothing-small" / "train"
    data_dir = RESULTS / "speed-import"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    catalog = data_dir / "catalog.jsonl"
    with open(catalog, "w") as handle:
        for index, path in enumerate(photos(count)[:count]):
            handle.write(json.dumps({"product_id": str(index), "shop_id": 1, "title": "x", "price": {"sale": "1", "currency": "USD"},
                                     "images": [str(path.relative_to(root))]}) + "\n")
    workspace = Workspace(load_settings(data_dir).with_overrides(model_cache_dir=str(RESULTS / "models")))
    _ = workspace.embedder  # export/quantise before timing
    started = time.perf_counter()
    report = import_file(workspace, catalog, images_root=root)
    seconds = time.perf_counter() - started
    return {"images": report.images_embedded, "seconds": round(seconds, 1), "images_per_s": round(report.images_embedded / seconds, 1)}


def synthetic_catalog(workspace: Workspace, size: int, seeds: np.ndarray, rng: np.random.Generator) -> float:
    """``size`` products with one image each: the first ``len(seeds)`` are the real embeddings of real
    photos (``seeds``), the others synthetic vectors clustered around them.

    Rows are bulk-inserted (the import's phase 1 is measured separately), then
    committed through the real ``commit_changes``, which builds and publishes
    the index; returns the seconds that commit took.
    """
    thumbnail = b"\xff\xd8\xff\xd9"
    batch = 20_000

    def change(writer: CatalogWriter) -> tuple[list[int], list[int]]:
        for start in range(0, size, batch):
            count = min(batch, size - start)
            centres = seeds[rng.integers(0, len(seeds), count)]
            vectors = centres + rng.normal(0, 0.02, centres.shape).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            if start == 0:
                vectors[: len(seeds)] = seeds[:count]
            stored = vectors.astype(np.float16)  # as the catalog keeps embeddings
            writer.connection.execute(insert(products), [
                {"pk": start + i + 1, "product_id": f"s{start + i}", "shop_id": 1, "sale_price": f"{1 + (start + i) % 97}.99",
                 "currency": "USD", "volume": (start + i) % 5000, "ships_everywhere": True, "detail_url": "", "updated_at": 0.0}
                for i in range(count)
            ])
            writer.connection.execute(insert(image_blobs), [
                {"sha256": f"{start + i:064x}", "width": 1, "height": 1, "thumbnail": thumbnail, "embedding": stored[i].tobytes(),
                 "embedding_format": "float16"}
                for i in range(count)
            ])
            writer.connection.execute(insert(images), [
                {"id": start + i + 1, "product_pk": start + i + 1, "position": 0, "source": "", "sha256": f"{start + i:064x}"}
                for i in range(count)
            ])
        return list(range(1, size + 1)), []

    started = time.perf_counter()
    commit_changes(workspace, change)
    return time.perf_counter() - started


def search_speed(size: int, queries: list[bytes], seeds: np.ndarray, repeats: int) -> dict:
    data_dir = RESULTS / f"speed-search-{size}"
    shutil.rmtree(data_dir, ignore_errors=True)
    workspace = Workspace(load_settings(data_dir).with_overrides(model_cache_dir=str(RESULTS / "models")))
    started = time.perf_counter()
    build = synthetic_catalog(workspace, size, seeds, np.random.default_rng(size))
    setup = time.perf_counter() - started
    engine = SearchEngine(workspace)
    index = engine.snapshot().index
    rates = engine.rates()
    samples: dict[str, list[float]] = {"search": [], "knn_k400": [], "decode_embed": []}
    vectors = []
    for query in queries:
        params = parse_params({"image_base64": base64.b64encode(query).decode()}, rates, "USD", 10_000_000)
        engine.search(params)  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            page = engine.search(params)
            samples["search"].append((time.perf_counter() - started) * 1000)
            samples["decode_embed"].append(page.timings["embed_ms"])
        vectors.append(engine.embed_query(query)[1])
    for vector in vectors:
        for _ in range(repeats):
            started = time.perf_counter()
            index.search(vector[None, :], 400)
            samples["knn_k400"].append((time.perf_counter() - started) * 1000)
    # Recall of the approximate index against exact search, on the real query vectors.
    exact = exact_recall(workspace, index, np.stack(vectors))
    result = {"images": size, "index": index.kind, "commit_and_index_build_s": round(build, 1), "setup_s": round(setup, 1),
              "recall@10_vs_exact": exact}
    result.update({name: percentiles(values) for name, values in samples.items()})
    engine.close()
    workspace.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    return result


def exact_recall(workspace: Workspace, index: VectorIndex, queries: np.ndarray) -> float:
    """Recall@10 of the index, asked as the engine asks (k = 400), against exact search on the catalog's vectors."""
    truth = exact_top(workspace.catalog.vectors, np.sort(index.live_ids()), queries, 10)
    _, found = index.search(queries, INITIAL_K)
    return recall_at(found, truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--import-images", type=int, default=1000)
    parser.add_argument("--skip", nargs="*", default=[], choices=["embed", "import", "search"])
    args = parser.parse_args()

    report: dict = {"date": today(), "machine": machine(), "threads": args.threads}
    if "embed" not in args.skip:
        report["embedding"] = embedding_speed(
            [
                ("lite0 int8 (default)", EfficientNetSettings(precision="int8")),
                ("lite0 fp32", EfficientNetSettings(precision="fp32")),
                ("lite2 int8", EfficientNetSettings(model="efficientnet-lite2", precision="int8")),
            ],
            args.threads,
        )
        print(json.dumps(report["embedding"]), flush=True)
    if "import" not in args.skip:
        report["import"] = import_speed(args.import_images)
        print(json.dumps(report["import"]), flush=True)
    if "search" not in args.skip:
        query_paths = [path for path, _ in dataset_split("clothing-small", "test")][: args.queries]
        queries = [path.read_bytes() for path in query_paths]
        seed_workspace = Workspace(load_settings(RESULTS / "speed-seeds").with_overrides(model_cache_dir=str(RESULTS / "models")))
        seeds = seed_workspace.embedder.embed([load_image(path, 256) for path in photos(512)])
        report["search"] = []
        for size in args.sizes:
            report["search"].append(search_speed(size, queries, seeds, args.repeats))
            print(json.dumps(report["search"][-1]), flush=True)
    out = RESULTS / f"speed-{today()}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"report: {out}")


if __name__ == "__main__":
    main()
