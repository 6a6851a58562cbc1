"""Benchmarks: the metrics of this build's models beside their scale, curves over K, the dimension ablation."""
from functools import partial
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from dml_core import app
from pages import _common as ui

NDCG, GAP_CLOSED = app.METRIC_LABELS["ndcg@10"], app.METRIC_LABELS["gap_closed@10"]

BENCH_JSON = Path(__file__).resolve().parents[1] / "BENCHMARKS.json"

task = ui.task_selector()
catalog = ui.catalog_or_none(task)
if catalog is None:
    st.stop()
profile = app.task_profile(ui.home(), task)
reference = app.task_reference(ui.home(), task)

ui.page_header("Benchmarks", f"Every model of this build on the <b>{ui.task_title(task).lower()}</b> task: "
               f"{len(catalog.queries)} queries against {len(catalog.gallery)} gallery images, each score beside what "
               f"random retrieval and the oracle score on the same queries.")

with st.expander("What the methods and metrics mean"):
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Methods**")
        for method in app.ordered_methods([*app.COMPARED, app.BASELINE]):
            st.markdown(f"<span class='bb-dot' style='background:{app.method_colour(method)}'></span>**{method}** — "
                        f"{app.method_definition(method)}", unsafe_allow_html=True)
        st.caption("`*_ft`: the same loss and mining, trained end to end as a compact CNN on the images instead of a "
                   "head on frozen features. Warm colours: binary supervision (similar / dissimilar). Violet and blue: "
                   "continuous supervision (degrees of similarity). Grey: pretrained, not trained on the task.")
    with right:
        st.markdown("**Metrics** (mean over the queries; d = label distance to the query)")
        for name, text in app.METRIC_DEFINITIONS.items():
            st.markdown(f"**{name}** — {text}")
        st.markdown("**gap closed@10** — where mld@10 stands between random retrieval (0) and the oracle (1): "
                    "(random − model) / (random − oracle), per query, then averaged.")
        st.markdown("**Random retrieval** — the expected score of a random ranking of the gallery (exact, not sampled). "
                    "**Oracle** — the gallery ranked by true label distance: the best any model can do.")

this_build, shipped = st.tabs([f"This build · profile {profile.name} · this machine",
                               "Shipped results · BENCHMARKS.json · another run"])


def reference_traces(fig, metric: str) -> None:
    """Random retrieval and the oracle over K, as dashed / dotted lines."""
    for name, style in app.REFERENCE_LINES.items():
        ks = sorted(int(k.split("@")[1]) for k in reference[name] if k.startswith(f"{metric}@"))
        fig.add_trace(go.Scatter(x=ks, y=[reference[name][f"{metric}@{k}"] for k in ks], mode="lines",
                                 name=app.REFERENCE_NAMES[name], line=style))


def scale_lines(fig, key: str, axis: str = "y") -> None:
    """Random retrieval's and the oracle's ``key`` as labelled lines across the plot."""
    add = fig.add_hline if axis == "y" else fig.add_vline
    for name, style in app.REFERENCE_LINES.items():
        value = reference[name][key]
        add(value, line=style, annotation_text=f"{app.REFERENCE_NAMES[name]} {value:.3f}",
            annotation_font=dict(size=11, color=style["color"]),
            annotation_position="top left" if axis == "y" else ("bottom right" if name == "random" else "bottom left"))


with this_build:
    st.markdown(f"<div class='bb-sub'>{app.build_provenance(ui.home(), profile)}.</div>", unsafe_allow_html=True)
    summary = app.method_summary(catalog, profile.dim)
    if summary.empty:
        st.info("No build models at this dimension yet.")
    else:
        left, right = st.columns([1.25, 1], gap="large")
        with left:
            st.subheader(f"Methods at d={profile.dim}")
            claim = app.headline(summary, reference, profile.dim)
            if claim:
                st.markdown(claim)
            st.caption(f"A random ranking already scores nDCG@10 = {reference['random']['ndcg@10']:.3f} on this task "
                       "(relevance 1/(1 + d) is never 0), the oracle 1: read nDCG against that floor, or read gap closed.")
        with right:
            ordered = summary.sort_values(GAP_CLOSED)
            fig = go.Figure(go.Bar(
                x=ordered[GAP_CLOSED], y=ordered["method"], orientation="h",
                marker=dict(color=[app.method_colour(m) for m in ordered["method"]]),
                text=[f"{v:.2f}" for v in ordered[GAP_CLOSED]], textposition="outside", cliponaxis=False,
            ))
            low = min(0.0, float(ordered[GAP_CLOSED].min()))
            fig.update_xaxes(range=[low - 0.04, 1.12], title="gap closed@10: 0 = random, 1 = oracle",
                             tickvals=[0, 0.25, 0.5, 0.75, 1])
            fig.add_vline(0, line=app.REFERENCE_LINES["random"])
            fig.add_vline(1, line=app.REFERENCE_LINES["oracle"])
            fig.update_layout(title=dict(text="Where each method stands, on the whole scale", font=dict(size=13)))
            ui.chart(ui.style_figure(fig, 90 + 28 * len(ordered)), key="bench_gap")
        columns = ["method", "kind", "family", "seeds", *app.HEADLINE_LABELS]
        if summary["seeds"].max() > 1:
            columns += [c for c in summary.columns if c.endswith(" ±")]
        table, scale_rows = app.with_reference(summary[columns], reference)
        ui.metric_table(table, reference_rows=scale_rows, height=38 + 35 * len(table))
        st.download_button("Table as CSV", app.export.frame_csv(table), f"{task}-methods-d{profile.dim}.csv", "text/csv",
                           key="bench_csv_methods", icon=":material/download:")

    curves = app.curve_frame(catalog, profile.dim)
    left, right = st.columns(2, gap="large")
    for column, metric, title in ((left, "ndcg", "nDCG@K (higher is better)"),
                                  (right, "mld", "mean label distance@K (lower is better)")):
        with column:
            fig = go.Figure()
            for method in curves["method"].unique() if not curves.empty else []:
                part = curves[(curves["method"] == method) & (curves["metric"] == metric)].sort_values("K")
                fig.add_trace(go.Scatter(x=part["K"], y=part["value"], mode="lines+markers", name=method,
                                         line=dict(color=app.method_colour(method), width=2.5), marker=dict(size=6)))
            reference_traces(fig, metric)
            fig.update_xaxes(type="log", title="K", tickvals=sorted(curves["K"].unique()) if not curves.empty else None)
            fig.update_layout(title=dict(text=title, font=dict(size=14)))
            ui.chart(ui.style_figure(fig, 360), key=f"bench_curve_{metric}")
    st.caption("Dashed grey: random retrieval (the floor any ranking reaches by chance); dotted green: the oracle. "
               "K larger than the gallery is clamped to the gallery size.")

    ablation = app.ablation_frame(catalog)
    st.subheader("Embedding dimension")
    left, right = st.columns([1.2, 1], gap="large")
    with left:
        fig = go.Figure()
        for method in ablation["method"].unique():
            part = ablation[ablation["method"] == method]
            fig.add_trace(go.Scatter(x=part["dim"], y=part["value"], mode="lines+markers", name=method,
                                     error_y=dict(type="data", array=part["std"], visible=bool(part["std"].any())),
                                     line=dict(color=app.method_colour(method), width=2.5), marker=dict(size=8)))
        axis_range, axis_note = app.value_axis(reference, "ndcg@10")
        scale_lines(fig, "ndcg@10")
        fig.update_xaxes(type="log", title="embedding dimension",
                         tickvals=sorted(ablation["dim"].unique()) if not ablation.empty else None)
        fig.update_yaxes(title=NDCG, range=axis_range)
        fig.update_layout(title=dict(text=axis_note, font=dict(size=12)))
        ui.chart(ui.style_figure(fig, 340), key="bench_ablation")
    with right:
        st.markdown(f"The value axis runs from what random retrieval scores "
                    f"({reference['random']['ndcg@10']:.3f}) to what the oracle scores "
                    f"({reference['oracle']['ndcg@10']:.3f}), so a gap between two lines is shown at its true size.")
        if not ablation.empty:
            spread = ablation["value"].max() - ablation["value"].min()
            span = reference["oracle"]["ndcg@10"] - reference["random"]["ndcg@10"]
            st.markdown(f"Across every method and dimension here, nDCG@10 varies by **{spread:.3f}**, "
                        f"{100 * spread / span:.0f}% of the distance from random retrieval to the oracle.")

    st.subheader("Every model")
    every = app.metrics_table(catalog)[["model", "kind", "origin", *(app.METRIC_LABELS[k] for k in ("ndcg@10", "mld@10", "gap_closed@10", "spearman"))]]
    every, scale_rows = app.with_reference(every, reference, label_column="model")
    ui.metric_table(every, reference_rows=scale_rows, height=38 + 35 * len(every))  # every row, no inner scrolling
    left, right = st.columns([1, 2.2], gap="large", vertical_alignment="bottom")
    with left:
        st.download_button("Every model as CSV", app.export.frame_csv(every), f"{task}-models.csv", "text/csv",
                           key="bench_csv_models", icon=":material/download:")
    with right:
        inner_left, inner_right = st.columns([1.4, 1], vertical_alignment="bottom")
        main = catalog.model_ids(main_only=True)
        model_id = inner_left.selectbox("Gallery embeddings for the TensorBoard Projector",
                                        main + [m for m in catalog.model_ids() if m not in main],
                                        key=f"bench_projector_{task}", format_func=lambda m: app.model_label(catalog.models[m]))
        inner_right.download_button(
            "Projector files (zip)", partial(app.export.projector_zip, catalog, model_id), f"{task}-{model_id}-projector.zip",
            "application/zip", key="bench_projector_zip", icon=":material/download:",
            help="tensors.tsv, metadata.tsv (a header row of the gallery's attributes), sprite.jpg and "
                 "projector_config.pbtxt: load them at projector.tensorflow.org or in TensorBoard.")

with shipped:
    bench = app.read_json(BENCH_JSON)
    if bench is None:
        st.caption("No `BENCHMARKS.json` in the repository: `python -m dml_core bench --profile full --json BENCHMARKS.json` "
                   "writes one (means and spreads over seeds, and timings).")
    else:
        st.markdown(f"<div class='bb-sub'>Results shipped with the repository, <b>not this build</b>: "
                    f"{app.shipped_provenance(bench)}. This machine: {app.this_machine()}.</div>",
                    unsafe_allow_html=True)
        tables = app.bench_method_table(bench, task)
        if tables is None:
            st.caption(f"The shipped benchmark has no results for the {task} task.")
        else:
            shipped_reference = app.shipped_reference(bench, task)
            scale_rows = 0
            if shipped_reference:
                tables, scale_rows = app.with_reference(tables, shipped_reference, as_text=True)
            ui.metric_table(tables, higher=(), lower=(), reference_rows=scale_rows)  # cells are "mean ± std" text
            if not shipped_reference:
                st.caption("This file predates the random-retrieval and oracle rows; `python -m dml_core bench` adds them.")
            ablation_table = app.bench_ablation_table(bench, task)
            if ablation_table is not None:
                st.markdown("Dimension ablation, nDCG@10")
                st.dataframe(ablation_table, hide_index=True, width="stretch")
            tuning_table = app.bench_tuning_table(bench, task)
            if tuning_table is not None:
                st.markdown("Tuning: each method's 4 settings on a validation split of the training images; "
                            "the chosen one (✓) trained every seed and dimension")
                st.dataframe(tuning_table, hide_index=True, width="stretch", height=38 + 35 * len(tuning_table))
        timing = app.shipped_timing(bench)
        if timing:
            st.caption(timing)
