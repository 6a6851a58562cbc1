"""Metric-learning losses: log-ratio, dense triplet, binary triplet, contrastive, cross-modal.

The binary baselines are pytorch-metric-learning (PML) losses fed with the index tuples of
:mod:`dml_core.learn.mining` (``binary_triplet_loss``, ``contrastive_loss``); the cross-modal loss is
PML's triplet loss with a reference set. Written here are only the losses PML has no
equivalent for, because they need a *continuous* label distance per (anchor, other) pair:

* ``log_ratio_loss`` (Kim et al., CVPR 2019). For anchor a and others i, j:
  ``(log D(a,i) - log D(a,j) - log y(a,i) + log y(a,j))^2`` with D the embedding distance
  and y the label distance, averaged over all pairs i < j. D is the plain Euclidean distance
  by default, as in the official code (``LogRatioLoss.py`` uses ``L2dist(2)``); the paper's
  text says squared Euclidean (``squared=True``); ``methods.py`` picks the form per method and
  the full profile tunes it. Since log ||x|| = log(||x||^2) / 2, the plain
  form fits ||f_a - f_i|| proportional to y, the squared form fits it proportional to sqrt(y):
  which suits a task depends on whether its label distance is itself of squared type
  (``learn.methods.TUNING_GRIDS`` tries both). Label distances are floored at ``label_floor``
  (default 1e-3) before the log, so exact label duplicates (distance 0) do not put
  log(1e-6) into the loss and dominate it. Writing
  ``u_i = log D(a,i) - log y(a,i)``, each term is ``(u_i - u_j)^2`` and
  ``sum_{i<j} (u_i - u_j)^2 = m * sum_i (u_i - mean(u))^2`` for m others: the loss of an
  anchor is twice the (unbiased) variance of its log-ratio residuals u. That is computed in
  O(m) per anchor instead of materialising the (m, m) pair matrix, for all anchors at once.
  It also shows why the loss is scale invariant: scaling all embeddings shifts every u by
  the same constant.
* ``rank_n_contrast_loss`` (Zha et al., NeurIPS 2023): every ordered pair (i, j) is a
  positive contrasted against every k that is at least as far from i in label space; written
  from the paper's formula (the reference code carries no licence).
* ``dense_triplet_loss``: hinge triplet over every (a, i, j) of the anchor's mini-batch with
  the label-closer sample as positive (official ``Dense_TripletLoss``, margin 0.03). PML's
  ``TripletMarginLoss`` gives the same numbers on an index tuple (a test checks it), but it
  needs the batch flattened and the full (n, n) distance matrix; the (B, m) form is direct.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from pytorch_metric_learning import (
    distances as pml_distances,
    losses as pml_losses,
    miners as pml_miners,
    reducers as pml_reducers,
)

from dml_core.learn.mining import dense_positive_mask, squared_l2_distance

DEFAULT_EPS = 1e-6


def _check_anchor_others(anchor: torch.Tensor, others: torch.Tensor, label_dist: torch.Tensor, mask) -> None:
    if anchor.ndim != 2 or others.ndim != 3 or others.shape[0] != anchor.shape[0] or others.shape[2] != anchor.shape[1]:
        raise ValueError(f"expected anchor (B, d) and others (B, m, d), got {tuple(anchor.shape)} and {tuple(others.shape)}")
    if tuple(label_dist.shape) != tuple(others.shape[:2]):
        raise ValueError(f"label_dist must be (B, m) = {tuple(others.shape[:2])}, got {tuple(label_dist.shape)}")
    if mask is not None and tuple(mask.shape) != tuple(others.shape[:2]):
        raise ValueError(f"mask must be (B, m) = {tuple(others.shape[:2])}, got {tuple(mask.shape)}")


def squared_distances(anchor: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """(B, m) squared Euclidean distances ``||others[b, i] - anchor[b]||^2``.

    Computed from differences (not ``|a|^2 + |x|^2 - 2 a.x``), so it is exactly 0 for
    duplicates, never negative, and its gradient ``2 (x - a)`` is finite everywhere.
    """
    return (others - anchor.unsqueeze(1)).pow(2).sum(-1)   # pow's backward is one fused pass


#: Added under the square root of the plain Euclidean distance so that its gradient
#: ``(x - a) / ||x - a||`` stays finite for duplicate embeddings (official code: 1e-4 / batch).
SQRT_EPS = 1e-12
#: Floor of label distances inside the log-ratio loss (see the module docstring).
DEFAULT_LABEL_FLOOR = 1e-3


def embedding_distances(anchor: torch.Tensor, others: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """(B, m) Euclidean (or, with ``squared``, squared Euclidean) distances anchor -> others."""
    sq = squared_distances(anchor, others)
    return sq if squared else (sq + SQRT_EPS).sqrt()


def log_ratio_residuals(anchor, others, label_dist, eps: float = DEFAULT_EPS, squared: bool = False,
                        label_floor: float = DEFAULT_LABEL_FLOOR) -> torch.Tensor:
    """(B, m) ``u = log(D + eps) - log(max(y, label_floor) + eps)``; eps keeps zero distances finite."""
    emb_dist = embedding_distances(anchor, others, squared)
    label = label_dist.to(emb_dist.dtype).clamp_min(max(0.0, label_floor))
    return torch.log(emb_dist + eps) - torch.log(label + eps)


def log_ratio_loss(anchor: torch.Tensor, others: torch.Tensor, label_dist: torch.Tensor,
                   mask: torch.Tensor | None = None, eps: float = DEFAULT_EPS, squared: bool = False,
                   label_floor: float = DEFAULT_LABEL_FLOOR) -> torch.Tensor:
    """Log-ratio loss, batched over anchors, as a scalar.

    anchor: (B, d) anchor embeddings. others: (B, m, d) the embeddings of each anchor's
    mini-batch. label_dist: (B, m) label distance y(a, i) >= 0 (no gradient).
    mask: optional (B, m) bool, False for others to leave out (their pairs are dropped).
    eps: added to D and y inside the logs (official code: 1e-6), so duplicate embeddings
        give finite values and gradients.
    squared: D = squared Euclidean distance (the paper's text) instead of the Euclidean
        distance (the official code, the default).
    label_floor: label distances below it count as ``label_floor`` (0 turns the floor off).

    Returns ``sum over anchors of sum_{i<j valid} (u_i - u_j)^2`` divided by the number of
    valid pairs, u = log(D + eps) - log(max(y, label_floor) + eps); with no mask this is the
    mean over anchors and all pairs i < j. Computed in closed form,
    ``sum_{i<j} (u_i - u_j)^2 = n * sum_i (u_i - mean u)^2`` (n valid others).
    """
    _check_anchor_others(anchor, others, label_dist, mask)
    u = log_ratio_residuals(anchor, others, label_dist, eps, squared, label_floor)
    if mask is None:
        n = torch.full((u.shape[0],), float(u.shape[1]), dtype=u.dtype, device=u.device)
        centred = u - u.mean(1, keepdim=True)
    else:
        weight = mask.to(u.dtype)
        u = torch.where(mask, u, torch.zeros_like(u))       # masked entries may be inf / NaN
        n = weight.sum(1)
        mean = u.sum(1, keepdim=True) / n.clamp_min(1).unsqueeze(1)
        centred = (u - mean) * weight
    pair_sums = n * (centred * centred).sum(1)
    n_pairs = (n * (n - 1) / 2).sum()
    return pair_sums.sum() / n_pairs.clamp_min(1)


def log_ratio_loss_pairwise(anchor, others, label_dist, eps: float = DEFAULT_EPS, squared: bool = False,
                            label_floor: float = DEFAULT_LABEL_FLOOR) -> torch.Tensor:
    """The same loss with the (B, m, m) pair tensor written out (for tests and the speed table)."""
    _check_anchor_others(anchor, others, label_dist, None)
    u = log_ratio_residuals(anchor, others, label_dist, eps, squared, label_floor)
    diff = u.unsqueeze(2) - u.unsqueeze(1)
    m = u.shape[1]
    upper = torch.ones(m, m, dtype=torch.bool, device=u.device).triu(1)
    return (diff * diff)[:, upper].mean()


def log_ratio_loss_reference(anchor, others, label_dist, eps: float = DEFAULT_EPS, squared: bool = False,
                             label_floor: float = DEFAULT_LABEL_FLOOR) -> torch.Tensor:
    """Per-anchor loop in the layout of the paper's official code: one anchor's m x m matrix
    of log-ratio differences at a time, built with ``repeat``, uniform weights over i < j.
    ``squared=False`` is the official code's distance (``L2dist(2)``); the label floor is ours."""
    losses = []
    for a, x, y in zip(anchor, others, label_dist):
        dist = ((x - a) ** 2).sum(1)
        dist = dist if squared else (dist + SQRT_EPS).sqrt()
        log_dist = torch.log(dist + eps)
        log_gt = torch.log(y.clamp_min(max(0.0, label_floor)) + eps)
        m = len(log_dist)
        idx = torch.arange(m)
        upper = (idx.repeat(m, 1).t() < idx.repeat(m, 1)).to(log_dist.dtype)
        weight = upper / upper.sum()
        diff = (log_dist.repeat(m, 1).t() - log_dist.repeat(m, 1)) - (log_gt.repeat(m, 1).t() - log_gt.repeat(m, 1))
        losses.append((diff.pow(2) * weight).sum())
    return torch.stack(losses).mean()


class LogRatioLoss(nn.Module):
    """Log-ratio loss module; see :func:`log_ratio_loss`.

    Args: eps (float, default 1e-6): guard inside the logs. squared (bool, default False):
    squared instead of plain Euclidean embedding distance. label_floor (float, default 1e-3).
    forward(anchor (B, d), others (B, m, d), label_dist (B, m), mask=None) -> scalar.
    """

    def __init__(self, eps: float = DEFAULT_EPS, squared: bool = False, label_floor: float = DEFAULT_LABEL_FLOOR):
        super().__init__()
        self.eps, self.squared, self.label_floor = eps, squared, label_floor

    def forward(self, anchor, others, label_dist, mask=None):
        return log_ratio_loss(anchor, others, label_dist, mask, self.eps, self.squared, self.label_floor)


def pairwise_euclidean(embeddings: torch.Tensor) -> torch.Tensor:
    """(N, N) Euclidean distances from differences: exactly 0 on the diagonal and for duplicates,
    with a finite gradient there (``SQRT_EPS`` under the root)."""
    diff = embeddings.unsqueeze(1) - embeddings.unsqueeze(0)
    return (diff.pow(2).sum(-1) + SQRT_EPS).sqrt()


def rank_n_contrast_loss(embeddings: torch.Tensor, label_distances: torch.Tensor,
                         temperature: float = 2.0) -> torch.Tensor:
    """Rank-N-Contrast loss (Zha et al., NeurIPS 2023) over one batch, as a scalar.

    embeddings: (N, d). label_distances: (N, N) label distance d_ij >= 0 (no gradient).
    temperature: tau > 0. Similarity s_ij = -||f_i - f_j||_2; for each ordered pair i != j,
    ``l_ij = -log( exp(s_ij / tau) / sum_{k != i, d_ik >= d_ij} exp(s_ik / tau) )``,
    averaged over all N (N - 1) pairs. j is in its own denominator, so l_ij >= 0, and ties in
    label distance (d_ik = d_ij) count as "at least as far".

    Each row i is sorted by label distance, farthest first; the denominator of (i, j) is then
    a prefix of that order ending at the last k tied with j, read off a log-cumulative-sum-exp,
    so the whole loss costs O(N^2 log N) instead of the O(N^3) of a mask per pair.
    """
    if embeddings.ndim != 2 or label_distances.shape != (len(embeddings), len(embeddings)):
        raise ValueError(f"expected embeddings (N, d) and label_distances (N, N), got "
                         f"{tuple(embeddings.shape)} and {tuple(label_distances.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    n = len(embeddings)
    if n < 2:
        raise ValueError("Rank-N-Contrast needs at least 2 samples")
    logits = -pairwise_euclidean(embeddings) / temperature
    farness = label_distances.detach().to(logits.dtype).clone()
    farness.fill_diagonal_(-torch.inf)                      # k = i is never in a denominator
    order = torch.argsort(farness, dim=1, descending=True, stable=True)
    prefix_lse = torch.logcumsumexp(logits.gather(1, order), dim=1)
    at_least_as_far = n - torch.searchsorted(farness.sort(dim=1).values.contiguous(), farness.contiguous(), side="left")
    denominators = prefix_lse.gather(1, (at_least_as_far - 1).clamp(0, n - 1))
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=logits.device)
    return (denominators - logits)[off_diagonal].mean()


def rank_n_contrast_loss_reference(embeddings: torch.Tensor, label_distances: torch.Tensor,
                                   temperature: float = 2.0) -> torch.Tensor:
    """The Rank-N-Contrast formula as a loop over pairs (for tests)."""
    n = len(embeddings)
    sims = -pairwise_euclidean(embeddings) / temperature
    terms = []
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            keep = [k for k in range(n) if k != i and label_distances[i, k] >= label_distances[i, j]]
            terms.append(torch.logsumexp(sims[i, keep], 0) - sims[i, j])
    return torch.stack(terms).mean()


class RankNContrastLoss(nn.Module):
    """Rank-N-Contrast module; see :func:`rank_n_contrast_loss`.

    Args: temperature (float, default 2.0).
    forward(embeddings (N, d), label_distances (N, N)) -> scalar.
    """

    def __init__(self, temperature: float = 2.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, embeddings, label_distances):
        return rank_n_contrast_loss(embeddings, label_distances, self.temperature)


def dense_triplet_loss(anchor: torch.Tensor, others: torch.Tensor, label_dist: torch.Tensor,
                       margin: float = 0.03, mask: torch.Tensor | None = None,
                       reduction: str = "mean", ties: str = "order") -> torch.Tensor:
    """Dense triplet loss, batched over anchors.

    For every anchor a and others i, j where i is the label-closer one (so it is the positive):
    ``relu(D(a, i) - D(a, j) + margin)``, D the squared Euclidean distance. Embeddings are used
    as given (the model L2-normalises them).
    anchor (B, d), others (B, m, d), label_dist (B, m), mask optional (B, m) bool.
    reduction: "mean" over all triplets (official code: uniform weights) or "nonzero" (mean
    over triplets with positive loss, PML's ``AvgNonZeroReducer``).
    ties: label ties y(a, i) = y(a, j). "order" (official code): every pair i < j of the
    others is a triplet with i as the positive, the others being sorted by label distance
    (``learn.mining.DenseBatch`` sorts them), so a tie still forms one triplet, in that order;
    "skip": a tie forms no triplet.
    """
    _check_anchor_others(anchor, others, label_dist, mask)
    emb_dist = squared_distances(anchor, others)
    closer = dense_positive_mask(label_dist, ties)
    if mask is not None:
        closer &= mask.unsqueeze(2) & mask.unsqueeze(1)
    violation = torch.relu(emb_dist.unsqueeze(2) - emb_dist.unsqueeze(1) + margin)
    losses = violation[closer]
    if reduction == "mean":
        return losses.sum() / max(1, losses.numel())
    if reduction == "nonzero":
        return losses.sum() / (losses > 0).sum().clamp_min(1)
    raise ValueError(f"unknown reduction {reduction!r}; choose mean or nonzero")


class DenseTripletLoss(nn.Module):
    """Dense triplet loss module; see :func:`dense_triplet_loss`.

    Args: margin (float, default 0.03 as the official code), reduction ("mean" | "nonzero"),
    ties ("order" as the official code | "skip").
    """

    def __init__(self, margin: float = 0.03, reduction: str = "mean", ties: str = "order"):
        super().__init__()
        self.margin, self.reduction, self.ties = margin, reduction, ties

    def forward(self, anchor, others, label_dist, mask=None):
        return dense_triplet_loss(anchor, others, label_dist, self.margin, mask, self.reduction, self.ties)


def binary_triplet_loss(margin: float = 0.2, smooth_loss: bool = False) -> pml_losses.TripletMarginLoss:
    """PML ``TripletMarginLoss`` as in the official binary baseline: squared Euclidean distance
    of L2-normalised embeddings, margin 0.2; mean over non-zero triplets (PML default).

    smooth_loss: softplus instead of the hinge; needed with the "easy" miner, whose triplets
    all have zero hinge loss. Call as ``loss(embeddings, indices_tuple=(a, p, n))``.
    """
    return pml_losses.TripletMarginLoss(margin=margin, smooth_loss=smooth_loss, distance=squared_l2_distance())


def contrastive_loss(pos_margin: float = 0.0, neg_margin: float = 1.0) -> pml_losses.ContrastiveLoss:
    """PML ``ContrastiveLoss`` on Euclidean distances of L2-normalised embeddings:
    ``relu(d - pos_margin)`` for positive pairs, ``relu(neg_margin - d)`` for negative pairs,
    each averaged over its non-zero terms. Call as ``loss(embeddings, indices_tuple=(a1, p, a2, n))``.
    """
    return pml_losses.ContrastiveLoss(pos_margin=pos_margin, neg_margin=neg_margin)


class CrossModalTripletLoss(nn.Module):
    """Bidirectional image-text triplet loss (VSE++ style) on cosine similarity.

    image->text: each image anchor, its own caption(s) positive, other images' captions
    negative; text->image the other way round; the two directions are summed.
    Args: margin (0.2), negatives: "hardest" (per anchor the most similar negative in the
    batch, VSE++ max-violation, PML ``BatchHardMiner``) or "all" (every negative, mean over
    violating triplets).
    forward(image_emb (n, d), text_emb (n', d), image_ids (n,), text_ids (n',)): ids say which
    image a caption belongs to; default ``arange(n)`` for both (pair i matches pair i).
    """

    def __init__(self, margin: float = 0.2, negatives: str = "hardest"):
        super().__init__()
        if negatives not in ("hardest", "all"):
            raise ValueError(f"negatives must be 'hardest' or 'all', got {negatives!r}")
        self.negatives = negatives
        similarity = pml_distances.CosineSimilarity()
        self.loss = pml_losses.TripletMarginLoss(margin=margin, distance=similarity,
                                                 reducer=pml_reducers.AvgNonZeroReducer())
        self.miner = pml_miners.BatchHardMiner(distance=similarity) if negatives == "hardest" else None

    def _direction(self, query, query_ids, ref, ref_ids):
        if ref_ids is query_ids:   # PML drops "self" pairs when both label tensors are one object
            ref_ids = ref_ids.clone()
        tuples = self.miner(query, query_ids, ref, ref_ids) if self.miner is not None else None
        return self.loss(query, query_ids, indices_tuple=tuples, ref_emb=ref, ref_labels=ref_ids)

    def forward(self, image_emb, text_emb, image_ids=None, text_ids=None):
        if image_ids is None:
            if len(image_emb) != len(text_emb):
                raise ValueError(f"{len(image_emb)} images and {len(text_emb)} captions: pass image_ids and text_ids")
            image_ids = torch.arange(len(image_emb), device=image_emb.device)
        text_ids = image_ids if text_ids is None else text_ids
        return (self._direction(image_emb, image_ids, text_emb, text_ids)
                + self._direction(text_emb, text_ids, image_emb, image_ids))
