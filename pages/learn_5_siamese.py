"""Siamese networks

One network with shared weights embeds both inputs of a pair; a distance threshold says "same" or "different".
"""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dml_core.toys.siamese import train_siamese
from pages import _learn_common as ui


@st.cache_data(max_entries=32, show_spinner="Training the Siamese network on the CPU…")
def run(seed: int, steps: int, margin: float):
    return train_siamese(seed=seed, steps=steps, margin=margin, per_class=40, n_train_classes=30)


ui.header("Siamese networks", "Learn a distance, not a list of classes: then verify pairs of things never seen in training.")

diagram, formulas = st.columns([1.25, 1], gap="large")
with diagram:
    st.graphviz_chart("""
digraph {
  rankdir=LR; bgcolor="transparent";
  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, color="#c4b5fd", fillcolor="#f5f3ff"];
  edge [color="#6b7280"];
  x1 [label="glyph x₁", fillcolor="#ffffff", color="#d1d5db"];
  x2 [label="glyph x₂", fillcolor="#ffffff", color="#d1d5db"];
  f1 [label="f_θ  (MLP 196→64→16)"]; f2 [label="f_θ  (the same weights)"];
  d [label="d = ‖z₁ − z₂‖", fillcolor="#fff7ed", color="#fdba74"];
  out [label="same if d ≤ t", shape=ellipse, fillcolor="#ecfdf5", color="#86efac"];
  x1 -> f1 [label=" "]; x2 -> f2; f1 -> d [label="z₁"]; f2 -> d [label="z₂"]; d -> out;
  f1 -> f2 [dir=both, style=dashed, color="#8b5cf6", label="shared", fontcolor="#6d28d9", fontsize=10, constraint=false];
}""", width="stretch")
with formulas:
    st.latex(r"z_1 = f_\theta(x_1),\quad z_2 = f_\theta(x_2),\quad d = \lVert z_1 - z_2 \rVert")
    st.latex(r"L = y\,d + (1-y)\max(0,\; m - d)")
    st.caption("Bromley et al. (1993) verified signatures this way. Here: 14×14 glyphs, 30 glyph classes for training, "
               "8 more that the network never sees; pairs half same-class, half not (y = 1 for same).")

controls = st.columns([1.2, 1.2, 1], vertical_alignment="bottom")
margin = controls[0].slider("Margin m", 0.5, 2.0, 1.0, step=0.25, key="l5_margin")
steps = controls[1].select_slider("Training steps", [100, 200, 300, 400], value=300, key="l5_steps")
with controls[2]:
    seed = ui.seed_input("l5_seed")
result = run(seed, steps, float(margin))

all_dist = np.concatenate([result.seen_dist, result.unseen_dist])
threshold = st.slider("Threshold t (pairs with d ≤ t are called *same*)", 0.0, float(np.round(all_dist.max() * 1.05, 2)),
                      float(np.round(result.threshold, 2)), step=0.01, key=f"l5_threshold_{seed}_{steps}_{margin}",
                      help="Starts at the value that best separates the training pairs.")


def accuracy(same, dist):
    return float(np.mean((dist <= threshold) == same))


metrics = st.columns(4)
metrics[0].metric("Accuracy, training classes", f"{accuracy(result.seen_same, result.seen_dist):.1%}",
                  help="New drawings of the glyph classes used in training.")
metrics[1].metric("Accuracy, unseen classes", f"{accuracy(result.unseen_same, result.unseen_dist):.1%}",
                  help="Pairs of glyph classes the network never saw: it only learnt a distance.")
metrics[2].metric("Weights in f_θ", f"{result.n_parameters:,}", help="One module: both branches use these same weights.")
metrics[3].metric("Training time", f"{result.seconds:.2f} s")

pair_col, hist_col = st.columns([1, 1.6], gap="large")
with pair_col:
    source = st.radio("Pairs from", ["unseen classes", "training classes"], horizontal=True, key="l5_source")
    glyphs = result.unseen if source == "unseen classes" else result.seen
    pairs = result.unseen_pairs if source == "unseen classes" else result.seen_pairs
    same = result.unseen_same if source == "unseen classes" else result.seen_same
    dist = result.unseen_dist if source == "unseen classes" else result.seen_dist
    k = st.slider("Pair", 0, len(pairs) - 1, 0, key="l5_pair",
                  help="The first half of the pairs are of the same class, the second half of different classes.")
    i, j = pairs[k]
    st.image(ui.grey_strip(np.stack([glyphs.images[i], glyphs.images[j]]), scale=8, gap=3))
    said_same = dist[k] <= threshold
    verdict = "same" if said_same else "different"
    truth = "same" if same[k] else "different"
    icon = "✅" if said_same == same[k] else "❌"
    st.markdown(f"d = **{dist[k]:.3f}** → network says **{verdict}** · truth: {truth} {icon}")
with hist_col:
    fig = go.Figure()
    for mask, name, colour in ((same, "same class (genuine)", ui.COLOURS["genuine"]),
                               (~same, "different classes (impostor)", ui.COLOURS["impostor"])):
        fig.add_trace(go.Histogram(x=dist[mask], name=name, marker_color=colour, opacity=0.6, nbinsx=40))
    fig.add_vline(x=threshold, line=dict(color="#111827", width=2), annotation_text="t", annotation_position="top right")
    fig.add_vline(x=dist[k], line=dict(color="#7c3aed", dash="dot"), annotation_text="this pair",
                  annotation_position="bottom right")
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title="distance d between the two embeddings")
    fig.update_yaxes(title="pairs")
    ui.plot(ui.style(fig, height=330, title=f"Pair distances, {source}"), key="l5_hist")

ui.takeaway([
    "A Siamese network is *one* embedding f_θ applied to both inputs; the decision is a distance compared with a threshold.",
    "Because it learns a distance rather than class names, it verifies pairs of glyph classes it never saw, "
    "though less well than the trained ones: the two histograms overlap more.",
    "Moving t trades false accepts for false rejects; page 6 turns that trade into ROC and FAR/FRR curves.",
])
