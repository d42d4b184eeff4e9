"""Geometric verification: is this the same item, photographed again or copied?

A CNN embedding says "looks alike"; it cannot tell the same item from a similar
one.  Local features can: RootSIFT keypoints (SIFT descriptors, L1-normalised
and square-rooted, so matching them by L2 compares them by the Hellinger kernel)
of the query and of a candidate's stored thumbnail, matched by Lowe's ratio
test, one to one, then filtered by RANSAC to those consistent with one
homography: the same flat-ish surface seen from another viewpoint.  SIFT
survives the viewpoint, scale and light changes of a second photograph, where
ORB keypoints found mostly copies.  Degenerate fits are rejected (a mirrored or
collapsed mapping, a strongly projective one, or inliers bunched in a corner),
since a chance fit on a few repeated textures otherwise collects many
"inliers".  A copy or a second photograph of the same item keeps dozens of
inliers; two different items rarely more than a handful (see BENCHMARKS.md for
the distributions).  The mirrored query is matched too, since shops flip photos.
Only the query's keypoints on its main subject count, when it is known (see
:func:`query_pair`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from .decode import THUMBNAIL_SIDE

#: Name of the verifier; stored with calibrated thresholds, which mean nothing to another verifier.
VERIFIER = "rootsift-homography"
#: Side of the images features are extracted from: the catalog's thumbnail size.
FEATURE_SIDE = THUMBNAIL_SIDE
#: Keypoints kept per image (the strongest).
MAX_FEATURES = 500
#: Lowe's ratio test: a match counts only if clearly better than the second best.
RATIO = 0.8
#: Fewer matches than this cannot support a homography worth the name.
MIN_MATCHES = 8
#: RANSAC's reprojection tolerance, as a share of the candidate's long side.
REPROJECTION_SHARE = 0.02
#: The homography's linear part may scale areas by 1/10 to 10 (further: a degenerate fit).
MAX_AREA_SCALE = 10.0
#: Its projective part may change the scale across the picture by at most this much (a strong tilt).
MAX_PROJECTIVE = 0.5
#: The inliers must spread over at least this share of each image (not a clump on one texture).
MIN_SPREAD = 0.01

cv2.setNumThreads(1)  # requests run in parallel threads already; nested pools only contend


@dataclass(frozen=True)
class LocalFeatures:
    """RootSIFT keypoint positions and descriptors of one image, and the size they were found at."""

    points: np.ndarray
    descriptors: np.ndarray | None
    size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.points)


def extract(image: Image.Image) -> LocalFeatures:
    """RootSIFT features of ``image`` seen at thumbnail scale (a smaller picture is enlarged to it: a shrunken copy
    keeps too few pixels for keypoints at its own size, and comes back to life at the catalog's)."""
    scale = FEATURE_SIDE / max(image.size)
    view = image.convert("RGB").resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BICUBIC, reducing_gap=2.0)
    keypoints, descriptors = cv2.SIFT_create(nfeatures=MAX_FEATURES).detectAndCompute(np.asarray(view.convert("L")), None)
    if descriptors is None or not keypoints:
        return LocalFeatures(np.zeros((0, 2), np.float32), None, view.size)
    # Kept in float16: a catalog image's features stay in the search's cache (136 kB each in float32, on average,
    # over 4,096 images), and the inlier counts were the same to the keypoint over 240 benchmark pairs.
    descriptors = np.sqrt(descriptors / np.maximum(descriptors.sum(axis=1, keepdims=True), 1e-7)).astype(np.float16)
    return LocalFeatures(np.float32([keypoint.pt for keypoint in keypoints]), descriptors, view.size)


def _mirror_bins() -> np.ndarray:
    """Where each of a SIFT descriptor's 128 bins (4 x 4 cells of 8 orientations) comes from in the mirror image."""
    source = np.arange(128).reshape(4, 4, 8)
    # Mirroring the image reverses the cells' rows in the keypoint's own frame and negates orientations.
    return source[::-1, :, (-np.arange(8)) % 8].reshape(-1)


#: The descriptor permutation :func:`mirrored` applies.
MIRROR_BINS = _mirror_bins()


def mirrored(features: LocalFeatures) -> LocalFeatures:
    """The features the mirror image would give, without a second extraction (half of a query's cost).

    OpenCV's SIFT is mirror-equivariant: the mirror image has the same keypoints, at ``width - 0.5 - x``
    (its first octave is upsampled), with descriptors permuted by :data:`MIRROR_BINS` (checked against a
    real second extraction in the tests).
    """
    if features.descriptors is None:
        return features
    points = features.points.copy()
    points[:, 0] = features.size[0] - 0.5 - points[:, 0]
    return LocalFeatures(points, np.ascontiguousarray(features.descriptors[:, MIRROR_BINS]), features.size)


def query_pair(features: LocalFeatures, subject: tuple[float, float, float, float] | None = None) -> tuple[LocalFeatures, LocalFeatures]:
    """A query's features and its mirror image's (shops flip photos), only those on ``subject`` when it is
    known (left, top, right, bottom, as fractions of the image).

    Keypoints off the product match whatever else two photos share: photos taken on the same blanket, floor
    or shelf give a consistent homography of their backgrounds (in the benchmark, different garments on one
    patterned blanket reached 76 inliers).  Keeping the query's keypoints to its main subject halves those
    false matches and keeps the product's own.
    """
    kept = _matchable(features if subject is None else _within(features, subject))
    return kept, mirrored(kept)


def _within(features: LocalFeatures, box: tuple[float, float, float, float]) -> LocalFeatures:
    """The features whose keypoints lie in ``box`` (left, top, right, bottom as fractions of the image)."""
    x = features.points[:, 0] / features.size[0]
    y = features.points[:, 1] / features.size[1]
    keep = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
    return LocalFeatures(features.points[keep], features.descriptors[keep] if features.descriptors is not None else None, features.size)


def inliers(query: LocalFeatures, candidate: LocalFeatures) -> int:
    """Matches consistent with one plausible homography from ``query`` to ``candidate`` (0 if none is)."""
    if query.descriptors is None or candidate.descriptors is None or len(query) < MIN_MATCHES or len(candidate) < MIN_MATCHES:
        return 0
    best: dict[int, cv2.DMatch] = {}  # one to one: each candidate keypoint keeps its best query match
    matches = cv2.BFMatcher(cv2.NORM_L2).knnMatch(np.asarray(query.descriptors, np.float32), np.asarray(candidate.descriptors, np.float32), k=2)
    for pair in matches:
        if len(pair) == 2 and pair[0].distance < RATIO * pair[1].distance:
            kept = best.get(pair[0].trainIdx)
            if kept is None or pair[0].distance < kept.distance:
                best[pair[0].trainIdx] = pair[0]
    if len(best) < MIN_MATCHES:
        return 0
    source = query.points[[match.queryIdx for match in best.values()]]
    target = candidate.points[[match.trainIdx for match in best.values()]]
    homography, mask = cv2.findHomography(source, target, cv2.RANSAC, REPROJECTION_SHARE * max(candidate.size))
    if homography is None or mask is None:
        return 0
    kept_mask = mask.ravel().astype(bool)
    if not plausible(homography, query.size) or not spread(source[kept_mask], query.size) or not spread(target[kept_mask], candidate.size):
        return 0
    return int(kept_mask.sum())


def plausible(homography: np.ndarray, size: tuple[int, int]) -> bool:
    """Whether a homography could map one photo of a thing onto another: not mirrored, collapsed or wildly tilted."""
    determinant = float(np.linalg.det(homography[:2, :2]))
    tilt = abs(float(homography[2, 0])) * size[0] + abs(float(homography[2, 1])) * size[1]
    return 1 / MAX_AREA_SCALE < determinant < MAX_AREA_SCALE and tilt < MAX_PROJECTIVE


def spread(points: np.ndarray, size: tuple[int, int]) -> bool:
    """Whether ``points`` cover at least :data:`MIN_SPREAD` of an image of ``size`` (their convex hull's area)."""
    if len(points) < 4:
        return False
    return cv2.contourArea(cv2.convexHull(points.astype(np.float32))) >= MIN_SPREAD * size[0] * size[1]


def best_inliers(query: tuple[LocalFeatures, LocalFeatures], candidate: LocalFeatures) -> int:
    """Inliers of the better of the query and its mirror image."""
    candidate = _matchable(candidate)
    return max(inliers(query[0], candidate), inliers(query[1], candidate))


def _matchable(features: LocalFeatures) -> LocalFeatures:
    """``features`` with float32 descriptors, what OpenCV's matcher takes (converted once for several matches)."""
    if features.descriptors is None or features.descriptors.dtype == np.float32:
        return features
    return LocalFeatures(features.points, features.descriptors.astype(np.float32), features.size)
