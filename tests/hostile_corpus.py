"""A corpus of malformed and hostile uploads, generated (nothing is checked in).

``corpus()`` returns ``Case(name, data, expect)`` items: ``expect`` is ``"ok"`` for files the
app must decode to a correct RGB image, otherwise a regular expression the one-line refusal
must match. ``python tests/hostile_corpus.py DIR`` writes the files to DIR to try them by
hand (``python -m dml_core query --task pose --image DIR/<name>``).
"""
from __future__ import annotations

import io
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

NOT_AN_IMAGE = "not a readable image"
TOO_LARGE = "megapixels|too large"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expect: str  # "ok" or a regex of the refusal


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _photo(width: int = 96, height: int = 72, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    gradient = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    noise = rng.integers(0, 40, (height, width, 3))
    return Image.fromarray(np.clip(gradient + noise, 0, 255).astype(np.uint8))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png(width: int, height: int, idat: bytes, colour_type: int = 2, extra: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + extra + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _png_bomb(side: int) -> bytes:
    """A real, valid greyscale PNG of side × side zeros: a few hundred KB that decode to side² bytes."""
    row = b"\x00" * (side + 1)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return _png(side, side, idat, colour_type=0)


def _gif_header(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00" + b"\x2c" + struct.pack("<HHHH", 0, 0, width, height) + b"\x00\x02\x02\x44\x01\x00\x3b"


def _bmp_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def _exif_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(_photo(80, 40), "JPEG", exif=exif)


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue", "green")]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _palette_with_transparency() -> bytes:
    image = Image.new("P", (24, 24), 0)
    image.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    image.paste(1, (8, 8, 16, 16))
    return _encode(image, "PNG", transparency=0)


def _bad_crc_png() -> bytes:
    data = bytearray(_encode(_photo(), "PNG"))
    at = data.index(b"IDAT") + 20
    data[at] ^= 0xFF  # corrupt compressed pixels: the chunk CRC no longer matches
    return bytes(data)


def _ztxt_bomb() -> bytes:
    """A PNG whose compressed text chunk inflates to 64 MB (Pillow refuses text chunks over 1 MB)."""
    text = zlib.compress(b"A" * (64 * 2**20), 9)
    chunk = _png_chunk(b"zTXt", b"comment\x00\x00" + text)
    pixels = zlib.compress(b"\x00" + b"\x80\x80\x80" * 8)
    return _png(8, 1, pixels, extra=chunk)


def corpus() -> list[Case]:
    photo = _photo()
    jpeg, png = _encode(photo, "JPEG", quality=90), _encode(_photo(256, 256), "PNG")
    big_jpeg = _encode(_photo(400, 300), "JPEG")
    return [
        # --- not images at all
        Case("empty.png", b"", "empty"),
        Case("text-renamed.png", b"hello, this is a text file renamed to .png\n" * 20, NOT_AN_IMAGE),
        Case("page.html.png", b"<!doctype html><html><body><script>alert(1)</script></body></html>", NOT_AN_IMAGE),
        Case("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>', NOT_AN_IMAGE),
        Case("document.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", NOT_AN_IMAGE),
        Case("random.bin", np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(), NOT_AN_IMAGE),
        Case("nul-bytes.jpg", b"\x00" * 1024, NOT_AN_IMAGE),
        Case("over-20mb.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * (21 * 2**20), "limit"),
        # --- truncated and corrupt
        Case("truncated.jpg", big_jpeg[: len(big_jpeg) // 3], "corrupt or truncated"),
        Case("truncated.png", png[: len(png) // 3], "corrupt or truncated"),
        Case("jpeg-header-only.jpg", jpeg[:200], "corrupt or truncated|cannot be read"),
        Case("png-signature-only.png", png[:8], NOT_AN_IMAGE + "|cannot be read"),
        Case("bad-crc.png", _bad_crc_png(), "corrupt or truncated"),
        Case("zero-size.png", _png(0, 0, zlib.compress(b"")), NOT_AN_IMAGE),
        # --- decompression bombs and absurd headers
        Case("bomb-30000x30000.png", _png(30000, 30000, zlib.compress(b"\x00" * 64)), TOO_LARGE),
        Case("bomb-real-12000x12000.png", _png_bomb(12000), TOO_LARGE),
        Case("header-7000x7000.png", _png(7000, 7000, zlib.compress(b"\x00" * 64)), TOO_LARGE),
        Case("gif-65535x65535.gif", _gif_header(65535, 65535), TOO_LARGE),
        Case("bmp-50000x50000.bmp", _bmp_header(50000, 50000), TOO_LARGE),
        Case("ztxt-bomb.png", _ztxt_bomb(), "cannot be read"),
        # --- shapes
        Case("aspect-2000x10.png", _encode(Image.new("RGB", (2000, 10), "red"), "PNG"), "aspect"),
        Case("aspect-10x400.png", _encode(Image.new("RGB", (10, 400), "red"), "PNG"), "aspect"),
        Case("aspect-400x20.png", _encode(Image.new("RGB", (400, 20), "red"), "PNG"), "ok"),
        Case("one-pixel.png", _encode(Image.new("RGB", (1, 1), "green"), "PNG"), "ok"),
        # --- formats we refuse
        Case("image.tiff", _encode(photo, "TIFF"), "not supported"),
        Case("icon.ico", _encode(photo.resize((32, 32)), "ICO"), "not supported"),
        # --- odd but valid: decoded correctly
        Case("animated.gif", _animated_gif(), "ok"),
        Case("sixteen-bit.png", _encode(Image.fromarray(np.full((20, 30), 40000, dtype=np.uint16)), "PNG"), "ok"),
        Case("cmyk.jpg", _encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG"), "ok"),
        Case("palette-transparent.png", _palette_with_transparency(), "ok"),
        Case("exif-rotated-6.jpg", _exif_jpeg(6), "ok"),
        Case("exif-orientation-invalid.jpg", _exif_jpeg(9), "ok"),
        Case("rgba.png", _encode(Image.new("RGBA", (30, 30), (255, 0, 0, 0)), "PNG"), "ok"),
        Case("grey-alpha.png", _encode(Image.new("LA", (30, 30), (10, 128)), "PNG"), "ok"),
        Case("one-bit.png", _encode(Image.new("1", (30, 30), 1), "PNG"), "ok"),
        Case("grey.jpg", _encode(photo.convert("L"), "JPEG"), "ok"),
        Case("progressive.jpg", _encode(photo, "JPEG", progressive=True), "ok"),
        Case("trailing-html.jpg", jpeg + b"<html><script>alert(1)</script></html>", "ok"),
        Case("photo.webp", _encode(photo, "WEBP"), "ok"),
        Case("photo.bmp", _encode(photo, "BMP"), "ok"),
        Case("large-allowed-5000x5000.png", _encode(Image.new("RGB", (5000, 5000), "navy"), "PNG"), "ok"),
    ]


def expected_size(case: Case) -> tuple[int, int] | None:
    """The (width, height) a correct decode of an "ok" case has (EXIF rotation applied)."""
    return {"exif-rotated-6.jpg": (40, 80)}.get(case.name)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    out.mkdir(parents=True, exist_ok=True)
    for case in corpus():
        (out / case.name).write_bytes(case.data)
    print(f"wrote {len(corpus())} files to {out}")
