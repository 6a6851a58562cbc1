"""Batched feature extraction with a verified disk cache.

Cache entry = ``<cache_dir>/<backbone.cache_key>__<mode>__<data fingerprint>.npy`` plus a JSON
sidecar (same name + ``.json``) holding shape, dtype, byte size and a blake2b checksum of the
array bytes. Both are written to a temporary file in the same folder and renamed into place
(``os.replace``), the array first, the sidecar last, so a crash leaves either a complete entry
or one without a valid sidecar. An entry is used only if its sidecar parses, describes the
requested (backbone, mode, data, shape, dtype) and the file's checksum matches; anything else
is reported (``warnings.warn``) and recomputed. Arrays are read with
``np.load(allow_pickle=False)``: nothing in a cache is ever unpickled.

Dtypes: ``"pooled"`` and ``"spatial2x2"`` are float32 (1280 / 5120 values per image).
``"block<k>"`` activations are float16: they are 3.5-14x larger (e.g. 112x8x8 = 7168 values
per image at 128 px) and only feed fine-tuning, where fp16's ~5e-4 relative rounding is far
below the noise of training; training casts batches back to float32.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dml_core.core.store import atomic_write
from dml_core.features.base import MODE_POOLED, Backbone, parse_block_mode

CACHE_FORMAT_VERSION = 1
ProgressCallback = Callable[[int, int], None]


def feature_dtype(mode: str) -> np.dtype:
    """float16 for ``block<k>`` activations, float32 for pooled features (see module doc)."""
    return np.dtype(np.float16) if parse_block_mode(mode) is not None else np.dtype(np.float32)


def fingerprint_images(images: np.ndarray) -> str:
    """blake2b (16 hex chars) over shape, dtype and the raw bytes of ``images`` (~1 GB/s)."""
    images = np.ascontiguousarray(images)
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{images.dtype.str}{images.shape}".encode())
    digest.update(memoryview(images).cast("B"))
    return digest.hexdigest()


def _array_checksum(array: np.ndarray) -> str:
    return hashlib.blake2b(memoryview(np.ascontiguousarray(array)).cast("B"), digest_size=16).hexdigest()


def cache_paths(cache_dir: str | os.PathLike, backbone: Backbone, mode: str, fingerprint: str) -> tuple[Path, Path]:
    """(array path, sidecar path) of one cache entry."""
    stem = f"{backbone.cache_key}__{mode}__{fingerprint}"
    base = Path(cache_dir)
    return base / f"{stem}.npy", base / f"{stem}.npy.json"


def save_cached(array_path: Path, sidecar_path: Path, array: np.ndarray, meta: dict) -> None:
    """Atomically write ``array`` (.npy) then its sidecar (meta + shape, dtype, size, checksum)."""
    array = np.ascontiguousarray(array)
    atomic_write(array_path, lambda handle: np.save(handle, array, allow_pickle=False))
    sidecar = dict(meta)
    sidecar.update(
        format_version=CACHE_FORMAT_VERSION,
        shape=list(array.shape),
        dtype=array.dtype.str,
        file_bytes=array_path.stat().st_size,
        blake2b=_array_checksum(array),
    )
    atomic_write(sidecar_path, lambda handle: handle.write(json.dumps(sidecar, indent=1).encode()))


def load_cached(array_path: Path, sidecar_path: Path, expected: dict) -> np.ndarray | None:
    """The cached array if the entry is complete and matches ``expected``; else None.

    ``expected`` holds sidecar fields that must be equal (backbone, mode, fingerprint,
    shape, dtype...). A present but invalid entry triggers a warning naming the file.
    """
    if not array_path.exists() and not sidecar_path.exists():
        return None
    problem = None
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        mismatched = [k for k, v in expected.items() if sidecar.get(k) != v]
        if sidecar.get("format_version") != CACHE_FORMAT_VERSION:
            mismatched.append("format_version")
        if mismatched:
            problem = f"sidecar disagrees on {', '.join(mismatched)}"
        elif array_path.stat().st_size != sidecar["file_bytes"]:
            problem = f"size {array_path.stat().st_size} != {sidecar['file_bytes']} bytes"
        else:
            array = np.load(array_path, allow_pickle=False)
            if list(array.shape) != sidecar["shape"] or array.dtype.str != sidecar["dtype"]:
                problem = f"array is {array.dtype} {array.shape}, sidecar says {sidecar['dtype']} {sidecar['shape']}"
            elif _array_checksum(array) != sidecar["blake2b"]:
                problem = "checksum mismatch"
            else:
                return array
    except (OSError, ValueError, KeyError, TypeError, EOFError) as error:
        problem = f"{type(error).__name__}: {error}"
    warnings.warn(f"{array_path}: corrupt or stale feature cache ({problem}); recomputing", stacklevel=3)
    return None


def compute_features(
    backbone: Backbone,
    images: np.ndarray,
    mode: str = MODE_POOLED,
    batch_size: int = 16,
    progress: bool = True,
    callback: ProgressCallback | None = None,
) -> np.ndarray:
    """Features of uint8 images (N, H, W, 3) in batches, no cache.

    Returns ``(N, *backbone.feature_shape(mode))`` with dtype ``feature_dtype(mode)``.
    ``progress`` shows a tqdm bar; ``callback(done, total)`` is called after every batch.
    The default batch of 16 was the fastest of 8/16/32/64 for EfficientNet-Lite0 at 128 px
    on 2 CPU threads (larger batches spill the caches).
    """
    return compute_feature_modes(backbone, images, (mode,), batch_size, progress, callback)[mode]


@torch.inference_mode()
def compute_feature_modes(
    backbone: Backbone,
    images: np.ndarray,
    modes: tuple[str, ...],
    batch_size: int = 16,
    progress: bool = True,
    callback: ProgressCallback | None = None,
) -> dict[str, np.ndarray]:
    """``compute_features`` for several modes in one pass over the images (and, where the backbone
    can, one pass through the network: ``Backbone.forward_feature_modes``)."""
    from tqdm.auto import tqdm

    modes = tuple(dict.fromkeys(modes))
    for mode in modes:
        backbone.check_mode(mode)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB images (N, H, W, 3), got {images.dtype} {images.shape}")
    total = len(images)
    out = {mode: np.empty((total, *backbone.feature_shape(mode)), dtype=feature_dtype(mode)) for mode in modes}
    backbone.eval()
    with tqdm(total=total, desc=f"{backbone.name} {'+'.join(modes)}", unit="img", disable=not progress,
              leave=False) as bar:
        for start in range(0, total, batch_size):
            batch = images[start : start + batch_size]
            features = backbone.forward_feature_modes(backbone.preprocess(batch), modes)
            for mode in modes:
                out[mode][start : start + len(batch)] = features[mode].float().cpu().numpy()
            bar.update(len(batch))
            if callback is not None:
                callback(min(start + batch_size, total), total)
    if callback is not None and total == 0:
        callback(0, 0)
    return out


def extract_features(
    backbone: Backbone,
    images: np.ndarray,
    mode: str = MODE_POOLED,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 16,
    progress: bool = True,
    callback: ProgressCallback | None = None,
    compute: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """``compute_features`` behind a disk cache keyed by backbone, resolution, mode and data.

    Args:
        backbone: a ``Backbone`` (its ``cache_key`` covers name, weights and resolution).
        images: uint8 (N, H, W, 3).
        mode: ``"pooled"``, ``"spatial2x2"`` or ``"block<k>"`` (see the backbone).
        cache_dir: folder for cache entries; None disables caching.
        batch_size, progress, callback: as in ``compute_features``. On a cache hit the
            callback is called once with ``(N, N)``.
        compute: on a cache miss, ``compute(images)`` computes the features instead of
            ``compute_features`` (e.g. in worker processes); same shape and dtype expected.

    Returns:
        (N, *feature_shape) float32, or float16 for ``block<k>`` modes.
    """
    single = None if compute is None else (lambda images, modes: {mode: compute(images)})
    return extract_feature_modes(backbone, images, (mode,), cache_dir, batch_size, progress, callback, single)[mode]


def extract_feature_modes(
    backbone: Backbone,
    images: np.ndarray,
    modes: tuple[str, ...],
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 16,
    progress: bool = True,
    callback: ProgressCallback | None = None,
    compute: Callable[[np.ndarray, tuple[str, ...]], dict[str, np.ndarray]] | None = None,
) -> dict[str, np.ndarray]:
    """``extract_features`` for several modes: the cached ones are read, the others computed
    together in one pass (``compute_feature_modes``, or ``compute(images, missing_modes)``) and
    cached one entry per mode."""
    modes = tuple(dict.fromkeys(modes))
    if cache_dir is None:
        return compute_feature_modes(backbone, images, modes, batch_size, progress, callback)
    for mode in modes:
        backbone.check_mode(mode)
    fingerprint = fingerprint_images(images)
    expected = {mode: {"backbone": backbone.cache_key, "mode": mode, "fingerprint": fingerprint,
                       "shape": [len(images), *backbone.feature_shape(mode)], "dtype": feature_dtype(mode).str}
                for mode in modes}
    paths = {mode: cache_paths(cache_dir, backbone, mode, fingerprint) for mode in modes}
    out = {mode: load_cached(*paths[mode], expected[mode]) for mode in modes}
    missing = tuple(mode for mode in modes if out[mode] is None)
    if not missing:
        if callback is not None:
            callback(len(images), len(images))
        return out
    if compute is None:
        computed = compute_feature_modes(backbone, images, missing, batch_size, progress, callback)
    else:
        computed = {mode: np.asarray(array, dtype=feature_dtype(mode)) for mode, array in compute(images, missing).items()}
    for mode in missing:
        if list(computed[mode].shape) != expected[mode]["shape"]:
            raise ValueError(f"compute returned {mode} features of shape {computed[mode].shape}, "
                             f"expected {tuple(expected[mode]['shape'])}")
        meta = {k: v for k, v in expected[mode].items() if k not in ("shape", "dtype")}
        save_cached(*paths[mode], computed[mode], meta)
        out[mode] = computed[mode]
    return out


__all__ = [
    "cache_paths",
    "compute_feature_modes",
    "compute_features",
    "extract_feature_modes",
    "extract_features",
    "feature_dtype",
    "fingerprint_images",
    "load_cached",
    "save_cached",
]
