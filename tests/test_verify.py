"""Geometric verification (RootSIFT + homography) and pooling, on pictures the tests draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_catalog
from PIL import Image, ImageOps

from imagesearch.catalog.meta import CALIBRATION_KEY
from imagesearch.evaluation.transforms import SECOND_PHOTOS, TRANSFORMS
from imagesearch.ingest.importer import import_file
from imagesearch.search.engine import same_thresholds_of
from imagesearch.search.ranking import SameThresholds
from imagesearch.vision import pooling
from imagesearch.vision.synthetic import product_image
from imagesearch.vision.verify import VERIFIER, LocalFeatures, best_inliers, extract, inliers, mirrored, plausible, query_pair, spread
from imagesearch.workspace import Workspace


def textured(seed: int) -> Image.Image:
    """A product with print on it: synthetic shapes plus fine random texture, as packaging has."""
    rng = np.random.default_rng(seed)
    base = np.asarray(product_image(seed, (320, 320)), dtype=np.int16)
    noise = rng.integers(-60, 60, (40, 40, 3)).repeat(8, axis=0).repeat(8, axis=1)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("name", sorted(SECOND_PHOTOS))
def test_a_second_photograph_is_verified_and_another_item_is_not(name: str) -> None:
    original = textured(1)
    photo = SECOND_PHOTOS[name](original, np.random.default_rng(4))
    found = best_inliers(query_pair(extract(photo)), extract(original))
    others = [best_inliers(query_pair(extract(photo)), extract(textured(seed))) for seed in range(2, 7)]
    assert found >= 20 and max(others) < 12, (found, others)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_copies_are_verified(name: str) -> None:
    original = textured(3)
    copy = TRANSFORMS[name](original, np.random.default_rng(5))
    assert best_inliers(query_pair(extract(copy)), extract(original)) >= 12


def test_a_mirror_image_needs_the_mirrored_query() -> None:
    """A homography cannot mirror (a reflection is rejected as implausible): the flipped query finds it."""
    original = textured(2)
    flipped = ImageOps.mirror(original)
    assert inliers(extract(flipped), extract(original)) < 12
    assert best_inliers(query_pair(extract(flipped)), extract(original)) >= 20


def test_degenerate_fits_are_rejected() -> None:
    assert not plausible(np.diag([-1.0, 1.0, 1.0]), (256, 256))  # a reflection
    assert not plausible(np.diag([0.01, 0.01, 1.0]), (256, 256))  # everything collapsed to a point
    tilted = np.eye(3)
    tilted[2, 0] = 0.01
    assert not plausible(tilted, (256, 256))  # the scale changes 3.5x across the picture
    assert plausible(np.array([[0.9, 0.1, 5.0], [-0.1, 0.9, 3.0], [0.0002, 0.0, 1.0]]), (256, 256))
    clump = np.float32([[10, 10], [12, 10], [10, 12], [12, 13], [11, 11]])
    assert not spread(clump, (256, 256)) and spread(np.float32([[0, 0], [200, 0], [200, 200], [0, 200]]), (256, 256))


def test_blank_pictures_have_no_features_and_verify_nothing() -> None:
    blank = Image.new("RGB", (300, 300), (250, 250, 250))
    assert len(extract(blank)) == 0 and best_inliers(query_pair(extract(blank)), extract(textured(1))) == 0


def test_a_calibration_of_another_verifier_is_not_used(tmp_path: Path, make_settings) -> None:
    """Inlier counts of the earlier ORB verifier mean nothing to RootSIFT: the settings apply until calibrate runs."""
    workspace = Workspace(make_settings(tmp_path / "data"))
    import_file(workspace, write_catalog(tmp_path, 3))
    with workspace.catalog.writer() as writer:
        writer.set_meta(CALIBRATION_KEY, '{"min_inliers": 60, "margin": 0.3, "source": "calibrated on 100 catalog photos"}')
    assert same_thresholds_of(workspace).source == "settings"
    with workspace.catalog.writer() as writer:
        writer.set_meta(CALIBRATION_KEY, SameThresholds(9, 0.3, "calibrated on 100 catalog photos").to_json())
    assert (same_thresholds_of(workspace).min_inliers, same_thresholds_of(workspace).verifier) == (9, VERIFIER)
    workspace.close()


@pytest.mark.parametrize(("height", "width"), [(7, 7), (10, 10), (7, 10), (14, 9), (1, 1), (2, 5)])
def test_rmac_regions_cover_the_map_at_three_scales(height: int, width: int) -> None:
    regions = pooling.rmac_regions(height, width)
    assert regions and all(0 <= top and top + side <= height and 0 <= left and left + side <= width for top, left, side in regions)
    covered = np.zeros((height, width), bool)
    for top, left, side in regions:
        covered[top : top + side, left : left + side] = True
    assert covered.all()
    assert len({side for _, _, side in regions}) == min(3, min(height, width))


def test_rmac_sums_normalised_region_maxima() -> None:
    """Each region's maximum, L2-normalised, summed: one strong cell counts once per region holding it, and a
    region without it still describes the rest of the picture (GeM lets the strong cell dominate)."""
    maps = np.full((1, 4, 10, 10), 0.1, np.float32)
    maps[0, 1:, 5:, 5:] = 1.0  # channels 1-3: something in the lower right quarter
    maps[0, 0, 0, 0] = 10.0  # channel 0: one strong cell in the upper left corner
    expected = np.zeros(4, np.float32)
    for top, left, side in pooling.rmac_regions(10, 10):
        region = maps[0, :, top : top + side, left : left + side].max(axis=(1, 2))
        expected += region / np.linalg.norm(region)
    np.testing.assert_allclose(pooling.pool(maps, "rmac")[0], expected, rtol=1e-5)
    gem = pooling.pool(maps, "gem")[0]
    rmac = expected / np.linalg.norm(expected)
    assert rmac[0] < 0.9 * gem[0] / np.linalg.norm(gem)  # the corner's cell does not swamp the quarter's object
    with pytest.raises(Exception, match="pooling must be one of"):
        pooling.pool(maps, "median")


def test_only_the_query_s_subject_keypoints_count() -> None:
    """Restricted to its left half, the query keeps the keypoints there; its mirror image keeps those of the right half."""
    photo = Image.new("RGB", (640, 320), (255, 255, 255))
    photo.paste(textured(1), (0, 0))
    photo.paste(textured(2), (320, 0))
    whole, _ = query_pair(extract(photo))
    direct, flipped = query_pair(extract(photo), (0.0, 0.0, 0.5, 1.0))
    assert 0 < len(direct) < len(whole) and (direct.points[:, 0] <= 0.5 * direct.size[0]).all()
    assert len(flipped) and (flipped.points[:, 0] >= 0.5 * flipped.size[0]).all()
    assert best_inliers((direct, flipped), extract(textured(1))) >= 20 and best_inliers((direct, flipped), extract(textured(2))) < 12


def test_mirrored_features_are_those_of_the_mirror_image() -> None:
    """The mirror image's features, derived without a second extraction, are what SIFT finds on the mirror image."""
    photo = textured(3).resize((256, 200))
    derived = mirrored(extract(photo))
    extracted = extract(ImageOps.mirror(photo))
    assert derived.size == extracted.size and len(derived) > 100
    # Most extracted keypoints have a derived twin at their place (one of several, when a place has two
    # orientations) with nearly their descriptor (unit vectors: 0.1 apart is a near-identical one).
    close = np.linalg.norm(extracted.points[:, None, :] - derived.points[None, :, :], axis=2) < 0.05
    gaps = np.linalg.norm(extracted.descriptors[:, None, :] - derived.descriptors[None, :, :], axis=2)
    twin_gap = np.where(close, gaps, np.inf).min(axis=1)
    assert (twin_gap < 0.1).mean() > 0.5  # (the weakest keypoints differ: ties at the 500-keypoint cut)
    # And verification finds the mirrored copy through them as well as through a second extraction.
    assert inliers(derived, extract(ImageOps.mirror(photo))) >= 0.7 * inliers(extracted, extract(ImageOps.mirror(photo)))


def test_features_are_kept_in_half_precision_and_match_as_in_full() -> None:
    """Features are stored in float16 (half the search's feature cache) and count the same inliers as float32."""
    original = textured(1)
    photo = SECOND_PHOTOS["perspective"](original, np.random.default_rng(4))
    query, candidate = extract(photo), extract(original)
    assert query.descriptors is not None and query.descriptors.dtype == np.float16

    def full(features: LocalFeatures) -> LocalFeatures:
        assert features.descriptors is not None
        return LocalFeatures(features.points, features.descriptors.astype(np.float32), features.size)

    half = best_inliers(query_pair(query), candidate)
    assert half >= 20 and half == best_inliers(query_pair(full(query)), full(candidate))
