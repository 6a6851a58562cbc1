"""Benchmarks: the metrics of this build's models, curves over K, the dimension ablation."""
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from dml_core import views
from dml_core.bench import load_bench
from dml_core.build import stored_profile
from dml_core.store import ArtifactStore
from pages import _common as ui

BENCH_JSON = Path(__file__).resolve().parents[1] / "BENCHMARKS.json"

task = ui.task_selector()
catalog = ui.catalog_or_none(task)
if catalog is None:
    st.stop()
profile = stored_profile(ArtifactStore(ui.home()), task)

ui.page_header("Benchmarks", f"Every model of this build on the <b>{ui.TASK_TITLES[task].lower()}</b> task: "
               f"{len(catalog.queries)} queries against {len(catalog.gallery)} gallery images "
               f"(profile <code>{profile.name}</code>).")

with st.expander("What the methods and metrics mean"):
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Methods**")
        for method in ("imagenet", "contrastive", "binary_triplet", "dense_triplet", "log_ratio"):
            colour = views.method_colour(method)
            st.markdown(f"<span class='bb-dot' style='background:{colour}'></span>**{method}** — "
                        f"{views.method_definition(method)}", unsafe_allow_html=True)
        st.caption("Warm colours: binary supervision (similar / dissimilar). Violet: continuous supervision "
                   "(degrees of similarity). Grey: pretrained, not trained on the task.")
    with right:
        st.markdown("**Metrics** (mean over the queries; d = label distance to the query)")
        for name, text in views.METRIC_DEFINITIONS.items():
            st.markdown(f"**{name}** — {text}")

summary = views.method_summary(catalog, profile.dim)
st.subheader(f"Methods at d={profile.dim}")
if summary.empty:
    st.info("No build models at this dimension yet.")
else:
    columns = ["method", "family", "seeds", "nDCG@10", "nDCG@100", "mld@10", "Spearman ρ"]
    if summary["seeds"].max() > 1:
        columns += [c for c in summary.columns if c.endswith(" ±")]
    ui.metric_table(summary[columns])

curves = views.curve_frame(catalog, profile.dim)
left, right = st.columns(2, gap="large")
for column, metric, title in ((left, "ndcg", "nDCG@K (higher is better)"), (right, "mld", "mean label distance@K (lower is better)")):
    with column:
        fig = go.Figure()
        for method in curves["method"].unique() if not curves.empty else []:
            part = curves[(curves["method"] == method) & (curves["metric"] == metric)].sort_values("K")
            fig.add_trace(go.Scatter(x=part["K"], y=part["value"], mode="lines+markers", name=method,
                                     line=dict(color=views.method_colour(method), width=2.5), marker=dict(size=6)))
        fig.update_xaxes(type="log", title="K", tickvals=sorted(curves["K"].unique()) if not curves.empty else None)
        fig.update_layout(title=dict(text=title, font=dict(size=14)))
        ui.chart(ui.style_figure(fig, 360), key=f"bench_curve_{metric}")
st.caption("K larger than the gallery is clamped to the gallery size.")

ablation = views.ablation_frame(catalog)
left, right = st.columns([1.2, 1], gap="large")
with left:
    st.subheader("Embedding dimension")
    fig = go.Figure()
    for method in ablation["method"].unique():
        part = ablation[ablation["method"] == method]
        fig.add_trace(go.Scatter(x=part["dim"], y=part["value"], mode="lines+markers", name=method,
                                 error_y=dict(type="data", array=part["std"], visible=bool(part["std"].any())),
                                 line=dict(color=views.method_colour(method), width=2.5), marker=dict(size=8)))
    fig.update_xaxes(type="log", title="embedding dimension", tickvals=sorted(ablation["dim"].unique()) if not ablation.empty else None)
    fig.update_yaxes(title="nDCG@10")
    ui.chart(ui.style_figure(fig, 340), key="bench_ablation")
with right:
    st.subheader("Every model")
    table = views.metrics_table(catalog)
    ui.metric_table(table[["model", "origin", "nDCG@10", "mld@10", "Spearman ρ"]])

# --------------------------------------------------------------- last `bench` run, if any
st.divider()
bench = load_bench(BENCH_JSON)
if bench is None:
    st.caption("No `BENCHMARKS.json` yet: `python -m dml_core bench --profile quick --json BENCHMARKS.json` "
               "writes one (means and spreads over seeds, and timings).")
else:
    st.subheader(f"Last benchmark run (profile `{bench.get('profile', '?')}`)")
    tables = views.bench_method_table(bench, task)
    if tables is None:
        st.caption(f"The benchmark file has no results for the {task} task.")
    else:
        st.dataframe(tables, hide_index=True, width="stretch")
        ablation_table = views.bench_ablation_table(bench, task)
        if ablation_table is not None:
            st.markdown("Dimension ablation, nDCG@10")
            st.dataframe(ablation_table, hide_index=True, width="stretch")
        tuning_table = views.bench_tuning_table(bench, task)
        if tuning_table is not None:
            st.markdown("Tuning: each method's 4 settings on a validation split of the training images; "
                        "the chosen one (✓) trained every seed and dimension")
            st.dataframe(tuning_table, hide_index=True, width="stretch")
    timing = bench.get("timing") or {}
    if timing:
        facts = []
        if "build_s" in timing:
            facts.append(f"build {timing['build_s']:.0f} s")
        if "features_img_per_s" in timing:
            facts.append(f"backbone {timing['features_img_per_s']:.0f} images/s")
        if "query_ms_p50" in timing:
            facts.append(f"one uploaded image: p50 {timing['query_ms_p50']:.0f} ms, p95 {timing.get('query_ms_p95', float('nan')):.0f} ms")
        st.caption("Timing: " + " · ".join(facts))
