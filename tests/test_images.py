"""The upload decoding path against ordinary and hostile files."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from dml_core.core.images import ImageInputError, decode_image, to_square_array


def _encode(image, fmt, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _rgb(w=64, h=48):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF"])
def test_common_formats_decode_to_rgb(fmt):
    image = decode_image(_encode(_rgb(), fmt))
    assert image.mode == "RGB" and image.size == (64, 48)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("RGBA", (20, 20), (255, 0, 0, 0)),
        lambda: Image.new("LA", (20, 20), (10, 128)),
        lambda: Image.new("L", (20, 20), 77),
        lambda: Image.new("1", (20, 20), 1),
        lambda: Image.new("I;16", (20, 20), 65535),
    ],
)
def test_modes_convert(make):
    image = decode_image(_encode(make(), "PNG"))
    assert image.mode == "RGB"


def test_transparent_pixels_become_white():
    image = decode_image(_encode(Image.new("RGBA", (4, 4), (255, 0, 0, 0)), "PNG"))
    assert image.getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_transparency():
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    image = decode_image(_encode(palette, "PNG", transparency=0))
    assert image.getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg():
    image = decode_image(_encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"))
    red, green, blue = image.getpixel((8, 8))
    assert image.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_exif_orientation_is_applied():
    source = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    image = decode_image(_encode(source, "JPEG", exif=exif))
    assert image.size == (20, 40)


def test_animated_gif_takes_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    image = decode_image(buffer.getvalue())
    assert image.getpixel((5, 5))[0] > 200


def _png_header_only(width, height):
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"hello, this is text renamed to .png", "not a readable image"),
        (b"<html><body>hi</body></html>", "not a readable image"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="10" height="10"/></svg>', "not a readable image"),
        (_png_header_only(30000, 30000), "megapixels|too large"),
        (_png_header_only(2000, 10), "aspect"),
    ],
)
def test_hostile_inputs_get_one_line_messages(data, message):
    with pytest.raises(ImageInputError, match=message) as info:
        decode_image(data)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files(fmt):
    data = _encode(_rgb(256, 256), fmt)
    with pytest.raises(ImageInputError):
        decode_image(data[: len(data) // 3])


def test_byte_limit():
    with pytest.raises(ImageInputError, match="limit"):
        decode_image(b"\x89PNG" + b"\x00" * 2000, max_bytes=1000)


def test_tiny_image_and_square_array():
    image = decode_image(_encode(Image.new("RGB", (1, 1), "green"), "PNG"))
    array = to_square_array(image, 32)
    assert array.shape == (32, 32, 3) and array.dtype == np.uint8
