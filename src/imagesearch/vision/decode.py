"""Safe image decoding with hard limits.

Every image that enters the service, a query or a catalog photo, goes through
:func:`decode_image`.  Limits are checked *before* pixels are decoded: the
encoded size first, then the pixel count read from the header, so a
decompression bomb (a tiny file announcing a gigapixel canvas) is refused
without allocating it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from ..errors import IMAGE_FORMATS, ErrorCode, RequestError, format_bytes, format_pixels

# HEIC/HEIF, what phones take photos in (AVIF is Pillow's own).  The photo's rotation is applied while decoding.
register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

#: Longest side of the thumbnails stored in the catalog.
THUMBNAIL_SIDE = 256

#: ``image.info`` key holding the photo's full size, upright: before any draft-mode reduction, after its EXIF rotation.
ORIGINAL_SIZE = "imagesearch_original_size"

#: Formats we accept, by Pillow's format name (MPO: a phone's JPEG with a second picture, HEIF: HEIC photos).
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "AVIF", "HEIF", "GIF", "BMP", "MPO"})


@dataclass(frozen=True)
class DecodeLimits:
    """Upper bounds for one image; the defaults suit product photos."""

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    min_side: int = 8


def check_size(count: int, max_bytes: int, param: str = "image") -> None:
    """Refuse an image of more than ``max_bytes``: the one byte cap, checked wherever bytes arrive."""
    if count > max_bytes:
        raise RequestError(ErrorCode.ImageTooLarge, param, limit=format_bytes(max_bytes))


def decode_image(
    data: bytes, limits: DecodeLimits = DecodeLimits(), draft_size: int | None = None, param: str = "image"
) -> Image.Image:
    """Decode ``data`` into an RGB image, upright, with transparency composited on white.

    ``draft_size`` lets JPEG decoding downscale by a power of two while decoding
    (much faster) as long as both sides stay at least that large.  ``param``
    names the image in error messages (the request parameter it came from).
    Raises :class:`RequestError` with a specific code for every kind of refusal.
    """
    if not data:
        raise RequestError(ErrorCode.EmptyImage, param)
    check_size(len(data), limits.max_bytes, param)
    not_an_image = RequestError(ErrorCode.InvalidImage, param, reason=f"is not an image in a supported format ({IMAGE_FORMATS})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        bomb = format_pixels(int(Image.MAX_IMAGE_PIXELS or 0))
        raise RequestError(ErrorCode.ImageTooManyPixels, param, size=f"more than {bomb}", limit=format_pixels(limits.max_pixels)) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise not_an_image from None
    if image.format not in ACCEPTED_FORMATS:
        raise RequestError(ErrorCode.UnsupportedImageFormat, param, format=image.format)
    width, height = image.size
    if width * height > limits.max_pixels:
        raise RequestError(
            ErrorCode.ImageTooManyPixels, param, size=f"{width}x{height} pixels", limit=format_pixels(limits.max_pixels)
        )
    if min(width, height) < limits.min_side:
        raise RequestError(ErrorCode.ImageTooSmall, param, width=width, height=height, min_side=limits.min_side)
    try:
        if draft_size and image.format in ("JPEG", "MPO"):
            image.draft("RGB", (draft_size, draft_size))
        image.seek(0)  # first frame of an animation
        image.load()
        if draft_size:
            image = _reduced(image, draft_size)
        stored = image.size
        image = _to_rgb(ImageOps.exif_transpose(image))
        if image.size != stored:  # a quarter turn (a phone held upright): boxes are in the upright photo's pixels
            width, height = height, width
        image.info[ORIGINAL_SIZE] = (width, height)
        return image
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        raise RequestError(ErrorCode.InvalidImage, param, reason="is damaged and cannot be decoded") from None


def _reduced(image: Image.Image, draft_size: int) -> Image.Image:
    """What JPEG's draft mode does while decoding, for the other formats right after: shrink by a
    whole factor while both sides stay at least ``draft_size``.

    Done before any conversion, so a huge PNG costs one full-size buffer, not the several that
    orientation and transparency handling would copy (a 40 MP RGBA PNG: 160 MB, not 0.9 GB).
    """
    factor = min(image.size) // draft_size
    if factor < 2 or image.format in ("JPEG", "MPO"):
        return image
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image.load()
        converted = image.convert("RGBA" if image.mode in ("PA", "P") and "transparency" in image.info or "A" in image.mode else "RGB")
        converted.info = dict(image.info)
        image = converted
    reduced = _reduce_in_bands(image, factor) if "A" in image.mode else image.reduce(factor)
    reduced.info = dict(image.info)  # keeps the EXIF orientation for exif_transpose
    return reduced


#: Rows of the full image reduced at a time when it has transparency (at most; a multiple of the factor).
BAND_ROWS = 256


def _reduce_in_bands(image: Image.Image, factor: int) -> Image.Image:
    """``image.reduce(factor)``, band by band: Pillow premultiplies alpha into a full-size copy before it
    reduces (a second 160 MB for a 40 MP RGBA PNG); a band's copy is small.  The bands start on multiples of
    ``factor``, so no block straddles two of them and the result is the same as reducing the whole image."""
    width, height = image.size
    out = Image.new(image.mode, (-(-width // factor), -(-height // factor)))
    rows = factor * max(1, BAND_ROWS // factor)
    for top in range(0, height, rows):
        out.paste(image.crop((0, top, width, min(top + rows, height))).reduce(factor), (0, top // factor))
    return out


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to RGB, compositing transparency on a white background."""
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


#: A caller's region is decoded at up to this many times the usual draft size, so a small box keeps its detail.
REGION_DRAFT_FACTOR = 4


def crop_region(
    image: Image.Image, region: tuple[float, float, float, float], min_side: int = 8, param: str = "region"
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The part of ``image`` a caller's box covers, and that box in the original photo's pixels.

    ``region`` is x, y, width, height in the original photo's pixels, or in
    fractions of it when every value is at most 1; a box that runs over the
    edge is clipped to the photo.  ``image`` may be a reduced decode of the
    photo (its original size is in its info): the box is scaled to it.
    """
    width, height = image.info.get(ORIGINAL_SIZE, image.size)
    x, y, w, h = region
    if max(region) <= 1:
        x, y, w, h = x * width, y * height, w * width, h * height
    left, top, right, bottom = max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h)
    if right - left < 1 or bottom - top < 1:
        raise RequestError(ErrorCode.InvalidRegion, param, reason=f"lies outside the photo ({width}x{height} pixels)")
    scale_x, scale_y = image.width / width, image.height / height
    box = (round(left * scale_x), round(top * scale_y), round(right * scale_x), round(bottom * scale_y))
    if min(box[2] - box[0], box[3] - box[1]) < min_side:
        raise RequestError(ErrorCode.InvalidRegion, param, reason=f"must be at least {min_side} pixels on each side of the photo")
    cropped = image.crop(box)
    cropped.info[ORIGINAL_SIZE] = (round(right - left), round(bottom - top))
    return cropped, (round(left), round(top), round(right - left), round(bottom - top))


def in_original(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """A box (x, y, width, height) of a possibly reduced decode of a photo, in the original photo's pixels."""
    width, height = image.info.get(ORIGINAL_SIZE, image.size)
    scale_x, scale_y = width / image.width, height / image.height
    return round(box[0] * scale_x), round(box[1] * scale_y), round(box[2] * scale_x), round(box[3] * scale_y)


def draft_side(input_size: int) -> int:
    """The JPEG draft size for embedding: catalog images and queries must decode alike.

    An identical photo must give an identical vector (score 1.000), so import
    and search both decode at this size; it also covers the thumbnail.
    """
    return max(input_size, THUMBNAIL_SIDE)


def thumbnail_jpeg(image: Image.Image, size: int = THUMBNAIL_SIDE, quality: int = 85) -> bytes:
    """A JPEG whose longer side is ``size`` pixels, for result pages and the catalog."""
    thumb = image.copy()
    # Bicubic after a box pre-reduction: indistinguishable from Lanczos at this size, several times faster.
    thumb.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=quality)
    return out.getvalue()
