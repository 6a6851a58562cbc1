"""``python -m dml_core ceiling``: what limits retrieval quality on a built task.

Every row trains or fits something on the task's training split and is scored on its query
and gallery splits, like every model of the build:

* **readout**: the best a frozen-feature model could hope for. A ridge regression (and a
  small MLP) from the frozen backbone features to the label itself, then retrieval by the
  task's label distance between *predicted* labels. If a trained head scores close to this,
  the features, not the loss, are the limit.
* **resolution**: the heads on features of the same images upsampled to 192 px.
* **steps**: the heads trained 200 / 600 / 1,500 steps.
* **dimension**: the heads at d = 512.
* **embedder** (``--regimes``): a head on frozen features, EfficientNet-Lite0's blocks 13-15
  trained with the head (activations after block 12 cached), and the compact CNN trained end
  to end (``dml_core/learn/cnn.py``), with their seconds: which gives the best quality per second.

Results go to a JSON file (default ``docs/bench/ceiling.json``) that ``bench`` renders as the
"Ceiling" section of BENCHMARKS.md.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from dml_core.core.store import ArtifactStore
from dml_core.core.vocabulary import HEADLINE_PAIR
from dml_core.data.label_distances import query_gallery_label_distance
from dml_core.data.tasks import get_task
from dml_core.evaluate.metrics import evaluate, evaluate_distances
from dml_core.features.backbone import TRAIN_MODE, shared_backbone
from dml_core.features.factory import DEFAULT_BACKBONE
from dml_core.learn.model import embed
from dml_core.learn.train import fit
from dml_core.pipeline.features import TaskFeatures
from dml_core.pipeline.profiles import stored_profile

KEYS = ("ndcg@10", "mld@10", "gap_closed@10", "spearman")


# --------------------------------------------------------------------- label <-> vector
def label_vectors(task: str, labels: np.ndarray) -> np.ndarray:
    """A regression target for the task's label: normalised joints (pose), one-hot surface
    maps (layout), the caption embedding (caption); imported tasks' label vectors as stored."""
    if task == "pose":
        from dml_core.data.tasks.pose import normalize_labels

        return normalize_labels(labels).reshape(len(labels), -1)
    if task == "layout":
        from dml_core.data.tasks._layout_render import NUM_CLASSES

        return np.eye(NUM_CLASSES, dtype=np.float32)[labels].reshape(len(labels), -1)
    return np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)


def labels_from_vectors(task: str, vectors: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Predicted labels in the task's own format, for its label distance."""
    if task == "layout":
        from dml_core.data.tasks._layout_render import NUM_CLASSES

        return vectors.reshape(len(vectors), *like.shape[1:], NUM_CLASSES).argmax(-1).astype(like.dtype)
    if task == "caption":
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors.reshape(len(vectors), *like.shape[1:])


def _scores(result: dict) -> dict:
    return {k: round(float(result[k]), 4) for k in KEYS}


def readout_rows(data: TaskFeatures, label_dist: np.ndarray, seed: int = 0) -> list[dict]:
    """Ridge and MLP readouts of the label from the frozen 2x2 features (see module doc)."""
    from sklearn.linear_model import Ridge

    task = data.task
    x_train, y_train = data.features["train"], label_vectors(task, data.train.labels)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    standardise = lambda x: (np.asarray(x) - mean) / std  # noqa: E731
    n_val = len(x_train) // 5
    rows = []
    start = time.perf_counter()
    best = None
    for alpha in (1.0, 10.0, 100.0, 1000.0):  # chosen on a held-out fifth of the training split
        ridge = Ridge(alpha=alpha).fit(standardise(x_train[:-n_val]), y_train[:-n_val])
        error = float(((ridge.predict(standardise(x_train[-n_val:])) - y_train[-n_val:]) ** 2).mean())
        best = (error, alpha) if best is None or error < best[0] else best
    ridge = Ridge(alpha=best[1]).fit(standardise(x_train), y_train)
    rows.append(_readout_row(data, label_dist, "ridge", ridge.predict, standardise, time.perf_counter() - start,
                             f"alpha={best[1]:g}"))

    start = time.perf_counter()
    mlp = _fit_mlp(standardise(x_train).astype(np.float32), y_train.astype(np.float32), seed)
    with torch.no_grad():
        predict = lambda x: mlp(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()  # noqa: E731
        rows.append(_readout_row(data, label_dist, "MLP", predict, standardise, time.perf_counter() - start,
                                 "512 hidden, 1,500 steps"))
    return rows


def _readout_row(data, label_dist, name, predict, standardise, seconds, setting) -> dict:
    task = get_task(data.task)
    like = data.train.labels
    predicted = {split: labels_from_vectors(data.task, predict(standardise(data.features[split])), like)
                 for split in ("query", "gallery")}
    distances = task.label_distance(predicted["query"], predicted["gallery"])
    return {"knob": "readout", "setting": f"{name} ({setting})", "method": f"{name} readout",
            **_scores(evaluate_distances(distances, label_dist, ks=(10,))), "seconds": round(seconds, 1)}


def _fit_mlp(x: np.ndarray, y: np.ndarray, seed: int, steps: int = 1500) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], 512), nn.GELU(), nn.Linear(512, y.shape[1]))
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    for _ in range(steps):
        batch = torch.as_tensor(rng.choice(len(x), min(256, len(x)), replace=False))
        loss = ((model(xt[batch]) - yt[batch]) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


# ----------------------------------------------------------------------------- heads
def _head_row(knob, setting, method, label_dist, train_x, labels, gallery_x, query_x, task, **fit_args) -> dict:
    start = time.perf_counter()
    model, _ = fit(train_x, labels, get_task(task).label_distance, method, progress=False, **fit_args)
    seconds = time.perf_counter() - start
    metric = "cosine" if model.normalize else "l2"
    result = evaluate(embed(model, query_x), embed(model, gallery_x), label_dist, ks=(10,), metric=metric)
    return {"knob": knob, "setting": setting, "method": method, **_scores(result), "seconds": round(seconds, 1)}


def head_rows(data: TaskFeatures, label_dist: np.ndarray, steps: int, step_counts=(200, 600, 1500)) -> list[dict]:
    """Heads on frozen features at ``step_counts`` steps, and at ``steps`` with d = 512 and on 192-px features."""
    args = dict(label_dist=label_dist, labels=data.train.labels, task=data.task)
    frozen = dict(train_x=data.features["train"], gallery_x=data.features["gallery"], query_x=data.features["query"])
    rows = []
    for method in HEADLINE_PAIR:
        for n in sorted(set(step_counts)):
            rows.append(_head_row("steps", f"{n} steps", method, **args, **frozen, steps=n, neighbours=data.neighbours))
        rows.append(_head_row("dimension", "d=512", method, **args, **frozen, steps=steps, dim=512, neighbours=data.neighbours))
    high = _features_at(data, 192)
    for method in HEADLINE_PAIR:
        rows.append(_head_row("resolution", "192 px features", method, **args, **high, steps=steps, neighbours=data.neighbours))
    return rows


def _features_at(data: TaskFeatures, resolution: int) -> dict:
    from dml_core.features import create_backbone
    from dml_core.features.cache import extract_features

    backbone = create_backbone(DEFAULT_BACKBONE, resolution=resolution)
    cache = data.store.path(data.task, "features")
    from dml_core.data.splits import load_split

    return {f"{split}_x": extract_features(backbone, load_split(data.store, data.task, split).images, mode=TRAIN_MODE,
                                           cache_dir=cache, progress=True)
            for split in ("train", "gallery", "query")}


# --------------------------------------------------------------------------- regimes
class _FrozenStatistics(nn.Module):
    """A pretrained trunk whose BatchNorm statistics stay ImageNet's while its weights train."""

    def __init__(self, trunk: nn.Module):
        super().__init__()
        self.trunk = trunk

    def train(self, mode: bool = True):
        from dml_core.features.efficientnet import set_batchnorm_eval

        super().train(mode)
        set_batchnorm_eval(self.trunk)
        return self

    def forward(self, x):
        return self.trunk(x)


def regime_rows(data: TaskFeatures, label_dist: np.ndarray, steps: int, cnn_steps: int, methods=("log_ratio",)) -> list[dict]:
    """Head on frozen features vs top blocks trained vs the compact CNN, with their seconds."""
    from dml_core.data.splits import load_split
    from dml_core.features.cache import extract_features
    from dml_core.features.efficientnet import DEFAULT_SPLIT

    args = dict(label_dist=label_dist, task=data.task)
    rows = []
    backbone = shared_backbone()
    _, top = backbone.split(DEFAULT_SPLIT, pool=TRAIN_MODE)
    activations = {f"{split}_x": extract_features(backbone, load_split(data.store, data.task, split).images, mode=DEFAULT_SPLIT,
                                                  cache_dir=data.store.path(data.task, "features"), progress=True)
                   for split in ("train", "gallery", "query")}
    cnn_images, cnn_labels = data.cnn_train
    for method in methods:
        rows.append(_head_row("embedder", f"head on frozen features, {steps} steps", method, **args, labels=data.train.labels,
                              train_x=data.features["train"], gallery_x=data.features["gallery"],
                              query_x=data.features["query"], steps=steps, neighbours=data.neighbours))
        rows.append(_head_row("embedder", f"blocks 13-15 + head trained, {steps} steps", method, **args, labels=data.train.labels,
                              **activations, steps=steps, neighbours=data.neighbours, trunk=_FrozenStatistics(top)))
        rows.append(_head_row("embedder", f"compact CNN end to end, {len(cnn_images):,} images, {cnn_steps} steps",
                              f"{method}_ft", **args, labels=cnn_labels, train_x=cnn_images,
                              gallery_x=data.cnn_images("gallery"), query_x=data.cnn_images("query"), steps=cnn_steps,
                              neighbours=data.cnn_neighbours))
    return rows


def run_ceiling(tasks=("pose", "layout"), store: ArtifactStore | None = None, regimes: bool = True,
                steps: int | None = None, cnn_steps: int | None = None, regime_tasks=("pose",)) -> dict:
    """Every row of the module doc for ``tasks`` of a built store (its profile's step counts);
    the embedder comparison (log-ratio only: training the top blocks takes ~10 minutes per
    model on 2 cores) for ``regime_tasks``."""
    from dml_core.core.workers import torch_threads

    store = store or ArtifactStore()
    out = {"tasks": {}}
    with torch_threads(1):  # see dml_core.core.workers: one thread holds up on a shared CPU
        for task in tqdm(tasks, desc="ceiling", unit="task"):
            out["tasks"][task] = _task_ceiling(store, task, regimes and task in regime_tasks, steps, cnn_steps)
    return out


def _task_ceiling(store: ArtifactStore, task: str, regimes: bool, steps: int | None, cnn_steps: int | None) -> dict:
    profile = stored_profile(store, task)
    task_steps = steps or profile.steps
    data = TaskFeatures(store, task)
    label_dist = query_gallery_label_distance(store, task)
    placeholder = np.ones((label_dist.shape[0], 1)), np.ones((label_dist.shape[1], 1))
    reference = evaluate(*placeholder, label_dist, ks=(10,), metric="l2")
    rows = readout_rows(data, label_dist) + head_rows(data, label_dist, task_steps, (200, task_steps, 1500) if steps is None else (steps,))
    if regimes:
        rows += regime_rows(data, label_dist, task_steps, cnn_steps or profile.cnn_steps)
    return {"profile": profile.name, "train": len(data.train), "rows": rows,
            "random": _scores(reference["random"]), "oracle": _scores(reference["oracle"])}


def markdown_lines(ceiling: dict) -> list[str]:
    """The BENCHMARKS.md section for a ``run_ceiling`` result."""
    lines = ["## Ceiling", "",
             "What limits quality (`python -m dml_core ceiling`, one seed; see `dml_core/bench/ceiling.py`). *readout* rows",
             "regress the label itself from the frozen features and retrieve by the label distance of the predictions:",
             "the most a head on those features could be expected to reach.", ""]
    for task, data in ceiling["tasks"].items():
        lines += [f"### {task} ({data['profile']} profile, {data['train']:,} training images)", "",
                  "| knob | setting | method | nDCG@10 | mld@10 | gap closed@10 | Spearman ρ | seconds |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in data["rows"]:
            lines.append(f"| {row['knob']} | {row['setting']} | {row['method']} | " +
                         " | ".join(f"{row[k]:.3f}" for k in KEYS) + f" | {row['seconds']:.0f} |")
        for name in ("random", "oracle"):
            lines.append(f"| reference | *{name}* | – | " + " | ".join(f"{data[name][k]:.3f}" for k in KEYS) + " | – |")
        lines.append("")
    return lines
