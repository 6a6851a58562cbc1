"""The catalog's stored metrics as tables: per model, per method (mean ± std over seeds), curves, the ablation."""
from __future__ import annotations

import numpy as np
import pandas as pd

from dml_core.app.labels import kind_label
from dml_core.core.vocabulary import HEADLINE_METRICS, HEADLINE_PAIR, METRIC_LABELS, PRETRAINED, method_family


def metrics_table(catalog, dim: int | None = None) -> pd.DataFrame:
    """One row per model of the catalog: model, method, kind, family, dim, seed, origin and the
    headline metrics from its stored ``meta["metrics"]`` (evaluated at build / training time).

    dim: keep only models of this embedding width (the ImageNet baseline is always kept).
    """
    rows = []
    for model_id in catalog.model_ids():
        meta = catalog.models[model_id].meta
        if dim is not None and meta["method"] not in PRETRAINED and meta["dim"] != dim:
            continue
        metrics = meta.get("metrics", {})
        row = {"model": model_id, "method": meta["method"], "kind": kind_label(meta), "family": method_family(meta["method"]),
               "dim": meta["dim"], "seed": meta.get("seed", 0), "origin": meta.get("origin", "build")}
        for key in HEADLINE_METRICS:
            row[METRIC_LABELS[key]] = metrics.get(key, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def method_summary(catalog, dim: int) -> pd.DataFrame:
    """Headline metrics per method (with its kind) at width ``dim`` from the build's models: mean over seeds,
    with the standard deviation (ddof 1) as ``<metric> ±`` columns when there are several."""
    table = metrics_table(catalog, dim)
    if table.empty:
        return table
    table = table[table["origin"] == "build"]
    names = [METRIC_LABELS[k] for k in HEADLINE_METRICS]
    grouped = table.groupby("method", sort=False)
    out = grouped[names].mean()
    spread = grouped[names].std(ddof=1).fillna(0.0)
    for name in names:
        out[f"{name} ±"] = spread[name]
    out.insert(0, "seeds", grouped.size())
    out.insert(0, "family", [method_family(m) for m in out.index])
    out.insert(0, "kind", grouped["kind"].first())
    return out.reset_index()


def curve_frame(catalog, dim: int) -> pd.DataFrame:
    """Long table (method, model, K, metric, value) of nDCG@K and mld@K over every stored K,
    for the build's models of width ``dim`` (mean over seeds) and the ImageNet baseline."""
    rows = []
    for model_id in catalog.model_ids():
        meta = catalog.models[model_id].meta
        if meta.get("origin", "build") != "build":
            continue
        if meta["method"] not in PRETRAINED and meta["dim"] != dim:
            continue
        for key, value in meta.get("metrics", {}).items():
            if "@" not in key:
                continue
            metric, k = key.split("@")
            rows.append({"method": meta["method"], "model": model_id, "K": int(k), "metric": metric, "value": float(value)})
    frame = pd.DataFrame(rows, columns=["method", "model", "K", "metric", "value"])
    if frame.empty:
        return frame
    return frame.groupby(["method", "metric", "K"], as_index=False, sort=False)["value"].mean()


def ablation_frame(catalog, methods=HEADLINE_PAIR, key: str = "ndcg@10") -> pd.DataFrame:
    """nDCG@10 (or ``key``) against embedding width for ``methods``: mean and std over seeds."""
    rows = []
    for model_id in catalog.model_ids():
        meta = catalog.models[model_id].meta
        if meta["method"] in methods and meta.get("origin", "build") == "build" and key in meta.get("metrics", {}):
            rows.append({"method": meta["method"], "dim": int(meta["dim"]), "value": float(meta["metrics"][key])})
    frame = pd.DataFrame(rows, columns=["method", "dim", "value"])
    if frame.empty:
        return frame.assign(std=[])
    grouped = frame.groupby(["method", "dim"], as_index=False)["value"]
    out = grouped.mean()
    out["std"] = grouped.std(ddof=1)["value"].fillna(0.0).to_numpy()
    out["seeds"] = grouped.size()["size"].to_numpy()
    return out.sort_values(["method", "dim"]).reset_index(drop=True)


def lab_comparison(catalog, model_id: str) -> pd.DataFrame:
    """A lab model's headline metrics next to the build's models of the same width."""
    dim = catalog.models[model_id].meta["dim"]
    table = metrics_table(catalog, dim)
    keep = (table["origin"] == "build") | (table["model"] == model_id)
    return table[keep].reset_index(drop=True)
