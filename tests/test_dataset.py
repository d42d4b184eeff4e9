"""On real photos (../shared/datasets/clothing-small), when present: a small quality check.

Skipped cleanly when the dataset is absent; the full figures come from
bench/quality.py and are recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from imagesearch.evaluation.transforms import TRANSFORMS
from imagesearch.ingest.importer import import_file
from imagesearch.search.engine import SearchEngine
from imagesearch.vision.decode import decode_image
from imagesearch.workspace import Workspace

DATASET = Path(os.environ.get("IMAGESEARCH_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets")) / "clothing-small"

pytestmark = [
    pytest.mark.dataset,
    pytest.mark.skipif(not (DATASET / "train").is_dir(), reason=f"dataset not found at {DATASET}"),
]


def test_real_photos_similar_and_same(tmp_path: Path, make_settings: Callable[..., Any]) -> None:
    train = sorted((DATASET / "train").glob("*/*.jpg"))[::10]  # about 300 photos, every class
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("\n".join(
        json.dumps({"product_id": f"{i}", "shop_id": 1, "title": path.parent.name, "price": {"sale": "1", "currency": "USD"},
                    "images": [str(path.relative_to(DATASET / "train"))]})
        for i, path in enumerate(train)
    ))
    workspace = Workspace(make_settings(tmp_path / "data"))
    import_file(workspace, catalog, images_root=DATASET / "train")
    engine = SearchEngine(workspace)
    views = workspace.catalog.products_by_pk(list(range(1, len(train) + 1))).values()
    label_of = {view.pk: train[int(view.product_id)].parent.name for view in views}
    pk_of = {int(view.product_id): view.pk for view in views}

    queries = sorted((DATASET / "test").glob("*/*.jpg"))[::6]
    hits = []
    for path in queries:
        _, vector = engine.embed_query(path.read_bytes())
        ranked = engine.rank_similar(vector, None)
        hits.append(label_of[ranked[0].product_pk] == path.parent.name)
    assert np.mean(hits) >= 0.6  # a 10-class problem: chance is about 0.1

    rng = np.random.default_rng(0)
    found, false_positive = [], []
    for index in range(0, len(train), 15):
        original = decode_image(train[index].read_bytes())
        for transform in TRANSFORMS.values():
            copy = transform(original, rng)
            result = engine.rank_same(copy, workspace.embedder.embed([copy])[0], None)
            found.append(pk_of[index] in {item.product_pk for item in result})
    for path in queries[:20]:
        image = decode_image(path.read_bytes())
        false_positive.append(bool(engine.rank_same(image, workspace.embedder.embed([image])[0], None)))
    assert np.mean(found) >= 0.85
    assert np.mean(false_positive) <= 0.1
