"""``python -m dml_core bench``: build, then measure every model and the speed of the pieces.

Writes the JSON of issue 4 (metric means over seeds with ``*_std`` spreads, the dimension
ablation, timings) and regenerates ``BENCHMARKS.md`` with its PNG plots. Every number comes
from the built artifacts or from a timer in this run; nothing is typed in.
"""
from __future__ import annotations

import io
import json
import platform
import time
from pathlib import Path

import numpy as np

from . import build
from .data import get_profile, load_split
from .store import ArtifactStore, atomic_write_bytes, atomic_write_json
from .tasks import TASK_NAMES

HEADLINE = ("ndcg@10", "ndcg@100", "mld@10", "spearman")
STAGE_ORDER = ("data", "features", "label_distances", "tuning", "models")
METRIC_NAMES = {"ndcg@10": "nDCG@10", "ndcg@100": "nDCG@100", "mld@10": "mld@10", "spearman": "Spearman ρ"}
CURVE_KS = (1, 5, 10, 20, 50, 100)
QUERY_MODELS = ("binary_triplet", "log_ratio")


def collect_metrics(store: ArtifactStore, profile_name: str, tasks=TASK_NAMES) -> dict:
    """Per task: methods at the full dimension and the dimension ablation, mean and std over seeds."""
    profile = get_profile(profile_name)
    out = {}
    for task in tasks:
        runs: dict[tuple[str, int], list[dict]] = {}
        for spec in build.model_plan(profile):
            meta = store.manifest(task, "models", spec.id)["meta"]
            runs.setdefault((spec.method, meta["dim"] if spec.method != build.BASELINE else None), []).append(meta["metrics"])
        methods = {}
        for (method, dim), metrics in runs.items():
            if method == build.BASELINE or dim == profile.dim:
                methods[method] = _summarise(metrics)
        ablation = {
            method: {str(dim): _summarise(runs[(method, dim)]) for dim in (*profile.ablation_dims, profile.dim)}
            for method in build.ABLATION_METHODS
        }
        out[task] = {"methods": methods, "dim_ablation": ablation}
    return out


def collect_tuning(store: ArtifactStore, profile_name: str, tasks=TASK_NAMES) -> dict:
    """Per task and method: the validation nDCG@10 of every grid setting and the one chosen
    (empty when the profile trains with the methods' defaults)."""
    from .methods import TUNING_GRIDS

    if not get_profile(profile_name).tune:
        return {}
    out = {}
    for task in tasks:
        methods = store.manifest(task, "tuning")["meta"]["methods"]
        out[task] = {method: {**result, "grid": TUNING_GRIDS[method]} for method, result in methods.items()}
    return out


def _summarise(metrics: list[dict]) -> dict:
    keys = [k for k in metrics[0] if k.startswith(("ndcg@", "mld@")) or k == "spearman"]
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

    from .images import decode_image, to_square_array
    from .retrieval import load_catalog

    catalog = load_catalog(task, store)
    model_ids = [m for m in catalog.model_ids(main_only=True) if catalog.models[m].method in QUERY_MODELS][:2]
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
    from .embedders.features import compute_features

    images = np.asarray(load_split(store, task, "gallery").images[:n])
    backbone = build.shared_backbone()
    compute_features(backbone, images[:32], mode=build.TRAIN_MODE, progress=False)  # warm
    start = time.perf_counter()
    compute_features(backbone, images, mode=build.TRAIN_MODE, progress=False)
    return round(len(images) / (time.perf_counter() - start), 1)


def run_bench(profile_name: str, json_path: str | Path, tasks=TASK_NAMES, store: ArtifactStore | None = None,
              markdown_path: str | Path | None = "BENCHMARKS.md", speed: bool = True) -> dict:
    store = store or ArtifactStore()
    build.run_build(profile_name, tasks, store)
    report = build.last_build_report(store)
    result = {"profile": profile_name, "tasks": collect_metrics(store, profile_name, tasks),
              "tuning": collect_tuning(store, profile_name, tasks)}
    latency = query_latency(store, tasks[0])
    result["timing"] = {
        "build_s": report["build_s"],
        "build_stages_s": {name: stage["seconds"] for name, stage in report["stages"].items()},
        "features_img_per_s": feature_throughput(store, tasks[0]),
        "query_ms_p50": latency["p50"],
        "query_ms_p95": latency["p95"],
        "query": latency,
    }
    if speed:
        from .speed import log_ratio_speed

        result["speed"] = {"log_ratio_loss": log_ratio_speed()}
    result["machine"] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                         "cpus": __import__("os").cpu_count()}
    atomic_write_json(Path(json_path), result)
    if markdown_path:
        write_markdown(result, Path(markdown_path))
    return result


# ------------------------------------------------------------------------- report
METHOD_ORDER = ("log_ratio", "dense_triplet", "binary_triplet", "contrastive", "imagenet")
METHOD_COLOURS = {"log_ratio": "#6d28d9", "dense_triplet": "#a78bfa", "binary_triplet": "#ea580c",
                  "contrastive": "#f59e0b", "imagenet": "#6b7280"}


def _cell(summary: dict, key: str) -> str:
    std = summary.get(f"{key}_std", 0.0)
    return f"{summary[key]:.3f} ± {std:.3f}" if summary.get("seeds", 1) > 1 else f"{summary[key]:.3f}"


def write_markdown(result: dict, path: Path) -> None:
    plot_dir = path.parent / "docs" / "bench"
    plot_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(result, plot_dir)
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `python -m dml_core bench --profile {result['profile']}`; do not edit by hand.",
        f"Machine: {result['machine']['processor']}, {result['machine']['cpus']} CPUs ({result['machine']['platform']}).",
        "Every method trains on the same cached EfficientNet-Lite0 features with the same steps, batch",
        "size, optimiser and head; metric values are means over seeds (± standard deviation).",
        "nDCG and Spearman: higher is better; mld@10 (mean label distance of the top 10): lower is better.",
        "",
        *_summary_lines(result),
    ]
    for task, data in _tasks(result):
        lines += [f"## {task}", "", "| method | nDCG@10 | nDCG@100 | mld@10 | Spearman ρ | seeds |", "|---|---|---|---|---|---|"]
        for method in METHOD_ORDER:
            if method in data["methods"]:
                s = data["methods"][method]
                lines.append(f"| {method} | " + " | ".join(_cell(s, k) for k in HEADLINE) + f" | {s['seeds']} |")
        dims = dimensions(data["dim_ablation"])
        lines += ["", "Dimension ablation (nDCG@10):", "", "| method | " + " | ".join(f"d={d}" for d in dims) + " |",
                  "|---|" + "---|" * len(dims)]
        for method, by_dim in data["dim_ablation"].items():
            lines.append(f"| {method} | " + " | ".join(_cell(by_dim[str(d)], "ndcg@10") for d in dims) + " |")
        lines += ["", f"![nDCG@K and mld@K, {task}]({plots[task]})", ""]
    lines += ["## Dimension ablation", "", f"![dimension ablation]({plots['ablation']})", ""]
    lines += _tuning_lines(result.get("tuning") or {})
    timing = result["timing"]
    lines += [
        "## Speed",
        "",
        f"- build: {timing['build_s']:.0f} s (" + ", ".join(f"{k} {timing['build_stages_s'][k]:.0f} s" for k in STAGE_ORDER
                                                          if k in timing["build_stages_s"]) + ")",
        f"- backbone features: {timing['features_img_per_s']:.0f} images/s",
        f"- one uploaded image against {len(timing['query']['models'])} models over {timing['query']['gallery']} gallery images "
        f"(decode, backbone, heads, search): p50 {timing['query_ms_p50']:.1f} ms, p95 {timing['query_ms_p95']:.1f} ms",
    ]
    if "speed" in result:
        s = result["speed"]["log_ratio_loss"]
        lines.append(
            f"- log-ratio loss + backward: batched {s['batched_triplets_per_s']:.3g} triplets/s vs per-anchor "
            f"{s['per_anchor_triplets_per_s']:.3g} triplets/s ({s['speedup']:.1f}×)"
        )
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def _summary_lines(result: dict) -> list[str]:
    """What the tables say, computed from them: the best method per metric, log-ratio against
    binary triplet, and what each loses from the largest to the smallest dimension."""
    lines = ["## Summary", "",
             "Computed from the tables below. A method counts as best when it beats the runner-up by more than",
             "twice their combined standard deviation over seeds; otherwise both are named (≈).", ""]
    for task, data in _tasks(result):
        methods = data["methods"]
        parts = [f"best {METRIC_NAMES[key]}: {_best(methods, key)}" for key in HEADLINE]
        line = f"- **{task}**: " + ", ".join(parts)
        if {"log_ratio", "binary_triplet"} <= set(methods):
            lr, bt = methods["log_ratio"], methods["binary_triplet"]
            line += ("; log_ratio − binary_triplet: " +
                     ", ".join(f"{METRIC_NAMES[key]} {lr[key] - bt[key]:+.3f}" for key in ("ndcg@10", "spearman")))
        ablation = data["dim_ablation"]
        dims = dimensions(ablation)
        if len(dims) > 1:
            drops = {m: ablation[m][str(dims[-1])]["ndcg@10"] - ablation[m][str(dims[0])]["ndcg@10"] for m in ablation}
            line += (f"; nDCG@10 lost from d={dims[-1]} to d={dims[0]}: " +
                     ", ".join(f"{m} {drop:.3f}" for m, drop in drops.items()))
        lines.append(line)
    return [*lines, ""]


def dimensions(ablation: dict) -> list[int]:
    """The ablation's embedding widths in increasing order (JSON keys are strings and sort as text)."""
    return sorted({int(d) for by_dim in ablation.values() for d in by_dim})


def _best(methods: dict, key: str) -> str:
    sign = -1 if key.startswith("mld") else 1
    ranked = sorted(methods, key=lambda m: sign * methods[m][key], reverse=True)
    if len(ranked) < 2:
        return ranked[0]
    first, second = (methods[m] for m in ranked[:2])
    spread = 2 * float(np.hypot(first.get(f"{key}_std", 0.0), second.get(f"{key}_std", 0.0)))
    return ranked[0] if abs(first[key] - second[key]) > spread else f"{ranked[0]} ≈ {ranked[1]}"


def _tasks(result: dict) -> list[tuple[str, dict]]:
    """The result's tasks in the app's order (the JSON stores them sorted)."""
    return [(t, result["tasks"][t]) for t in TASK_NAMES if t in result["tasks"]]


def _tuning_lines(tuning: dict) -> list[str]:
    from .methods import describe_setting

    if not tuning:
        return ["## Tuning", "", "This profile trains every method with its defaults (`dml_core/methods.py`); "
                "the full profile runs every tuning grid on a validation split first.", ""]
    lines = ["## Tuning", "",
             "Before training, each compared method ran its 4-setting grid (same steps, seed and dimension for every",
             "method) on a validation split carved from the training images: 80 % to train on; of the other 20 %,",
             "a fifth are queries and the rest their gallery. The setting with the best validation nDCG@10 (**bold**) trains the",
             "method's models for every seed and dimension. The gallery and query splits are never looked at.", ""]
    for task in (t for t in TASK_NAMES if t in tuning):
        methods = tuning[task]
        lines += [f"### {task}", "", "| method | validation nDCG@10 per setting |", "|---|---|"]
        for method in METHOD_ORDER:
            if method not in methods:
                continue
            cells = [f"{describe_setting(g)}: {score:.3f}" for g, score in zip(methods[method]["grid"], methods[method]["scores"])]
            cells[methods[method]["chosen"]] = f"**{cells[methods[method]['chosen']]}**"
            lines.append(f"| {method} | " + " · ".join(cells) + " |")
        lines.append("")
    return lines


def _plots(result: dict, plot_dir: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {}
    for task, data in _tasks(result):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for method in METHOD_ORDER:
            if method not in data["methods"]:
                continue
            s = data["methods"][method]
            ks = [k for k in CURVE_KS if f"ndcg@{k}" in s]
            for ax, key in zip(axes, ("ndcg", "mld")):
                mean = np.array([s[f"{key}@{k}"] for k in ks])
                std = np.array([s.get(f"{key}@{k}_std", 0.0) for k in ks])
                ax.plot(ks, mean, marker="o", ms=3, label=method, color=METHOD_COLOURS[method])
                ax.fill_between(ks, mean - std, mean + std, alpha=0.15, color=METHOD_COLOURS[method])
        for ax, title in zip(axes, ("nDCG@K (higher is better)", "mean label distance@K (lower is better)")):
            ax.set_xscale("log")
            ax.set_xlabel("K")
            ax.set_title(f"{task}: {title}", fontsize=10)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        name = f"curves_{task}.png"
        fig.savefig(plot_dir / name, dpi=110)
        plt.close(fig)
        paths[task] = f"docs/bench/{name}"
    tasks = [task for task, _ in _tasks(result)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for method, by_dim in result["tasks"][task]["dim_ablation"].items():
            ds = dimensions({method: by_dim})
            mean = np.array([by_dim[str(d)]["ndcg@10"] for d in ds])
            std = np.array([by_dim[str(d)].get("ndcg@10_std", 0.0) for d in ds])
            ax.errorbar(ds, mean, yerr=std, marker="o", ms=4, capsize=3, label=method, color=METHOD_COLOURS[method])
        ax.set_xscale("log", base=2)
        ax.set_xticks(ds, [str(d) for d in ds])
        ax.set_xlabel("embedding dimension")
        ax.set_title(f"{task}: nDCG@10", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plot_dir / "dim_ablation.png", dpi=110)
    plt.close(fig)
    paths["ablation"] = "docs/bench/dim_ablation.png"
    return paths


def load_bench(path: str | Path) -> dict | None:
    """A bench JSON file, or None when absent or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
