"""Retrieval quality on clothing-small: "similar" by class, "same" by copy detection.

    python bench/quality.py [--model efficientnet-lite0] [--resize squash] [--no-flip]

Catalog = train (3,068 images, one product each); "similar" queries = test
(372): Precision@1, Precision@10 and mAP@10 by class.  "same": 500 catalog
images x 8 transformations (evaluation.transforms): Recall@1 per
transformation; and the ``same`` decision (ranking.select_same), whose margin
threshold is chosen on validation-split negatives (queries whose original is
not in the catalog) for at most 1 % false positives, then reported on
test-split negatives and the held-out half of the copies.  A perceptual-hash
(imagehash pHash) baseline runs on the same data in the same process.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import imagehash
import numpy as np

from common import RESULTS, dataset_split, embed_images, cached_embeddings, load_image, machine, today
from imagesearch.evaluation.metrics import average_precision_at, precision_at
from imagesearch.evaluation.transforms import TRANSFORMS
from imagesearch.index.faiss_index import FaissIndex, FaissSettings
from imagesearch.search.ranking import aggregate, background
from imagesearch.vision.efficientnet import EfficientNetLiteEmbedder, EfficientNetSettings

COPY_ORIGINALS = 500
MAX_FP = 0.01


def similar_metrics(ranked_labels: list[list[str]], query_labels: list[str], gallery_counts: dict[str, int]) -> dict:
    per_class: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for labels, truth in zip(ranked_labels, query_labels):
        relevant = [label == truth for label in labels]
        per_class[truth].append(
            (precision_at(relevant, 1), precision_at(relevant, 10), average_precision_at(relevant, 10, gallery_counts[truth]))
        )
    overall = np.mean([row for rows in per_class.values() for row in rows], axis=0)
    return {
        "P@1": round(float(overall[0]), 3),
        "P@10": round(float(overall[1]), 3),
        "mAP@10": round(float(overall[2]), 3),
        "by_class": {
            label: {"n": len(rows), **dict(zip(("P@1", "P@10", "mAP@10"), np.round(np.mean(rows, axis=0), 3).tolist()))}
            for label, rows in sorted(per_class.items())
        },
    }


def make_copies(paths: list[Path], seed: int) -> tuple[list, list[str], list[int]]:
    """Each path x each transformation: (images, transformation names, source indices)."""
    rng = np.random.default_rng(seed)
    images, names, sources = [], [], []
    for index, path in enumerate(paths):
        original = load_image(path)
        for name, transform in TRANSFORMS.items():
            images.append(transform(original, rng))
            names.append(name)
            sources.append(index)
    return images, names, sources


def margins(index: FaissIndex, vectors: np.ndarray, k: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-1 id, top-1 score and top-1 margin over the background, per query."""
    scores, ids = index.search(vectors, k)
    owners = {int(i): int(i) for i in np.unique(ids) if i >= 0}
    top_ids, top_scores, top_margins = [], [], []
    for row_scores, row_ids in zip(scores, ids):
        ranked = aggregate(row_scores, row_ids, owners)
        top_ids.append(ranked[0].product_pk)
        top_scores.append(ranked[0].score)
        top_margins.append(ranked[0].score - background(ranked))
    return np.array(top_ids), np.array(top_scores), np.array(top_margins)


def threshold_for(negative_values: np.ndarray, max_fp: float) -> float:
    """Smallest threshold that lets at most ``max_fp`` of negatives through."""
    ordered = np.sort(negative_values)[::-1]
    allowed = int(np.floor(max_fp * len(ordered)))
    return float(ordered[allowed]) + 1e-6


def phash_baseline(gallery: list[Path], gallery_labels: list[str], queries: list[Path], query_labels: list[str],
                   copies: list, copy_sources: list[int], copy_names: list[str], originals: list[int]) -> dict:
    def bits(image) -> np.ndarray:
        return imagehash.phash(image).hash.flatten()

    gallery_bits = np.stack([bits(load_image(path)) for path in gallery])
    counts = defaultdict(int)
    for label in gallery_labels:
        counts[label] += 1
    ranked = []
    for path in queries:
        distances = (gallery_bits != bits(load_image(path))).sum(axis=1)
        order = np.argsort(distances, kind="stable")[:10]
        ranked.append([gallery_labels[i] for i in order])
    similar = similar_metrics(ranked, query_labels, counts)
    hits = defaultdict(list)
    for image, source, name in zip(copies, copy_sources, copy_names):
        distances = (gallery_bits != bits(image)).sum(axis=1)
        hits[name].append(int(np.argmin(distances)) == originals[source])
    recall = {name: round(float(np.mean(values)), 3) for name, values in hits.items()}
    recall["all"] = round(float(np.mean([v for values in hits.values() for v in values])), 3)
    return {"similar": {key: similar[key] for key in ("P@1", "P@10", "mAP@10")}, "copy_recall@1": recall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--resize", default="squash", help="squash, crop, pad or a combination like squash,crop")
    parser.add_argument("--no-flip", dest="flip", action="store_false")
    parser.add_argument("--no-trim", dest="trim", action="store_false")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    parser.add_argument("--no-phash", dest="phash", action="store_false")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    embedder = EfficientNetLiteEmbedder(
        EfficientNetSettings(model=args.model, resize=args.resize, flip=args.flip, trim=args.trim, precision=args.precision),
        RESULTS / "models",
    )
    train = dataset_split("clothing-small", "train")
    test = dataset_split("clothing-small", "test")
    validation = dataset_split("clothing-small", "validation")
    gallery_paths = [path for path, _ in train]
    gallery_labels = [label for _, label in train]
    gallery = cached_embeddings(embedder, "train", gallery_paths)
    index = FaissIndex(embedder.dim, FaissSettings(kind="flat"))
    index.add(np.arange(len(gallery), dtype=np.int64), gallery)

    # "similar": test queries against the train catalog.
    query_vectors = cached_embeddings(embedder, "test", [path for path, _ in test])
    _, ids = index.search(query_vectors, 10)
    counts = defaultdict(int)
    for label in gallery_labels:
        counts[label] += 1
    similar = similar_metrics([[gallery_labels[i] for i in row] for row in ids], [label for _, label in test], counts)

    # "same": copies of 500 catalog images; negatives: copies of images not in the catalog.
    rng = np.random.default_rng(args.seed)
    originals = sorted(rng.choice(len(gallery_paths), COPY_ORIGINALS, replace=False).tolist())
    copies, copy_names, copy_sources = make_copies([gallery_paths[i] for i in originals], args.seed)
    copy_vectors = embed_images(embedder, copies)
    top_ids, top_scores, top_margins = margins(index, copy_vectors)
    truth = np.array([originals[source] for source in copy_sources])
    correct = top_ids == truth
    names = np.array(copy_names)
    recall = {name: round(float(correct[names == name].mean()), 3) for name in TRANSFORMS}
    recall["all"] = round(float(correct.mean()), 3)

    negatives = {}
    for split, items in (("validation", validation), ("test", test)):
        images, _, _ = make_copies([path for path, _ in items], args.seed + 1)
        negatives[split] = margins(index, embed_images(embedder, images))
    calibrate_half = np.array([source % 2 == 0 for source in copy_sources])
    same = {}
    for rule, values, negative_values in (
        ("margin", top_margins, {split: result[2] for split, result in negatives.items()}),
        ("raw_cosine", top_scores, {split: result[1] for split, result in negatives.items()}),
    ):
        threshold = threshold_for(negative_values["validation"], MAX_FP)
        accepted = (values >= threshold) & correct
        same[rule] = {
            "threshold": round(threshold, 4),
            "recall_heldout": round(float(accepted[~calibrate_half].mean()), 3),
            "recall_all": round(float(accepted.mean()), 3),
            "fp_rate_test_negatives": round(float((negative_values["test"] >= threshold).mean()), 4),
            "recall_by_transform": {
                name: round(float(accepted[names == name].mean()), 3) for name in TRANSFORMS
            },
        }

    report = {
        "date": today(),
        "machine": machine(),
        "embedder": f"{embedder.name} {embedder.version}",
        "catalog_images": len(gallery_paths),
        "similar": similar,
        "copy_recall@1": recall,
        "same_decision_at_1pct_fp": same,
        "negatives": {split: len(result[0]) for split, result in negatives.items()},
    }
    if args.phash:
        report["phash_baseline"] = phash_baseline(
            gallery_paths, gallery_labels, [path for path, _ in test], [label for _, label in test],
            copies, copy_sources, copy_names, originals,
        )
    text = json.dumps(report, indent=2)
    print(text)
    label = f"{args.model}-{args.resize.replace(',', '+')}-{'flip' if args.flip else 'noflip'}-{'trim' if args.trim else 'notrim'}-{args.precision}"
    out = args.out or RESULTS / f"quality-{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
