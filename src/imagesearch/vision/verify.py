"""Geometric verification: is this the same photograph, cropped, rotated, recoloured?

A CNN embedding says "looks alike"; it cannot tell a copy of a catalog photo
from a photo of a similar item, and copies that were shrunk, rotated or framed
lose much of their cosine score.  Local features can: ORB keypoints matched
between the query and a candidate's stored thumbnail, then filtered by RANSAC
to those consistent with one similarity transform (rotation, scale, shift).
A copy keeps dozens to hundreds of such inliers; two different photos rarely
more than a handful (see BENCHMARKS.md for the distributions).  The mirrored
query is matched too, since shops flip photos.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps

from .decode import THUMBNAIL_SIDE

#: Side of the images features are extracted from: the catalog's thumbnail size.
FEATURE_SIDE = THUMBNAIL_SIDE
MIN_MATCHES = 5
RATIO = 0.8
REPROJECTION_PX = 4.0

cv2.setNumThreads(1)  # requests run in parallel threads already; nested pools only contend


@dataclass(frozen=True)
class LocalFeatures:
    """ORB keypoint positions and binary descriptors of one image."""

    points: np.ndarray
    descriptors: np.ndarray | None

    def __len__(self) -> int:
        return len(self.points)


def _orb() -> cv2.ORB:
    return cv2.ORB_create(nfeatures=500, fastThreshold=10, edgeThreshold=15, patchSize=15)


def extract(image: Image.Image) -> LocalFeatures:
    """ORB features of ``image`` seen at thumbnail scale."""
    view = image.copy()
    view.thumbnail((FEATURE_SIDE, FEATURE_SIDE))
    keypoints, descriptors = _orb().detectAndCompute(np.asarray(view.convert("L")), None)
    points = np.float32([keypoint.pt for keypoint in keypoints]) if keypoints else np.zeros((0, 2), np.float32)
    return LocalFeatures(points, descriptors)


def extract_with_mirror(image: Image.Image) -> tuple[LocalFeatures, LocalFeatures]:
    """Features of the image and of its mirror image."""
    return extract(image), extract(ImageOps.mirror(image))


def inliers(query: LocalFeatures, candidate: LocalFeatures) -> int:
    """Matches consistent with one similarity transform from ``query`` to ``candidate``."""
    if query.descriptors is None or candidate.descriptors is None or len(query) < MIN_MATCHES or len(candidate) < MIN_MATCHES:
        return 0
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(query.descriptors, candidate.descriptors, k=2)
    good = [pair[0] for pair in pairs if len(pair) == 2 and pair[0].distance < RATIO * pair[1].distance]
    if len(good) < MIN_MATCHES:
        return 0
    source = query.points[[match.queryIdx for match in good]]
    target = candidate.points[[match.trainIdx for match in good]]
    _, mask = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=REPROJECTION_PX)
    return int(mask.sum()) if mask is not None else 0


def best_inliers(query: tuple[LocalFeatures, LocalFeatures], candidate: LocalFeatures) -> int:
    """Inliers of the better of the query and its mirror image."""
    return max(inliers(query[0], candidate), inliers(query[1], candidate))
