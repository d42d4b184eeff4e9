"""Fitting a photo into the square input of a CNN.

Three ways, combinable per embedder (``squash,crop`` averages both views): ``squash`` (resize, ignore the aspect ratio:
keeps every pixel, best for recognising copies), ``crop`` (centre crop: best for
"looks like" similarity, loses the edges) and ``pad`` (letterbox on white, the
usual product-photo background).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor

import numpy as np
from PIL import Image, ImageFilter

RESIZE_MODES: tuple[str, ...] = ("squash", "crop", "pad")
#: A pixel within this distance (0-255, largest channel difference) of the border colour is border.
TRIM_TOLERANCE = 24
#: The frame counts as a plain border only if this share of its pixels has the border colour.
TRIM_UNIFORM_SHARE = 0.9
#: Never trim to less than this fraction of the area (a photo of a white object on white).
TRIM_MIN_AREA = 0.2
#: The analysis runs on a copy this large, slightly blurred, so sensor noise and JPEG artefacts do not count.
TRIM_PROBE_SIDE = 128


def trim_border(image: Image.Image, passes: int = 2) -> Image.Image:
    """Cut away plain margins around the subject (a second pass removes a border around a border).

    Listing screenshots and padded product shots add uniform borders that change
    the CNN's view of the same photo; trimming both catalog and query images
    makes them meet again.  A photo whose frame is not uniform is left alone.
    """
    for _ in range(passes):
        trimmed = _trim_once(image)
        if trimmed is image:
            break
        image = trimmed
    return image


def _trim_once(image: Image.Image) -> Image.Image:
    scale = min(1.0, TRIM_PROBE_SIDE / max(image.size))
    probe = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BOX)
    pixels = np.asarray(probe.filter(ImageFilter.BoxBlur(1)), dtype=np.int16)
    frame = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    colour = np.median(frame, axis=0)
    if (np.abs(frame - colour).max(axis=1) <= TRIM_TOLERANCE).mean() < TRIM_UNIFORM_SHARE:
        return image
    subject = np.abs(pixels - colour).max(axis=2) > TRIM_TOLERANCE
    rows, columns = np.flatnonzero(subject.any(axis=1)), np.flatnonzero(subject.any(axis=0))
    if len(rows) == 0:
        return image
    scale_x, scale_y = image.width / probe.width, image.height / probe.height
    left, right = max(0, int((columns[0] - 1) * scale_x)), min(image.width, int((columns[-1] + 2) * scale_x))
    top, bottom = max(0, int((rows[0] - 1) * scale_y)), min(image.height, int((rows[-1] + 2) * scale_y))
    if (right - left) * (bottom - top) < TRIM_MIN_AREA * image.width * image.height:
        return image
    return image.crop((left, top, right, bottom))


def fit_square(image: Image.Image, size: int, mode: str) -> Image.Image:
    """Return a ``size`` x ``size`` RGB image made from ``image`` by ``mode``."""
    resample = Image.Resampling.BILINEAR
    if mode == "squash":
        return image.resize((size, size), resample, reducing_gap=2.0)
    width, height = image.size
    if mode == "crop":
        scale = size / min(width, height)
        resized = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), resample, reducing_gap=2.0)
        left = (resized.width - size) // 2
        top = (resized.height - size) // 2
        return resized.crop((left, top, left + size, top + size))
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
    def prepare(image: Image.Image) -> np.ndarray:
        return np.asarray(fit_square(image, size, mode), dtype=np.float32)

    arrays = list(pool.map(prepare, images)) if pool is not None and len(images) > 1 else [prepare(image) for image in images]
    batch = np.stack(arrays).transpose(0, 3, 1, 2)
    if flip:
        batch = np.concatenate([batch, batch[:, :, :, ::-1]])
    return np.ascontiguousarray(batch)
