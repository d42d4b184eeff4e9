"""Calibrating the "same" rule on the catalog at hand.

How many geometric inliers (and how large a margin) separate a copy from a
look-alike depends on the catalog: studio shots on one carpet share keypoints,
flat drawings share CNN features.  So, as the benchmarks showed, thresholds are
best set on the catalog itself: sample catalog photos (their thumbnails), make
copies with the eight transformations of :mod:`imagesearch.evaluation` and
second photographs with its five others, and search each twice: as is (the original must be found: a positive), and
with every product showing that photo left out (nothing should be found: a
negative, exactly the case of a photo whose original is not in the catalog).
The thresholds kept are those with the best recall at a false-positive rate of
at most ``max_fp``; they are stored in the catalog and used by every search.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..catalog.meta import CALIBRATION_KEY, CALIBRATION_REPORT_KEY
from ..evaluation.transforms import SECOND_PHOTOS, TRANSFORMS
from ..vision.decode import decode_image
from .engine import SameEvidence, SearchEngine
from .ranking import NO_JOINT, SameThresholds, background

INLIER_GRID = (6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 10**9)
MARGIN_GRID = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 10.0)
#: The joint rule's pairs tried (fewer inliers and a smaller lead, together), off first.
JOINT_GRID = (NO_JOINT, *((inliers, lead) for inliers in (8, 10, 12, 15) for lead in (0.05, 0.08, 0.1, 0.12, 0.15)))


@dataclass
class CalibrationReport:
    thresholds: SameThresholds
    recall: float
    false_positive_rate: float
    positives: int
    negatives: int
    seconds: float = 0.0
    sweep: list[dict[str, float]] = field(default_factory=list)


class _Outcomes:
    """The candidates of many queries as arrays (inliers, lead over the background, which query, wanted or not),
    so that each rule of the sweep is rated by array operations instead of a pass over every query."""

    def __init__(self, evidence: list[tuple[SameEvidence, int | None]]) -> None:
        rows = []
        for number, (item, wanted) in enumerate(evidence):
            floor = background(item.ranked)
            rows += [(number, item.inliers.get(candidate.product_pk, 0), candidate.score - floor, candidate.product_pk == wanted)
                     for candidate in item.candidates]
        self.count = len(evidence)
        self.query = np.array([row[0] for row in rows], np.int64)
        self.inliers = np.array([row[1] for row in rows], np.int64)
        self.lead = np.array([row[2] for row in rows], np.float64)
        self.wanted = np.array([row[3] for row in rows], bool)

    def rate(self, thresholds: SameThresholds, positives: bool) -> float:
        """Positives: the share whose wanted product is accepted; negatives: the share with anything accepted."""
        accepted = thresholds.accepted(self.inliers, self.lead)
        hits = self.query[accepted & self.wanted] if positives else self.query[accepted]
        return len(np.unique(hits)) / max(1, self.count)


def calibrate_same(
    engine: SearchEngine, samples: int = 100, max_fp: float = 0.01, seed: int = 0, save: bool = True, progress: bool = False
) -> CalibrationReport:
    """Measure and (with ``save``) store the "same" thresholds for this catalog (``progress``: a bar on stderr)."""
    started = time.perf_counter()
    catalog = engine.parts.catalog
    embedder = engine.parts.embedder
    rng = np.random.default_rng(seed)
    photos = catalog.sample_images(samples, seed)
    thumbnails = catalog.thumbnails([image_id for image_id, _, _ in photos])
    positives: list[tuple[SameEvidence, int | None]] = []
    negatives: list[tuple[SameEvidence, int | None]] = []
    for image_id, product_pk, owners in tqdm(photos, unit="photo", desc="calibrate", disable=not progress):
        if image_id not in thumbnails:
            continue
        original = decode_image(thumbnails[image_id])
        for transform in (*TRANSFORMS.values(), *SECOND_PHOTOS.values()):
            copy = _reencoded(transform(original, rng))
            vector = embedder.embed([copy])[0]
            positives.append((engine.same_evidence(copy, vector, None), product_pk))
            negatives.append((engine.same_evidence(copy, vector, None, exclude=frozenset(owners)), None))
    found, wrong = _Outcomes(positives), _Outcomes(negatives)
    sweep = []
    for joint_inliers, joint_margin in JOINT_GRID:
        for margin in MARGIN_GRID:
            for min_inliers in INLIER_GRID:
                rule = SameThresholds(min_inliers, margin, joint_inliers=joint_inliers, joint_margin=joint_margin)
                sweep.append({
                    "min_inliers": min_inliers, "margin": margin, "joint_inliers": joint_inliers, "joint_margin": joint_margin,
                    "recall": round(found.rate(rule, positives=True), 4),
                    "false_positive_rate": round(wrong.rate(rule, positives=False), 4),
                })
    feasible = [row for row in sweep if row["false_positive_rate"] <= max_fp] or [min(sweep, key=lambda row: row["false_positive_rate"])]
    # Ties go to the strictest rule (more inliers, larger leads asked).
    best = max(feasible, key=lambda row: (row["recall"], -row["false_positive_rate"], row["min_inliers"], row["margin"],
                                          row["joint_inliers"], row["joint_margin"]))
    thresholds = SameThresholds(int(best["min_inliers"]), float(best["margin"]), f"calibrated on {len(photos)} catalog photos",
                                joint_inliers=int(best["joint_inliers"]), joint_margin=float(best["joint_margin"]))
    if save:
        with catalog.writer() as writer:
            writer.set_meta(CALIBRATION_KEY, thresholds.to_json())
            writer.set_meta(CALIBRATION_REPORT_KEY, json.dumps({key: best[key] for key in best}))
    return CalibrationReport(
        thresholds, best["recall"], best["false_positive_rate"], len(positives), len(negatives), time.perf_counter() - started, sweep
    )


def _reencoded(image: Image.Image) -> Image.Image:
    """A copy as a shop would upload it: re-encoded as JPEG."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return decode_image(buffer.getvalue())
