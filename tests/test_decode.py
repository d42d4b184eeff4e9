"""Decoding: formats, orientation, transparency, and every refusal with its own code."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from imagesearch.errors import RequestError
from imagesearch.vision.decode import ORIGINAL_SIZE, DecodeLimits, crop_region, decode_image, in_original, thumbnail_jpeg


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF", "HEIF", "BMP", "GIF"])
def test_accepted_formats_decode_to_rgb(fmt: str) -> None:
    image = Image.new("RGB", (40, 30), (200, 10, 10))
    decoded = decode_image(encode(image, fmt))
    assert decoded.mode == "RGB"
    assert decoded.size == (40, 30)
    red, green, blue = decoded.getpixel((20, 15))
    assert red > 170 and green < 50 and blue < 50


@pytest.mark.parametrize("fmt", ["JPEG", "AVIF", "HEIF"])
def test_a_phone_photo_held_upright_is_upright_and_measured_so(fmt: str) -> None:
    """A phone stores a portrait photo sideways with an EXIF orientation (HEIC: a rotation of its own); decoded, it
    stands upright, and its size, in which boxes are given and reported, is the upright one, also when the decode
    was reduced (a 600 x 1600 upright photo, its top third red)."""
    upright = Image.new("RGB", (600, 1600), (20, 20, 200))
    upright.paste((220, 20, 20), (0, 0, 600, 533))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    stored = encode(upright.transpose(Image.Transpose.ROTATE_90), fmt, exif=exif.tobytes())
    for draft in (None, 256):
        decoded = decode_image(stored, draft_size=draft)
        assert decoded.width < decoded.height and decoded.info[ORIGINAL_SIZE] == (600, 1600)
        assert decoded.getpixel((decoded.width // 2, decoded.height // 8))[0] > 170  # red at the top
        top, box = crop_region(decoded, (0, 0, 600, 500))
        assert box == (0, 0, 600, 500) and top.getpixel((top.width // 2, top.height // 2))[0] > 170
        assert in_original(decoded, (0, 0, decoded.width, decoded.height)) == (0, 0, 600, 1600)


def test_transparency_is_composited_on_white() -> None:
    image = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    decoded = decode_image(encode(image, "PNG"))
    assert decoded.getpixel((5, 5)) == (255, 255, 255)


def test_gif_first_frame_is_used() -> None:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    red, _, blue = decode_image(buffer.getvalue()).getpixel((8, 8))
    assert red > 200 and blue < 50


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (60, 20), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode_image(encode(image, "JPEG", exif=exif))
    assert decoded.size == (20, 60)


def test_too_many_bytes_is_refused_before_decoding() -> None:
    with pytest.raises(RequestError) as error:
        decode_image(b"x" * 101, DecodeLimits(max_bytes=100))
    assert error.value.code == "ImageTooLarge"


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that announces a huge canvas but holds almost no data (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("side", "limit"), [(50_000, 40_000_000), (12_000, 40_000_000), (8000, 1_000_000)])
def test_decompression_bomb_is_refused_without_decoding(side: int, limit: int) -> None:
    """ImageTooManyPixels whatever the size, also past Pillow's own bomb threshold (about 90 MP)."""
    with pytest.raises(RequestError) as error:
        decode_image(_png_header_only(side, side), DecodeLimits(max_pixels=limit), param="file")
    assert error.value.code == "ImageTooManyPixels" and error.value.param == "file"
    assert error.value.message.startswith("file has ") and error.value.message.endswith(f"the limit is {limit / 1e6:g} MP")


def test_not_an_image() -> None:
    with pytest.raises(RequestError) as error:
        decode_image(b"%PDF-1.4 definitely not a picture")
    assert error.value.code == "InvalidImage"


def test_empty() -> None:
    with pytest.raises(RequestError) as error:
        decode_image(b"")
    assert error.value.code == "EmptyImage"


def test_truncated_image() -> None:
    data = encode(Image.new("RGB", (200, 200), (1, 2, 3)), "PNG")
    with pytest.raises(RequestError) as error:
        decode_image(data[: len(data) // 2])
    assert error.value.code == "InvalidImage"


def test_unsupported_format() -> None:
    with pytest.raises(RequestError) as error:
        decode_image(encode(Image.new("RGB", (20, 20)), "TIFF"))
    assert error.value.code == "UnsupportedImageFormat"
    assert "TIFF" in str(error.value) and "HEIC" in str(error.value)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_damaged_phone_formats_are_refused_as_damaged(fmt: str) -> None:
    data = encode(Image.effect_noise((300, 200), 60).convert("RGB"), fmt)
    with pytest.raises(RequestError) as error:
        decode_image(data[: len(data) // 2])
    assert error.value.code == "InvalidImage"


def test_too_small() -> None:
    with pytest.raises(RequestError) as error:
        decode_image(encode(Image.new("RGB", (4, 40)), "PNG"))
    assert error.value.code == "ImageTooSmall"


def test_thumbnail_longest_side() -> None:
    thumb = Image.open(io.BytesIO(thumbnail_jpeg(Image.new("RGB", (1000, 500)), 256)))
    assert thumb.size == (256, 128)


def test_large_non_jpeg_images_are_reduced_before_any_copy() -> None:
    """A 40 MP RGBA PNG (a few hundred kB) decodes for embedding with one full-size buffer, not several."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import io
        from PIL import Image
        from imagesearch.vision.decode import decode_image, DecodeLimits
        canvas = Image.new("RGBA", (6320, 6320), (200, 30, 30, 128))
        buffer = io.BytesIO()
        canvas.save(buffer, format="PNG")
        data = buffer.getvalue()
        del canvas
        def peak_kb():
            return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
        with open("/proc/self/clear_refs", "w") as reset:  # the peak so far (the canvas) is forgotten
            reset.write("5")
        before = peak_kb()
        image = decode_image(data, DecodeLimits(), draft_size=280)
        grown = (peak_kb() - before) // 1024
        print(image.size[0], image.size[1], image.mode, image.getpixel((5, 5)), grown)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split(maxsplit=3)
    width, height, mode, rest = int(out[0]), int(out[1]), out[2], out[3]
    pixel, grown = rest.rsplit(" ", 1)
    assert 280 <= min(width, height) < 560 and mode == "RGB"
    assert pixel == "(227, 142, 142)"  # composited on white: 128/255 of the red over white
    assert int(grown) < 240, f"peak memory grew by {grown} MB"  # the decoded 160 MB, and no second full-size copy


def test_transparent_images_reduce_in_bands_exactly_as_whole() -> None:
    import numpy as np

    from imagesearch.vision.decode import _reduce_in_bands

    rng = np.random.default_rng(3)
    for (width, height), mode in (((1001, 757), "RGBA"), ((333, 1203), "LA"), ((64, 64), "RGBA")):
        pixels = rng.integers(0, 256, (height, width, len(mode)), dtype=np.uint8)
        image = Image.fromarray(pixels, mode)
        for factor in (2, 3, 7, 19):
            assert np.array_equal(np.asarray(_reduce_in_bands(image, factor)), np.asarray(image.reduce(factor)))


def test_reduced_images_keep_their_orientation() -> None:
    image = Image.new("RGB", (1200, 400), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    decoded = decode_image(buffer.getvalue(), draft_size=100)
    assert decoded.size == (100, 300)  # reduced by 4, then turned upright
