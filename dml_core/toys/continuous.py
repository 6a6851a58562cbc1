"""Learn page 1, "Beyond binary": a toy whose label is one continuous number.

Each sample is a 16x16 grey image of a bar; the label is the bar's angle in [0, 90) degrees
(from horizontal to vertical), the label distance the absolute angle difference. Thickness,
length, brightness, a small offset and pixel noise vary too, so the network has to learn what
the angle is. Two embeddings on the unit sphere in 3-D (L2-normalised, as in the paper) are
trained on the same batches:

- **binary triplet**: a pair counts as "similar" when the angles differ by less than a
  threshold, "dissimilar" otherwise; loss ``max(0, m + D(a,p) - D(a,n))`` over every such
  (a, p, n) of the batch, D the squared Euclidean distance, m = 0.2 (the paper's binary
  baseline; ``dml_core.learn.losses.binary_triplet_loss``);
- **log-ratio** (Kim et al. 2019, ``dml_core.learn.losses.log_ratio_loss``): for every anchor a and
  pair (i, j) of the batch, ``(log(D(f_a,f_i) / D(f_a,f_j)) - log(D(y_a,y_i) / D(y_a,y_j)))^2``
  with D the squared distance in both spaces (the squared angle difference for labels).

The binary loss only asks "similar nearer than dissimilar by m"; how far apart two dissimilar
bars end up is left to chance, and on the sphere it wraps the range round so that 0 and 90
degrees come back near each other. The log-ratio loss asks distance ratios to match the
label's, so the embedding keeps the whole order of similarity, which is what the Spearman
rank correlation between embedding and label distances measures.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from dml_core.evaluate.metrics import spearman
from dml_core.learn.losses import binary_triplet_loss, log_ratio_loss
from dml_core.learn.mining import all_triplets
from dml_core.toys.common import generator, mlp, np_dists, single_threaded

BAR_IMAGE_SIZE = 16
MAX_ANGLE = 90.0
EMBEDDING_DIM = 3
BINARY_MARGIN = 0.2
CONTINUOUS_METHODS = ("binary_triplet", "log_ratio")


def render_bars(angles_deg: np.ndarray, seed: int, size: int = BAR_IMAGE_SIZE) -> np.ndarray:
    """Grey images of bars at the given angles, float32 (N, size, size) in [0, 1].

    Nuisances, drawn from ``seed``: centre offset (±5% of the size), half-thickness
    (0.5-2 px), half-length (30-45% of the size), brightness (0.25-1) and Gaussian pixel noise
    (sigma 0.04). Pixels are anti-aliased by a 1-px linear ramp at the bar's edges.
    """
    angles = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    n = len(angles)
    rng = np.random.default_rng(seed)
    centre = (size - 1) / 2 + rng.uniform(-0.05, 0.05, (n, 2)) * size
    half_width = rng.uniform(0.5, 2.0, n)[:, None, None]
    half_length = (rng.uniform(0.30, 0.45, n) * size)[:, None, None]
    brightness = rng.uniform(0.25, 1.0, n)[:, None, None]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    dx = xs[None] - centre[:, 0, None, None]
    dy = ys[None] - centre[:, 1, None, None]
    cos, sin = np.cos(angles)[:, None, None], np.sin(angles)[:, None, None]
    along = dx * cos + dy * sin
    across = -dx * sin + dy * cos
    images = brightness * np.clip(half_width + 0.5 - np.abs(across), 0.0, 1.0) * np.clip(
        half_length + 0.5 - np.abs(along), 0.0, 1.0)
    images += rng.normal(0.0, 0.04, images.shape)
    return np.clip(images, 0.0, 1.0).astype(np.float32)


def angle_distance(a_deg: np.ndarray, b_deg: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) label distances: absolute angle differences in degrees."""
    return np.abs(np.asarray(a_deg, dtype=np.float64)[:, None] - np.asarray(b_deg, dtype=np.float64)[None, :])


@dataclass
class BarData:
    """Bar images (N, 16, 16) float32 in [0, 1] and their angles (N,) in degrees."""

    images: np.ndarray
    angles: np.ndarray

    @property
    def flat(self) -> np.ndarray:
        return self.images.reshape(len(self.images), -1)


def make_bar_data(n: int, seed: int) -> BarData:
    """``n`` bars with angles uniform in [0, 90), deterministic for (n, seed)."""
    if n < 4:
        raise ValueError(f"need at least 4 bars, got {n}")
    angles = np.random.default_rng(seed).uniform(0.0, MAX_ANGLE, n)
    return BarData(images=render_bars(angles, seed=seed + 1), angles=angles)


def _others_index(batch_size: int) -> torch.Tensor:
    """(B, B-1) for each row a the batch positions other than a."""
    full = torch.arange(batch_size).repeat(batch_size, 1)
    return full[~torch.eye(batch_size, dtype=torch.bool)].view(batch_size, batch_size - 1)


@dataclass
class ContinuousRun:
    """One trained embedding of the bar toy, evaluated on held-out bars.

    embeddings: (N_test, 3) unit-norm test embeddings; angles: (N_test,) their labels.
    pair_emb_dist / pair_label_dist: a fixed random sample of test pairs (Euclidean distance
    on the sphere, angle difference) for the scatter plot.
    spearman: mean per-query Spearman rho between embedding and label distances, each test
    bar a query against all the others (``dml_core.evaluate.metrics.spearman``).
    neighbour_error: mean angle difference (degrees) to the 5 nearest neighbours in the
    embedding (lower is better). loss_history: training loss per step.
    """

    method: str
    embeddings: np.ndarray
    angles: np.ndarray
    pair_emb_dist: np.ndarray
    pair_label_dist: np.ndarray
    spearman: float
    neighbour_error: float
    loss_history: list[float] = field(default_factory=list)
    seconds: float = 0.0


@single_threaded
def train_continuous(
    method: str,
    seed: int = 0,
    steps: int = 300,
    similar_within_deg: float = 10.0,
    n_train: int = 400,
    n_test: int = 200,
    batch_size: int = 48,
    lr: float = 0.01,
) -> ContinuousRun:
    """Train a 256->64->3 MLP (output L2-normalised) on the bar toy and evaluate it.

    method: "binary_triplet" (similar iff angles within ``similar_within_deg`` degrees, all
    triplets of the batch, margin 0.2 on squared distances) or "log_ratio" (every anchor of
    the batch against all others, label distance squared angle difference, no margin).
    The network, the data (train seed ``seed``, test seed ``seed + 1000``) and the batches all
    depend only on ``seed``; both methods see exactly the same batches.
    """
    if method not in CONTINUOUS_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(CONTINUOUS_METHODS)}")
    if steps < 0 or not 3 <= batch_size <= n_train:
        raise ValueError(f"need steps >= 0 and 3 <= batch_size <= n_train, got {steps}, {batch_size}, {n_train}")
    if similar_within_deg <= 0:
        raise ValueError(f"the similarity threshold must be positive, got {similar_within_deg}")
    start = time.perf_counter()
    train = make_bar_data(n_train, seed)
    test = make_bar_data(n_test, seed + 1000)
    net = mlp([train.flat.shape[1], 64, EMBEDDING_DIM], seed=seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    x_train = torch.as_tensor(train.flat)
    label_dist = torch.as_tensor(angle_distance(train.angles, train.angles), dtype=torch.float32)
    triplet = binary_triplet_loss(margin=BINARY_MARGIN)
    others = _others_index(batch_size)
    rows = torch.arange(batch_size)[:, None]
    eye = torch.eye(batch_size, dtype=torch.bool)
    gen = generator(seed + 7)
    history = []
    for _ in range(steps):
        batch = torch.randperm(n_train, generator=gen)[:batch_size]
        z = F.normalize(net(x_train[batch]), dim=1)
        sub = label_dist[batch][:, batch]
        if method == "binary_triplet":
            similar = sub < similar_within_deg
            tuples = all_triplets(similar & ~eye, ~similar & ~eye)
            loss = triplet(z, indices_tuple=tuples) if len(tuples[0]) else (z * 0.0).sum()
        else:
            loss = log_ratio_loss(z, z[others], sub[rows, others] ** 2, squared=True)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(float(loss.detach()))
    with torch.no_grad():
        z_test = F.normalize(net(torch.as_tensor(test.flat)), dim=1).double().numpy()
    emb_d = np_dists(z_test)
    lab_d = angle_distance(test.angles, test.angles)
    off_diagonal = ~np.eye(n_test, dtype=bool)
    # Per query, over the other test bars (the query itself is not in its gallery).
    rho = spearman(emb_d[off_diagonal].reshape(n_test, n_test - 1), lab_d[off_diagonal].reshape(n_test, n_test - 1))
    nearest = np.argsort(np.where(off_diagonal, emb_d, np.inf), axis=1, kind="stable")[:, :5]
    pair_rows, pair_cols = np.triu_indices(n_test, k=1)
    pick = np.random.default_rng(seed).choice(len(pair_rows), size=min(1500, len(pair_rows)), replace=False)
    return ContinuousRun(
        method=method,
        embeddings=z_test,
        angles=test.angles,
        pair_emb_dist=emb_d[pair_rows[pick], pair_cols[pick]],
        pair_label_dist=lab_d[pair_rows[pick], pair_cols[pick]],
        spearman=float(np.nanmean(rho)),
        neighbour_error=float(np.take_along_axis(lab_d, nearest, axis=1).mean()),
        loss_history=history,
        seconds=time.perf_counter() - start,
    )
