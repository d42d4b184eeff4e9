"""The eight ways a shop's photo of the same item differs from the catalog's.

Used by the quality benchmark (copy-detection set) and by ``calibrate`` (which
makes synthetic copies of catalog images to set the ``same`` threshold for the
catalog at hand).  Each transformation is deterministic given its ``rng``.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]


def crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Keep 60-80 % of the area, at a random position."""
    area = rng.uniform(0.6, 0.8)
    aspect = rng.uniform(0.8, 1.25)
    width = min(1.0, float(np.sqrt(area * aspect)))
    height = min(1.0, area / width)
    left = rng.uniform(0, 1 - width)
    top = rng.uniform(0, 1 - height)
    w, h = image.size
    return image.crop((int(left * w), int(top * h), int((left + width) * w), int((top + height) * h)))


def downscale_jpeg(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Shrink to 25 % of each side and re-encode as JPEG quality 30."""
    small = image.resize((max(8, image.width // 4), max(8, image.height // 4)), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=30)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def rotate(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotate by 10 degrees either way, filling the corners with white."""
    angle = 10.0 if rng.random() < 0.5 else -10.0
    return image.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(255, 255, 255))


def border(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A white border of 20 % of the size around the photo (a listing screenshot)."""
    pad_x, pad_y = int(image.width * 0.2), int(image.height * 0.2)
    return ImageOps.expand(image, border=(pad_x, pad_y, pad_x, pad_y), fill=(255, 255, 255))


def watermark(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A semi-opaque band with text across the lower part."""
    out = image.convert("RGBA")
    overlay = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    band = max(12, out.height // 7)
    top = int(out.height * rng.uniform(0.55, 0.8))
    draw.rectangle((0, top, out.width, top + band), fill=(20, 20, 20, 150))
    draw.text((max(2, out.width // 20), top + band // 4), "SALE -50% www.myshop.example", fill=(255, 255, 255, 230))
    return Image.alpha_composite(out, overlay).convert("RGB")


def color_jitter(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness, contrast and saturation each changed by up to 30 %."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        factor = 1.0 + rng.uniform(0.15, 0.3) * (1 if rng.random() < 0.5 else -1)
        image = enhancer(image).enhance(factor)
    return image


def hflip(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Mirror left-right."""
    return ImageOps.mirror(image)


def grayscale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Drop colour."""
    return ImageOps.grayscale(image).convert("RGB")


TRANSFORMS: dict[str, Transform] = {
    "crop": crop,
    "downscale_jpeg": downscale_jpeg,
    "rotate": rotate,
    "border": border,
    "watermark": watermark,
    "color_jitter": color_jitter,
    "hflip": hflip,
    "grayscale": grayscale,
}
