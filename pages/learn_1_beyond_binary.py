"""Beyond binary

Binary triplet against log-ratio on a toy whose label is one continuous number (a bar's angle).
"""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dml_core.app import METRIC_LABELS
from dml_core.toys.continuous import BINARY_MARGIN, make_bar_data, train_continuous
from pages import _learn_common as ui


@st.cache_data(max_entries=48, show_spinner="Training both embeddings on the CPU…")
def run(method: str, seed: int, steps: int, threshold: float | None = None):
    kwargs = {} if threshold is None else {"similar_within_deg": threshold}
    return train_continuous(method, seed=seed, steps=steps, **kwargs)


@st.cache_data(max_entries=8, show_spinner=False)
def examples(seed: int):
    data = make_bar_data(10, seed + 1000)
    order = np.argsort(data.angles)
    return data.images[order], data.angles[order]


ui.header("Beyond binary", "When similarity comes in degrees, a yes/no label throws most of it away.")

left, right = st.columns(2, gap="large")
with left:
    ui.method_heading("binary_triplet", "similar / dissimilar by a threshold")
    st.latex(r"L = \max\bigl(0,\; m + D(f_a, f_p) - D(f_a, f_n)\bigr)")
with right:
    ui.method_heading("log_ratio", "uses the label distance itself")
    st.latex(r"L = \Bigl(\log\frac{D(f_a, f_i)}{D(f_a, f_j)} - \log\frac{D(y_a, y_i)}{D(y_a, y_j)}\Bigr)^2")
st.caption(f"D = squared Euclidean distance; embeddings on the unit sphere in 3-D; margin m = {BINARY_MARGIN}. "
           "The data: 16×16 images of a bar, label = its angle (0° flat … 90° upright), with random thickness, "
           "length, brightness and noise.")

images, angles = examples(0)
st.image(ui.grey_strip(images, scale=4), caption="  ·  ".join(f"{a:.0f}°" for a in angles))

controls = st.columns([2, 1.2, 1], vertical_alignment="bottom")
threshold = controls[0].slider("Binary label: two bars count as *similar* if their angles differ by less than (°)",
                               5, 45, 10, step=5, key="l1_threshold")
steps = controls[1].select_slider("Training steps", [100, 200, 300], value=300, key="l1_steps")
with controls[2]:
    seed = ui.seed_input("l1_seed")

binary = run("binary_triplet", seed, steps, float(threshold))
continuous = run("log_ratio", seed, steps)  # no threshold: a change of threshold retrains only the binary one


def sphere_figure(result, method: str):
    fig = go.Figure()
    u, v = np.mgrid[0:2 * np.pi:30j, 0:np.pi:16j]
    fig.add_trace(go.Surface(x=np.cos(u) * np.sin(v), y=np.sin(u) * np.sin(v), z=np.cos(v), opacity=0.08,
                             showscale=False, colorscale=[[0, "#9ca3af"], [1, "#9ca3af"]], hoverinfo="skip"))
    z = result.embeddings
    fig.add_trace(go.Scatter3d(
        x=z[:, 0], y=z[:, 1], z=z[:, 2], mode="markers", name="test bars",
        marker=dict(size=3.2, color=result.angles, colorscale="Viridis", cmin=0, cmax=90,
                    colorbar=dict(title="angle °", thickness=10, len=0.6)),
        hovertemplate="angle %{marker.color:.0f}°<extra></extra>"))
    fig.update_layout(height=330, margin=dict(l=0, r=0, t=0, b=0), showlegend=False, paper_bgcolor="rgba(0,0,0,0)",
                      scene=dict(xaxis=dict(visible=False), yaxis=dict(visible=False), zaxis=dict(visible=False),
                                 aspectmode="cube", camera=dict(eye=dict(x=1.35, y=1.35, z=0.9))))
    return fig


cols = st.columns(2, gap="large")
for col, result, method in ((cols[0], binary, "binary_triplet"), (cols[1], continuous, "log_ratio")):
    with col:
        ui.method_heading(method)
        metrics = st.columns(2)
        metrics[0].metric(METRIC_LABELS["spearman"], f"{result.spearman:.3f}",
                          help="Rank correlation between embedding distance and angle difference, per query "
                               "over all other test bars, averaged (1 = the embedding orders every bar by angle).")
        metrics[1].metric("5-NN angle error", f"{result.neighbour_error:.1f}°",
                          help="Mean angle difference to the 5 nearest neighbours in the embedding.")
        ui.plot(sphere_figure(result, method), key=f"l1_sphere_{method}")

scatter = go.Figure()
for result, method in ((binary, "binary_triplet"), (continuous, "log_ratio")):
    scatter.add_trace(go.Scattergl(
        x=result.pair_label_dist, y=result.pair_emb_dist, mode="markers", name=f"{ui.LABELS[method]} (ρ = {result.spearman:.3f})",
        marker=dict(size=4, color=ui.COLOURS[method], opacity=0.45)))
scatter.add_vline(x=threshold, line=dict(color=ui.COLOURS["binary_triplet"], dash="dot"),
                  annotation_text="binary threshold", annotation_position="top left")
scatter.update_xaxes(title="label distance: angle difference (°)", rangemode="tozero")
scatter.update_yaxes(title="embedding distance", rangemode="tozero")
ui.plot(ui.style(scatter, height=380, title="Does embedding distance follow label distance?"), key="l1_scatter")
st.caption(f"1,500 random pairs of held-out bars; both axes start at 0. Training: {steps} steps of 48 bars on the CPU "
           f"({binary.seconds:.2f} s binary, {continuous.seconds:.2f} s log-ratio).")

ui.takeaway([
    "A binary label only says *similar* or *not*: the triplet loss is satisfied once every dissimilar bar is a margin "
    "farther than every similar one, however far apart their angles are.",
    "How far apart dissimilar bars end up is left to chance: with a small threshold the range even wraps round the sphere "
    "(bars 80°+ apart land nearer than bars 45° apart), and distance stops tracking angle beyond the threshold.",
    "Log-ratio matches *ratios* of distances to ratios of label distances, so the whole order is kept: higher Spearman ρ "
    "at every threshold, with no threshold to choose.",
])
