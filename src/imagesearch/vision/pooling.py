"""From a CNN's last feature map (N x C x H x W) to one descriptor per image.

The network runs once per view; how its map is pooled is a choice measured in
``bench/packshots.py`` and ``bench/quality.py`` (see BENCHMARKS.md):

* ``gem``: generalised mean over the whole map (p = 3 sits between average and max pooling);
* ``rmac``: regional maximum activations (Tolias et al., 2016): square regions at three
  scales, each max-pooled and L2-normalised, then summed, so a small object anywhere in the
  picture weighs as much as the whole of a larger one;
* ``avg`` and ``max`` for maps from other networks.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import ImageSearchError

POOLINGS = ("gem", "rmac", "avg", "max")
#: R-MAC's scales: 1 region of the whole short side, then 2 and 3 per side (with ~40 % overlap).
RMAC_LEVELS = 3
#: Regions of one scale overlap by about this share (the published choice).
RMAC_OVERLAP = 0.4


def pool(maps: np.ndarray, pooling: str, gem_p: float = 3.0) -> np.ndarray:
    """One row per image of ``maps``, pooled by name."""
    if pooling not in POOLINGS:
        raise ImageSearchError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    maps = np.asarray(maps, dtype=np.float32)
    if pooling == "avg":
        return maps.mean(axis=(2, 3))
    if pooling == "max":
        return maps.max(axis=(2, 3))
    if pooling == "gem":
        return gem(maps, gem_p)
    return rmac(maps)


def gem(maps: np.ndarray, p: float) -> np.ndarray:
    """Generalised mean of each channel over the map (activations clipped at a small positive value)."""
    clipped = np.clip(maps, 1e-6, None)
    powered = clipped * clipped * clipped if p == 3.0 else clipped**p
    return powered.mean(axis=(2, 3)) ** (1.0 / p)


def rmac(maps: np.ndarray) -> np.ndarray:
    """Sum of the L2-normalised max-pooled regions of :func:`rmac_regions`.

    Channels last, and each band of rows max-pooled once for every region along it: five times faster than
    slicing the NCHW map per region (0.2 ms an image for Lite0's 1280 x 7 x 7).
    """
    channels_last = np.ascontiguousarray(maps.transpose(0, 2, 3, 1))
    total = np.zeros(maps.shape[:2], dtype=np.float32)
    bands: dict[tuple[int, int], np.ndarray] = {}
    for top, left, side in rmac_regions(maps.shape[2], maps.shape[3]):
        if (top, side) not in bands:
            bands[top, side] = channels_last[:, top : top + side].max(axis=1)
        region = bands[top, side][:, left : left + side].max(axis=1)
        total += region / np.maximum(np.linalg.norm(region, axis=1, keepdims=True), 1e-12)
    return total


@lru_cache(maxsize=64)
def rmac_regions(height: int, width: int, levels: int = RMAC_LEVELS) -> tuple[tuple[int, int, int], ...]:
    """The square regions (top, left, side) R-MAC pools on a ``height`` x ``width`` map.

    Level ``l`` has regions of side ``2 * short / (l + 1)``, spread evenly so
    neighbours overlap by about :data:`RMAC_OVERLAP`; on a non-square map the long
    side gets the extra regions that keep that overlap.
    """
    short, long = min(height, width), max(height, width)
    extra = 0
    if long > short:
        steps = np.arange(2, 7)
        step_overlap = (short**2 - short * (long - short) / (steps - 1)) / short**2
        extra = int(steps[np.argmin(np.abs(step_overlap - RMAC_OVERLAP))]) - 1
    regions: list[tuple[int, int, int]] = []
    for level in range(1, levels + 1):
        side = max(1, int(2 * short / (level + 1)))
        along_h = level + (extra if height > width else 0)
        along_w = level + (extra if width > height else 0)
        tops = _starts(height, side, along_h)
        lefts = _starts(width, side, along_w)
        regions.extend((top, left, side) for top in tops for left in lefts)
    return tuple(dict.fromkeys(regions))


def _starts(length: int, side: int, count: int) -> list[int]:
    """``count`` start positions of a window of ``side`` spread evenly over ``length``."""
    if count <= 1 or length <= side:
        return [max(0, (length - side) // 2)]
    return sorted({round(step * (length - side) / (count - 1)) for step in range(count)})
