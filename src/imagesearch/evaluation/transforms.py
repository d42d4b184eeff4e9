"""How a shop's photo of the same item differs from the catalog's.

:data:`TRANSFORMS`: the eight ways a *copy* of the catalog's photo differs
(cropped, shrunk, rotated, framed, marked, recoloured, mirrored, grey).
:data:`SECOND_PHOTOS`: a *second photograph* of the item, which differs more: seen
from another angle (a perspective warp), in other light, partly hidden, in
another place (a new background), and all four at once.  Backgrounds and
occluders are drawn clutter, so the sets need no other photos.

Used by the quality benchmark and by ``calibrate`` (which makes both kinds from
catalog images to set the ``same`` thresholds for the catalog at hand).  Each
transformation is deterministic given its ``rng``.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

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


def clutter(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A busy, unrelated picture: a shaded wall with coloured shapes and lines (a shelf, a table, a street)."""
    picture = Image.new("RGB", size, tuple(int(v) for v in rng.integers(40, 220, 3)))
    draw = ImageDraw.Draw(picture)
    width, height = size
    for _ in range(int(rng.integers(12, 24))):
        x0, y0 = int(rng.integers(-width // 4, width)), int(rng.integers(-height // 4, height))
        x1, y1 = x0 + int(rng.integers(width // 10, width // 2)), y0 + int(rng.integers(height // 10, height // 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = int(rng.integers(3))
        if shape == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif shape == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(2, 12)))
    return picture.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.5))))


def perspective(image: Image.Image, rng: np.random.Generator, background: Image.Image | None = None) -> Image.Image:
    """Seen from another angle: each corner moved by up to 12 % of the size, on a canvas 30 % larger."""
    width, height = image.size
    canvas = (int(width * 1.3), int(height * 1.3))
    source = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    shift = np.float32([(canvas[0] - width) / 2, (canvas[1] - height) / 2])
    target = source + shift + rng.uniform(-0.12, 0.12, (4, 2)).astype(np.float32) * np.float32([width, height])
    matrix = cv2.getPerspectiveTransform(source, target)
    warped = cv2.warpPerspective(np.asarray(image.convert("RGB")), matrix, canvas, flags=cv2.INTER_LINEAR)
    inside = cv2.warpPerspective(np.full((height, width), 255, np.uint8), matrix, canvas) > 0
    behind = np.asarray((background or Image.new("RGB", canvas, (255, 255, 255))).resize(canvas))
    return Image.fromarray(np.where(inside[:, :, None], warped, behind))


def light(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Other light: brightness and contrast by up to 35 %, and a colour cast of up to 15 % per channel."""
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.65, 1.35)))
    image = ImageEnhance.Contrast(image).enhance(float(rng.uniform(0.7, 1.3)))
    cast = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(image.convert("RGB"), np.float32) * cast, 0, 255).astype(np.uint8))


def occlusion(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Partly hidden: a block of clutter over 6-20 % of the photo (a hand, a price tag, another product)."""
    width, height = image.size
    block = (max(1, int(width * rng.uniform(0.25, 0.45))), max(1, int(height * rng.uniform(0.25, 0.45))))
    hidden = image.convert("RGB")
    hidden.paste(clutter(block, rng), (int(rng.integers(0, width - block[0] + 1)), int(rng.integers(0, height - block[1] + 1))))
    return hidden


def new_background(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Somewhere else: the photo at 55-80 % of the side of a cluttered scene, at a random place."""
    scale = float(rng.uniform(0.55, 0.8))
    canvas = (int(image.width / scale), int(image.height / scale))
    scene = clutter(canvas, rng)
    scene.paste(image.convert("RGB"), (int(rng.integers(0, canvas[0] - image.width + 1)), int(rng.integers(0, canvas[1] - image.height + 1))))
    return scene


def second_photo(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """All of the above at once: other light, partly hidden, from another angle, in front of clutter."""
    hidden = occlusion(light(image, rng), rng)
    return perspective(hidden, rng, clutter((int(image.width * 1.3), int(image.height * 1.3)), rng))


SECOND_PHOTOS: dict[str, Transform] = {
    "perspective": perspective,
    "light": light,
    "occlusion": occlusion,
    "new_background": new_background,
    "second_photo": second_photo,
}
