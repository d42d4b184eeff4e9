"""Filtered kNN: the ship-to filter applied inside the index, latency and recall against exact search.

    python bench/filters.py                       # 100k images
    python bench/filters.py --sizes 1000000

A catalog of N products with one image each (vectors clustered around real
embeddings, as in bench/speed.py; IVF above 20k), where 1 % of the products
ship to one country and 50 % to another.  For each filter, the engine's own
search path (``SearchEngine._filter`` builds the filter, the segmented index
applies it, ``SearchEngine.nearest`` re-ranks) answers k=400 for real query photos' embeddings; recall@10 is
against exact inner products with the catalog's full-precision vectors of the kept images only.  Without a filter,
for comparison, and, as the baseline in the same process, the previous way:
an unfiltered search whose k grows x4 (to 16,384) until 100 results ship.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

import numpy as np
from common import RESULTS, exact_top, load_image, machine, recall_at, today
from speed import photos, synthetic_catalog
from sqlalchemy import insert, update

from imagesearch.catalog.meta import FILTERS_KEY
from imagesearch.catalog.schema import product_ship_to, products
from imagesearch.config import load_settings
from imagesearch.search.engine import INITIAL_K, SearchEngine
from imagesearch.workspace import Workspace

COUNTRIES = {"IS": 0.01, "US": 0.5}


def restrict_shipping(workspace: Workspace, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Products ship to one listed country each: IS for 1 %, US for 50 %, FR for the rest; returns their image ids."""
    draw = rng.random(size)
    countries = np.where(draw < COUNTRIES["IS"], "IS", np.where(draw < COUNTRIES["IS"] + COUNTRIES["US"], "US", "FR"))
    with workspace.catalog.writer() as writer:
        writer.connection.execute(update(products).values(ships_everywhere=False))
        for start in range(0, size, 50_000):
            writer.connection.execute(insert(product_ship_to), [
                {"product_pk": pk + 1, "country": str(countries[pk])} for pk in range(start, min(size, start + 50_000))
            ])
        writer.set_meta(FILTERS_KEY, str(time.time()))
    return {country: np.flatnonzero(countries == country) + 1 for country in COUNTRIES}  # image id == product pk here


def grow_until_enough(index: object, query: np.ndarray, allowed: np.ndarray, wanted: int = 100) -> np.ndarray:
    """The previous way, as a baseline: search unfiltered, keep what ships, grow k x4 (up to 16384) until enough."""
    k = INITIAL_K
    while True:
        _, found = index.search(query[None, :], k)  # type: ignore[attr-defined]
        ids = found[0][found[0] >= 0]
        kept = ids[allowed[ids]]
        if len(kept) >= wanted or k >= 16_384:
            return kept
        k = min(k * 4, 16_384)


def filter_costs(workspace: Workspace, engine: SearchEngine, size: int, queries: np.ndarray, rng: np.random.Generator, repeats: int) -> dict:
    """Latency and recall of the ship-to filter inside the kNN, for each country of :data:`COUNTRIES` and none."""
    kept = restrict_shipping(workspace, size, rng)
    snapshot = engine.snapshot()
    index = snapshot.index
    ids = np.sort(index.live_ids())
    report: dict = {"images": size, "index": index.kind}
    for country in [None, *COUNTRIES]:
        started = time.perf_counter()
        only = engine._filter(country)
        build_ms = (time.perf_counter() - started) * 1000
        pool = ids if country is None else kept[country]
        truth = exact_top(workspace.catalog.vectors, pool, queries, 10)
        latencies, found, grown, before = [], [], [], []
        allowed = np.zeros(size + 1, dtype=bool)
        allowed[pool] = True
        for query in queries:
            engine.nearest(snapshot, query, INITIAL_K, only)  # warm-up (and the per-segment filter cache)
            for _ in range(repeats):
                started = time.perf_counter()
                _, result = engine.nearest(snapshot, query, INITIAL_K, only)
                latencies.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                kept_before = grow_until_enough(index, query, allowed)
                grown.append((time.perf_counter() - started) * 1000)
            found.append(result)
            before.append(kept_before)
        report[country or "no filter"] = {
            "kept_images": len(pool), "filter_build_ms": round(build_ms, 1),
            "knn_k400_p50_ms": round(float(np.percentile(latencies, 50)), 2), "knn_k400_p99_ms": round(float(np.percentile(latencies, 99)), 2),
            "recall_at_10": recall_at(found, truth),
            "before_grow_k_x4_p50_ms": round(float(np.percentile(grown, 50)), 2),
            "before_grow_k_x4_recall_at_10": recall_at([item[:10] for item in before], truth),
        }
    return report


def run(size: int, queries: np.ndarray, repeats: int) -> dict:
    data_dir = RESULTS / f"filters-{size}"
    shutil.rmtree(data_dir, ignore_errors=True)
    workspace = Workspace(load_settings(data_dir).with_overrides(model_cache_dir=str(RESULTS / "models"), index_threads=1))
    rng = np.random.default_rng(size)
    synthetic_catalog(workspace, size, queries, rng)
    engine = SearchEngine(workspace)
    report = filter_costs(workspace, engine, size, queries, rng, repeats)
    engine.close()
    workspace.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    workspace = Workspace(load_settings(RESULTS / "filters-seeds").with_overrides(model_cache_dir=str(RESULTS / "models")))
    queries = workspace.embedder.embed([load_image(path, 256) for path in photos(40)])
    report = {"date": today(), "machine": machine(), "results": [run(size, queries, args.repeats) for size in args.sizes]}
    print(json.dumps(report, indent=2))
    (RESULTS / f"filters-{today()}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
