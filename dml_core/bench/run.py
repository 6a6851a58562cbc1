"""``python -m dml_core bench``: build, then measure every model and the speed of the pieces.

Writes the JSON of issue 4 (metric means over seeds with ``*_std`` spreads, the dimension
ablation, timings) and regenerates ``BENCHMARKS.md`` with its PNG plots. Every number comes
from the built artifacts or from a timer in this run; nothing is typed in.
"""
from __future__ import annotations

import io
import platform
import time
from pathlib import Path

import numpy as np

from dml_core.bench.report import write_markdown
from dml_core.core.store import ArtifactStore, atomic_write_json, read_json
from dml_core.core.vocabulary import BASELINE, HEADLINE_PAIR
from dml_core.data.label_distances import query_gallery_label_distance
from dml_core.data.splits import load_split
from dml_core.data.tasks import TASK_NAMES
from dml_core.evaluate.metrics import DEFAULT_KS
from dml_core.features.backbone import TRAIN_MODE, shared_backbone
from dml_core.learn.methods import embedder_kind
from dml_core.pipeline.features import TaskFeatures
from dml_core.pipeline.plan import ABLATION_METHODS, model_plan
from dml_core.pipeline.profiles import get_profile
from dml_core.pipeline.stages import BUILD_REPORT, run_build

SUMMARISED = ("ndcg@", "mld@", "gap_closed@", "ndcg_norm@")


def collect_metrics(store: ArtifactStore, profile_name: str, tasks=TASK_NAMES) -> dict:
    """Per task: every method at the full dimension (frozen heads, fine-tuned variants, the
    ImageNet baseline; each with its kind, ``learn.methods.embedder_kind``) and the dimension ablation, mean and std over seeds, plus what random
    retrieval and the oracle score on the same queries (the scale of every number)."""
    profile = get_profile(profile_name)
    out = {}
    for task in tasks:
        runs: dict[tuple[str, int | None], list[dict]] = {}
        kinds = {}
        for spec in model_plan(profile, task):
            meta = store.manifest(task, "models", spec.id)["meta"]
            runs.setdefault((spec.method, meta["dim"] if spec.method != BASELINE else None), []).append(meta["metrics"])
            kinds[spec.method] = "pretrained" if spec.method == BASELINE else embedder_kind(spec.method, meta.get("config"))
        methods = {method: {**_summarise(metrics), "kind": kinds[method]} for (method, dim), metrics in runs.items()
                   if method == BASELINE or dim == profile.dim}
        ablation = {
            method: {str(dim): _summarise(runs[(method, dim)]) for (m, dim) in runs if m == method}
            for method in ABLATION_METHODS if any(m == method and dim != profile.dim for m, dim in runs)
        }
        out[task] = {"methods": methods, "dim_ablation": ablation, "reference": reference_scores(store, task)}
    return out


def reference_scores(store: ArtifactStore, task: str, ks=DEFAULT_KS) -> dict:
    """{"random": ..., "oracle": ...}: the expected scores of a random ranking and those of the
    label-space ranking, over the task's queries and gallery."""
    from dml_core.evaluate.metrics import evaluate

    label_dist = query_gallery_label_distance(store, task)
    placeholder = np.ones((label_dist.shape[0], 1)), np.ones((label_dist.shape[1], 1))  # the references ignore embeddings
    result = evaluate(*placeholder, label_dist, ks=ks, metric="l2")
    return {name: {k: round(float(v), 4) for k, v in result[name].items()} for name in ("random", "oracle")}


def collect_tuning(store: ArtifactStore, profile_name: str, tasks=TASK_NAMES) -> dict:
    """Per task and method: the validation nDCG@10 of every grid setting and the one chosen
    (empty when the profile trains with the methods' defaults)."""
    from dml_core.learn.methods import TUNING_GRIDS

    if not get_profile(profile_name).tune:
        return {}
    out = {}
    for task in tasks:
        methods = store.manifest(task, "tuning")["meta"]["methods"]
        out[task] = {method: {**result, "grid": TUNING_GRIDS[method]} for method, result in methods.items()}
    return out


def _summarise(metrics: list[dict]) -> dict:
    keys = [k for k in metrics[0] if k.startswith(SUMMARISED) or k == "spearman"]
    summary = {}
    for key in keys:
        values = np.array([m[key] for m in metrics], dtype=np.float64)
        summary[key] = round(float(values.mean()), 4)
        summary[f"{key}_std"] = round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 4)
    summary["seeds"] = len(metrics)
    return summary


def query_latency(store: ArtifactStore, task: str, repeats: int = 60) -> dict:
    """Upload path end to end: JPEG bytes → decode → backbone → two heads → two searches."""
    from PIL import Image

    from dml_core.core.images import decode_image, to_square_array
    from dml_core.serve.catalog import load_catalog

    catalog = load_catalog(task, store)
    model_ids = [m for m in catalog.model_ids(main_only=True) if catalog.models[m].method in HEADLINE_PAIR][:2]
    buffers = []
    for i in range(repeats):
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(catalog.queries.images[i % len(catalog.queries)])).resize((480, 480)).save(buffer, "JPEG")
        buffers.append(buffer.getvalue())
    size = catalog.gallery.images.shape[1]
    catalog.hits_for_image(to_square_array(decode_image(buffers[0]), size), model_ids, 10)  # warm
    times = []
    for data in buffers:
        start = time.perf_counter()
        catalog.hits_for_image(to_square_array(decode_image(data), size), model_ids, 10)
        times.append((time.perf_counter() - start) * 1000)
    return {"models": model_ids, "gallery": len(catalog.gallery), "repeats": repeats,
            "p50": round(float(np.percentile(times, 50)), 2), "p95": round(float(np.percentile(times, 95)), 2)}


def feature_throughput(store: ArtifactStore, task: str, n: int = 256) -> float:
    """Images/s of backbone features (preprocess + forward, ``TRAIN_MODE``) on stored images."""
    from dml_core.features.cache import compute_features

    images = np.asarray(load_split(store, task, "gallery").images[:n])
    backbone = shared_backbone()
    compute_features(backbone, images[:32], mode=TRAIN_MODE, progress=False)  # warm
    start = time.perf_counter()
    compute_features(backbone, images, mode=TRAIN_MODE, progress=False)
    return round(len(images) / (time.perf_counter() - start), 1)


def run_bench(profile_name: str, json_path: str | Path, tasks=TASK_NAMES, store: ArtifactStore | None = None,
              markdown_path: str | Path | None = "BENCHMARKS.md", speed: bool = True, workers: int | None = None,
              device: str = "auto") -> dict:
    from dml_core.core.workers import default_workers

    store = store or ArtifactStore()
    workers = workers or default_workers()
    run_build(profile_name, tasks, store, workers=workers, device=device)
    report = read_json(store.root / BUILD_REPORT)
    result = {"profile": profile_name, "tasks": collect_metrics(store, profile_name, tasks),
              "tuning": collect_tuning(store, profile_name, tasks)}
    latency = query_latency(store, tasks[0])
    result["timing"] = {
        "build_s": report["build_s"],
        "build_stages_s": {name: stage["seconds"] for name, stage in report["stages"].items()},
        "build_workers": report.get("workers", 1),
        "build_device": report.get("device", "cpu"),
        "features_img_per_s": feature_throughput(store, tasks[0]),
        "query_ms_p50": latency["p50"],
        "query_ms_p95": latency["p95"],
        "query": latency,
    }
    if speed:
        from dml_core.bench.speed import contention, log_ratio_speed

        data = TaskFeatures(store, tasks[0], progress=False)
        shared = contention(data.features["train"], data.train.labels, tasks[0], workers)
        result["timing"]["contention"] = shared
        result["timing"]["contention_slowdown"] = shared["build_slowdown"]
        result["speed"] = {"log_ratio_loss": log_ratio_speed()}
    result["machine"] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                         "cpus": __import__("os").cpu_count()}
    result["generated"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    atomic_write_json(Path(json_path), result)
    if markdown_path:
        write_markdown(result, Path(markdown_path))
    return result
