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
* **embedder** (``--regimes``): a head on frozen features, EfficientNet-Lite0's top blocks
  (``--trained-blocks``, 0 = the head convolution alone) trained with the head on cached
  activations of the blocks below (``dml_core/learn/top_blocks.py``), and the compact CNN trained
  end to end (``dml_core/learn/cnn.py``), with their seconds: which gives the best quality per second.
* **backbone** (``--backbones``): EfficientNet-Lite0, -Lite1 and -Lite2 at 128 px: a ridge readout
  and the headline pair's heads on each one's frozen features, with its cost in ms per image.

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
    task, features, labels = data.task, data.features, data.train.labels
    rows = [ridge_readout_row(task, features, labels, label_dist)]
    x_train, y_train = features["train"], label_vectors(task, labels)
    standardise = _standardiser(x_train)
    start = time.perf_counter()
    mlp = _fit_mlp(standardise(x_train).astype(np.float32), y_train.astype(np.float32), seed)
    with torch.no_grad():
        predict = lambda x: mlp(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()  # noqa: E731
        rows.append(_readout_row(task, features, labels, label_dist, "MLP", predict, standardise,
                                 time.perf_counter() - start, "512 hidden, 1,500 steps"))
    return rows


def _standardiser(x_train: np.ndarray):
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    return lambda x: (np.asarray(x) - mean) / std


def ridge_readout_row(task: str, features: dict, labels: np.ndarray, label_dist: np.ndarray) -> dict:
    """The ridge readout row of ``features`` ({"train", "gallery", "query"} -> (N, F)) with the
    training split's ``labels``: alpha chosen on a held-out fifth of the training split."""
    from sklearn.linear_model import Ridge

    x_train, y_train = features["train"], label_vectors(task, labels)
    standardise = _standardiser(x_train)
    n_val = len(x_train) // 5
    start = time.perf_counter()
    best = None
    for alpha in (1.0, 10.0, 100.0, 1000.0):  # chosen on a held-out fifth of the training split
        ridge = Ridge(alpha=alpha).fit(standardise(x_train[:-n_val]), y_train[:-n_val])
        error = float(((ridge.predict(standardise(x_train[-n_val:])) - y_train[-n_val:]) ** 2).mean())
        best = (error, alpha) if best is None or error < best[0] else best
    ridge = Ridge(alpha=best[1]).fit(standardise(x_train), y_train)
    return _readout_row(task, features, labels, label_dist, "ridge", ridge.predict, standardise,
                        time.perf_counter() - start, f"alpha={best[1]:g}")


def _readout_row(task_name, features, like, label_dist, name, predict, standardise, seconds, setting) -> dict:
    task = get_task(task_name)
    predicted = {split: labels_from_vectors(task_name, predict(standardise(features[split])), like)
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


# ------------------------------------------------------------------------- backbones
BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def backbone_rows(data: TaskFeatures, label_dist: np.ndarray, steps: int, backbones=BACKBONES,
                  timing_images: int = 256) -> list[dict]:
    """Per backbone (knob "backbone"): its spatial2x2 features of the task's splits (cached in the
    task's feature cache, like the build's), a ridge readout and the heads of ``HEADLINE_PAIR``
    trained ``steps`` steps on them; every row carries ``ms_per_image``, the backbone's cost: the
    first ``timing_images`` gallery images through ``compute_features`` on one thread (after one
    warm-up batch), timed apart from the cached extraction."""
    from dml_core.core.workers import torch_threads
    from dml_core.data.splits import load_split
    from dml_core.features import create_backbone
    from dml_core.features.cache import compute_features, extract_features

    cache = data.store.path(data.task, "features")
    images = {split: load_split(data.store, data.task, split).images for split in ("train", "gallery", "query")}
    args = dict(label_dist=label_dist, labels=data.train.labels, task=data.task)
    rows = []
    for name in backbones:
        backbone = shared_backbone(name) if name == DEFAULT_BACKBONE else create_backbone(name)
        setting = _backbone_setting(backbone)
        sample = np.ascontiguousarray(images["gallery"][:timing_images])
        with torch_threads(1):
            compute_features(backbone, sample[:16], TRAIN_MODE, progress=False)  # warm-up
            start = time.perf_counter()
            compute_features(backbone, sample, TRAIN_MODE, progress=False)
            ms_per_image = round(1000 * (time.perf_counter() - start) / max(len(sample), 1), 2)
        features = {split: extract_features(backbone, images[split], mode=TRAIN_MODE, cache_dir=cache, progress=True)
                    for split in images}
        cost = {"ms_per_image": ms_per_image}
        ridge = ridge_readout_row(data.task, features, data.train.labels, label_dist)
        rows.append({**ridge, "knob": "backbone", "setting": setting, **cost})
        for method in HEADLINE_PAIR:
            row = _head_row("backbone", setting, method, **args, train_x=features["train"], gallery_x=features["gallery"],
                            query_x=features["query"], steps=steps, neighbours=data.neighbours)
            rows.append({**row, **cost})
    return rows


def _backbone_setting(backbone) -> str:
    """The setting text, e.g. "EfficientNet-Lite1, 128 px": the backbone's title (else its registry name), resolution."""
    from dml_core.features.efficientnet import VARIANTS

    variant = VARIANTS.get(getattr(backbone, "variant", None))
    title = variant.title if variant is not None and backbone.name == variant.name else backbone.name
    return f"{title}, {backbone.resolution} px"


# --------------------------------------------------------------------------- regimes
def regime_rows(data: TaskFeatures, label_dist: np.ndarray, steps: int, cnn_steps: int, methods=("log_ratio",),
                trained_blocks=(1, 2, 3)) -> list[dict]:
    """Per method: the head on frozen features, the fine-tuned variant (``<method>_ft``) training the
    backbone's top blocks (``trained_blocks``; 0: the head convolution alone) with the head on cached
    activations, and the same variant as the compact CNN end to end; with their seconds (training
    only: the activations are extracted once per split point, before the clock starts)."""
    from dml_core.learn.top_blocks import split_mode, trained_part

    args = dict(label_dist=label_dist, task=data.task)
    rows = []

    def activations(blocks: int) -> dict:
        return {f"{split}_x": data.activations(split_mode(blocks), split) for split in ("train", "gallery", "query")}

    cnn_images, cnn_labels = data.cnn_train
    for method in methods:
        rows.append(_head_row("embedder", f"head on frozen features, {steps} steps", method, **args, labels=data.train.labels,
                              train_x=data.features["train"], gallery_x=data.features["gallery"],
                              query_x=data.features["query"], steps=steps, neighbours=data.neighbours))
        for blocks in trained_blocks:
            rows.append(_head_row("embedder", f"{trained_part(blocks)} + head trained, {steps} steps", f"{method}_ft", **args,
                                  labels=data.train.labels, **activations(blocks), steps=steps, neighbours=data.neighbours,
                                  embedder="top_blocks", trained_blocks=blocks))
        rows.append(_head_row("embedder", f"compact CNN end to end, {len(cnn_images):,} images, {cnn_steps} steps",
                              f"{method}_ft", **args, labels=cnn_labels, train_x=cnn_images,
                              gallery_x=data.cnn_images("gallery"), query_x=data.cnn_images("query"), steps=cnn_steps,
                              neighbours=data.cnn_neighbours, embedder="cnn"))
    return rows


def run_ceiling(tasks=("pose", "layout"), store: ArtifactStore | None = None, regimes: bool = True,
                steps: int | None = None, cnn_steps: int | None = None, regime_tasks=("pose",),
                backbones: bool = False, trained_blocks=(1, 2, 3)) -> dict:
    """Every row of the module doc for ``tasks`` of a built store (its profile's step counts);
    the embedder comparison (log-ratio only, ``trained_blocks`` top blocks: 1 costs ~100 s per
    model at 200 steps on one thread, 3 about 4x that) for ``regime_tasks``; ``backbones``: the backbone comparison
    (``backbone_rows``: EfficientNet-Lite0/1/2) for every task."""
    from dml_core.core.workers import torch_threads

    store = store or ArtifactStore()
    out = {"tasks": {}}
    with torch_threads(1):  # see dml_core.core.workers: one thread holds up on a shared CPU
        for task in tqdm(tasks, desc="ceiling", unit="task"):
            out["tasks"][task] = _task_ceiling(store, task, regimes and task in regime_tasks, steps, cnn_steps,
                                                backbones, trained_blocks)
    return out


def _task_ceiling(store: ArtifactStore, task: str, regimes: bool, steps: int | None, cnn_steps: int | None,
                  backbones: bool = False, trained_blocks=(1, 2, 3)) -> dict:
    profile = stored_profile(store, task)
    task_steps = steps or profile.steps
    data = TaskFeatures(store, task)
    label_dist = query_gallery_label_distance(store, task)
    placeholder = np.ones((label_dist.shape[0], 1)), np.ones((label_dist.shape[1], 1))
    reference = evaluate(*placeholder, label_dist, ks=(10,), metric="l2")
    rows = readout_rows(data, label_dist) + head_rows(data, label_dist, task_steps, (200, task_steps, 1500) if steps is None else (steps,))
    if regimes:
        rows += regime_rows(data, label_dist, task_steps, cnn_steps or profile.cnn_steps, trained_blocks=trained_blocks)
    if backbones:
        rows += backbone_rows(data, label_dist, task_steps)
    return {"profile": profile.name, "train": len(data.train), "rows": rows,
            "random": _scores(reference["random"]), "oracle": _scores(reference["oracle"])}


def markdown_lines(*ceilings: dict) -> list[str]:
    """The BENCHMARKS.md section for ``run_ceiling`` results (one per profile measured), with the
    fine-tuning regime each profile declares per task (what the embedder rows chose)."""
    lines = ["## Ceiling", "",
             "What limits quality (`python -m dml_core ceiling`, one seed; see `dml_core/bench/ceiling.py`). *readout* rows",
             "regress the label itself from the frozen features and retrieve by the label distance of the predictions:",
             "the most a head on those features could be expected to reach. *embedder* rows train the log-ratio as a",
             "head on frozen features, with the backbone's top blocks (on cached activations of the blocks below), and",
             "as the compact CNN end to end: what each fine-tuning regime buys per second of CPU (seconds: training",
             "on one thread on a 2-core machine). *backbone* rows compare EfficientNet-Lite0/1/2 features (ms/image:",
             "extraction on one thread).", "", *regime_lines(), ""]
    for ceiling in ceilings:
        lines += _task_tables(ceiling)
    return lines


def regime_lines() -> list[str]:
    """The regime of the fine-tuned pair per task and profile, as ``pipeline.profiles`` declares it."""
    from dml_core.core.vocabulary import EMBEDDER_KINDS
    from dml_core.data.tasks import TASK_NAMES
    from dml_core.learn.methods import FINE_TUNE_REGIMES
    from dml_core.pipeline.profiles import PROFILES

    def described(regime: str) -> str:
        settings = FINE_TUNE_REGIMES[regime]
        kind = EMBEDDER_KINDS[settings["embedder"]]
        if settings["embedder"] != "top_blocks":
            return kind
        blocks = settings["trained_blocks"]
        return f"{kind} ({blocks} top block{'s' if blocks != 1 else ''} + head conv)"

    lines = ["The fine-tuned pair's regime, per task, as `dml_core/pipeline/profiles.py` declares it:"]
    for name in ("quick", "full"):
        profile = PROFILES[name]
        regimes = [f"{task}: {described(profile.fine_tune_regime(task))}" for task in TASK_NAMES
                   if profile.fine_tune_regime(task) is not None]
        if regimes:
            seeds = profile.fine_tune_seeds
            lines.append(f"- {name} profile (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}): "
                         + "; ".join(regimes) + ".")
    return lines


def _task_tables(ceiling: dict) -> list[str]:
    from dml_core.data.tasks import TASK_NAMES

    lines = []
    order = {task: i for i, task in enumerate(TASK_NAMES)}  # built-in tasks first, in their order
    for task, data in sorted(ceiling["tasks"].items(), key=lambda item: order.get(item[0], len(order))):
        cost = any("ms_per_image" in row for row in data["rows"])  # backbone rows: a ms/image column
        lines += [f"### {task} ({data['profile']} profile, {data['train']:,} training images)", "",
                  "| knob | setting | method | nDCG@10 | mld@10 | gap closed@10 | Spearman ρ | seconds |" +
                  (" ms/image |" if cost else ""),
                  "|---|---|---|---|---|---|---|---|" + ("---|" if cost else "")]
        for row in data["rows"]:
            lines.append(f"| {row['knob']} | {row['setting']} | {row['method']} | " +
                         " | ".join(f"{row[k]:.3f}" for k in KEYS) + f" | {row['seconds']:.0f} |" +
                         ((f" {row['ms_per_image']:.1f} |" if "ms_per_image" in row else " – |") if cost else ""))
        for name in ("random", "oracle"):
            lines.append(f"| reference | *{name}* | – | " + " | ".join(f"{data[name][k]:.3f}" for k in KEYS) + " | – |" +
                         (" – |" if cost else ""))
        lines.append("")
    return lines
