"""Packshot catalogs: shopper-style photos searched against studio packshots of the same products.

    python bench/packshots.py                         # every variant
    python bench/packshots.py --variants frame rmac   # some

Built from clothing-small (documented in BENCHMARKS.md, "Packshots"): each train photo's
garment is cut out with OpenCV's GrabCut (initialised with the central 90 % of the photo) and
placed on a plain white square with a 12 % margin: a studio packshot.  The catalog is those
3,068 packshots; the queries are

- ``item``: 600 of the original photos, whose own packshot is the right answer (Recall@1, @5),
  the shopper-photo -> packshot case;
- ``shopper``: the same 600 photos, each shrunk into a larger scene beside three other garments'
  photos (a shelf, a rail: the product covers about a quarter of the picture), so the query has
  clutter and a background that the packshot has not; ``shopper_region``: the same scenes with the
  product's box as the caller's region (what dragging a box on the web page sends);
- ``similar``: the 372 test photos, scored by the class of the top packshot (P@1), as in
  ``bench/quality.py``;
- ``copies``: the 8 copy transformations of ``evaluation.transforms`` applied to 500 train
  photos, searched among the original photos (Recall@1), to see what each variant does to
  near-copies (the ``border`` transformation adds a 20 % white frame).

Each variant runs through the real decode and embed path (exhaustive cosine search, so the index
plays no part).  Trimming: ``none`` (no trimming), ``frame`` (only bands whose inner side is a
straight picture edge) and ``bbox`` (the earlier trim: to the bounding box of whatever differs from
the border colour, which crops a packshot to its product).  Descriptors (frame trimming): the
pooling, the input side and the views of :data:`VARIANTS`.  Each also reports the photo catalog
(the train photos searched by the test photos: P@1 and mAP@10 by class), and every figure again
with the vectors centred on a mean before the cosine (the catalog-mean centring lever), and what
the located boxes achieve (``crop`` and ``groups``: :func:`located_figures`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from common import RESULTS, batched, dataset_split, machine, today
from PIL import Image

from imagesearch.config import load_settings
from imagesearch.evaluation.metrics import average_precision_at
from imagesearch.evaluation.transforms import TRANSFORMS
from imagesearch.vision import preprocess, subject
from imagesearch.vision.decode import decode_image, draft_side
from imagesearch.workspace import Workspace

PACKSHOTS = RESULTS / "packshots"
ITEM_QUERIES = 600
COPY_ORIGINALS = 500
MARGIN = 0.12
#: The descriptor before 2026-11-29's change: one centre crop and its mirror, GeM-pooled.
EARLIER = {"pooling": "gem", "resize": "crop", "flip": True, "colour": 0}
#: The views and pooling of 2026-11-29 to 2026-11-30, without the colour signature.
INNER = {"pooling": "rmac", "resize": "crop,inner", "flip": False, "colour": 0}
#: name -> settings; "bbox" also turns the frame test off (every plain side is cut, the earlier trim).
VARIANTS: dict[str, dict] = {
    "none": {**EARLIER, "trim": False},
    "frame": EARLIER,
    "bbox": EARLIER,
    "rmac": {**EARLIER, "pooling": "rmac"},
    "gem-320": {**EARLIER, "input_size": 320},
    "rmac-320": {**EARLIER, "pooling": "rmac", "input_size": 320},
    "rmac-320-inner": {**INNER, "input_size": 320},
    "gem-inner": {**INNER, "pooling": "gem"},
    "rmac-inner": INNER,
    "rmac-inner-flip": {**INNER, "flip": True},
    "lite2-rmac-inner": {**INNER, "model": "efficientnet-lite2"},  # the larger model
    "colour": {**INNER, "colour": 0.2},  # today's default: the colour signature appended (vision/colour.py)
    "colour-0.3": {**INNER, "colour": 0.3},
}
FRAME_EDGE_SHARE = preprocess.TRIM_EDGE_SHARE


def packshot(source: Path, destination: Path) -> None:
    """The garment of ``source`` cut out by GrabCut and centred on white with a margin."""
    import cv2

    photo = Image.open(source).convert("RGB")
    photo.thumbnail((320, 320))
    pixels = np.asarray(photo)[:, :, ::-1].copy()
    height, width = pixels.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    rect = (int(width * 0.05), int(height * 0.05), int(width * 0.9), int(height * 0.9))
    cv2.grabCut(pixels, mask, rect, np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64), 3, cv2.GC_INIT_WITH_RECT)
    keep = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    if keep.mean() < 0.05:  # GrabCut lost the subject: keep the central region rather than nothing
        keep[rect[1] : rect[1] + rect[3], rect[0] : rect[0] + rect[2]] = True
    rows, columns = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
    cut = np.where(keep[:, :, None], np.asarray(photo), 255).astype(np.uint8)[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    product = Image.fromarray(cut)
    side = int(max(product.size) / (1 - 2 * MARGIN))
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(product, ((side - product.width) // 2, (side - product.height) // 2))
    destination.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(destination, quality=92)


def build_packshots(train: Sequence[tuple[Path, str]]) -> list[Path]:
    targets = [PACKSHOTS / f"{index:05d}.jpg" for index in range(len(train))]
    missing = [(source, target) for (source, _), target in zip(train, targets) if not target.exists()]
    if missing:
        started = time.perf_counter()
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(packshot, [source for source, _ in missing], [target for _, target in missing], chunksize=16))
        print(f"built {len(missing)} packshots in {time.perf_counter() - started:.0f} s")
    return targets


def embed(workspace: Workspace, images: list[bytes] | list[Image.Image]) -> np.ndarray:
    embedder = workspace.embedder
    rows = []
    for batch in batched(images, 32):
        decoded = [item if isinstance(item, Image.Image) else decode_image(item, draft_size=draft_side(embedder.input_size)) for item in batch]
        rows.append(embedder.embed(decoded))
    return np.concatenate(rows)


def shopper_scene(photo: Image.Image, others: list[Image.Image], rng: np.random.Generator) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """``photo`` in one quadrant of a 2x2 scene whose other quadrants hold ``others``, jittered, on a grey wall;
    and the box of ``photo`` in it (what a shopper would drag)."""
    side = 512
    canvas = Image.new("RGB", (side * 2, side * 2), tuple(int(v) for v in rng.integers(90, 170, 3)))
    spots = [(0, 0), (side, 0), (0, side), (side, side)]
    order = rng.permutation(4)
    box = (0, 0, 0, 0)
    for number, (picture, spot) in enumerate(zip([photo, *others], [spots[i] for i in order])):
        tile = picture.copy()
        tile.thumbnail((int(side * 0.92), int(side * 0.92)))
        jitter = rng.integers(0, side - max(tile.size) + 1, 2)
        corner = (spot[0] + int(jitter[0]), spot[1] + int(jitter[1]))
        canvas.paste(tile, corner)
        if number == 0:
            box = (corner[0], corner[1], corner[0] + tile.width, corner[1] + tile.height)
    return canvas, box


def normalised(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def recall_at(scores: np.ndarray, truth: np.ndarray, k: int) -> float:
    top = np.argsort(-scores, axis=1)[:, :k]
    return float((top == truth[:, None]).any(axis=1).mean())


def located_figures(workspace: Workspace, scenes: list[Image.Image], truths: list[tuple[int, int, int, int]], catalog: np.ndarray,
                    items: np.ndarray, photos: list[Image.Image]) -> dict:
    """What the located boxes do (``crop`` and ``groups`` of /v1/search): on the cluttered scenes, Recall@1 of the
    main subject's box, and of the best group (the product first in any group's results); how often a group's box
    covers the product (IoU > 0.5); and on the plain item photos, Recall@1 with the query cropped to its main subject."""
    feature_maps = workspace.embedder.feature_maps  # type: ignore[attr-defined]
    main_hits, group_hits, found, groups, millis = [], [], [], [], []
    for scene, truth, wanted in zip(scenes, truths, items):
        started = time.perf_counter()
        located = subject.locate(scene, feature_maps)
        millis.append((time.perf_counter() - started) * 1000)
        crops = [scene.crop(box.corners) for box in located]
        best = np.argmax(workspace.embedder.embed(crops) @ catalog.T, axis=1)
        main_hits.append(best[0] == wanted)
        group_hits.append(bool((best == wanted).any()))
        found.append(max(overlap(box, (truth[0], truth[1], truth[2] - truth[0], truth[3] - truth[1])) for box in located) > 0.5)
        groups.append(len(located))
    cropped = []
    for photo in photos:
        box = subject.locate(photo, feature_maps)[0]
        cropped.append(photo.crop(box.corners))
    item_scores = embed(workspace, cropped) @ catalog.T
    return {
        "shopper_main_box_recall_at_1": float(np.mean(main_hits)), "shopper_any_group_recall_at_1": float(np.mean(group_hits)),
        "shopper_product_boxed": float(np.mean(found)), "groups_per_scene": float(np.mean(groups)),
        "locate_ms_p50": float(np.median(millis)), "item_cropped_recall_at_1": recall_at(item_scores, items, 1),
    }


def overlap(box: Sequence[int], truth: Sequence[int]) -> float:
    """Intersection over union of two (x, y, width, height) boxes."""
    width = min(box[0] + box[2], truth[0] + truth[2]) - max(box[0], truth[0])
    height = min(box[1] + box[3], truth[1] + truth[3]) - max(box[1], truth[1])
    inter = max(0, width) * max(0, height)
    return inter / (box[2] * box[3] + truth[2] * truth[3] - inter)


def class_metrics(scores: np.ndarray, gallery_labels: np.ndarray, query_labels: np.ndarray) -> dict:
    """P@1 and mAP@10 by class (as ``bench/quality.py`` computes them) of each query's ranking of the gallery."""
    top = np.argsort(-scores, axis=1)[:, :10]
    counts = {label: int((gallery_labels == label).sum()) for label in set(gallery_labels)}
    relevant = gallery_labels[top] == query_labels[:, None]
    ap = [average_precision_at(list(row), 10, counts[label]) for row, label in zip(relevant, query_labels)]
    return {"p_at_1": float(relevant[:, 0].mean()), "map_at_10": float(np.mean(ap))}


def run_variant(variant: str, train: list[tuple[Path, str]], test: list[tuple[Path, str]], packs: list[Path]) -> dict:
    preprocess.TRIM_EDGE_SHARE = 0.0 if variant == "bbox" else FRAME_EDGE_SHARE  # 0: every plain side is cut (the earlier trim)
    settings = load_settings(RESULTS / "packshots-data").with_overrides(model_cache_dir=str(RESULTS / "models"), **VARIANTS[variant])
    workspace = Workspace(settings)
    _ = workspace.embedder
    started = time.perf_counter()
    catalog = embed(workspace, [path.read_bytes() for path in packs])
    catalog_rate = len(packs) / (time.perf_counter() - started)
    rng = np.random.default_rng(5)
    items = np.sort(rng.choice(len(train), ITEM_QUERIES, replace=False))
    originals = embed(workspace, [path.read_bytes() for path, _ in train])
    item_scores = originals[items] @ catalog.T
    scene_rng = np.random.default_rng(11)
    scenes, boxes = [], []
    for index in items:
        others = [decode_image(train[int(other)][0].read_bytes()) for other in scene_rng.choice(len(train), 3, replace=False)]
        picture, box = shopper_scene(decode_image(train[int(index)][0].read_bytes()), others, scene_rng)
        scenes.append(picture)
        boxes.append(box)
    scene_vectors = embed(workspace, scenes)
    region_vectors = embed(workspace, [picture.crop(box) for picture, box in zip(scenes, boxes)])
    shopper_scores, region_scores = scene_vectors @ catalog.T, region_vectors @ catalog.T
    located = located_figures(workspace, scenes, boxes, catalog, items, [decode_image(train[int(i)][0].read_bytes()) for i in items])
    test_vectors = embed(workspace, [path.read_bytes() for path, _ in test])
    labels = np.array([label for _, label in train])
    top = np.argmax(test_vectors @ catalog.T, axis=1)
    similar_p1 = float((labels[top] == np.array([label for _, label in test])).mean())
    copies: dict[str, float] = {}
    chosen = np.sort(rng.choice(len(train), COPY_ORIGINALS, replace=False))
    for name, transform in TRANSFORMS.items():
        transformed = []
        for index in chosen:
            image = decode_image(train[index][0].read_bytes())
            transformed.append(transform(image, np.random.default_rng(int(index))))
        copies[name] = recall_at(embed(workspace, transformed) @ originals.T, chosen, 1)
    workspace.close()
    # The catalog-mean centring lever (not in the product yet): each vector minus a mean, then L2; the mean of the
    # packshot catalog itself, or of photos like the queries (the train photos: the shoppers' domain).
    centring = {}
    train_labels = np.array([label for _, label in train])
    for name, mean in (("packshot_mean", catalog.mean(0)), ("photo_mean", originals.mean(0))):
        centred = normalised(catalog - mean)
        centring[name] = {
            "item_recall_at_1": recall_at(normalised(originals[items] - mean) @ centred.T, items, 1),
            "shopper_recall_at_1": recall_at(normalised(scene_vectors - mean) @ centred.T, items, 1),
            "shopper_region_recall_at_1": recall_at(normalised(region_vectors - mean) @ centred.T, items, 1),
        }
    photo_mean = originals.mean(0)  # photo -> photo (the catalog is the train photos): its own mean is the right domain
    test_labels = np.array([label for _, label in test])
    photo_catalog = {
        "raw": class_metrics(test_vectors @ originals.T, train_labels, test_labels),
        "centred": class_metrics(normalised(test_vectors - photo_mean) @ normalised(originals - photo_mean).T, train_labels, test_labels),
    }
    return {
        "variant": variant,
        "item_recall_at_1": recall_at(item_scores, items, 1), "item_recall_at_5": recall_at(item_scores, items, 5),
        "shopper_recall_at_1": recall_at(shopper_scores, items, 1), "shopper_recall_at_5": recall_at(shopper_scores, items, 5),
        "shopper_region_recall_at_1": recall_at(region_scores, items, 1),
        "similar_p_at_1": similar_p1, "copies_recall_at_1": copies,
        "copies_mean": float(np.mean(list(copies.values()))), "seconds": round(time.perf_counter() - started, 1),
        "catalog_images_per_second": round(catalog_rate, 1), "photo_catalog": photo_catalog, "centring": centring,
        "located": located,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    train = dataset_split("clothing-small", "train")
    test = dataset_split("clothing-small", "test")
    packs = build_packshots(train)
    results = [run_variant(variant, train, test, packs) for variant in args.variants]
    report = {"date": today(), "machine": machine(), "catalog_packshots": len(packs), "results": results}
    print(json.dumps(report, indent=2))
    (RESULTS / f"packshots-{today()}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
