"""Building blocks shared by the teaching toys: tiny seeded models, distances, small metrics.

Everything here is deliberately small (hundreds of points, MLPs with a few thousand weights)
so that a toy trains in well under a second on two CPU cores. Nothing touches torch's global
random state: every model and every batch draws from a ``torch.Generator`` seeded by the
caller, so a toy gives the same numbers for the same seed even while other code runs.
"""
from __future__ import annotations

import contextlib
import functools
import math

import numpy as np
import torch
import torch._dynamo  # noqa: F401  torch.optim imports it lazily in the first optimiser (~2 s); do it at import
from torch import nn

# log() of a distance that may be exactly zero (identical points or labels) must stay finite.
LOG_EPS = 1e-6


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (so no toy touches torch's global RNG)."""
    return torch.Generator().manual_seed(int(seed))


def mlp(sizes: list[int] | tuple[int, ...], seed: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A multilayer perceptron ``sizes[0] -> ... -> sizes[-1]`` with seeded weights.

    Weights use PyTorch's default ``Linear`` scheme (uniform in ±1/sqrt(fan_in)), drawn from a
    private generator so the network depends only on ``seed``. No activation after the last layer.
    """
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"mlp sizes must be at least two positive widths, got {sizes}")
    gen = generator(seed)
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(fan_in, fan_out)
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            linear.weight.copy_(torch.empty(fan_out, fan_in).uniform_(-bound, bound, generator=gen))
            linear.bias.copy_(torch.empty(fan_out).uniform_(-bound, bound, generator=gen))
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def sq_dists(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Euclidean distances ``||a_i - b_j||^2`` (clamped at 0), (len(a), len(b)).

    Written as a broadcast difference rather than ``torch.cdist`` because its gradient is
    exact at zero distance and much faster for the tiny batches used here.
    """
    b = a if b is None else b
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def dists(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Euclidean distances with a gradient that stays finite at zero distance."""
    return torch.sqrt(sq_dists(a, b) + 1e-12)


def np_dists(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distance matrix between the rows of ``a`` and ``b`` (numpy, float64)."""
    a = np.asarray(a, dtype=np.float64)
    b = a if b is None else np.asarray(b, dtype=np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def embed(model: nn.Module, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Run ``model`` on ``x`` without gradients and return a float64 numpy array."""
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()


def upper_triangle(matrix: np.ndarray) -> np.ndarray:
    """The strictly upper-triangular entries of a square matrix, flattened (one per pair)."""
    rows, cols = np.triu_indices(len(matrix), k=1)
    return np.asarray(matrix)[rows, cols]


def within_class_spread(embeddings: np.ndarray, classes: np.ndarray) -> float:
    """Scale-free within-class spread of an embedding.

    spread = mean_i ||z_i - c_{y_i}|| / mean_{k<l} ||c_k - c_l||, with c_k the centroid of
    class k. Dividing by the distance between centroids makes it independent of the overall
    scale of the embedding (a loss could otherwise shrink everything and look "tight").
    0 means every class has collapsed to a point.
    """
    z = np.asarray(embeddings, dtype=np.float64)
    classes = np.asarray(classes)
    labels = np.unique(classes)
    if len(labels) < 2:
        raise ValueError("within_class_spread needs at least two classes")
    centroids = np.stack([z[classes == k].mean(0) for k in labels])
    index = np.searchsorted(labels, classes)
    within = np.linalg.norm(z - centroids[index], axis=1).mean()
    between = upper_triangle(np_dists(centroids)).mean()
    return float(within / max(between, 1e-12))


def recall_at_1(embeddings: np.ndarray, classes: np.ndarray) -> float:
    """Leave-one-out Recall@1: fraction of points whose nearest other point shares their class."""
    d = np_dists(embeddings)
    np.fill_diagonal(d, np.inf)
    classes = np.asarray(classes)
    return float(np.mean(classes[np.argmin(d, axis=1)] == classes))


def chance_recall_at_1(classes: np.ndarray) -> float:
    """Expected leave-one-out Recall@1 of a random embedding: the chance that a random other
    point shares the class (about 1 / number of classes when they are equally large)."""
    _, counts = np.unique(np.asarray(classes), return_counts=True)
    return float(np.sum(counts * (counts - 1)) / (len(classes) * (len(classes) - 1)))


def roc_curve(genuine: np.ndarray, impostor: np.ndarray) -> dict:
    """ROC of a distance-threshold verifier ("accept when distance <= t").

    genuine: distances of same-identity pairs; impostor: of different-identity pairs.
    Returns dict with ``thresholds`` (ascending, every observed distance plus -inf),
    ``far`` (false-accept rate = fraction of impostor distances <= t),
    ``frr`` (false-reject rate = fraction of genuine distances > t), ``tpr`` = 1 - frr,
    ``auc`` (area under TPR(FAR), equal to P(genuine distance < impostor distance) with ties
    counted half) and ``eer`` (the rate where FAR and FRR cross, interpolated).
    """
    genuine = np.sort(np.asarray(genuine, dtype=np.float64))
    impostor = np.sort(np.asarray(impostor, dtype=np.float64))
    if len(genuine) == 0 or len(impostor) == 0:
        raise ValueError("roc_curve needs at least one genuine and one impostor distance")
    thresholds = np.concatenate([[-np.inf], np.unique(np.concatenate([genuine, impostor]))])
    far = np.searchsorted(impostor, thresholds, side="right") / len(impostor)
    tpr = np.searchsorted(genuine, thresholds, side="right") / len(genuine)
    frr = 1.0 - tpr
    # Mann-Whitney form of the AUC: P(genuine < impostor) + P(tie) / 2, exact with ties.
    left = np.searchsorted(impostor, genuine, side="left")
    right = np.searchsorted(impostor, genuine, side="right")
    auc = ((len(impostor) - right) + 0.5 * (right - left)).sum() / (len(genuine) * len(impostor))
    # EER: first threshold where FRR <= FAR, interpolated linearly with the previous one.
    gap = frr - far
    k = int(np.argmax(gap <= 0))
    if k == 0:
        eer = float(far[0])
    else:
        g0, g1 = gap[k - 1], gap[k]
        w = g0 / (g0 - g1) if g0 != g1 else 0.0
        eer = float(far[k - 1] + w * (far[k] - far[k - 1]))
    return {"thresholds": thresholds, "far": far, "frr": frr, "tpr": tpr, "auc": float(auc), "eer": eer}


def best_threshold_accuracy(same: np.ndarray, distances: np.ndarray) -> tuple[float, float]:
    """The distance threshold that best separates same (True) from different pairs.

    Returns ``(threshold, accuracy)``: pairs with distance <= threshold are predicted "same";
    the threshold is the midpoint between consecutive sorted distances that maximises accuracy.
    """
    same = np.asarray(same, dtype=bool)
    distances = np.asarray(distances, dtype=np.float64)
    order = np.argsort(distances, kind="stable")
    d, s = distances[order], same[order]
    # Accuracy when the first k sorted pairs are called "same": k = 0 .. n.
    correct = np.concatenate([[0], np.cumsum(np.where(s, 1, -1))]) + (~s).sum()
    k = int(np.argmax(correct))
    if k == 0:
        threshold = d[0] - 1.0
    elif k == len(d):
        threshold = d[-1] + 1.0
    else:
        threshold = 0.5 * (d[k - 1] + d[k])
    return float(threshold), float(correct[k] / len(d))


def pair_accuracy(same: np.ndarray, distances: np.ndarray, threshold: float) -> float:
    """Fraction of pairs classified right by "same iff distance <= threshold"."""
    same = np.asarray(same, dtype=bool)
    return float(np.mean((np.asarray(distances) <= threshold) == same))


@contextlib.contextmanager
def single_thread():
    """Run torch on one intra-op thread inside the block, then restore the previous setting.

    Why: the toys' tensors are tiny (batches of ~50 x 64), so splitting an op over threads
    costs more than it saves, and on a busy 2-core machine the OpenMP hand-off between
    threads made a 100-step toy run 10-50x slower (1.7-15 s against 0.15 s measured). With
    torch's OpenMP backend the thread count is per calling thread, so this does not slow
    down work running in other threads (e.g. another Streamlit session training a model).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def single_threaded(function):
    """Decorator: run ``function`` inside :func:`single_thread`."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with single_thread():
            return function(*args, **kwargs)

    return wrapper
