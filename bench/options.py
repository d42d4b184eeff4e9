"""What each search option costs: one whole search (decode, embed, locate, kNN, verify, rank, page) per option.

    python bench/options.py                      # on the catalog bench/quality.py imported (3,068 photos)
    python bench/options.py --queries 60

Queries are the clothing-small test photos as JPEG bytes, through ``SearchEngine.search`` exactly as
``/v1/search`` runs it (validation included), one at a time, 2 threads (one for FAISS, as ``serve`` runs it).  Reported: p50 and p90 per
option, and the engine's own split (embed, locate, rank).  The kNN share grows with the catalog
(0.97 ms at 100k images, ``bench/backends.py``); everything else does not depend on its size.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from pathlib import Path

import numpy as np
from common import RESULTS, dataset_split, machine, today

from imagesearch.config import load_settings
from imagesearch.search.engine import SearchEngine
from imagesearch.search.params import V1_FIELDS
from imagesearch.workspace import Workspace

OPTIONS: dict[str, dict] = {
    "similar": {},
    "similar + crop": {"crop": True},
    "similar + groups": {"groups": True},
    "same": {"search_type": "same"},
    "same + crop": {"search_type": "same", "crop": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(RESULTS / "quality-data-defaults"), help="a data directory bench/quality.py imported")
    parser.add_argument("--queries", type=int, default=60)
    args = parser.parse_args()
    settings = load_settings(Path(args.data)).with_overrides(model_cache_dir=str(RESULTS / "models"), threads=2, index_threads=1)
    workspace = Workspace(settings)
    engine = SearchEngine(workspace)
    engine.warm_up()
    photos = [base64.b64encode(path.read_bytes()).decode() for path, _ in dataset_split("clothing-small", "test")[: args.queries]]
    report: dict = {"date": today(), "machine": machine(), "catalog_images": len(engine.snapshot().index), "options": {}}
    for name, fields in OPTIONS.items():
        engine.search(engine.parse({"image_base64": photos[0], **fields}, fields=V1_FIELDS))  # warm this path
        totals, splits = [], []
        for photo in photos:
            started = time.perf_counter()
            page = engine.search(engine.parse({"image_base64": photo, **fields}, fields=V1_FIELDS))
            totals.append((time.perf_counter() - started) * 1000)
            splits.append(page.timings)
        report["options"][name] = {
            "p50_ms": round(float(np.percentile(totals, 50)), 1), "p90_ms": round(float(np.percentile(totals, 90)), 1),
            **{f"{key}_p50": round(float(np.median([split.get(key, 0.0) for split in splits])), 1)
               for key in ("embed_ms", "locate_ms", "rank_ms")},
        }
        print(name, report["options"][name], flush=True)
    workspace.close()
    (RESULTS / f"options-{today()}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
