"""Writes: what one small catalog change costs (time and bytes written), from 10k to 1M images.

    python bench/writes.py                          # 10k and 100k images
    python bench/writes.py --sizes 10000 100000 1000000

For each size, a catalog of N products with one image each (vectors clustered
around real embeddings, as in bench/speed.py) is committed through the real
``commit_changes``; then, each timed alone and repeated:

* one price change (the same product, same images, a new price),
* one image added (a new product with a new photo),
* one product deleted,
* and a compaction of what those left.

Bytes written are the process's ``write_bytes`` and ``wchar`` from
``/proc/self/io`` around the operation (``write_bytes``: what reached the
storage layer, fsyncs included; ``wchar``: every byte passed to write()),
beside the size of a 1280-d float32 index of the catalog, the unit the
issue's targets use.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
from common import RESULTS, load_image, machine, today
from speed import photos, synthetic_catalog

from imagesearch.catalog.base import Blob, CatalogWriter
from imagesearch.catalog.records import validate_record
from imagesearch.config import load_settings
from imagesearch.ingest.compact import compact
from imagesearch.ingest.importer import commit_changes, delete_products
from imagesearch.workspace import Workspace


def io_counters() -> dict[str, int]:
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return {"write_bytes": int(fields["write_bytes"]), "wchar": int(fields["wchar"])}


def measured(operation: object) -> dict[str, float]:
    before, started = io_counters(), time.perf_counter()
    operation()  # type: ignore[operator]
    seconds, after = time.perf_counter() - started, io_counters()
    return {"ms": round(seconds * 1000, 2), **{key: after[key] - before[key] for key in after}}


def record(number: int, sale: str) -> object:
    return validate_record({
        "product_id": f"s{number}", "shop_id": 1, "title": "x", "price": {"sale": sale, "currency": "USD"}, "images": ["x"],
    }, "en")


def write_costs(workspace: Workspace, size: int, seeds: np.ndarray, rng: np.random.Generator, repeats: int) -> dict:
    """Median time and bytes of a price change, an image added and a product deleted on ``workspace``'s catalog
    (products ``s0``..``s<size-1>`` with one image each, as :func:`speed.synthetic_catalog` makes them)."""
    samples: dict[str, list[dict[str, float]]] = {"price_change": [], "image_added": [], "product_deleted": []}
    for attempt in range(repeats):
        target = int(rng.integers(len(seeds), size))

        def price(writer: CatalogWriter, number: int = target) -> tuple[list[int], list[int]]:
            return writer.upsert_product(record(number, str(Decimal(attempt + 2) / 4)), [""], [f"{number:064x}"])

        samples["price_change"].append(measured(lambda: commit_changes(workspace, price)))
        vector = seeds[attempt % len(seeds)] + rng.normal(0, 0.02, seeds.shape[1]).astype(np.float32)
        vector /= np.linalg.norm(vector)
        sha = f"{10**9 + attempt:064x}"
        workspace.catalog.store_blobs([Blob(sha, 1, 1, b"\xff\xd8\xff\xd9", vector)])  # phase 1: not timed here

        def added(writer: CatalogWriter, sha: str = sha) -> tuple[list[int], list[int]]:
            return writer.upsert_product(record(size + attempt, "1.00"), [""], [sha])

        samples["image_added"].append(measured(lambda: commit_changes(workspace, added)))
        victim = int(rng.integers(len(seeds), size))
        samples["product_deleted"].append(measured(lambda: delete_products(workspace, [f"s{victim}"])))
    float32_index = size * 1280 * 4
    report: dict = {"float32_index_bytes": float32_index}
    for name, rows in samples.items():
        report[name] = {
            "ms_p50": round(float(np.median([row["ms"] for row in rows])), 2),
            "write_bytes_p50": int(np.median([row["write_bytes"] for row in rows])),
            "wchar_p50": int(np.median([row["wchar"] for row in rows])),
            "share_of_float32_index": round(float(np.median([row["write_bytes"] for row in rows])) / float32_index, 5),
        }
    return report


def no_auto_compaction(data_dir: Path, **overrides: object) -> Workspace:
    """A workspace whose writes never trigger a compaction (so each write is measured alone)."""
    return Workspace(load_settings(data_dir).with_overrides(
        model_cache_dir=str(RESULTS / "models"), compact_delta_ratio=1e9, compact_max_deltas=10**6, **overrides,
    ))


def run(size: int, seeds: np.ndarray, repeats: int) -> dict:
    data_dir = RESULTS / f"writes-{size}"
    shutil.rmtree(data_dir, ignore_errors=True)
    workspace = no_auto_compaction(data_dir)
    rng = np.random.default_rng(size)
    build_seconds = synthetic_catalog(workspace, size, seeds, rng)
    costs = write_costs(workspace, size, seeds, rng, repeats)
    state = workspace.index_state()
    compaction = measured(lambda: compact(workspace))
    report = {
        "images": size,
        "catalog_commit_s": round(build_seconds, 1),
        "before_compaction": {"segments": len(state.segments), "tombstones": state.tombstone_count},
        "compaction": compaction,
        **costs,
    }
    workspace.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    workspace = Workspace(load_settings(RESULTS / "writes-seeds").with_overrides(model_cache_dir=str(RESULTS / "models")))
    seeds = workspace.embedder.embed([load_image(path, 256) for path in photos(64)])
    results = [run(size, seeds, args.repeats) for size in args.sizes]
    report = {"date": today(), "machine": machine(), "results": results}
    print(json.dumps(report, indent=2))
    (RESULTS / f"writes-{today()}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
