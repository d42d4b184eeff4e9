"""A photo's colour signature: what the network's features mostly leave out.

An ImageNet network learns to name things whatever their colour, so to it a
dress in red and the same cut in blue look much alike, and a shrunken,
re-compressed copy, whose texture is gone, looks like many things.  A shopper
means *this* product, its colours included.  The signature is a histogram of
hue, saturation and value over the middle of the photo (the ``inner`` view's
square: where the product is), Hellinger-normalised (square roots of the
shares, so the inner product of two signatures compares the distributions and
one dominant colour does not swamp the rest).  The embedder appends it to the
network's vector with a small weight (``colour``): at 0.2 the clothing
benchmark's "similar" figures stay where they were, and a photo finds its own
packshot, its shrunken copy or its second photograph more often (BENCHMARKS.md,
"the colour signature").
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor

import cv2
import numpy as np
from PIL import Image

from ..errors import ImageSearchError
from .embedder import l2_normalize

#: Bins of hue (OpenCV's 0-180), saturation and value.
BINS = (8, 4, 4)
#: Length of a signature.
DIM = BINS[0] * BINS[1] * BINS[2]
#: The middle of the photo is sampled at this side (64 x 64 of its pixels, nearest: a histogram needs the
#: photo's own colours, not blends; 0.03 ms where a smooth resampling took 0.25).
SIDE = 64


def check_weight(weight: float) -> float:
    """``weight`` if it is a colour weight (0, off, to 1); refused otherwise (the configuration and the embedder
    both ask here)."""
    if not 0 <= weight <= 1:
        raise ImageSearchError(f"colour must be between 0 (off) and 1, not {weight}")
    return weight


def signature(middle: Image.Image) -> np.ndarray:
    """The unit colour signature (:data:`DIM` values) of ``middle``, an RGB picture of the middle of a photo."""
    hsv = cv2.cvtColor(np.ascontiguousarray(np.asarray(middle)), cv2.COLOR_RGB2HSV)
    counts = cv2.calcHist([hsv], [0, 1, 2], None, list(BINS), [0, 180, 0, 256, 0, 256]).ravel()
    shares = np.sqrt(counts / max(float(counts.sum()), 1.0))
    return (shares / max(float(np.linalg.norm(shares)), 1e-12)).astype(np.float32)


def with_colour(rows: np.ndarray, middles: Sequence[Image.Image], weight: float, pool: Executor | None = None) -> np.ndarray:
    """``rows`` (unit vectors, one per photo) with the signature of each photo's middle appended at ``weight``,
    unit again."""
    signatures = list(pool.map(signature, middles)) if pool is not None and len(middles) > 1 else [signature(middle) for middle in middles]
    return l2_normalize(np.hstack([rows, weight * np.stack(signatures)]).astype(np.float32))
