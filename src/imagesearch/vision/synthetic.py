"""Deterministic product-like pictures: an object of coloured shapes and patterns on a plain background.

They calibrate the int8 model (activation ranges need inputs that look like
photos of things, not noise) and make demo catalogs and test fixtures without
shipping any dataset.  The same seed always gives the same picture.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(value) for value in rng.integers(0, 256, 3))  # type: ignore[return-value]


def product_image(seed: int, size: tuple[int, int] = (320, 320)) -> Image.Image:
    """A picture of an imaginary product; distinct seeds give visibly distinct products."""
    rng = np.random.default_rng(seed)
    width, height = size
    light = rng.random() < 0.7
    background = tuple(int(v) for v in rng.integers(225, 256, 3)) if light else _colour(rng)
    image = Image.new("RGB", size, background)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(image)
    # The object: a body with a few parts, centred with some jitter.
    cx, cy = width * rng.uniform(0.4, 0.6), height * rng.uniform(0.4, 0.6)
    body_w, body_h = width * rng.uniform(0.35, 0.7), height * rng.uniform(0.35, 0.7)
    box = (cx - body_w / 2, cy - body_h / 2, cx + body_w / 2, cy + body_h / 2)
    body = _colour(rng)
    shape = int(rng.integers(0, 3))
    if shape == 0:
        draw.rounded_rectangle(box, radius=int(min(body_w, body_h) * rng.uniform(0.05, 0.4)), fill=body)
    elif shape == 1:
        draw.ellipse(box, fill=body)
    else:
        points = [(cx + np.cos(a) * body_w / 2 * rng.uniform(0.6, 1.0), cy + np.sin(a) * body_h / 2 * rng.uniform(0.6, 1.0))
                  for a in np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))]
        draw.polygon(points, fill=body)
    # A pattern on the body: stripes or dots.
    accent = _colour(rng)
    if rng.random() < 0.5:
        step = int(rng.integers(6, 24))
        for offset in range(int(box[1]), int(box[3]), step * 2):
            draw.rectangle((box[0] + body_w * 0.1, offset, box[2] - body_w * 0.1, offset + step // 2), fill=accent)
    else:
        for _ in range(int(rng.integers(3, 12))):
            x, y = rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])
            radius = rng.uniform(3, min(body_w, body_h) / 6)
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=accent)
    # A few parts sticking out (handles, straps, legs).
    for _ in range(int(rng.integers(1, 4))):
        x, y = rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])
        w, h = rng.uniform(8, body_w / 2), rng.uniform(8, body_h / 2)
        draw.rectangle((x - w / 2, y - h / 2, x + w / 2, y + h / 2), fill=_colour(rng))
    pixels = np.asarray(image, dtype=np.float32)
    pixels += rng.normal(0, rng.uniform(1, 8), pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.2)))
