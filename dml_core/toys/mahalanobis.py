"""Learn page 4: learning a Mahalanobis metric from similar / dissimilar pairs.

``d_A(x, y) = sqrt((x - y)^T A (x - y))`` with A symmetric positive semi-definite (PSD); A = I
is the Euclidean distance. Writing A = L^T L, d_A is the Euclidean distance after the linear
map x -> L x, so learning A is the simplest "embedding" there is.

Following Xing, Ng, Jordan and Russell (NIPS 2002), A minimises

    g(A) = sum_{(i,j) in S} d_A(x_i, x_j)^2  -  log( sum_{(i,j) in D} d_A(x_i, x_j) ),   A PSD,

over similar pairs S and dissimilar pairs D: similar pairs close, dissimilar ones not all close
(the log term rules out the trivial A = 0). g is convex (a linear term minus the log of a
concave one); Xing et al. give this form for diagonal A, here it is minimised over full A by
projected gradient descent: a gradient step, then projection onto the PSD cone by setting
negative eigenvalues to zero, with a backtracking line search so g always decreases.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dml_core.toys.common import best_threshold_accuracy, pair_accuracy


@dataclass
class PairData:
    """Points x (N, d), their class (N,), and index pairs with ``same`` (True = similar)."""

    x: np.ndarray
    classes: np.ndarray
    pairs: np.ndarray
    same: np.ndarray


def make_stretched_classes(n_per_class: int = 40, n_classes: int = 3, stretch: float = 6.0, angle_deg: float = 30.0,
                           seed: int = 0, n_pairs: int = 400, dim: int = 2) -> PairData:
    """Classes that are long and thin, side by side: Euclidean distance is misleading.

    Class k has centre ``1.2 k v`` and points ``centre + a u + b v (+ c w ...)`` with
    a ~ N(0, (0.35 stretch)^2) along u, b ~ N(0, 0.3^2) across (v), and N(0, 0.3^2) in any
    further dimension; u, v are the axes rotated by ``angle_deg``. ``stretch`` = 1 makes the
    classes round. Pairs: ``n_pairs`` random pairs, half similar (same class), half dissimilar.
    """
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    if n_classes < 2 or n_per_class < 2 or stretch <= 0:
        raise ValueError("need >= 2 classes of >= 2 points and a positive stretch")
    rng = np.random.default_rng(seed)
    theta = np.deg2rad(angle_deg)
    u = np.zeros(dim)
    v = np.zeros(dim)
    u[:2] = np.cos(theta), np.sin(theta)
    v[:2] = -np.sin(theta), np.cos(theta)
    classes = np.repeat(np.arange(n_classes), n_per_class)
    centres = (np.arange(n_classes) - (n_classes - 1) / 2)[:, None] * 1.2 * v[None, :]
    n = len(classes)
    x = centres[classes] + rng.normal(0, 0.35 * stretch, n)[:, None] * u + rng.normal(0, 0.3, n)[:, None] * v
    if dim == 3:
        x[:, 2] += rng.normal(0, 0.3, n)
    pairs, same = _sample_pairs(classes, n_pairs, rng)
    return PairData(x=x, classes=classes, pairs=pairs, same=same)


def _sample_pairs(classes: np.ndarray, n_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs // 2`` similar and as many dissimilar distinct index pairs."""
    i, j = np.triu_indices(len(classes), k=1)
    is_same = classes[i] == classes[j]
    half = n_pairs // 2
    pick_same = rng.choice(np.flatnonzero(is_same), size=min(half, is_same.sum()), replace=False)
    pick_diff = rng.choice(np.flatnonzero(~is_same), size=min(half, (~is_same).sum()), replace=False)
    pick = np.concatenate([pick_same, pick_diff])
    return np.stack([i[pick], j[pick]], 1), is_same[pick]


def mahalanobis(x: np.ndarray, y: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Row-wise ``sqrt((x - y)^T A (x - y))`` for paired rows of x and y (clamped at 0)."""
    diff = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    return np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", diff, a, diff), 0.0))


def project_psd(a: np.ndarray) -> np.ndarray:
    """Nearest symmetric PSD matrix in Frobenius norm: symmetrise, clip eigenvalues at 0."""
    sym = (a + a.T) / 2
    values, vectors = np.linalg.eigh(sym)
    return (vectors * np.maximum(values, 0.0)) @ vectors.T


def xing_objective(a: np.ndarray, diff_similar: np.ndarray, diff_dissimilar: np.ndarray) -> float:
    """g(A) = sum_S d_A^2 - log(sum_D d_A) for the pair differences x_i - x_j."""
    sq_similar = np.einsum("ni,ij,nj->n", diff_similar, a, diff_similar).sum()
    d_dissimilar = np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", diff_dissimilar, a, diff_dissimilar), 0.0)).sum()
    return float(sq_similar - np.log(max(d_dissimilar, 1e-300)))


def learn_mahalanobis(x: np.ndarray, pairs: np.ndarray, same: np.ndarray, iterations: int = 200) -> tuple[np.ndarray, list[float]]:
    """Minimise the Xing et al. objective over PSD A by projected gradient descent.

    Gradient: ``sum_S δδ^T - (sum_D δδ^T / (2 d_A)) / sum_D d_A`` (δ = x_i - x_j). Each step
    tries step sizes t, t/2, ... until g decreases (Armijo backtracking), then projects onto
    the PSD cone. Starts from A = I / mean_S ||δ||^2. Returns (A, objective per iteration).
    """
    pairs = np.asarray(pairs)
    same = np.asarray(same, dtype=bool)
    if same.all() or not same.any():
        raise ValueError("learning a metric needs both similar and dissimilar pairs")
    delta = x[pairs[:, 0]] - x[pairs[:, 1]]
    ds, dd = delta[same], delta[~same]
    outer_similar = ds.T @ ds
    a = np.eye(x.shape[1]) / max(np.mean((ds ** 2).sum(1)), 1e-12)
    history = [xing_objective(a, ds, dd)]
    step = 1.0 / max(np.linalg.norm(outer_similar), 1e-12)
    for _ in range(iterations):
        d = np.sqrt(np.maximum(np.einsum("ni,ij,nj->n", dd, a, dd), 1e-12))
        grad = outer_similar - (dd.T * (0.5 / d)) @ dd / d.sum()
        current = history[-1]
        trial_step = step * 4.0
        while trial_step > 1e-12:
            candidate = project_psd(a - trial_step * grad)
            value = xing_objective(candidate, ds, dd)
            if value < current:
                break
            trial_step /= 2
        else:
            break  # no step decreases g any more: converged
        a, step = candidate, trial_step
        history.append(value)
    return a, history


@dataclass
class MetricResult:
    """Euclidean vs learned metric on one toy.

    train / test: the two samples; a_learned: the learned A; a_euclid = I.
    For each metric, the threshold t fitted on training pairs is folded into A
    (``unit_*`` = A / t^2) so that "d = 1" is the decision boundary: pairs nearer than 1 are
    called similar. *_train_acc / *_test_acc: pair accuracies with that threshold.
    objective: g(A) per iteration.
    """

    train: PairData
    test: PairData
    a_learned: np.ndarray
    unit_euclid: np.ndarray
    unit_learned: np.ndarray
    euclid_train_acc: float
    euclid_test_acc: float
    learned_train_acc: float
    learned_test_acc: float
    objective: list[float]


def pair_distances(data: PairData, a: np.ndarray) -> np.ndarray:
    """d_A of every pair in ``data``."""
    return mahalanobis(data.x[data.pairs[:, 0]], data.x[data.pairs[:, 1]], a)


def compare_metrics(seed: int = 0, stretch: float = 6.0, angle_deg: float = 30.0, n_pairs: int = 400,
                    iterations: int = 200, dim: int = 2) -> MetricResult:
    """Learn A on a training sample (seed) and compare pair accuracy on a test sample (seed + 1000)."""
    train = make_stretched_classes(stretch=stretch, angle_deg=angle_deg, seed=seed, n_pairs=n_pairs, dim=dim)
    test = make_stretched_classes(stretch=stretch, angle_deg=angle_deg, seed=seed + 1000, n_pairs=1000, dim=dim)
    a_learned, objective = learn_mahalanobis(train.x, train.pairs, train.same, iterations)
    result = {}
    for name, a in (("euclid", np.eye(dim)), ("learned", a_learned)):
        threshold, train_acc = best_threshold_accuracy(train.same, pair_distances(train, a))
        threshold = max(threshold, 1e-9)
        result[f"unit_{name}"] = a / threshold ** 2
        result[f"{name}_train_acc"] = train_acc
        result[f"{name}_test_acc"] = pair_accuracy(test.same, pair_distances(test, a), threshold)
    return MetricResult(train=train, test=test, a_learned=a_learned, objective=objective, **result)


def unit_ellipse(a: np.ndarray, centre: np.ndarray, points: int = 100) -> np.ndarray:
    """(points, 2) boundary of {x : (x - c)^T A (x - c) = 1} in the first two coordinates.

    Uses the 2x2 top-left block of A (the slice through the centre in 3-D). Directions A
    ignores (eigenvalue 0) would be infinitely long; they are cut at 1e3.
    """
    values, vectors = np.linalg.eigh(np.asarray(a, dtype=np.float64)[:2, :2])
    radii = 1.0 / np.sqrt(np.maximum(values, 1e-6))
    t = np.linspace(0, 2 * np.pi, points)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    return np.asarray(centre)[:2] + (circle * np.minimum(radii, 1e3)) @ vectors.T
