"""Border trimming removes frames (padding, letterboxes, screenshot borders), never a packshot's plain background."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from imagesearch.vision.preprocess import trim_border


def photo(size: tuple[int, int] = (300, 200), seed: int = 0) -> Image.Image:
    """A busy photo: noise everywhere, up to its edges."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(40, 200, (size[1], size[0], 3), dtype=np.uint8))


def packshot() -> Image.Image:
    """A product on a plain white studio background, touching nothing."""
    image = Image.new("RGB", (400, 400), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.ellipse((90, 60, 310, 340), fill=(30, 90, 160))
    draw.rectangle((170, 20, 230, 70), fill=(200, 40, 40))
    return image


def close(size: tuple[int, int], expected: tuple[int, int], slack: int = 12) -> bool:
    return abs(size[0] - expected[0]) <= slack and abs(size[1] - expected[1]) <= slack


def test_a_letterboxed_photo_loses_its_bands() -> None:
    padded = ImageOps.pad(photo((300, 150)), (300, 300), color=(255, 255, 255))
    assert close(trim_border(padded).size, (300, 150))


def test_a_framed_photo_loses_its_frame() -> None:
    framed = ImageOps.expand(photo(), border=(60, 40), fill=(250, 250, 250))
    assert close(trim_border(framed).size, (300, 200))
    dark = ImageOps.expand(framed, border=20, fill=(20, 20, 20))  # a frame around a frame: both go
    assert close(trim_border(dark).size, (300, 200))


def test_a_packshot_keeps_its_background() -> None:
    assert trim_border(packshot()).size == (400, 400)


def test_a_photo_without_a_frame_is_left_alone() -> None:
    image = photo()
    assert trim_border(image) is image
