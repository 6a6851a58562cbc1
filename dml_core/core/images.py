"""Decoding a person's image safely: the one path used by the Upload page and ``query``.

Accepts PNG, JPEG, WebP, BMP and GIF (first frame). Limits bytes before decoding and pixels
before the full decode (a decompression bomb is refused from its header), respects EXIF
orientation, and converts every mode (RGBA, LA, P with transparency, L, I;16, CMYK …) to RGB
on a white background. Every failure is an :class:`ImageInputError` with a one-line message.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000
MAX_ASPECT = 20.0
ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP", "BMP", "GIF", "MPO"}
#: File name extensions the Upload page offers (the decoder checks the content, not the name).
UPLOAD_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp", "gif")


class ImageInputError(ValueError):
    """The input is not an image this app can use; the message says why, in one line."""


def decode_image(data: bytes, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
                 exif_transpose: bool = True) -> Image.Image:
    """Decode ``data`` into an RGB PIL image, or raise :class:`ImageInputError`.

    ``exif_transpose=False`` keeps the stored pixel grid, which annotations in pixel
    coordinates (MPII joints, LSUN layout maps) refer to."""
    if not data:
        raise ImageInputError("the file is empty")
    if len(data) > max_bytes:
        raise ImageInputError(f"the file is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError:
        raise ImageInputError("this is not a readable image (PNG, JPEG, WebP, BMP or GIF)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageInputError(f"the image is too large to decode safely (limit {max_pixels / 1e6:.0f} megapixels)") from None
    except Exception as exc:  # PIL raises many types on hostile headers
        raise ImageInputError(f"the image header cannot be read ({type(exc).__name__})") from None
    if image.format not in ALLOWED_FORMATS:
        raise ImageInputError(f"{image.format or 'unknown'} images are not supported; use PNG, JPEG, WebP, BMP or GIF")
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageInputError("the image has no pixels")
    if width * height > max_pixels:
        raise ImageInputError(
            f"the image is {width}×{height} = {width * height / 1e6:.0f} megapixels; the limit is {max_pixels / 1e6:.0f}"
        )
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageInputError(f"the image is {width}×{height}; aspect ratios beyond {MAX_ASPECT:.0f}:1 are not supported")
    try:
        image.seek(0)
        image.load()
        if exif_transpose:
            image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except Exception as exc:
        raise ImageInputError(f"the image data is corrupt or truncated ({type(exc).__name__})") from None


def read_image_file(path, exif_transpose: bool = True) -> Image.Image:
    """An image file decoded with the same limits as an upload (never more than ``MAX_BYTES``
    is read); :class:`ImageInputError` when it is missing, unreadable or refused."""
    if not Path(path).is_file():  # also refuses a FIFO or device, which open() would block on
        raise ImageInputError("no such file" if not Path(path).exists() else "not a regular file")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ImageInputError(f"the file cannot be read ({exc.strerror or type(exc).__name__})") from None
    return decode_image(data, exif_transpose=exif_transpose)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to RGB; transparency is composited on white, 16-bit scaled to 8-bit."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        span = max(array.max() - array.min(), 1e-12)
        image = Image.fromarray(((array - array.min()) / span * 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def to_square_array(image: Image.Image, size: int) -> np.ndarray:
    """Centre-crop to a square and resize: uint8 (size, size, 3), the tasks' image format."""
    square = ImageOps.fit(to_rgb(image), (size, size), method=Image.Resampling.BILINEAR)
    return np.asarray(square, dtype=np.uint8)


def downsample(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, size, size, 3) from uint8 (N, S, S, 3) by averaging (S / size)^2 pixel blocks
    (S must be a multiple of ``size``); chunked, so memory-mapped splits stay on disk."""
    images = np.asarray(images) if not isinstance(images, np.ndarray) else images
    n, height, width = images.shape[:3]
    if height == size and width == size:
        return np.ascontiguousarray(images)
    if height != width or height % size:
        raise ValueError(f"cannot reduce {height}x{width} images to {size} px by block averaging")
    factor = height // size
    out = np.empty((n, size, size, 3), np.uint8)
    for start in range(0, n, 2048):
        block = np.asarray(images[start:start + 2048], dtype=np.float32)
        block = block.reshape(len(block), size, factor, size, factor, 3).mean(axis=(2, 4))
        out[start:start + len(block)] = np.rint(block).astype(np.uint8)
    return out
