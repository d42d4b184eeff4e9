"""Fitting a photo into the square input of a CNN.

Three ways, chosen per embedder: ``squash`` (resize, ignore the aspect ratio:
keeps every pixel, best for recognising copies), ``crop`` (centre crop: best for
"looks like" similarity, loses the edges) and ``pad`` (letterbox on white, the
usual product-photo background).
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from PIL import Image

ResizeMode = Literal["squash", "crop", "pad"]


def fit_square(image: Image.Image, size: int, mode: ResizeMode) -> Image.Image:
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


def to_batch(images: Sequence[Image.Image], size: int, mode: ResizeMode, flip: bool) -> np.ndarray:
    """Stack images into an NCHW float32 batch of raw 0-255 values.

    With ``flip`` the batch holds, after the originals, their mirror images, so
    the caller can average each view with its mirror (flip invariance).
    """
    arrays = [np.asarray(fit_square(image, size, mode), dtype=np.float32) for image in images]
    batch = np.stack(arrays).transpose(0, 3, 1, 2)
    if flip:
        batch = np.concatenate([batch, batch[:, :, :, ::-1]])
    return np.ascontiguousarray(batch)
