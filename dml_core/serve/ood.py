"""How typical an image is of a task's gallery: the Upload page's out-of-domain evidence.

Every gallery is procedural (or an imported data set), so a photo of a street retrieves
*something*, and the result says only what the models make of an unfamiliar image. The
evidence here is model-free: the image's globally pooled ImageNet features (what the
``imagenet`` baseline model stores as its embeddings) and their cosine distance to the
nearest gallery image. That distance alone has no scale, so it is read against the same
distance for the task's query split, images drawn from the gallery's own distribution but
never in it: the **percentile** is the share of query-split images that lie closer to the
gallery than the new image does. A generated image lands anywhere in 0-100; a photo lands
beyond all of them.

The warning does not use the percentile: with a hundred query-set images, one new generated
image in a hundred lies beyond all of them by chance (measured: one of nine on the quick
build). It uses Tukey's "far out" fence instead, Q3 + 3 IQR of the query split's distances:
on the quick build that is 0.43-0.48 (cosine), generated images reach at most 0.41, real
photographs 0.57-0.71.
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

from dml_core.core.vocabulary import BASELINE
from dml_core.search.distances import embedding_distance

#: The model whose stored embeddings are the pooled ImageNet features.
FEATURE_MODEL = BASELINE
#: Tukey's "far out" fence: Q3 + FENCE_IQRS x the interquartile range.
FENCE_IQRS = 3.0


@dataclass(frozen=True)
class Typicality:
    """Where one image's nearest-gallery distance falls among the query split's.

    distance: cosine distance (1 - cos) of the image's pooled ImageNet features to the
        nearest gallery image's. reference: the same distance for every query-split image,
        sorted ascending (the scale). percentile: % of ``reference`` strictly below
        ``distance``. nearest: the gallery index of that nearest image.
    """

    distance: float
    percentile: float
    reference: np.ndarray
    nearest: int

    @property
    def fence(self) -> float:
        """The distance beyond which an image counts as unlike the gallery (Q3 + 3 IQR of the reference)."""
        q1, q3 = np.quantile(self.reference, [0.25, 0.75])
        return float(q3 + FENCE_IQRS * (q3 - q1))

    @property
    def unfamiliar(self) -> bool:
        return bool(self.distance > self.fence)

    @property
    def times_median(self) -> float:
        """The distance in units of the query split's median distance (1 = a typical image)."""
        median = float(np.median(self.reference))
        return self.distance / median if median > 0 else float("inf")

    def summary(self) -> str:
        """One line with the number and its scale, for a caption or the CLI."""
        low, median, high = (float(np.quantile(self.reference, q)) for q in (0.0, 0.5, 1.0))
        return (f"nearest-gallery feature distance {self.distance:.3f}: farther than {self.percentile:.0f}% of the "
                f"{len(self.reference)} query-set images (theirs: {low:.3f}-{high:.3f}, median {median:.3f}; "
                f"unlike the gallery beyond {self.fence:.3f})")

    def to_dict(self) -> dict:
        return {"distance": round(float(self.distance), 6), "percentile": round(float(self.percentile), 2),
                "times_median": round(float(self.times_median), 3), "unfamiliar": self.unfamiliar,
                "warning_distance": round(self.fence, 6), "nearest_gallery_id": int(self.nearest),
                "reference_queries": len(self.reference),
                "reference_median": round(float(np.median(self.reference)), 6),
                "reference_max": round(float(self.reference[-1]), 6)}


def nearest_distances(embeddings: np.ndarray, gallery: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distance of each row of ``embeddings`` to its nearest ``gallery`` row, and that row's index."""
    distances = embedding_distance(embeddings, gallery, "cosine")
    nearest = distances.argmin(axis=1)
    return distances[np.arange(len(distances)), nearest], nearest


def percentile_of(value: float, reference: np.ndarray) -> float:
    """% of the sorted ``reference`` strictly below ``value`` (0 … 100)."""
    return 100.0 * np.searchsorted(reference, value, side="left") / len(reference)


# Per catalog, the query split's sorted distances: a (Q, G) product computed once, dropped with the catalog.
_references: dict[int, np.ndarray] = {}
_lock = threading.Lock()


def reference_distances(catalog) -> np.ndarray:
    """The query split's nearest-gallery distances under ``FEATURE_MODEL``, sorted (cached per catalog)."""
    key = id(catalog)
    with _lock:
        cached = _references.get(key)
    if cached is None:
        model = catalog.models[FEATURE_MODEL]
        cached = np.sort(nearest_distances(model.query, model.gallery)[0])
        with _lock:
            if key not in _references:
                weakref.finalize(catalog, _references.pop, key, None)
            _references[key] = cached
    return cached


def has_reference(catalog) -> bool:
    return FEATURE_MODEL in catalog.models and len(catalog.queries) > 0


def typicality(catalog, features: np.ndarray) -> Typicality | None:
    """How typical images with backbone ``features`` (``features.backbone.TRAIN_MODE``, (1, F)) are of the
    gallery; None when the catalog has no ImageNet baseline model to measure with."""
    if not has_reference(catalog):
        return None
    model = catalog.models[FEATURE_MODEL]
    embedding = model.embed_features(np.asarray(features))[:1]
    distance, nearest = nearest_distances(embedding, model.gallery)
    reference = reference_distances(catalog)
    return Typicality(float(distance[0]), percentile_of(float(distance[0]), reference), reference, int(nearest[0]))
