"""How many cells to probe and candidates to re-rank: kNN latency and recall@10 against exact search,
on both query sets of ``bench/scale.py``, and one search end to end with the settings chosen.

    python bench/scale.py --keep                 # a million images, kept in bench/results/scale-1000000
    python bench/rerank.py                       # then this, on that data directory
    python bench/rerank.py --nprobe 32 48 --rerank 400 600 1000

Query sets (100 each, k = 400 as the engine asks, one FAISS thread):
*clustered synthetic*, vectors drawn like the synthetic catalog's (the adversarial set: thousands of
near-ties around each centre); *real*, embeddings of the catalog's real photos under the copy
transformations (the less adversarial set).  Each (nprobe, rerank) pair is applied to the same opened
index, in turn, several rounds, so a noisy moment does not favour one pair.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from common import RESULTS, exact_top, load_image, machine, recall_at, today, whole_searches
from speed import photos

from imagesearch.config import load_settings
from imagesearch.evaluation.transforms import TRANSFORMS
from imagesearch.search.engine import INITIAL_K, SearchEngine
from imagesearch.workspace import Workspace

SEEDS = 512


def query_sets(workspace: Workspace, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(the embeddings of the 512 real photos the synthetic catalog is drawn around, {name: 100 queries})."""
    real_photos = photos(SEEDS)
    seeds = workspace.embedder.embed([load_image(path, 256) for path in real_photos])
    synthetic = seeds[rng.integers(0, len(seeds), 100)] + rng.normal(0, 0.02, (100, seeds.shape[1])).astype(np.float32)
    synthetic /= np.linalg.norm(synthetic, axis=1, keepdims=True)
    names = list(TRANSFORMS)
    originals = rng.choice(SEEDS, 100, replace=False)
    copies = [TRANSFORMS[names[i % len(names)]](load_image(real_photos[j], 512), np.random.default_rng(i)) for i, j in enumerate(originals)]
    return seeds, {"clustered synthetic": synthetic, "real: copies of catalog photos": workspace.embedder.embed(copies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=RESULTS / "scale-1000000")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[24, 32, 48])
    parser.add_argument("--rerank", type=int, nargs="+", default=[400, 600, 800, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workspace = Workspace(load_settings(args.data_dir).with_overrides(model_cache_dir=str(RESULTS / "models"), index_threads=1))
    index = workspace.open_index(workspace.generation())
    index.warm()  # as a searcher opens it
    _, sets = query_sets(workspace, np.random.default_rng(5))
    live = np.sort(index.live_ids())
    truth = {label: exact_top(workspace.catalog.vectors, live, queries, 10) for label, queries in sets.items()}
    pairs = [(nprobe, rerank) for nprobe in args.nprobe for rerank in args.rerank]
    latencies: dict[tuple[str, int, int], list[float]] = {}
    found: dict[tuple[str, int, int], list[np.ndarray]] = {}
    for _ in range(args.rounds):
        for nprobe, rerank in pairs:
            for _, segment in index.segments:  # type: ignore[attr-defined]
                segment.settings = dataclasses.replace(segment.settings, nprobe=nprobe, rerank=rerank)
            for label, queries in sets.items():
                key = (label, nprobe, rerank)
                results = []
                for query in queries:
                    started = time.perf_counter()
                    _, ids = index.search(query[None, :], INITIAL_K)
                    latencies.setdefault(key, []).append((time.perf_counter() - started) * 1000)
                    results.append(ids[0])
                found[key] = results
    report: dict = {"date": today(), "machine": machine(), "images": len(index), "index": index.kind, "k": INITIAL_K, "knn": []}
    for (label, nprobe, rerank), values in latencies.items():
        row = {"queries": label, "nprobe": nprobe, "rerank": rerank, "p50_ms": round(float(np.percentile(values, 50)), 3),
               "p99_ms": round(float(np.percentile(values, 99)), 3), "recall@10_vs_exact": recall_at(found[(label, nprobe, rerank)], truth[label])}
        report["knn"].append(row)
        print(json.dumps(row), flush=True)

    # One search end to end with the configured settings (decode, embed, kNN, rank, sort, store, page).
    engine = SearchEngine(workspace)
    report["search_end_to_end"] = {"settings": {"nprobe": workspace.settings.ivf_nprobe, "rerank": workspace.settings.index_rerank},
                                   **whole_searches(engine)}
    print(json.dumps(report["search_end_to_end"]), flush=True)
    engine.close()
    workspace.close()
    (RESULTS / f"rerank-{today()}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
