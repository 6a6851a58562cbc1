"""Mahalanobis metric learning

Learn the matrix A of a distance from pairs labelled similar or dissimilar (Xing et al. 2002).
"""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dml_core.toys.mahalanobis import compare_metrics, unit_ellipse
from pages import _learn_common as ui


@st.cache_data(max_entries=64, show_spinner="Learning A…")
def run(seed: int, stretch: float, angle: float, n_pairs: int):
    return compare_metrics(seed=seed, stretch=stretch, angle_deg=angle, n_pairs=n_pairs)


ui.header("Mahalanobis metric learning", "Before deep networks: learn *which directions matter* from pairs.")

formula, objective = st.columns(2, gap="large")
with formula:
    st.latex(r"d_A(x, y) = \sqrt{(x - y)^\top A\,(x - y)}, \qquad A \succeq 0")
    st.caption("A = I is the Euclidean distance. With A = LᵀL, d_A is the Euclidean distance after x ↦ Lx: "
               "the simplest learnt embedding.")
with objective:
    st.latex(r"\min_{A \succeq 0}\; \sum_{(i,j) \in S} d_A(x_i, x_j)^2 \;-\; \log \sum_{(i,j) \in D} d_A(x_i, x_j)")
    st.caption("Xing, Ng, Jordan & Russell (2002): similar pairs S close, dissimilar pairs D not all close. Convex; "
               "solved by projected gradient descent (after each step, negative eigenvalues of A are set to 0).")

controls = st.columns([1.2, 1.2, 1.2, 1], vertical_alignment="bottom")
stretch = controls[0].slider("Class elongation", 1.0, 8.0, 6.0, step=0.5, key="l4_stretch",
                             help="Spread of each class along its long axis (1 = round classes).")
angle = controls[1].slider("Orientation (°)", 0, 180, 30, step=15, key="l4_angle")
n_pairs = controls[2].select_slider("Labelled training pairs", [20, 50, 100, 200, 400, 800], value=400, key="l4_pairs",
                                    help="Half similar (same class), half dissimilar.")
with controls[3]:
    seed = ui.seed_input("l4_seed")

result = run(seed, float(stretch), float(angle), int(n_pairs))
test = result.test

metrics = st.columns(4)
metrics[0].metric("Pair accuracy, Euclidean", f"{result.euclid_test_acc:.1%}",
                  help="Held-out pairs called similar when d ≤ t, t fitted on the training pairs.")
metrics[1].metric("Pair accuracy, learned A", f"{result.learned_test_acc:.1%}",
                  delta=f"{100 * (result.learned_test_acc - result.euclid_test_acc):+.1f} points")
eigenvalues = np.linalg.eigvalsh(result.unit_learned)
metrics[2].metric("Eigenvalues of A", " · ".join("0" if v < 1e-9 else f"{v:.2g}" for v in eigenvalues[::-1]),
                  help="A's scale is set so that d_A = 1 is the decision threshold. A zero eigenvalue: that "
                       "direction is ignored completely.")
metrics[3].metric("Objective iterations", len(result.objective) - 1)

span = np.abs(test.x).max() * 1.05
anchors = [int(np.flatnonzero(test.classes == k)[0]) for k in np.unique(test.classes)]
cols = st.columns(2, gap="large")
for col, (name, a, colour, title) in zip(cols, (
        ("euclidean", result.unit_euclid, ui.COLOURS["euclidean"], "Euclidean: the unit circle"),
        ("learned", result.unit_learned, ui.COLOURS["learned"], "Learned A: the unit ellipse"))):
    fig = go.Figure()
    for k in np.unique(test.classes):
        members = test.classes == k
        fig.add_trace(go.Scattergl(x=test.x[members, 0], y=test.x[members, 1], mode="markers", name=f"class {k}",
                                   marker=dict(size=6, color=ui.CLASS_COLOURS[k], opacity=0.7)))
    for n, i in enumerate(anchors):
        ring = unit_ellipse(a, test.x[i])
        fig.add_trace(go.Scatter(x=ring[:, 0], y=ring[:, 1], mode="lines", name="d = 1 (threshold)",
                                 showlegend=n == 0, line=dict(color=colour, width=2.5)))
        fig.add_trace(go.Scatter(x=[test.x[i, 0]], y=[test.x[i, 1]], mode="markers", showlegend=False, hoverinfo="skip",
                                 marker=dict(symbol="x", size=9, color=colour)))
    fig.update_xaxes(range=[-span, span])
    fig.update_yaxes(range=[-span, span])
    with col:
        ui.plot(ui.equal_axes(ui.style(fig, height=430, title=title)), key=f"l4_{name}")
st.caption("Each curve is the set of points at distance 1 from one point of a class, with the threshold folded into A: "
           "everything inside is called *similar*. A line pair instead of an ellipse means A has a zero eigenvalue: "
           "distance along that direction does not count at all.")

view, curve = st.columns([1.3, 1], gap="large")
with view:
    values, vectors = np.linalg.eigh(result.unit_learned)
    mapped = test.x @ (vectors * np.sqrt(np.maximum(values, 0))) @ vectors.T  # x -> A^(1/2) x
    fig = go.Figure()
    for k in np.unique(test.classes):
        members = test.classes == k
        fig.add_trace(go.Scattergl(x=mapped[members, 0], y=mapped[members, 1], mode="markers", name=f"class {k}",
                                   marker=dict(size=6, color=ui.CLASS_COLOURS[k], opacity=0.7)))
    ui.plot(ui.equal_axes(ui.style(fig, height=320, title="The data as d_A sees it: x ↦ A^½ x")), key="l4_mapped")
with curve:
    fig = go.Figure(go.Scatter(y=result.objective, mode="lines", line=dict(color=ui.COLOURS["learned"], width=2.5),
                               name="g(A)"))
    fig.update_xaxes(title="iteration")
    fig.update_yaxes(title="objective g(A)")
    ui.plot(ui.style(fig, height=320, title="Projected gradient descent"), key="l4_objective")

ui.takeaway([
    "Euclidean distance weighs every direction equally, so long, thin classes look far apart inside and near each other "
    "across: pair accuracy suffers.",
    "Learning A from labelled pairs stretches the directions that separate classes and shrinks (here often removes) the "
    "ones that only vary inside a class.",
    "A is a linear map in disguise (A = LᵀL); deep metric learning replaces L by a network f, and the pairs by "
    "triplets or, with continuous labels, by label distances.",
])
