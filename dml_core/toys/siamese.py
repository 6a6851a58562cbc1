"""Learn page 5: a Siamese network verifying pairs of hand-drawn-like glyphs.

A Siamese network (Bromley et al. 1993, signature verification) is *one* embedding module
f_theta applied to both inputs of a pair: ``z1 = f(x1)``, ``z2 = f(x2)`` with the same weights,
then the pair is judged by ``d = ||z1 - z2||``: "same" when d <= a threshold. Trained here with
the contrastive loss ``y d + (1 - y) max(0, m - d)`` on pairs (y = 1 for the same glyph).

Glyphs: each class is three random strokes in a 14x14 box; every drawing of it is shifted,
slightly rotated and scaled, with random stroke width and pixel noise. Because the network
learns a *distance*, not a list of classes, it verifies pairs of glyph classes it never saw in
training (the point of Siamese verification: enrol a new signature from one example).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from dml_core.toys.common import best_threshold_accuracy, embed, mlp, pair_accuracy, single_threaded

GLYPH_SIZE = 14
STROKES_PER_GLYPH = 3


def glyph_prototypes(n_classes: int, seed: int = 2024) -> np.ndarray:
    """(n_classes, 3, 4) stroke endpoints (x0, y0, x1, y1) in [-1, 1]; fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.8, 0.8, (n_classes, STROKES_PER_GLYPH, 4))


def render_glyphs(strokes: np.ndarray, seed: int, size: int = GLYPH_SIZE) -> np.ndarray:
    """Draw glyphs given their strokes (N, S, 4), float32 (N, size, size) in [0, 1].

    Per drawing (from ``seed``): rotation ±12 degrees, scale 0.85-1.1, shift ±1 px, stroke
    half-width 0.5-1.1 px, pixel noise N(0, 0.05). Each pixel takes the brightest stroke,
    with a 1-px anti-aliasing ramp on the distance to the segment.
    """
    rng = np.random.default_rng(seed)
    n = len(strokes)
    angle = np.deg2rad(rng.uniform(-12, 12, n))
    scale = rng.uniform(0.85, 1.1, n) * (size / 2 - 2)
    shift = rng.uniform(-1, 1, (n, 2)) + (size - 1) / 2
    half_width = rng.uniform(0.5, 1.1, n)
    cos, sin = np.cos(angle), np.sin(angle)

    def place(x, y):
        return (scale[:, None] * (cos[:, None] * x - sin[:, None] * y) + shift[:, 0, None],
                scale[:, None] * (sin[:, None] * x + cos[:, None] * y) + shift[:, 1, None])

    x0, y0 = place(strokes[..., 0], strokes[..., 1])  # (N, S)
    x1, y1 = place(strokes[..., 2], strokes[..., 3])
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    px, py = xs[None, None], ys[None, None]
    dx, dy = (x1 - x0)[..., None, None], (y1 - y0)[..., None, None]
    length_sq = np.maximum(dx ** 2 + dy ** 2, 1e-9)
    t = np.clip(((px - x0[..., None, None]) * dx + (py - y0[..., None, None]) * dy) / length_sq, 0, 1)
    dist = np.hypot(px - (x0[..., None, None] + t * dx), py - (y0[..., None, None] + t * dy))
    ink = np.clip(half_width[:, None, None, None] + 0.5 - dist, 0, 1).max(axis=1)
    ink += rng.normal(0, 0.05, ink.shape)
    return np.clip(ink, 0, 1).astype(np.float32)


@dataclass
class GlyphSet:
    """images (N, 14, 14) float32; classes (N,) glyph class ids."""

    images: np.ndarray
    classes: np.ndarray


def make_glyphs(classes: np.ndarray, per_class: int, seed: int) -> GlyphSet:
    """``per_class`` drawings of each glyph class in ``classes`` (ids into the prototypes)."""
    classes = np.asarray(classes)
    prototypes = glyph_prototypes(int(classes.max()) + 1)
    ids = np.repeat(classes, per_class)
    return GlyphSet(images=render_glyphs(prototypes[ids], seed), classes=ids)


def sample_pairs(classes: np.ndarray, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` index pairs, half of the same class, half of different classes; and ``same``."""
    rng = np.random.default_rng(seed)
    classes = np.asarray(classes)
    half = n_pairs // 2
    first = rng.integers(0, len(classes), n_pairs)
    second = np.empty(n_pairs, dtype=int)
    for k, i in enumerate(first):
        pool = np.flatnonzero((classes == classes[i]) if k < half else (classes != classes[i]))
        pool = pool[pool != i]
        second[k] = rng.choice(pool)
    same = np.arange(n_pairs) < half
    return np.stack([first, second], 1), same


@dataclass
class SiameseRun:
    """A trained Siamese network and its verification results.

    seen / unseen: test drawings of training classes and of classes never trained on;
    *_pairs / *_same: index pairs within each set and their truth; *_dist: their distances.
    threshold: the distance threshold that best separates the training pairs.
    seen_accuracy / unseen_accuracy: pair accuracy at that threshold.
    n_parameters: weights of the one shared module (both branches use these same weights).
    """

    seen: GlyphSet
    unseen: GlyphSet
    seen_pairs: np.ndarray
    seen_same: np.ndarray
    seen_dist: np.ndarray
    unseen_pairs: np.ndarray
    unseen_same: np.ndarray
    unseen_dist: np.ndarray
    threshold: float
    seen_accuracy: float
    unseen_accuracy: float
    n_parameters: int
    loss_history: list[float] = field(default_factory=list)
    seconds: float = 0.0


@single_threaded
def train_siamese(seed: int = 0, steps: int = 300, margin: float = 1.0, n_train_classes: int = 16,
                  n_unseen_classes: int = 8, per_class: int = 20, pairs_per_step: int = 64, lr: float = 0.005) -> SiameseRun:
    """Train the shared 196->64->16 MLP with the contrastive loss on random pairs.

    Classes 0..n_train_classes-1 are trained on; the next ``n_unseen_classes`` are only used
    for testing. Each step draws ``pairs_per_step`` fresh pairs (half same-class) from the
    training drawings, embeds both sides with the *same* module and applies
    ``y d + (1 - y) max(0, m - d)`` (mean over the pairs).
    """
    start = time.perf_counter()
    train = make_glyphs(np.arange(n_train_classes), per_class, seed)
    seen = make_glyphs(np.arange(n_train_classes), 6, seed + 1000)
    unseen = make_glyphs(np.arange(n_train_classes, n_train_classes + n_unseen_classes), 12, seed + 2000)
    branch = mlp([GLYPH_SIZE * GLYPH_SIZE, 64, 16], seed=seed)
    optimiser = torch.optim.Adam(branch.parameters(), lr=lr)
    x = torch.as_tensor(train.images.reshape(len(train.images), -1))
    history = []
    for step in range(steps):
        pairs, same = sample_pairs(train.classes, pairs_per_step, seed * 100003 + step)
        z1, z2 = branch(x[pairs[:, 0]]), branch(x[pairs[:, 1]])  # one module, two inputs
        d = torch.sqrt(((z1 - z2) ** 2).sum(1) + 1e-12)
        y = torch.as_tensor(same, dtype=torch.float32)
        loss = (y * d + (1 - y) * torch.relu(margin - d)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(float(loss.detach()))

    def distances(glyphs: GlyphSet, pairs: np.ndarray) -> np.ndarray:
        z = embed(branch, glyphs.images.reshape(len(glyphs.images), -1))
        return np.linalg.norm(z[pairs[:, 0]] - z[pairs[:, 1]], axis=1)

    train_pairs, train_same = sample_pairs(train.classes, 600, seed + 5)
    threshold, _ = best_threshold_accuracy(train_same, distances(train, train_pairs))
    seen_pairs, seen_same = sample_pairs(seen.classes, 400, seed + 6)
    unseen_pairs, unseen_same = sample_pairs(unseen.classes, 400, seed + 7)
    seen_dist, unseen_dist = distances(seen, seen_pairs), distances(unseen, unseen_pairs)
    return SiameseRun(
        seen=seen, unseen=unseen,
        seen_pairs=seen_pairs, seen_same=seen_same, seen_dist=seen_dist,
        unseen_pairs=unseen_pairs, unseen_same=unseen_same, unseen_dist=unseen_dist,
        threshold=threshold,
        seen_accuracy=pair_accuracy(seen_same, seen_dist, threshold),
        unseen_accuracy=pair_accuracy(unseen_same, unseen_dist, threshold),
        n_parameters=sum(p.numel() for p in branch.parameters()),
        loss_history=history,
        seconds=time.perf_counter() - start,
    )
