"""Scores beside their scale, and results beside where they came from (Benchmarks, Training lab).

A score means little alone: a random ranking already scores nDCG@10 ≈ 0.74 on the built-in
tasks, so 0.85 is much less than it reads. Every number these pages show therefore comes
with what random retrieval and the oracle (the gallery ranked by true label distance) score
on the same queries and gallery, and every chart whose value axis is a choice draws it from
random retrieval's score to the oracle's, saying so. Results shipped with the repository
(``BENCHMARKS.json``) are another profile on another machine: they are labelled with both.
"""
from __future__ import annotations

import os
import platform
import time

import numpy as np
import pandas as pd

from dml_core.core.store import ArtifactStore, read_json
from dml_core.core.vocabulary import (
    BASELINE,
    HEADLINE_METRICS,
    METRIC_LABELS,
    REFERENCE_COLOURS,
    REFERENCE_NAMES,
    method_family,
)
from dml_core.pipeline.stages import BUILD_REPORT

#: How the scale is drawn on every chart: random retrieval dashed grey, the oracle dotted green (plotly line dicts).
REFERENCE_LINES = {"random": dict(color=REFERENCE_COLOURS["random"], dash="dash", width=1.6),
                   "oracle": dict(color=REFERENCE_COLOURS["oracle"], dash="dot", width=1.8)}


# --------------------------------------------------------------------------------- scale
def reference_frame(reference: dict, label_column: str = "method", keys=HEADLINE_METRICS, as_text: bool = False) -> pd.DataFrame:
    """Two rows, "random retrieval" and "oracle", in the columns of ``app.tables.metrics_table``
    (headline names), from ``{"random": {...}, "oracle": {...}}`` (``bench.run.reference_scores``);
    ``as_text`` formats them like ``app.benchmarks.bench_method_table``'s cells."""
    def cell(name, key):
        value = reference[name].get(key, np.nan)
        return (f"{value:.3f}" if np.isfinite(value) else "–") if as_text else value

    rows = [{label_column: REFERENCE_NAMES[name], **{METRIC_LABELS[k]: cell(name, k) for k in keys}}
            for name in REFERENCE_NAMES if name in reference]
    return pd.DataFrame(rows)


def with_reference(table: pd.DataFrame, reference: dict, label_column: str = "method",
                   as_text: bool = False) -> tuple[pd.DataFrame, int]:
    """``table`` with the two reference rows appended (other columns empty), and their count."""
    rows = reference_frame(reference, label_column, as_text=as_text)
    rows = rows[[c for c in rows.columns if c in table.columns]]
    out = pd.concat([table, rows], ignore_index=True)
    for column in table.columns:
        if column in rows.columns:
            continue
        if pd.api.types.is_integer_dtype(table[column]):  # a count: "3", never "3.0"; blank on the scale rows
            out[column] = [str(v) for v in table[column]] + [""] * len(rows)
        elif not pd.api.types.is_numeric_dtype(table[column]):
            out[column] = out[column].fillna("")
    return out, len(rows)


def value_axis(reference: dict, key: str = "ndcg@10", pad: float = 0.02) -> tuple[list[float], str]:
    """An honest value axis for ``key``: from random retrieval's score to the oracle's (padded a
    little, so neither sits on the frame), and the sentence that says so on the chart."""
    low, high = sorted((reference["random"][key], reference["oracle"][key]))
    span = high - low
    name = METRIC_LABELS.get(key, key)
    return ([low - pad * span, high + pad * span],
            f"{name} axis from random retrieval ({reference['random'][key]:.3f}) to the oracle ({reference['oracle'][key]:.3f})")


def headline(summary: pd.DataFrame, reference: dict, dim: int) -> str | None:
    """Markdown: the best method of a summary table with its score's scale, e.g. "log ratio:
    nDCG@10 0.851 (random retrieval 0.743, oracle 1) — it closes 38% of the mld@10 gap"."""
    trained = summary[summary["family"].isin(("binary", "continuous"))] if "family" in summary else summary
    if trained.empty or METRIC_LABELS["gap_closed@10"] not in trained or trained[METRIC_LABELS["gap_closed@10"]].isna().all():
        return None
    best = trained.loc[trained[METRIC_LABELS["gap_closed@10"]].idxmax()]
    random, oracle = reference["random"], reference["oracle"]
    text = (f"**Best here: {best['method']}** (d={dim}): nDCG@10 **{best['nDCG@10']:.3f}**, where random "
            f"retrieval already scores **{random['ndcg@10']:.3f}** and the oracle {oracle['ndcg@10']:.0f}. "
            f"Its top-10 results are {best['mld@10']:.3f} from the query in label distance on average; random "
            f"retrieval's are {random['mld@10']:.3f}, the oracle's {oracle['mld@10']:.3f}: it closes "
            f"**{100 * best['gap closed@10']:.0f}%** of that gap.")
    baseline = summary[summary["method"] == BASELINE]
    if not baseline.empty and np.isfinite(baseline[METRIC_LABELS["gap_closed@10"]].iloc[0]):
        text += f" Frozen ImageNet features, untrained, close {100 * baseline['gap closed@10'].iloc[0]:.0f}%."
    return text


# ----------------------------------------------------------------------------- provenance
def this_machine() -> str:
    return f"{platform.machine()} · {os.cpu_count()} CPUs · {platform.platform()}"


def build_provenance(root, profile) -> str:
    """Where this build's numbers come from: profile, sizes, seeds, when and how long it built."""
    sizes = profile.sizes
    text = (f"profile <code>{profile.name}</code>: {sizes['train']:,} training / {sizes['gallery']:,} gallery / "
            f"{sizes['query']:,} query images per task, {len(profile.seeds)} seed(s), {profile.steps} steps per model")
    path = ArtifactStore(root).root / BUILD_REPORT
    report = read_json(path)
    if report and path.is_file():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
        built = f"{report.get('profile', '?')} profile: {', '.join(report.get('tasks') or []) or '?'}"
        text += (f"; built on this machine ({this_machine()}) on {when}, the last build run ({built}) took "
                 f"{report['build_s']:.0f} s with {report.get('workers', 1)} worker(s) on {report.get('device', 'cpu')}")
    return text


def shipped_provenance(bench: dict) -> str:
    """Where the shipped ``BENCHMARKS.json`` comes from: its profile, sizes, seeds, machine, date."""
    from dml_core.pipeline.profiles import PROFILES

    name = bench.get("profile", "?")
    text = f"profile <code>{name}</code>"
    profile = PROFILES.get(name)
    if profile is not None:
        sizes = profile.sizes
        text += (f": {sizes['train']:,} training / {sizes['gallery']:,} gallery / {sizes['query']:,} query images per "
                 f"task, {len(profile.seeds)} seeds, {profile.steps} steps per model"
                 + (", each method tuned on a validation split first" if profile.tune else ""))
    machine = bench.get("machine") or {}
    if machine:
        text += f"; measured on {machine.get('processor', '?')} · {machine.get('cpus', '?')} CPUs · {machine.get('platform', '?')}"
    device = (bench.get("timing") or {}).get("build_device")
    if device:
        text += f", training on {device}"
    generated = bench.get("generated")
    text += f", {generated}" if generated else "; the file does not record when it was run"
    return text


def shipped_timing(bench: dict) -> str | None:
    """The shipped run's timings, said to belong to that run's profile and machine."""
    timing = bench.get("timing") or {}
    facts = []
    if "build_s" in timing:
        facts.append(f"the whole {bench.get('profile', '?')} build {timing['build_s']:.0f} s")
    if "features_img_per_s" in timing:
        facts.append(f"backbone {timing['features_img_per_s']:.0f} images/s")
    if "query_ms_p50" in timing:
        facts.append(f"one uploaded image p50 {timing['query_ms_p50']:.0f} ms, p95 {timing.get('query_ms_p95', float('nan')):.0f} ms")
    return ("On the machine that ran it: " + " · ".join(facts) + ". Not measured here.") if facts else None


def shipped_reference(bench: dict, task: str) -> dict | None:
    return ((bench.get("tasks") or {}).get(task) or {}).get("reference")


def bench_method_table(bench: dict, task: str) -> pd.DataFrame | None:
    """The bench JSON's headline table of one task: value ± std strings per method."""
    methods = (bench.get("tasks", {}).get(task) or {}).get("methods")
    if not methods:
        return None
    rows = []
    for method, summary in methods.items():
        row = {"method": method, "family": method_family(method), "seeds": summary.get("seeds", 1)}
        for key in HEADLINE_METRICS:
            row[METRIC_LABELS[key]] = _with_std(summary, key)
        rows.append(row)
    return pd.DataFrame(rows)


def bench_ablation_table(bench: dict, task: str, key: str = "ndcg@10") -> pd.DataFrame | None:
    ablation = (bench.get("tasks", {}).get(task) or {}).get("dim_ablation")
    if not ablation:
        return None
    from dml_core.bench.report import dimensions

    rows = [{"method": method, **{f"d={d}": _with_std(by_dim[str(d)], key) for d in dimensions(ablation) if str(d) in by_dim}}
            for method, by_dim in ablation.items()]
    return pd.DataFrame(rows)


def bench_tuning_table(bench: dict, task: str) -> pd.DataFrame | None:
    """The bench JSON's tuning results of one task: one row per method and grid setting."""
    from dml_core.learn.methods import describe_setting

    tuning = (bench.get("tuning") or {}).get(task)
    if not tuning:
        return None
    rows = [{"method": method, "setting": describe_setting(setting), "validation nDCG@10": round(score, 4),
             "chosen": "✓" if i == result["chosen"] else ""}
            for method, result in tuning.items() for i, (setting, score) in enumerate(zip(result["grid"], result["scores"]))]
    return pd.DataFrame(rows)


def _with_std(summary: dict, key: str) -> str:
    if key not in summary:
        return "–"
    std = summary.get(f"{key}_std", 0.0)
    return f"{summary[key]:.3f} ± {std:.3f}" if summary.get("seeds", 1) > 1 else f"{summary[key]:.3f}"
