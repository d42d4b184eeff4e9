"""How many candidates a compact segment should re-rank: latency and recall@10 against exact search.

    python bench/scale.py --keep                 # a million images, kept in bench/results/scale-1000000
    python bench/rerank.py                       # then this, on that data directory

Queries: 100 vectors drawn like the clustered synthetic catalog's (the
adversarial set of ``bench/scale.py``), k = 400 as the engine asks, one FAISS
thread; each ``index_rerank`` value is applied to the same opened index.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from common import RESULTS, exact_top, load_image, machine, recall_at, today
from speed import photos

from imagesearch.config import load_settings
from imagesearch.search.engine import INITIAL_K
from imagesearch.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=RESULTS / "scale-1000000")
    parser.add_argument("--values", type=int, nargs="+", default=[400, 600, 1000, 2000])
    args = parser.parse_args()
    workspace = Workspace(load_settings(args.data_dir).with_overrides(model_cache_dir=str(RESULTS / "models"), index_threads=1))
    seeds = workspace.embedder.embed([load_image(path, 256) for path in photos(512)])
    rng = np.random.default_rng(5)
    queries = seeds[rng.integers(0, len(seeds), 100)] + rng.normal(0, 0.02, (100, seeds.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index = workspace.open_index(workspace.generation())
    truth = exact_top(workspace.catalog.vectors, np.sort(index.live_ids()), queries, 10)
    report: dict = {"date": today(), "machine": machine(), "images": len(index), "index": index.kind, "results": {}}
    for value in args.values:
        for _, segment in index.segments:  # type: ignore[attr-defined]
            segment.settings = dataclasses.replace(segment.settings, rerank=value)
        latencies, found = [], []
        for query in queries:
            for _ in range(3):
                started = time.perf_counter()
                _, ids = index.search(query[None, :], INITIAL_K)
                latencies.append((time.perf_counter() - started) * 1000)
            found.append(ids[0])
        report["results"][value] = {
            "p50_ms": round(float(np.percentile(latencies, 50)), 2), "p99_ms": round(float(np.percentile(latencies, 99)), 2),
            "recall@10_vs_exact": recall_at(found, truth),
        }
        print(json.dumps({value: report["results"][value]}), flush=True)
    (RESULTS / f"rerank-{today()}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
