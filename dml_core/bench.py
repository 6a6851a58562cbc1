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

HEADLINE = ("ndcg@10", "ndcg@100", "mld@10", "gap_closed@10", "spearman")
STAGE_ORDER = ("data", "features", "label_distances", "tuning", "models")
METRIC_NAMES = {"ndcg@10": "nDCG@10", "ndcg@100": "nDCG@100", "mld@10": "mld@10", "gap_closed@10": "gap closed@10",
                "spearman": "Spearman ρ", "ndcg_norm@10": "normalised nDCG@10"}
SUMMARISED = ("ndcg@", "mld@", "gap_closed@", "ndcg_norm@")
#: Pairs the summary puts side by side (first − second).
COMPARISONS = (("log_ratio", "binary_triplet"), ("log_ratio_ft", "binary_triplet_ft"), ("rank_n_contrast", "log_ratio"))
CURVE_KS = (1, 5, 10, 20, 50, 100)
QUERY_MODELS = ("binary_triplet", "log_ratio")


def collect_metrics(store: ArtifactStore, profile_name: str, tasks=TASK_NAMES) -> dict:
    """Per task: every method at the full dimension (frozen heads, fine-tuned variants, the
    ImageNet baseline) and the dimension ablation, mean and std over seeds, plus what random
    retrieval and the oracle score on the same queries (the scale of every number)."""
    profile = get_profile(profile_name)
    out = {}
    for task in tasks:
        runs: dict[tuple[str, int | None], list[dict]] = {}
        for spec in build.model_plan(profile, task):
            meta = store.manifest(task, "models", spec.id)["meta"]
            runs.setdefault((spec.method, meta["dim"] if spec.method != build.BASELINE else None), []).append(meta["metrics"])
        methods = {method: _summarise(metrics) for (method, dim), metrics in runs.items()
                   if method == build.BASELINE or dim == profile.dim}
        ablation = {
            method: {str(dim): _summarise(runs[(method, dim)]) for (m, dim) in runs if m == method}
            for method in build.ABLATION_METHODS if any(m == method and dim != profile.dim for m, dim in runs)
        }
        out[task] = {"methods": methods, "dim_ablation": ablation, "reference": reference_scores(store, task)}
    return out


def reference_scores(store: ArtifactStore, task: str, ks=CURVE_KS) -> dict:
    """{"random": ..., "oracle": ...}: the expected scores of a random ranking and those of the
    label-space ranking, over the task's queries and gallery."""
    from .metrics import evaluate

    label_dist = build.query_gallery_label_distance(store, task)
    placeholder = np.ones((label_dist.shape[0], 1)), np.ones((label_dist.shape[1], 1))  # the references ignore embeddings
    result = evaluate(*placeholder, label_dist, ks=ks, metric="l2")
    return {name: {k: round(float(v), 4) for k, v in result[name].items()} for name in ("random", "oracle")}


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
              markdown_path: str | Path | None = "BENCHMARKS.md", speed: bool = True, workers: int | None = None,
              device: str = "auto") -> dict:
    from .workers import default_workers

    store = store or ArtifactStore()
    workers = workers or default_workers()
    build.run_build(profile_name, tasks, store, workers=workers, device=device)
    report = build.last_build_report(store)
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
        from .speed import contention, log_ratio_speed

        data = build.TaskFeatures(store, tasks[0], progress=False)
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


# ------------------------------------------------------------------------- report
METHOD_ORDER = ("log_ratio_ft", "binary_triplet_ft", "log_ratio", "rank_n_contrast", "dense_triplet", "binary_triplet",
                "contrastive", "imagenet")
METHOD_COLOURS = {"log_ratio": "#6d28d9", "log_ratio_ft": "#3b0764", "rank_n_contrast": "#2563eb", "dense_triplet": "#a78bfa",
                  "binary_triplet": "#ea580c", "binary_triplet_ft": "#9a3412", "contrastive": "#eab308", "imagenet": "#6b7280"}


def _cell(summary: dict, key: str) -> str:
    std = summary.get(f"{key}_std", 0.0)
    return f"{summary[key]:.3f} ± {std:.3f}" if summary.get("seeds", 1) > 1 else f"{summary[key]:.3f}"


def _reference_row(name: str, scores: dict) -> str:
    cells = [f"{scores[k]:.3f}" if k in scores else "–" for k in HEADLINE]
    return f"| *{name}* | " + " | ".join(cells) + " | – |"


def _end_to_end_lines(result: dict) -> list[str]:
    """Which tasks have the end-to-end track, and where to read why the others do not."""
    with_ft = [task for task, data in _tasks(result) if any(m.endswith("_ft") for m in data["methods"])]
    without = [task for task, data in _tasks(result) if task not in with_ft]
    if not with_ft:
        return []
    line = f"The end-to-end track ran on {', '.join(with_ft)}"
    if without:
        line += (f", not on {' or '.join(without)}: the Ceiling section's embedder rows compare the compact CNN with the"
                 " frozen head where it was measured")
    return [line + "."]


def write_markdown(result: dict, path: Path) -> None:
    plot_dir = path.parent / "docs" / "bench"
    plot_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(result, plot_dir)
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `python -m dml_core bench --profile {result['profile']}`; do not edit by hand.",
        f"Machine: {result['machine']['processor']}, {result['machine']['cpus']} CPUs ({result['machine']['platform']}).",
        "Every frozen-feature method trains the same MLP head on the same cached EfficientNet-Lite0 features with the",
        "same steps, batch size and optimiser; the `_ft` variants train a compact CNN end to end on the task's images",
        "(`dml_core/cnn.py`), both with the same budget. Values are means over seeds (± standard deviation).",
        *_end_to_end_lines(result),
        "nDCG, gap closed and Spearman: higher is better; mld@10 (mean label distance of the top 10): lower is better.",
        "*random* is the expected score of a random ranking, *oracle* the label-space ranking: every number sits",
        "between them, and gap closed@10 says where (0 = random, 1 = oracle) for mld@10.",
        "",
        *_summary_lines(result),
    ]
    header = "| method | " + " | ".join(METRIC_NAMES[k] for k in HEADLINE) + " | seeds |"
    for task, data in _tasks(result):
        lines += [f"## {task}", "", header, "|---|" + "---|" * (len(HEADLINE) + 1)]
        for method in METHOD_ORDER:
            if method in data["methods"]:
                s = data["methods"][method]
                lines.append(f"| {method} | " + " | ".join(_cell(s, k) for k in HEADLINE) + f" | {s['seeds']} |")
        reference = data.get("reference", {})
        for name in ("random", "oracle"):
            if name in reference:
                lines.append(_reference_row(name, reference[name]))
        dims = dimensions(data["dim_ablation"])
        seeds = {d: "/".join(str(n) for n in sorted({by_dim[str(d)]["seeds"] for by_dim in data["dim_ablation"].values()
                                                        if str(d) in by_dim})) for d in dims}
        lines += ["", "Dimension ablation (nDCG@10; seeds: " + ", ".join(f"d={d} {n}" for d, n in seeds.items()) + "):", "",
                  "| method | " + " | ".join(f"d={d}" for d in dims) + " |",
                  "|---|" + "---|" * len(dims)]
        for method, by_dim in data["dim_ablation"].items():
            lines.append(f"| {method} | " + " | ".join(_cell(by_dim[str(d)], "ndcg@10") if str(d) in by_dim else "–"
                                                      for d in dims) + " |")
        lines += ["", f"![nDCG@K and mld@K, {task}]({plots[task]})", ""]
    lines += ["## Dimension ablation", "", f"![dimension ablation]({plots['ablation']})", ""]
    lines += _tuning_lines(result.get("tuning") or {})
    lines += _ceiling_lines(path.parent / "docs" / "bench" / "ceiling.json")
    lines += _scale_lines(path.parent / SCALE_JSON)
    timing = result["timing"]
    lines += [
        "## Speed",
        "",
        f"- build: {timing['build_s']:.0f} s with {timing.get('build_workers', 1)} single-threaded worker process(es) on "
        f"{timing.get('build_device', 'cpu')} (" + ", ".join(f"{k} {timing['build_stages_s'][k]:.0f} s" for k in STAGE_ORDER
                                                            if k in timing["build_stages_s"]) + ")",
        f"- backbone features: {timing['features_img_per_s']:.0f} images/s",
        f"- one uploaded image against {len(timing['query']['models'])} models over {timing['query']['gallery']} gallery images "
        f"(decode, backbone, heads, search): p50 {timing['query_ms_p50']:.1f} ms, p95 {timing['query_ms_p95']:.1f} ms",
    ]
    if "contention" in timing:
        c = timing["contention"]
        lines.append(
            f"- training on a shared CPU (a competing process keeps 2 threads busy): the build's {c['workers']} single-threaded "
            f"workers {c['build_steps_per_s_alone']:.1f} → {c['build_steps_per_s_shared']:.1f} steps/s, "
            f"**slowdown {c['build_slowdown']:.2f}×**; one process with {c['workers']} threads (the layout before) "
            f"{c['one_process_steps_per_s_alone']:.1f} → {c['one_process_steps_per_s_shared']:.1f} steps/s, "
            f"slowdown {c['one_process_slowdown']:.2f}×"
        )
    lines += _first_run_lines(path.parent / QUICK_JSON, path.parent / QUICK_SHARED_REPORT)
    if "speed" in result:
        s = result["speed"]["log_ratio_loss"]
        lines.append(
            f"- log-ratio loss + backward: batched {s['batched_triplets_per_s']:.3g} triplets/s vs per-anchor "
            f"{s['per_anchor_triplets_per_s']:.3g} triplets/s ({s['speedup']:.1f}×)"
        )
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


#: ``bench --profile quick --json`` of the quick build alone, and a quick ``build``'s report
#: (``DML_HOME/build-report.json``) made while one other CPU-bound program ran, with the report of the
#: same build run alone just after it under ``"alone"`` (the slowdown is a ratio from one sitting);
#: relative to BENCHMARKS.md.
QUICK_JSON = Path("docs") / "bench" / "quick.json"
QUICK_SHARED_REPORT = Path("docs") / "bench" / "quick-build-shared-cpu.json"


def _stage_text(seconds: float, stages: dict) -> str:
    return f"{seconds:.0f} s (" + ", ".join(f"{k} {stages[k]:.0f} s" for k in STAGE_ORDER if k in stages) + ")"


def _report_stages(report: dict) -> dict:
    return {name: stage["seconds"] for name, stage in report["stages"].items()}


def _first_run_lines(quick_path: Path, shared_path: Path) -> list[str]:
    """The quick build's time alone and on a shared CPU (what ``make run`` costs), where measured."""
    quick, shared = load_bench(quick_path), load_bench(shared_path)
    lines = []
    if quick and "timing" in quick:
        t = quick["timing"]
        lines.append(f"- quick build (what `make run` builds, `{QUICK_JSON}` of {quick.get('generated', '?')}): "
                     f"{_stage_text(t['build_s'], t['build_stages_s'])}")
    if shared and "stages" in shared:
        line = (f"- the same quick build while one other CPU-bound program ran (`{shared_path.name}`"
                f"{': ' + shared['competitor'] if shared.get('competitor') else ''}): "
                f"{_stage_text(shared['build_s'], _report_stages(shared))}")
        alone = shared.get("alone")
        if alone and "stages" in alone:
            line += (f", against {_stage_text(alone['build_s'], _report_stages(alone))} alone, run just after it: "
                     f"**{shared['build_s'] / alone['build_s']:.2f}× slower**")
        lines.append(line)
    return lines


def _ceiling_lines(ceiling_path: Path) -> list[str]:
    """The "Ceiling" section from ``python -m dml_core ceiling`` (docs/bench/ceiling.json), if run."""
    ceiling = load_bench(ceiling_path)
    if not ceiling:
        return []
    from .ceiling import markdown_lines

    return markdown_lines(ceiling)


#: Where ``python -m dml_core scale`` keeps its runs, relative to BENCHMARKS.md.
SCALE_JSON = Path("docs") / "bench" / "scale.json"


def _scale_lines(scale_path: Path) -> list[str]:
    """The "Scale" section from ``python -m dml_core scale`` (docs/bench/scale.json), if run."""
    from .scale import markdown_lines

    scale = load_bench(scale_path)
    return markdown_lines(scale) if scale else []


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
        for first, second in COMPARISONS:
            if {first, second} <= set(methods):
                a, b = methods[first], methods[second]
                line += (f"; {first} − {second}: " +
                         ", ".join(f"{METRIC_NAMES[key]} {a[key] - b[key]:+.3f}" for key in ("ndcg@10", "gap_closed@10", "spearman")
                                   if key in a and key in b))
        ablation = data["dim_ablation"]
        drops = {}
        for method, by_dim in ablation.items():
            dims = dimensions({method: by_dim})
            if len(dims) > 1:
                drops[method] = (dims, by_dim[str(dims[-1])]["ndcg@10"] - by_dim[str(dims[0])]["ndcg@10"])
        if drops:
            line += "; nDCG@10 lost from the largest to the smallest dimension: " + ", ".join(
                f"{m} {drop:.3f} (d={dims[-1]} → {dims[0]})" for m, (dims, drop) in drops.items())
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
    """The result's tasks in the app's order (the JSON stores them sorted): built-in, then imported."""
    return [(t, result["tasks"][t]) for t in task_order(result["tasks"])]


def task_order(names) -> list[str]:
    return [t for t in TASK_NAMES if t in names] + sorted(t for t in names if t not in TASK_NAMES)


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
    for task in task_order(tuning):
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
        for name, style in (("random", dict(color="#9ca3af", ls="--")), ("oracle", dict(color="#16a34a", ls=":"))):
            reference = data.get("reference", {}).get(name, {})
            for ax, key in zip(axes, ("ndcg", "mld")):
                ks = [k for k in CURVE_KS if f"{key}@{k}" in reference]
                if ks:
                    ax.plot(ks, [reference[f"{key}@{k}"] for k in ks], label=name, lw=1.2, **style)
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
