"""Contrastive vs triplet

The pairwise contrastive loss pulls each class to a point; the triplet loss only asks for a margin.
"""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dml_core.toys.classes import train_pair_loss
from pages import _learn_common as ui


@st.cache_data(max_entries=48, show_spinner="Training both embeddings on the CPU…")
def run(loss: str, seed: int, steps: int, margin: float):
    return train_pair_loss(loss, seed=seed, steps=steps, margin=margin, record_every=25)


ui.header("Contrastive vs triplet", "Two binary losses, two different ideas of what a class should look like.")

left, right = st.columns(2, gap="large")
with left:
    ui.method_heading("contrastive", "on pairs")
    st.latex(r"L = y\,\lVert z_1 - z_2\rVert + (1-y)\,\max\bigl(0,\; m - \lVert z_1 - z_2\rVert\bigr)")
with right:
    ui.method_heading("triplet", "on triplets")
    st.latex(r"L = \max\bigl(0,\; m + d(a,p) - d(a,n)\bigr)")
st.caption("y = 1 for a pair of the same class. Toy: 5 classes whose members also vary *inside* the class along a "
           "continuous 'style' t ∈ [−1, 1] (think pose or lighting within one identity); 16-D inputs, an MLP maps them "
           "to the 2-D plane shown. Same data, network and batches for both losses.")

controls = st.columns([1.4, 1.4, 1], vertical_alignment="bottom")
margin = controls[0].slider("Margin m", 0.25, 2.0, 1.0, step=0.25, key="l2_margin")
steps = controls[1].select_slider("Training steps", [100, 200, 300, 400], value=300, key="l2_steps")
with controls[2]:
    seed = ui.seed_input("l2_seed")

runs = {loss: run(loss, seed, steps, float(margin)) for loss in ("contrastive", "triplet")}

cols = st.columns(2, gap="large")
for col, (loss, result) in zip(cols, runs.items()):
    with col:
        ui.method_heading(loss)
        metrics = st.columns(3)
        metrics[0].metric("Class spread", f"{result.spread[steps]:.3f}",
                          help="Mean distance of a point to its class centre ÷ mean distance between class centres "
                               "(scale-free; 0 = every class collapsed to a point).")
        metrics[1].metric("Style kept", f"{result.style_kept[steps]:.2f}",
                          help="|Spearman ρ| between the style t and the position along each class's main axis, "
                               "averaged over classes (1 = the order of t inside a class can be read off the plot).")
        metrics[2].metric("Recall@1", f"{result.recall[steps]:.2f}", help="Nearest other test point has the same class.")
        z = result.final
        fig = go.Figure()
        for k in np.unique(result.classes):
            members = result.classes == k
            fig.add_trace(go.Scattergl(
                x=z[members, 0], y=z[members, 1], mode="markers", name=f"class {k}",
                marker=dict(size=6, color=ui.CLASS_COLOURS[k], opacity=0.75, line=dict(width=0.4, color="white")),
                customdata=result.style[members], hovertemplate="style t = %{customdata:.2f}<extra>class " + str(k) + "</extra>"))
        ui.plot(ui.equal_axes(ui.style(fig, height=330)), key=f"l2_embedding_{loss}")

st.subheader("Inside one class")
st.caption("The chosen class, centred and divided by that loss's mean distance between class centres "
           "(the *centre spacing*), so both panels share one scale.")
zoom_cols = st.columns([1, 1, 1.25], gap="large")
chosen = zoom_cols[2].selectbox("Class", sorted(set(runs["triplet"].classes.tolist())), key="l2_class",
                                help="Each class is centred and divided by that loss's mean distance between class centres, "
                                     "so the two panels share one scale.")


def centred_class(result, k: int) -> np.ndarray:
    """Points of class k, centred, divided by the mean distance between class centres."""
    z = result.final
    centroids = np.stack([z[result.classes == c].mean(0) for c in np.unique(result.classes)])
    between = np.mean([np.linalg.norm(a - b) for i, a in enumerate(centroids) for b in centroids[i + 1:]])
    members = z[result.classes == k]
    return (members - members.mean(0)) / between


local = {loss: centred_class(result, chosen) for loss, result in runs.items()}
limit = 1.1 * max(0.1, max(float(np.abs(v).max()) for v in local.values()))
for col, (loss, result) in zip(zoom_cols[:2], runs.items()):
    fig = go.Figure(go.Scattergl(
        x=local[loss][:, 0], y=local[loss][:, 1], mode="markers", name="style t",
        marker=dict(size=8, color=result.style[result.classes == chosen], colorscale="Viridis", cmin=-1, cmax=1,
                    showscale=loss == "triplet", colorbar=dict(title="t", thickness=10, len=0.7),
                    line=dict(width=0.4, color="white")),
        hovertemplate="t = %{marker.color:.2f}<extra></extra>"))
    fig.update_xaxes(range=[-limit, limit], title="÷ centre spacing")
    fig.update_yaxes(range=[-limit, limit])
    with col:
        ui.method_heading(loss)
        ui.plot(ui.equal_axes(ui.style(fig, height=300)), key=f"l2_zoom_{loss}")
with zoom_cols[2]:
    curve = go.Figure()
    for loss, result in runs.items():
        steps_seen = sorted(result.spread)
        curve.add_trace(go.Scatter(x=steps_seen, y=[result.spread[s] for s in steps_seen], mode="lines+markers",
                                   name=ui.LABELS[loss], line=dict(color=ui.COLOURS[loss], width=2.5)))
    curve.update_xaxes(title="training step")
    curve.update_yaxes(title="within-class spread", rangemode="tozero")
    ui.plot(ui.style(curve, height=250), key="l2_spread_curve")

ui.takeaway([
    "The contrastive loss pulls *every* positive pair towards distance 0, so it keeps squeezing each class towards "
    "a point: smaller within-class spread, and less of the style order inside a class survives.",
    "The triplet loss is zero once each positive is nearer than each negative by m: variation inside a class that "
    "does not break the margin is left alone (larger spread, the style order usually still readable).",
    "Neither loss knows *how* similar two items are, only whether they share a class: that is the gap the "
    "continuous-label losses fill (page 1).",
])
