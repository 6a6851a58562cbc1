"""A labelled-class toy for the binary losses: contrastive vs triplet, mining, proxies.

Each class is a blob in a 2-D latent plane whose points also vary *inside* the class along a
class-specific direction (a continuous "style" t in [-1, 1], think pose or lighting inside one
identity). The latent points are lifted to 16-D inputs by a fixed random tanh layer, so a
network has to learn the map back; it embeds them into 2-D where we can look.

Binary losses (from pytorch-metric-learning, on *unnormalised* Euclidean 2-D embeddings so the
plane stays a plane):

- contrastive: ``y ||z1 - z2|| + (1 - y) max(0, m - ||z1 - z2||)`` over all pairs of the batch
  (PML ``ContrastiveLoss(pos_margin=0, neg_margin=m)``): every positive pair is pulled to
  distance 0, so a class is driven towards a single point;
- triplet: ``max(0, m + d(a,p) - d(a,n))`` over mined triplets (PML ``TripletMarginLoss``): a
  positive only has to be nearer than the negatives by m, so variation inside a class that
  does not break that survives.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from pytorch_metric_learning import losses as pml_losses, miners as pml_miners
from pytorch_metric_learning.distances import LpDistance
from scipy.stats import spearmanr

from dml_core.toys.common import (
    embed,
    mlp,
    np_dists,
    recall_at_1,
    single_thread,
    single_threaded,
    upper_triangle,
    within_class_spread,
)

CLASS_TOY_INPUT_DIM = 16
PAIR_LOSSES = ("contrastive", "triplet")


@dataclass
class ClassToy:
    """x: (N, 16) float32 inputs; classes: (N,) int; style: (N,) intra-class variable in [-1, 1];
    latent: (N, 2) the plane the inputs were lifted from (for reference plots)."""

    x: np.ndarray
    classes: np.ndarray
    style: np.ndarray
    latent: np.ndarray


def make_class_toy(n_classes: int = 5, per_class: int = 60, seed: int = 0, spread: float = 1.2,
                   noise: float = 0.25, lift_seed: int = 12345) -> ClassToy:
    """``n_classes`` classes of ``per_class`` points each, deterministic for the arguments.

    Latent: class k's centre sits on a circle of radius 3 (angle 2 pi k / n_classes); a point
    is ``centre_k + spread * t * u_k + noise * e``, t ~ U[-1, 1] its style, u_k a random unit
    direction of class k, e ~ N(0, I). Inputs: ``tanh(W latent + b)`` with a fixed random
    (16 x 2) W, b (seeded by ``lift_seed``, shared by every split so train and test agree),
    plus N(0, 0.02) noise.
    """
    if n_classes < 2 or per_class < 2:
        raise ValueError(f"need at least 2 classes of 2 points, got {n_classes} x {per_class}")
    rng = np.random.default_rng(seed)
    lift = np.random.default_rng(lift_seed)
    w = lift.normal(0.0, 0.6, (2, CLASS_TOY_INPUT_DIM))
    b = lift.normal(0.0, 0.5, CLASS_TOY_INPUT_DIM)
    angles = 2 * np.pi * np.arange(n_classes) / n_classes
    centres = 3.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    directions = lift.normal(size=(n_classes, 2))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    classes = np.repeat(np.arange(n_classes), per_class)
    style = rng.uniform(-1.0, 1.0, len(classes))
    latent = centres[classes] + spread * style[:, None] * directions[classes] + noise * rng.normal(size=(len(classes), 2))
    x = np.tanh(latent @ w + b) + rng.normal(0.0, 0.02, (len(classes), CLASS_TOY_INPUT_DIM))
    return ClassToy(x=x.astype(np.float32), classes=classes, style=style, latent=latent)


def euclidean() -> LpDistance:
    """Plain Euclidean distance (no normalisation), so 2-D embeddings keep their plane."""
    return LpDistance(normalize_embeddings=False, p=2, power=1)


def class_batches(classes: np.ndarray, steps: int, per_class: int, n_classes_per_batch: int, seed: int) -> list[np.ndarray]:
    """Index batches of ``n_classes_per_batch`` random classes x ``per_class`` random members
    (the usual P x K sampler, so every batch holds positives and negatives)."""
    rng = np.random.default_rng(seed)
    labels = np.unique(classes)
    members = [np.flatnonzero(classes == k) for k in labels]
    batches = []
    for _ in range(steps):
        chosen = rng.choice(len(labels), size=min(n_classes_per_batch, len(labels)), replace=False)
        batches.append(np.concatenate([rng.choice(members[k], size=per_class, replace=len(members[k]) < per_class)
                                       for k in chosen]))
    return batches


@dataclass
class ClassRun:
    """A trained 2-D embedding of the class toy.

    snapshots: {step: (N_test, 2) test embeddings} at the recorded steps (0 = before training).
    spread: within-class spread (see ``common.within_class_spread``) per recorded step.
    recall: leave-one-out Recall@1 on the test split per recorded step.
    style_kept: ``style_correlation`` per recorded step; mean_distance: mean pairwise test
    distance per recorded step; train_seconds: training time (no evaluation) up to each one.
    proxies: learnt class proxies (ProxyNCA only). mined_per_step: triplets a miner returned.
    loss_history: training loss per step; seconds: wall time of training + evaluation.
    """

    name: str
    classes: np.ndarray
    style: np.ndarray
    snapshots: dict[int, np.ndarray]
    spread: dict[int, float]
    recall: dict[int, float]
    style_kept: dict[int, float] = field(default_factory=dict)
    mean_distance: dict[int, float] = field(default_factory=dict)
    train_seconds: dict[int, float] = field(default_factory=dict)
    proxies: np.ndarray | None = None
    loss_history: list[float] = field(default_factory=list)
    mined_per_step: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final(self) -> np.ndarray:
        return self.snapshots[max(self.snapshots)]


def style_correlation(embeddings: np.ndarray, classes: np.ndarray, style: np.ndarray) -> float:
    """How much of the intra-class variable survives in the embedding, in [0, 1].

    For each class: |Spearman rho| between the style t of its points and their coordinate
    along the class's first principal axis in the embedding; averaged over classes. 1 means
    the order of t inside every class can be read off the embedding; near 0 means it is lost.
    """
    z = np.asarray(embeddings, dtype=np.float64)
    values = []
    for k in np.unique(classes):
        members = z[classes == k] - z[classes == k].mean(0)
        _, _, vt = np.linalg.svd(members, full_matrices=False)
        rho = spearmanr(members @ vt[0], np.asarray(style)[classes == k]).statistic
        values.append(0.0 if np.isnan(rho) else abs(rho))
    return float(np.mean(values))


class Embedder(torch.nn.Module):
    """An MLP whose output is optionally L2-normalised onto the unit sphere."""

    def __init__(self, net: torch.nn.Module, normalise: bool):
        super().__init__()
        self.net, self.normalise = net, normalise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x)
        return torch.nn.functional.normalize(z, dim=-1) if self.normalise else z


def _record(run: ClassRun, step: int, model, test: ClassToy) -> None:
    z = embed(model, test.x)
    run.snapshots[step] = z
    run.spread[step] = within_class_spread(z, test.classes)
    run.recall[step] = recall_at_1(z, test.classes)
    run.style_kept[step] = style_correlation(z, test.classes, test.style)
    run.mean_distance[step] = float(upper_triangle(np_dists(z)).mean())


@single_threaded
def train_pair_loss(loss: str, seed: int = 0, steps: int = 300, margin: float = 1.0, n_classes: int = 5,
                    lr: float = 0.01, record_every: int = 50) -> ClassRun:
    """Train a 16->32->2 MLP on the class toy with the contrastive or the triplet loss.

    loss: "contrastive" (all pairs of the batch) or "triplet" (all triplets of the batch, mean
    over the non-zero ones, PML's default reducer). margin: m in both formulas. Train split:
    seed ``seed``; test split: ``seed + 1000``; the network and the batches depend only on seed.
    """
    if loss not in PAIR_LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(PAIR_LOSSES)}")
    if loss == "contrastive":
        criterion = pml_losses.ContrastiveLoss(pos_margin=0.0, neg_margin=margin, distance=euclidean())
    else:
        criterion = pml_losses.TripletMarginLoss(margin=margin, distance=euclidean())
    return _train_classes(loss, criterion, None, seed, steps, n_classes, lr, record_every)


def _train_classes(name, criterion, miner, seed, steps, n_classes, lr, record_every, per_class=60,
                   batch_classes=4, batch_per_class=8, model_seed=None, dim=2,
                   normalise=False, spread=1.2, noise=0.25, param_groups=None) -> ClassRun:
    start = time.perf_counter()
    train = make_class_toy(n_classes, per_class, seed, spread=spread, noise=noise)
    test = make_class_toy(n_classes, per_class, seed + 1000, spread=spread, noise=noise)
    model = Embedder(mlp([CLASS_TOY_INPUT_DIM, 32, dim], seed=seed if model_seed is None else model_seed), normalise)
    optimiser = torch.optim.Adam([{"params": model.parameters()}] + list(param_groups or []), lr=lr)
    x = torch.as_tensor(train.x)
    y = torch.as_tensor(train.classes)
    run = ClassRun(name=name, classes=test.classes, style=test.style, snapshots={}, spread={}, recall={})
    _record(run, 0, model, test)
    run.train_seconds[0] = 0.0
    training_time = 0.0
    for step, batch in enumerate(class_batches(train.classes, steps, batch_per_class, batch_classes, seed + 3), start=1):
        tick = time.perf_counter()
        batch = torch.as_tensor(batch)
        z = model(x[batch])
        if miner is not None:
            tuples = miner(z, y[batch])
            run.mined_per_step.append(float(len(tuples[0])))
            loss = criterion(z, y[batch], tuples)
        else:
            loss = criterion(z, y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        training_time += time.perf_counter() - tick
        run.loss_history.append(float(loss.detach()))
        if step % record_every == 0 or step == steps:
            _record(run, step, model, test)
            run.train_seconds[step] = training_time
    run.seconds = time.perf_counter() - start
    return run


MINING_STRATEGIES = ("all", "hard", "semihard", "easy")


@single_threaded
def train_mining(strategy: str, seed: int = 0, steps: int = 300, margin: float = 1.0, n_classes: int = 6,
                 lr: float = 0.01, record_every: int = 10, noise: float = 0.6) -> ClassRun:
    """Triplet loss on 2-D embeddings of the class toy, trained on one kind of mined triplet.

    strategy, with t = d(a, n) - d(a, p) (PML ``TripletMarginMiner``):
      "hard": t <= 0 (the negative is nearer than the positive);
      "semihard": 0 < t <= m (the right order, but inside the margin);
      "easy": t > m (already beyond the margin: zero hinge loss, so zero gradient);
      "all": t <= m (every triplet with a non-zero loss).
    Classes overlap more than on the contrastive page (latent noise 0.6) so mining matters.
    ``run.mined_per_step`` holds the number of mined triplets per step; ``run.mean_distance``
    the mean pairwise test distance per snapshot (divide by m: a collapsed embedding has
    every distance far below the margin).
    """
    if strategy not in MINING_STRATEGIES:
        raise ValueError(f"unknown mining strategy {strategy!r}; choose from {', '.join(MINING_STRATEGIES)}")
    criterion = pml_losses.TripletMarginLoss(margin=margin, distance=euclidean())
    miner = pml_miners.TripletMarginMiner(margin=margin, type_of_triplets=strategy, distance=euclidean())
    return _train_classes(strategy, criterion, miner, seed, steps, n_classes, lr, record_every, noise=noise)


PROXY_METHODS = ("triplet", "proxy_nca")


def proxy_nca_loss(n_classes: int, dim: int = 2):
    """ProxyNCA (Movshovitz-Attias et al. ICCV 2017) with one learnable proxy per class:
    ``-log( exp(-||x - p_y||^2) / sum_{c != y} exp(-||x - p_c||^2) )`` on unnormalised
    embeddings (PML ``ProxyNCALoss`` with squared Euclidean distance, softmax scale 1)."""
    return pml_losses.ProxyNCALoss(num_classes=n_classes, embedding_size=dim, softmax_scale=1,
                                   distance=LpDistance(normalize_embeddings=False, p=2, power=2))


@single_threaded
def train_proxy_comparison(method: str, seed: int = 0, steps: int = 200, n_classes: int = 8, per_class_in_batch: int = 4,
                           lr: float = 0.01, proxy_lr: float = 0.05, record_every: int = 10, noise: float = 0.6) -> ClassRun:
    """Triplet (all triplets of the batch) against ProxyNCA on the class toy, 2-D embeddings.

    triplet: ``max(0, m + d(a,p) - d(a,n))``, m = 1, Euclidean distance; needs two samples of
    a class in the batch to form any triplet.
    proxy_nca: see :func:`proxy_nca_loss`; a sample is compared with every class's proxy, so
    even a batch with one sample per class teaches something, and a batch of B costs B x C
    terms instead of up to B^3 triplets. Proxies are initialised from N(0, I) (seed + 11) and
    learn at ``proxy_lr``. Batches: every class, ``per_class_in_batch`` samples each.
    ``run.proxies`` (C, 2) holds the final proxies for proxy_nca.
    """
    if method not in PROXY_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(PROXY_METHODS)}")
    if per_class_in_batch < 1:
        raise ValueError(f"need at least one sample per class in a batch, got {per_class_in_batch}")
    extra = None
    if method == "triplet":
        criterion = pml_losses.TripletMarginLoss(margin=1.0, distance=euclidean())
    else:
        criterion = proxy_nca_loss(n_classes)
        with torch.no_grad():
            criterion.proxies.copy_(torch.randn(n_classes, 2, generator=torch.Generator().manual_seed(seed + 11)))
        extra = [{"params": criterion.parameters(), "lr": proxy_lr}]
    run = _train_classes(method, criterion, None, seed, steps, n_classes, lr, record_every, noise=noise,
                         param_groups=extra, batch_classes=n_classes, batch_per_class=per_class_in_batch)
    if method == "proxy_nca":
        run.proxies = criterion.proxies.detach().double().numpy().copy()
    return run


def loss_step_seconds(batch_sizes=(16, 32, 64, 128), n_classes: int = 8, repeats: int = 5, seed: int = 0) -> dict:
    """Measured seconds of one forward + backward of each loss on random 2-D embeddings.

    Returns {"batch_sizes": [...], "triplet": [...], "proxy_nca": [...], "triplets": number of
    (a, p, n) the triplet loss considers, "proxy_terms": B x C} (median over ``repeats``).
    """
    gen = torch.Generator().manual_seed(seed)
    out = {"batch_sizes": list(batch_sizes), "triplet": [], "proxy_nca": [], "triplets": [], "proxy_terms": []}
    triplet = pml_losses.TripletMarginLoss(margin=1.0, distance=euclidean())
    proxy = proxy_nca_loss(n_classes)
    with single_thread():
        for b in batch_sizes:
            labels = torch.arange(b) % n_classes
            same = labels[:, None] == labels[None, :]
            positives = int(same.sum() - b)
            out["triplets"].append(int(positives * (b - same.sum(1)[0])))
            out["proxy_terms"].append(b * n_classes)
            for name, criterion in (("triplet", triplet), ("proxy_nca", proxy)):
                times = []
                for _ in range(repeats):
                    z = torch.randn(b, 2, generator=gen, requires_grad=True)
                    tick = time.perf_counter()
                    criterion(z, labels).backward()
                    times.append(time.perf_counter() - tick)
                out[name].append(float(np.median(times)))
    return out


__all__ = ["MINING_STRATEGIES", "PAIR_LOSSES", "PROXY_METHODS", "ClassRun", "ClassToy", "class_batches", "euclidean",
           "loss_step_seconds", "make_class_toy", "proxy_nca_loss", "style_correlation", "train_mining",
           "train_pair_loss", "train_proxy_comparison"]
