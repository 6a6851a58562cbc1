"""Mining for continuous labels: label-space neighbours, batch samplers, binary and dense miners.

Binary methods need classes, continuous labels have none. As in the paper's official code,
the ``k_pos = 30`` label-nearest neighbours of an anchor (over the whole training set) are its
positives and every other sample is a negative. That relation is not transitive (b can be a
neighbour of a, c of b, but c not of a), so it cannot be written as class labels and
pytorch-metric-learning's miners, which derive pairs from ``labels == labels.T``, cannot mine
it. The miners here take an explicit (n, n) positive / negative mask instead, apply exactly
PML's selection rules (tests check parity with PML on class-label masks) and return PML
``indices_tuple`` s, which go straight into PML's losses.

Both binary and dense batches are drawn around *anchors*: random anchors plus some of their
label neighbours, filled up with random samples. Without the neighbours a random batch of 128
out of thousands of samples would hold almost no positives (binary) and almost no close pairs
(dense).

Dense triplet mining (official code): an anchor, its ``k = 5`` label-nearest neighbours and
random others form its mini-batch of m samples; every pair i < j of them makes a triplet
(a, i, j). Here many anchors share one batch: the others of each anchor are all the other
samples of the batch, which holds every anchor's k neighbours, so a step yields tensors of
shape (B anchors, m = batch - 1 others) at the cost of embedding one batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from pytorch_metric_learning.distances import BaseDistance, LpDistance

LabelDistance = Callable[[np.ndarray, np.ndarray], np.ndarray]

TRIPLET_TYPES = ("all", "hard", "semihard", "easy")
BINARY_MINERS = TRIPLET_TYPES + ("batch_hard",)


def squared_l2_distance() -> LpDistance:
    """PML distance used by the binary triplet baselines: squared Euclidean distance between
    L2-normalised embeddings (in [0, 4]), as the official ``Squared_L2dist`` with margin 0.2."""
    return LpDistance(normalize_embeddings=True, p=2, power=2)


# --------------------------------------------------------------------------- label neighbours
class LabelNeighbours:
    """Label-space k-nearest neighbours of every training sample, computed once.

    labels: (N, ...) array understood by ``label_distance``.
    label_distance: callable ``(labels_a, labels_b) -> (len(a), len(b))`` array of
        non-negative finite distances (the task's label distance).
    k: neighbours kept per sample (the sample itself is excluded; ties are broken by index).
    chunk_size: rows of the distance matrix computed per call of ``label_distance``.
    keep_matrix_max: the full (N, N) float32 matrix is kept (for label distances of dense
        batches without further calls) when N <= this; otherwise distances are recomputed
        per batch.

    Attributes: ``indices`` (N, k) int64 nearest first, ``distances`` (N, k) float32,
    ``matrix`` (N, N) float32 or None.
    """

    def __init__(self, labels, label_distance: LabelDistance, k: int = 30,
                 chunk_size: int = 512, keep_matrix_max: int = 8192):
        self.labels = labels
        self.label_distance = label_distance
        n = len(labels)
        if n < 2:
            raise ValueError(f"label neighbours need at least 2 samples, got {n}")
        if not 1 <= k < n:
            raise ValueError(f"k = {k} label neighbours need 1 <= k < N = {n} training samples")
        self.n, self.k = n, k
        keep = n <= keep_matrix_max
        self.matrix = np.empty((n, n), np.float32) if keep else None
        self.indices = np.empty((n, k), np.int64)
        self.distances = np.empty((n, k), np.float32)
        for start in range(0, n, chunk_size):
            rows = np.arange(start, min(n, start + chunk_size))
            block = self._checked(label_distance(labels[rows], labels), len(rows), n)
            if keep:
                self.matrix[rows] = block
            block = block.astype(np.float64)
            block[np.arange(len(rows)), rows] = np.inf          # a sample is not its own neighbour
            part = np.argpartition(block, k - 1, axis=1)[:, :k] if k < n - 1 else np.argsort(block, 1)[:, :k]
            part_dist = np.take_along_axis(block, part, 1)
            order = np.lexsort((part, part_dist), axis=1)      # by distance, then by index
            self.indices[rows] = np.take_along_axis(part, order, 1)
            self.distances[rows] = np.take_along_axis(part_dist, order, 1)

    @classmethod
    def from_arrays(cls, labels, label_distance: LabelDistance, indices: np.ndarray, distances: np.ndarray) -> "LabelNeighbours":
        """Neighbours computed earlier (``indices``, ``distances`` as the attributes of that
        run), without their distance matrix: batches then recompute their label distances."""
        self = cls.__new__(cls)
        self.labels, self.label_distance = labels, label_distance
        self.indices, self.distances = np.asarray(indices, np.int64), np.asarray(distances, np.float32)
        self.n, self.k = self.indices.shape
        if self.n != len(labels):
            raise ValueError(f"{self.n} stored neighbour rows for {len(labels)} labels")
        self.matrix = None
        return self

    @staticmethod
    def _checked(block, rows: int, cols: int) -> np.ndarray:
        block = np.asarray(block, dtype=np.float32)
        if block.shape != (rows, cols):
            raise ValueError(f"label_distance returned shape {block.shape}, expected ({rows}, {cols})")
        if not np.all(np.isfinite(block)):
            raise ValueError("label_distance returned NaN or infinite values")
        if block.min(initial=0.0) < -1e-6:
            raise ValueError(f"label_distance returned a negative distance ({block.min():.3g})")
        return np.maximum(block, 0.0)

    def between(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(len(rows), len(cols)) float32 label distances between training samples."""
        if self.matrix is not None:
            return self.matrix[np.ix_(rows, cols)]
        return self._checked(self.label_distance(self.labels[rows], self.labels[cols]), len(rows), len(cols))


def _choose_rows(rng: np.random.Generator, pool: int, take: int, rows: int) -> np.ndarray:
    """(rows, take) column indices into ``pool`` columns, without replacement within a row."""
    return np.argsort(rng.random((rows, pool)), axis=1)[:, :take]


def _fill_batch(anchors: np.ndarray, group: np.ndarray, batch_size: int, n: int,
                rng: np.random.Generator) -> np.ndarray:
    """Unique batch: the anchors, then their neighbour ``group``, then random fill to batch_size."""
    members = np.concatenate([anchors, group.reshape(-1)])
    _, first = np.unique(members, return_index=True)
    members = members[np.sort(first)][:batch_size]                 # keep order, drop repeats
    if len(members) < batch_size:
        rest = np.setdiff1d(np.arange(n), members, assume_unique=True)
        members = np.concatenate([members, rng.choice(rest, batch_size - len(members), replace=False)])
    return members.astype(np.int64)


# --------------------------------------------------------------------------- binary mining
def sample_binary_batch(neighbours: LabelNeighbours, batch_size: int, pos_per_anchor: int = 5,
                        k_pos: int = 30, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices (batch_size,) of a batch for binary methods, unique.

    ``batch_size // (1 + pos_per_anchor)`` random anchors, each with ``pos_per_anchor`` of its
    ``k_pos`` label-nearest neighbours (random, as the official ``num_pos_max = 5`` of 30),
    filled up with random samples. Every sample then acts as an anchor in the miners.
    """
    rng = rng if rng is not None else np.random.default_rng()
    if k_pos > neighbours.k:
        raise ValueError(f"k_pos = {k_pos} but only {neighbours.k} label neighbours were computed")
    pos_per_anchor = min(pos_per_anchor, k_pos)
    n = neighbours.n
    batch_size = min(batch_size, n)
    anchors = rng.choice(n, size=max(1, batch_size // (1 + pos_per_anchor)), replace=False)
    cols = _choose_rows(rng, k_pos, pos_per_anchor, len(anchors))
    group = np.take_along_axis(neighbours.indices[anchors, :k_pos], cols, 1)
    return _fill_batch(anchors, group, batch_size, n, rng)


def binary_masks(batch: np.ndarray, neighbours: LabelNeighbours, k_pos: int = 30,
                 device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) (n, n) bool masks of a batch of training indices.

    positive[i, j]: batch[j] is one of the ``k_pos`` label-nearest neighbours of batch[i]
    (anchor-centred, so not symmetric); negative[i, j]: not positive and not the same sample.
    """
    batch = np.asarray(batch, np.int64)
    knn = neighbours.indices[batch, :k_pos]                                  # (n, k_pos)
    pos = (knn[:, None, :] == batch[None, :, None]).any(-1)
    same = batch[:, None] == batch[None, :]
    neg = ~pos & ~same
    pos &= ~same
    return torch.as_tensor(pos, device=device), torch.as_tensor(neg, device=device)


def all_triplets(pos_mask: torch.Tensor, neg_mask: torch.Tensor):
    """Every (a, p, n) with pos_mask[a, p] and neg_mask[a, n], in PML's order."""
    return torch.where(pos_mask.unsqueeze(2) & neg_mask.unsqueeze(1))


def all_pairs(pos_mask: torch.Tensor, neg_mask: torch.Tensor):
    """PML pair tuple (a1, p, a2, n) of every positive and every negative pair."""
    a1, p = torch.where(pos_mask)
    a2, n = torch.where(neg_mask)
    return a1, p, a2, n


class MaskTripletMiner:
    """PML's ``TripletMarginMiner`` on an explicit positive / negative mask.

    margin: the triplet margin m (same as the loss's).
    type_of_triplets, with t = d(a, n) - d(a, p) (distances; for similarities the sign flips):
      "all": t <= m (every triplet with a non-zero hinge loss),
      "hard": t <= 0, i.e. d(a, n) <= d(a, p),
      "semihard": 0 < t <= m, i.e. d(a, p) < d(a, n) <= d(a, p) + m,
      "easy": t > m, i.e. d(a, n) > d(a, p) + m (zero hinge loss: pair with a smooth loss).
    distance: a PML distance; default squared Euclidean on L2-normalised embeddings.
    Call with (embeddings (n, d), pos_mask (n, n), neg_mask (n, n)) -> (a, p, n) index tensors.
    """

    def __init__(self, margin: float = 0.2, type_of_triplets: str = "all", distance: BaseDistance | None = None):
        if type_of_triplets not in TRIPLET_TYPES:
            raise ValueError(f"unknown type_of_triplets {type_of_triplets!r}; choose from {', '.join(TRIPLET_TYPES)}")
        self.margin = float(margin)
        self.type_of_triplets = type_of_triplets
        self.distance = distance if distance is not None else squared_l2_distance()

    @torch.no_grad()
    def __call__(self, embeddings: torch.Tensor, pos_mask: torch.Tensor, neg_mask: torch.Tensor):
        mat = self.distance(embeddings.detach())
        a, p, n = all_triplets(pos_mask.to(mat.device), neg_mask.to(mat.device))
        ap, an = mat[a, p], mat[a, n]
        t = ap - an if self.distance.is_inverted else an - ap
        if self.type_of_triplets == "easy":
            keep = t > self.margin
        else:
            keep = t <= self.margin
            if self.type_of_triplets == "hard":
                keep &= t <= 0
            elif self.type_of_triplets == "semihard":
                keep &= t > 0
        return a[keep], p[keep], n[keep]


class MaskBatchHardMiner:
    """PML's ``BatchHardMiner`` on an explicit mask: per anchor its farthest positive and its
    nearest negative (anchors lacking either are dropped). Returns (a, p, n)."""

    def __init__(self, distance: BaseDistance | None = None):
        self.distance = distance if distance is not None else squared_l2_distance()

    @torch.no_grad()
    def __call__(self, embeddings: torch.Tensor, pos_mask: torch.Tensor, neg_mask: torch.Tensor):
        mat = self.distance(embeddings.detach())
        pos_mask, neg_mask = pos_mask.to(mat.device), neg_mask.to(mat.device)
        sign = -1.0 if self.distance.is_inverted else 1.0   # work in "larger = farther"
        far = (sign * mat).masked_fill(~pos_mask, -torch.inf)
        near = (sign * mat).masked_fill(~neg_mask, torch.inf)
        p = far.argmax(1)
        n = near.argmin(1)
        keep = pos_mask.any(1) & neg_mask.any(1)
        a = torch.arange(len(mat), device=mat.device)
        return a[keep], p[keep], n[keep]


def make_binary_miner(kind: str, margin: float = 0.2, distance: BaseDistance | None = None):
    """Miner by name: one of ``BINARY_MINERS``."""
    if kind == "batch_hard":
        return MaskBatchHardMiner(distance)
    if kind in TRIPLET_TYPES:
        return MaskTripletMiner(margin, kind, distance)
    raise ValueError(f"unknown binary miner {kind!r}; choose from {', '.join(BINARY_MINERS)}")


# --------------------------------------------------------------------------- dense mining
@dataclass
class DenseBatch:
    """One dense-mining step.

    indices: (n,) unique training indices to embed (anchors first in the shared layout).
    anchor_pos: (B,) positions of the anchors in ``indices``.
    other_pos: (B, m) positions of each anchor's others (every other batch member, m = n - 1),
        ordered by label distance to the anchor (nearest first), so its k neighbours lead.
    label_dist: (B, m) float32 label distance anchor -> other.
    """

    indices: np.ndarray
    anchor_pos: np.ndarray
    other_pos: np.ndarray
    label_dist: np.ndarray


def sample_dense_batch(neighbours: LabelNeighbours, batch_size: int, k: int = 5,
                       n_anchors: int | None = None, rng: np.random.Generator | None = None) -> DenseBatch:
    """Dense-mining batch: anchors, each with its k label-nearest neighbours, plus random others.

    batch_size: samples embedded per step (n). n_anchors: default ``batch_size // (1 + k)``.
    Every anchor's m = n - 1 others hold its k nearest neighbours and random samples (the
    other anchors, their neighbours and the random fill), as the official per-anchor
    mini-batch "anchor + k NN + random others", but shared between anchors.
    """
    rng = rng if rng is not None else np.random.default_rng()
    if k > neighbours.k:
        raise ValueError(f"k = {k} but only {neighbours.k} label neighbours were computed")
    n = neighbours.n
    batch_size = min(batch_size, n)
    if batch_size < k + 2:
        raise ValueError(f"a dense batch of {batch_size} cannot hold an anchor, its {k} neighbours and a random other")
    n_anchors = n_anchors or max(1, batch_size // (1 + k))
    anchors = rng.choice(n, size=min(n_anchors, batch_size), replace=False)
    if len(anchors) * (1 + k) > batch_size:
        raise ValueError(f"{len(anchors)} anchors with {k} neighbours each do not fit in a batch of {batch_size}")
    members = _fill_batch(anchors, neighbours.indices[anchors, :k], batch_size, n, rng)
    dist = neighbours.between(anchors, members).astype(np.float64)     # (B, n)
    anchor_pos = np.arange(len(anchors))
    dist[anchor_pos, anchor_pos] = -np.inf                              # the anchor itself sorts first
    order = np.lexsort((np.broadcast_to(members, dist.shape), dist), axis=1)
    other_pos = order[:, 1:]                                            # drop the anchor
    label_dist = np.take_along_axis(dist, other_pos, 1).astype(np.float32)
    return DenseBatch(members, anchor_pos, other_pos, label_dist)


def sample_dense_groups(neighbours: LabelNeighbours, n_anchors: int, m: int, k: int = 5,
                        rng: np.random.Generator | None = None) -> DenseBatch:
    """Dense mining with the official layout: every anchor gets its *own* mini-batch.

    Each of ``n_anchors`` random anchors gets its k label-nearest neighbours plus m - k
    random samples drawn from outside them (the official ``Dense_PairDataset``: anchor + 129
    others with ``num_NN = 5``), ordered by label distance. The groups may overlap; the
    returned ``indices`` are the unique samples to embed and ``other_pos`` (B, m) points into
    them. Costs up to B (m + 1) embeddings per step, against batch_size for the shared layout
    of :func:`sample_dense_batch`.
    """
    rng = rng if rng is not None else np.random.default_rng()
    n = neighbours.n
    if k > neighbours.k or not k <= m <= n - 1:
        raise ValueError(f"dense groups need k = {k} <= label neighbours ({neighbours.k}) and k <= m = {m} <= N - 1 = {n - 1}")
    anchors = rng.choice(n, size=min(n_anchors, n), replace=False)
    groups = np.empty((len(anchors), m), np.int64)
    for row, anchor in enumerate(anchors):            # B is small; the draws are per anchor
        near = neighbours.indices[anchor, :k]
        excluded = np.zeros(n, bool)
        excluded[near] = excluded[anchor] = True
        groups[row] = np.concatenate([near, rng.choice(np.flatnonzero(~excluded), m - k, replace=False)])
    dist = np.stack([neighbours.between(anchors[[row]], groups[row])[0] for row in range(len(anchors))])
    order = np.lexsort((groups, dist), axis=1)
    groups = np.take_along_axis(groups, order, 1)
    indices, inverse = np.unique(np.concatenate([anchors, groups.reshape(-1)]), return_inverse=True)
    return DenseBatch(indices.astype(np.int64), inverse[:len(anchors)],
                      inverse[len(anchors):].reshape(groups.shape), np.take_along_axis(dist, order, 1).astype(np.float32))


def dense_positive_mask(label_dist: torch.Tensor, ties: str = "order") -> torch.Tensor:
    """(B, m, m) bool: [b, i, j] is a dense triplet (anchor b, positive i, negative j).

    label_dist: (B, m), each row sorted ascending (``DenseBatch.label_dist`` is). i is the
    positive when it is label-closer than j. ties: "order" (official code) makes a tie a triplet
    with the earlier of the two as positive; "skip" makes a tie no triplet.
    """
    closer = label_dist.unsqueeze(2) < label_dist.unsqueeze(1)
    if ties == "order":
        m = label_dist.shape[1]
        later = torch.ones(m, m, dtype=torch.bool, device=label_dist.device).triu(1)
        closer |= (label_dist.unsqueeze(2) == label_dist.unsqueeze(1)) & later
    elif ties != "skip":
        raise ValueError(f"unknown ties {ties!r}; choose order or skip")
    return closer


def dense_triplets(label_dist: torch.Tensor, mask: torch.Tensor | None = None, ties: str = "order"):
    """(b, i, j) index tensors of every dense triplet (see :func:`dense_positive_mask`)."""
    closer = dense_positive_mask(label_dist, ties)
    if mask is not None:
        closer &= mask.unsqueeze(2) & mask.unsqueeze(1)
    return torch.where(closer)
