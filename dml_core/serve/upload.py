"""Query with an image file: decode, backbone once, every model's head and index (the Upload page, ``query --image``)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from dml_core.core.images import decode_image, to_square_array
from dml_core.features.backbone import shared_backbone


@dataclass
class UploadResult:
    """What the Upload page shows for one image."""

    image: np.ndarray  # (S, S, 3) uint8, the square crop the models saw
    original_size: tuple[int, int]
    hits: dict
    timings_ms: dict
    positions: dict = field(default_factory=dict)  # model id -> (2,) map position or None
    typicality: object = None  # ood.Typicality: how typical the image is of the gallery (None: no ImageNet model)


_backbone_lock = threading.Lock()


def ensure_backbone() -> None:
    """Load the shared backbone once (thread-safe); Upload calls it early in a thread so the
    first uploaded image does not wait for the weights."""

    with _backbone_lock:
        shared_backbone()


_warm_thread: threading.Thread | None = None


def warm_backbone_async() -> threading.Thread:
    """Start loading the backbone in a background thread, once per process."""
    global _warm_thread
    with _backbone_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=ensure_backbone, name="warm-backbone", daemon=True)
            _warm_thread.start()
    return _warm_thread


def query_with_image_bytes(catalog, data: bytes, model_ids: list[str], k: int = 10, place_on: list[str] | None = None) -> UploadResult:
    """Decode an uploaded file and retrieve with every model; ImageInputError on bad bytes.

    The backbone runs once; each model then embeds the features with its head and searches
    its index (as ``Catalog.hits_for_image``). place_on: models whose gallery map gets the
    query's position (default: ``model_ids``). Timings in ms: decode, backbone, per model,
    total.
    """
    from dml_core.serve.catalog import Hit

    start = time.perf_counter()
    pil = decode_image(data)
    array = to_square_array(pil, catalog.gallery.images.shape[1])
    timings = {"decode_ms": (time.perf_counter() - start) * 1000}
    ensure_backbone()
    timings["backbone_ms"] = 0.0
    features = catalog.feature_function(array[None], timings)
    place_on = list(model_ids) if place_on is None else list(place_on)
    hits, positions = {}, {}
    for model_id in dict.fromkeys([*model_ids, *place_on]):
        step, backbone_before = time.perf_counter(), timings["backbone_ms"]
        embedding = catalog.models[model_id].embed_images(array[None], features)
        if model_id in model_ids:
            distances, ids = catalog.search(model_id, embedding, k)
            hits[model_id] = [Hit(int(i), float(d), None) for d, i in zip(distances[0], ids[0])]
        if model_id in place_on:
            xy = catalog.place(model_id, embedding)
            positions[model_id] = None if xy is None else np.asarray(xy)[0]
        timings[f"{model_id}_ms"] = (time.perf_counter() - step) * 1000 - (timings["backbone_ms"] - backbone_before)
    from dml_core.serve.ood import has_reference, typicality

    typical = typicality(catalog, features()) if has_reference(catalog) else None
    timings["total_ms"] = (time.perf_counter() - start) * 1000
    return UploadResult(array, pil.size, hits, timings, positions, typical)
