"""Fitting a photo into the square input of a CNN.

Four ways, combinable per embedder (``squash,crop`` averages both views): ``squash`` (resize, ignore the aspect ratio:
keeps every pixel, best for recognising copies), ``crop`` (centre crop: best for
"looks like" similarity, loses the edges), ``inner`` (the central part of the
centre crop, :data:`INNER_SHARE` of its side: a closer look at the middle, where
the product usually is) and ``pad`` (letterbox on white, the usual product-photo
background).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor

import numpy as np
from PIL import Image, ImageFilter

from ..errors import ImageSearchError
from .colour import SIDE as COLOUR_SIDE
from .colour import with_colour
from .embedder import l2_normalize

RESIZE_MODES: tuple[str, ...] = ("squash", "crop", "inner", "pad")
#: The ``inner`` view's side, as a share of the centre crop's.
INNER_SHARE = 0.7
#: A pixel within this distance (0-255, largest channel difference) of the border colour is border.
TRIM_TOLERANCE = 24
#: A side is a plain band only if this share of its outer line has the border colour.
TRIM_UNIFORM_SHARE = 0.9
#: Never trim to less than this fraction of the area (a photo of a white object on white).
TRIM_MIN_AREA = 0.2
#: The analysis runs on a copy this large, slightly blurred, so sensor noise and JPEG artefacts do not count.
TRIM_PROBE_SIDE = 128
#: A side is a frame only if the picture inside it starts along a straight edge: at least this share of the
#: first line past the plain band, between the bands beside it, differs from the band (a padded or framed
#: photo: all of it; a product on a plain background: only where its outline touches its bounding box).
TRIM_EDGE_SHARE = 0.97


def parse_views(resize: str) -> list[str]:
    """The ``resize`` setting ("crop", "squash,crop"...) as the list of views each embedder averages; refused otherwise."""
    views = [mode.strip() for mode in resize.split(",") if mode.strip()]
    if not views or any(mode not in RESIZE_MODES for mode in views):
        raise ImageSearchError(f"resize must be one or more of {', '.join(RESIZE_MODES)}, not {resize!r}")
    return views


def trim_border(image: Image.Image, passes: int = 2) -> Image.Image:
    """Cut away frames: plain bands around a picture (a second pass removes a border around a border).

    Listing screenshots, letterboxed and padded photos add uniform bands that
    change the CNN's view of the same photo; trimming them on catalog and query
    images alike makes them meet again.  Only a true frame goes: a band whose
    inner side is a straight edge of the picture.  The plain background of a
    studio packshot is not a frame (its subject touches the bounding box only
    here and there): cropping it to the product would make the packshot look
    unlike every shopper's photo of that product, which keeps its background.
    """
    for _ in range(passes):
        trimmed = _trim_once(image)
        if trimmed is image:
            break
        image = trimmed
    return image


def _trim_once(image: Image.Image) -> Image.Image:
    scale = min(1.0, TRIM_PROBE_SIDE / max(image.size))
    # (a whole-pixel reduction first, then the rest: twice as fast, a probe all the same)
    probe = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BOX, reducing_gap=2.0)
    pixels = np.asarray(probe.filter(ImageFilter.BoxBlur(1)), dtype=np.int16)
    # The four sides, each read from the outside in: top, bottom, left, right.
    sides = [pixels, pixels[::-1], pixels.transpose(1, 0, 2), pixels.transpose(1, 0, 2)[::-1]]
    # Each side's band has its own colour: a side already trimmed, or a letterbox's picture side, is not plain.
    # Only the outer lines are read first: most photos have no plain side, and leave here at little cost.
    colours = [np.median(side[0], axis=0) for side in sides]
    plain = [(_distance(side[0], colour) <= TRIM_TOLERANCE).mean() >= TRIM_UNIFORM_SHARE for side, colour in zip(sides, colours)]
    if not any(plain):
        return image
    masks: dict[tuple[int, ...], np.ndarray] = {}  # one mask per band colour (a packshot's four sides share one)
    for colour, flat in zip(colours, plain):
        if flat and tuple(colour.astype(int)) not in masks:
            masks[tuple(colour.astype(int))] = _distance(pixels, colour.astype(np.int16)) > TRIM_TOLERANCE
    subjects = [
        _oriented(masks[tuple(colour.astype(int))], number) if flat else None for number, (colour, flat) in enumerate(zip(colours, plain))
    ]
    depth = [0, 0, 0, 0]  # how deep each plain band goes (0: that side is not plain)
    for number, subject in enumerate(subjects):
        if subject is not None:
            lines = np.flatnonzero(subject.any(axis=1))
            depth[number] = int(lines[0]) if len(lines) else 0
    # A band is a frame only if the picture inside starts along a straight edge running the whole way between
    # the bands beside it: a photo's edge does; a product on a plain background (a packshot) touches its
    # bounding box only here and there, and is left whole.
    spans = [(depth[2], probe.width - depth[3]), (depth[2], probe.width - depth[3]), (depth[0], probe.height - depth[1]),
             (depth[0], probe.height - depth[1])]
    # (the corners are left out of the test: the blur rounds them)
    cut = [d if d and subject is not None and _straight(subject[d][low + 1 : high - 1]) else 0
           for d, subject, (low, high) in zip(depth, subjects, spans)]
    if not any(cut):
        return image
    top, bottom, left, right = cut
    scale_x, scale_y = image.width / probe.width, image.height / probe.height
    # Two probe pixels past the first line of the picture: the blur smears the band's edge over them, and a
    # sliver of band left behind would read as a new frame (its colour) on the next pass.
    box = (
        round((left + 2) * scale_x) if left else 0,
        round((top + 2) * scale_y) if top else 0,
        round((probe.width - right - 2) * scale_x) if right else image.width,
        round((probe.height - bottom - 2) * scale_y) if bottom else image.height,
    )
    if box[2] <= box[0] or box[3] <= box[1] or (box[2] - box[0]) * (box[3] - box[1]) < TRIM_MIN_AREA * image.width * image.height:
        return image
    return image.crop(box)


def _distance(pixels: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Each pixel's largest channel difference from ``colour`` (an elementwise maximum of the three channels:
    NumPy reduces a length-3 last axis ten times slower)."""
    difference = np.abs(pixels - colour)
    return np.maximum(np.maximum(difference[..., 0], difference[..., 1]), difference[..., 2])


def _oriented(mask: np.ndarray, side: int) -> np.ndarray:
    """The subject mask read from ``side`` inwards (0 top, 1 bottom, 2 left, 3 right), as ``sides`` are."""
    return (mask, mask[::-1], mask.T, mask.T[::-1])[side]


def _straight(line: np.ndarray) -> bool:
    """Whether a stretch of the subject mask is an edge of a picture (all subject), not a product's outline."""
    return bool(len(line) and line.mean() >= TRIM_EDGE_SHARE)


def fit_square(image: Image.Image, size: int, mode: str, resample: Image.Resampling = Image.Resampling.BILINEAR) -> Image.Image:
    """Return a ``size`` x ``size`` RGB image made from ``image`` by ``mode``."""
    if mode == "squash":
        return image.resize((size, size), resample, reducing_gap=2.0)
    width, height = image.size
    if mode in ("crop", "inner"):
        # Only the central square is resampled (Pillow's ``box``): the edges a crop drops cost nothing.
        side = min(width, height) * (INNER_SHARE if mode == "inner" else 1.0)
        box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
        return image.resize((size, size), resample, box=box, reducing_gap=2.0)
    scale = size / max(width, height)
    resized = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), resample, reducing_gap=2.0)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
    return canvas


def to_batch(images: Sequence[Image.Image], size: int, mode: str, flip: bool, pool: Executor | None = None) -> np.ndarray:
    """Stack images into an NCHW float32 batch of raw 0-255 values.

    With ``flip`` the batch holds, after the originals, their mirror images, so
    the caller can average each view with its mirror (flip invariance).
    """
    count = len(images)
    batch = np.empty((count * (2 if flip else 1), 3, size, size), dtype=np.float32)

    def prepare(index: int) -> None:  # written straight into the batch, channels first: no stacking copy after
        pixels = np.asarray(fit_square(images[index], size, mode)).transpose(2, 0, 1)
        batch[index] = pixels
        if flip:
            batch[count + index] = pixels[:, :, ::-1]

    if pool is not None and count > 1:
        list(pool.map(prepare, range(count)))
    else:
        for index in range(count):
            prepare(index)
    return batch


def embed_views(
    images: Sequence[Image.Image],
    features: Callable[[np.ndarray], np.ndarray],
    size: int,
    views: Sequence[str],
    flip: bool,
    trim: bool,
    pool: Executor | None = None,
    colour: float = 0.0,
) -> np.ndarray:
    """What every embedder does around its network: trim frames, fit each view (and its mirror), run
    ``features`` on the raw 0-255 NCHW batch, and average the L2-normalised views into one unit row per image;
    with ``colour``, each row gets the colour signature of the photo's middle (:mod:`.colour`) at that weight."""
    if trim:
        images = list(pool.map(trim_border, images)) if pool is not None and len(images) > 1 else [trim_border(image) for image in images]
    # Every view (and mirror) of every image in one batch: one network run, whose threads share the work better
    # than one run per view (a single query's two views, above all).
    batch = np.concatenate([to_batch(images, size, mode, flip, pool) for mode in views]) if len(views) > 1 else \
        to_batch(images, size, views[0], flip, pool)
    rows = l2_normalize(features(batch))
    rows = l2_normalize(rows.reshape(-1, len(images), rows.shape[1]).sum(axis=0))
    if colour:  # the middle as the ``inner`` view frames it (where the product is), its pixels sampled, not blended
        rows = with_colour(rows, [fit_square(image, COLOUR_SIDE, "inner", Image.Resampling.NEAREST) for image in images], colour, pool)
    return rows
