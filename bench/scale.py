"""One machine, a million images: commit, index memory, kNN, end-to-end search, writes, filters, compaction.

    python bench/scale.py                   # 1M images (about 40 minutes on 2 cores)
    python bench/scale.py --size 100000     # the same at 100k (the growth rate between the two)

One catalog of N products with one image each is committed through the real
``commit_changes`` (``speed.synthetic_catalog``: the first 512 are real
embeddings of clothing-small photos, the rest synthetic vectors clustered
around them), with the default settings (IVF of 8-bit codes over the learned
256-d reduction above 20k images), ``index_threads=1`` as ``serve`` runs.
Then, on that catalog:

* the commit: seconds and peak resident memory (VmHWM, reset before it);
* index memory: the serialised size of the segments and reductions (what a
  process holds once it has read every page of them), per image;
* kNN at k=400 (what the engine asks) for two query sets, p50 and recall@10
  against exact search over the catalog's full-precision vectors:
  *clustered synthetic* (new vectors drawn like the catalog's; adversarial:
  thousands of near-ties around each centre) and *real* (embeddings of the
  catalog's real photos under the copy transformations, the less adversarial
  set; also the share whose original comes first);
* one search end to end (decode, embed, kNN, rank, page) for real query photos;
* the ship-to filter at 1 % and 50 % (``filters.filter_costs``);
* one price change, one image added, one product deleted (``writes.write_costs``);
* a compaction as the server runs one after writes (its own process at
  nice 10): duration, the process's peak memory, and kNN p50/p99 measured
  while it runs against the same just before it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import (
    RESULTS,
    exact_top,
    load_image,
    machine,
    peak_rss_bytes,
    peak_rss_reset,
    recall_at,
    rss_bytes,
    status_bytes,
    today,
    whole_searches,
)
from filters import filter_costs
from speed import photos, synthetic_catalog
from writes import no_auto_compaction, write_costs

from imagesearch.evaluation.transforms import TRANSFORMS
from imagesearch.http.background import NICENESS
from imagesearch.search.engine import INITIAL_K, SearchEngine

SEEDS = 512
MB = 1024 * 1024


def knn(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, repeats: int = 3) -> tuple[list[float], list[np.ndarray]]:
    """Latencies (ms) of single-query searches, and the ids each found."""
    latencies, found = [], []
    for query in queries:
        for _ in range(repeats):
            started = time.perf_counter()
            ids = search(query)
            latencies.append((time.perf_counter() - started) * 1000)
        found.append(ids)
    return latencies, found


def index_memory(data_dir: Path) -> dict:
    """What opening the current generation adds to a fresh process's memory: its own (anonymous) memory, the
    index proper, and apart from it the file pages it maps (the re-ranking's rows: page cache, shared by every
    worker of the machine and given back under pressure)."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from common import status_bytes
        from imagesearch.config import load_settings
        from imagesearch.workspace import Workspace
        workspace = Workspace(load_settings(Path({str(data_dir)!r})).with_overrides(model_cache_dir={str(RESULTS / "models")!r}))
        generation, identity = workspace.generation(), workspace.embedder_identity
        anonymous, mapped = status_bytes("RssAnon"), status_bytes("RssFile")
        index = workspace.vectors.open(generation, identity)
        print(json.dumps({{"kind": index.kind, "rss_bytes": status_bytes("RssAnon") - anonymous,
                          "mapped_bytes": status_bytes("RssFile") - mapped}}))
    """)
    return json.loads(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout)


def p(values: list[float], q: int) -> float:
    return round(float(np.percentile(values, q)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the data directory afterwards")
    args = parser.parse_args()
    size = args.size
    data_dir = RESULTS / f"scale-{size}"
    shutil.rmtree(data_dir, ignore_errors=True)
    workspace = no_auto_compaction(data_dir, index_threads=1)
    rng = np.random.default_rng(size)
    real_photos = photos(SEEDS)
    seeds = workspace.embedder.embed([load_image(path, 256) for path in real_photos])
    report: dict = {"date": today(), "machine": machine(), "images": size}

    # The commit: every product in one transaction, the index built in batches.
    before = rss_bytes()
    peak_rss_reset()
    seconds = synthetic_catalog(workspace, size, seeds, rng)
    state = workspace.index_state()
    report["commit"] = {
        "seconds": round(seconds, 1), "peak_rss_mb": round(peak_rss_bytes() / MB), "rss_before_mb": round(before / MB),
        "index_on_disk_mb": round(workspace.vectors.describe(state)["bytes"] / MB, 1), "catalog_on_disk_mb": round(workspace.catalog.size_bytes() / MB),
    }
    print(json.dumps(report["commit"]), flush=True)

    memory = index_memory(data_dir)
    report["index"] = {
        **memory, "rss_bytes_per_image": round(memory["rss_bytes"] / size, 1),
        "on_disk_bytes_per_image": round(workspace.vectors.describe(state)["bytes"] / size, 1),
    }
    print(json.dumps(report["index"]), flush=True)
    engine = SearchEngine(workspace)
    snapshot = engine.snapshot()
    index = snapshot.index

    # kNN on two query sets.
    live = np.sort(index.live_ids())
    centres = seeds[rng.integers(0, len(seeds), args.queries)]
    synthetic = centres + rng.normal(0, 0.02, centres.shape).astype(np.float32)
    synthetic /= np.linalg.norm(synthetic, axis=1, keepdims=True)
    originals = rng.choice(SEEDS, args.queries, replace=False)
    names = list(TRANSFORMS)
    copies = [TRANSFORMS[names[i % len(names)]](load_image(real_photos[j], 512), np.random.default_rng(i)) for i, j in enumerate(originals)]
    real = workspace.embedder.embed(copies)
    codes_only = workspace.vectors.open(workspace.generation(), workspace.embedder_identity)
    for _, segment in codes_only.segments:  # type: ignore[attr-defined]
        segment.exact = None  # the same index without its full-precision vectors: candidates as the codes rank them
    ways = {
        "codes only (no re-rank)": lambda query: codes_only.search(query[None, :], INITIAL_K)[1][0],
        "codes + re-rank (the engine)": lambda query: engine.nearest(snapshot, query, INITIAL_K)[1],
    }
    report["knn"] = {}
    for label, queries in (("clustered synthetic", synthetic), ("real: copies of catalog photos", real)):
        truth = exact_top(workspace.catalog.vectors, live, queries, 10)
        report["knn"][label] = {}
        for way, search in ways.items():
            latencies, found = knn(search, queries)
            figures = {"k": INITIAL_K, "p50_ms": p(latencies, 50), "p99_ms": p(latencies, 99), "recall@10_vs_exact": recall_at(found, truth)}
            if label.startswith("real"):  # image id = row + 1
                figures["original_first"] = round(float(np.mean([ids[0] == j + 1 for ids, j in zip(found, originals)])), 3)
            report["knn"][label][way] = figures
        print(json.dumps({label: report["knn"][label]}), flush=True)

    # One search end to end.
    report["search_end_to_end"] = whole_searches(engine)
    print(json.dumps(report["search_end_to_end"]), flush=True)

    report["filters"] = filter_costs(workspace, engine, size, real[:40], rng, repeats=3)
    print(json.dumps(report["filters"]), flush=True)
    report["writes"] = write_costs(workspace, size, seeds, rng, repeats=7)
    print(json.dumps(report["writes"]), flush=True)

    # Compaction while searches go on, as the server runs it after writes: its own process, at nice 10,
    # one FAISS thread (``http/background.py``); the engine keeps searching the generation it has open.
    search = ways["codes + re-rank (the engine)"]
    idle, _ = knn(search, synthetic)
    during: list[float] = []
    environment = {**os.environ, "IMAGESEARCH_DATA_DIR": str(data_dir), "IMAGESEARCH_INDEX_THREADS": "1",
                   "IMAGESEARCH_MODEL_CACHE_DIR": str(RESULTS / "models")}
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "imagesearch.cli", "compact", "--nice", str(NICENESS)], env=environment,
                             stdout=subprocess.PIPE)
    peak = 0
    while child.poll() is None:
        latencies, _ = knn(search, synthetic[:10], repeats=1)
        during.extend(latencies)
        peak = max(peak, status_bytes("VmHWM", child.pid))
    seconds = time.perf_counter() - started
    compacted = json.loads(child.stdout.read())  # type: ignore[union-attr]
    report["compaction"] = {
        "seconds": round(seconds, 1), "build_and_swap_seconds": round(compacted["seconds"], 1), "vectors": compacted["vectors"],
        "segments_folded": compacted["segments_folded"], "peak_rss_mb": round(peak / MB),
        "knn_idle_p50_ms": p(idle, 50), "knn_idle_p99_ms": p(idle, 99),
        "knn_during_p50_ms": p(during, 50), "knn_during_p99_ms": p(during, 99), "searches_during": len(during),
    }
    print(json.dumps(report["compaction"]), flush=True)
    engine.close()
    workspace.close()
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    out = RESULTS / f"scale-{size}-{today()}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"report: {out}")


if __name__ == "__main__":
    main()
