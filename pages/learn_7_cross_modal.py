"""Cross-modal alignment and zero-shot

Images and captions in one space, trained with a triplet loss in both directions; unseen categories found by text.
"""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dml_core.toys.crossmodal import (
    CATEGORY_NAMES,
    COLOURS,
    DEFAULT_HELD_OUT,
    caption_features,
    category_retrieval,
    image_to_text,
    make_gallery,
    text_to_image,
    train_crossmodal,
)
from pages import _learn_common as ui

EMOJI = {"cat": "🐱", "dog": "🐶", "horse": "🐴", "zebra": "🦓", "tiger": "🐯", "bird": "🐦", "eagle": "🦅", "penguin": "🐧",
         "duck": "🦆", "fish": "🐟", "shark": "🦈", "bicycle": "🚲", "car": "🚗", "bus": "🚌", "boat": "🚤", "aeroplane": "✈️"}
HEX = {"red": "#dc2626", "green": "#16a34a", "blue": "#2563eb", "yellow": "#eab308", "white": "#e5e7eb", "black": "#111827"}


@st.cache_data(max_entries=32, show_spinner="Aligning images and captions on the CPU…")
def run(seed: int, steps: int, margin: float, held_out: tuple):
    return train_crossmodal(seed=seed, steps=steps, margin=margin, held_out=held_out)


@st.cache_data(max_entries=2, show_spinner=False)
def gallery():
    return make_gallery()


def chip(description: str, held_out: tuple) -> str:
    colour, category = description.split(" ", 1)
    border = "2px solid #0d9488" if category in held_out else "1px solid #e5e7eb"
    return (f"<span style='display:inline-block;border:{border};border-radius:8px;padding:1px 8px;margin:2px;"
            f"background:#fff'><span style='display:inline-block;width:.7rem;height:.7rem;border-radius:50%;"
            f"background:{HEX[colour]};border:1px solid #9ca3af;margin-right:.35rem'></span>{EMOJI[category]} "
            f"{description}</span>")


ui.header("Cross-modal alignment and zero-shot",
          "Put images and captions in one space; then words can find pictures of things never trained on.")

st.latex(r"L = \underbrace{\sum_{t'} \max\bigl(0,\, m - s(i,t) + s(i,t')\bigr)}_{L_1:\ \text{image anchor}} \;+\; "
         r"\underbrace{\sum_{i'} \max\bigl(0,\, m - s(t,i) + s(t,i')\bigr)}_{L_2:\ \text{caption anchor}}")
st.caption("s = cosine similarity of the two encoders' outputs; t = the image's caption, t′ / i′ = other captions / images "
           "in the batch. Toy world: 16 categories × 6 colours. An *image* is a 40-D feature vector made from its "
           "category's visual attributes (fur, wings, wheels, stripes…), colour and quirks; a *caption* is a bag of "
           "fixed 'pretrained' word vectors in which each category word encodes its attributes. Only the two encoders "
           "are trained, on seen categories only.")

controls = st.columns([2.2, 1, 1, 0.9], vertical_alignment="bottom")
held_out = tuple(controls[0].multiselect("Categories held out of training", CATEGORY_NAMES, default=list(DEFAULT_HELD_OUT),
                                          max_selections=8, key="l7_held_out",
                                          format_func=lambda c: f"{EMOJI[c]} {c}"))
steps = controls[1].select_slider("Training steps", [0, 100, 200, 300, 400], value=300, key="l7_steps")
margin = controls[2].select_slider("Margin m", [0.1, 0.2, 0.3, 0.5], value=0.2, key="l7_margin")
with controls[3]:
    seed = ui.seed_input("l7_seed")
if len(held_out) > len(CATEGORY_NAMES) - 2:
    st.error("Keep at least two categories in training.")
    st.stop()

model = run(seed, steps, float(margin), tuple(sorted(held_out)))
images = gallery()
scores = category_retrieval(model, images, k=10)
seen = [c for c in CATEGORY_NAMES if c not in held_out]

metrics = st.columns(3)
metrics[0].metric("Precision@10, held-out categories (zero-shot)",
                  f"{np.mean([scores[c] for c in held_out]):.0%}" if held_out else "—",
                  help="Query 'a photo of a <category>': share of the 10 nearest images that are of that category.")
metrics[1].metric("Precision@10, seen categories", f"{np.mean([scores[c] for c in seen]):.0%}")
metrics[2].metric("Random ranking", f"{scores['chance']:.0%}", help="Each category is 1/16 of the gallery.")

search, explore = st.columns([1.1, 1], gap="large")
with search:
    st.markdown("**Text → image**")
    default_query = f"a photo of a {held_out[0]}" if held_out else "a red car"
    query = st.text_input("Caption", value=default_query, key=f"l7_query_{'-'.join(held_out)}",
                          help="Any words from: " + ", ".join(list(CATEGORY_NAMES) + list(COLOURS)))
    features, unknown_words = caption_features([query])
    if not np.any(features):
        st.warning("None of these words is in the vocabulary: try a category and a colour, e.g. *a blue bus*.")
    else:
        if unknown_words[0]:
            st.caption("Ignored (not in the vocabulary): " + ", ".join(unknown_words[0]))
        top, similarity = text_to_image(model, images, query, k=10)
        st.markdown(" ".join(chip(images.describe(i), held_out) for i in top), unsafe_allow_html=True)
        st.caption("The 10 nearest of 192 gallery images, nearest first (similarities "
                   f"{similarity[0]:.2f} … {similarity[-1]:.2f}). Teal border = a category held out of training.")
with explore:
    st.markdown("**Image → text**")
    choices = list(range(len(images.categories)))
    default_image = int(np.flatnonzero(images.categories == CATEGORY_NAMES.index(held_out[0]))[0]) if held_out else 0
    picked = st.selectbox("Image", choices, index=default_image, key=f"l7_image_{'-'.join(held_out)}",
                          format_func=lambda i: f"{EMOJI[CATEGORY_NAMES[images.categories[i]]]} #{i}: {images.describe(i)}")
    for caption, sim in image_to_text(model, images, picked, k=5):
        st.markdown(f"`{sim:+.2f}` {caption}")

bars, space = st.columns([1.2, 1], gap="large")
with bars:
    fig = go.Figure(go.Bar(
        x=[f"{EMOJI[c]} {c}" for c in CATEGORY_NAMES], y=[scores[c] for c in CATEGORY_NAMES],
        marker=dict(color=[ui.COLOURS["cross_modal"] if c in held_out else "#99f6e4" for c in CATEGORY_NAMES],
                    line=dict(color="#0f766e", width=[2 if c in held_out else 0 for c in CATEGORY_NAMES])),
        hovertemplate="%{x}: %{y:.0%}<extra></extra>", name="precision@10"))
    fig.add_hline(y=scores["chance"], line=dict(color="#6b7280", dash="dot"), annotation_text="random",
                  annotation_position="top right")
    fig.update_yaxes(title="precision@10", range=[0, 1.05], tickformat=".0%")
    ui.plot(ui.style(fig, height=340, title="Query 'a photo of a …': precision@10 per category (dark = held out)"),
            key="l7_bars")
with space:
    image_emb = model.embed_images(images.features)
    text_emb = model.embed_texts([f"a photo of a {c}" for c in CATEGORY_NAMES])
    both = np.concatenate([image_emb, text_emb])
    centre = both.mean(0)
    _, _, vt = np.linalg.svd(both - centre, full_matrices=False)
    flat_images, flat_texts = (image_emb - centre) @ vt[:2].T, (text_emb - centre) @ vt[:2].T
    fig = go.Figure()
    for k, name in enumerate(CATEGORY_NAMES):
        members = images.categories == k
        fig.add_trace(go.Scattergl(x=flat_images[members, 0], y=flat_images[members, 1], mode="markers", name=name,
                                   showlegend=False, marker=dict(size=6, color=ui.CLASS_COLOURS[k], opacity=0.55),
                                   hovertemplate=f"image of a {name}<extra></extra>"))
    # Emoji alone as labels: 16 names overlapped; the name is in the hover text.
    fig.add_trace(go.Scatter(x=flat_texts[:, 0], y=flat_texts[:, 1], mode="markers+text", name="caption 'a photo of a …'",
                             text=[EMOJI[c] + ("*" if c in held_out else "") for c in CATEGORY_NAMES],
                             customdata=CATEGORY_NAMES, hovertemplate="caption 'a photo of a %{customdata}'<extra></extra>",
                             textposition="top center", textfont=dict(size=15),
                             marker=dict(symbol="diamond", size=10, color=[ui.CLASS_COLOURS[k] for k in range(len(CATEGORY_NAMES))],
                                         line=dict(width=1.5, color="#111827"))))
    ui.plot(ui.style(fig, height=340, title="The joint space (first 2 principal axes; * = held out)"), key="l7_space")

ui.takeaway([
    "Two encoders, one space: the bidirectional triplet loss pulls each image towards its caption and each caption "
    "towards its image, both against the batch's mismatches.",
    "Retrieval then works both ways: a caption ranks images, an image ranks captions.",
    "Held-out categories are found by text well above chance because the word vectors already relate a zebra to horses "
    "and stripes: the shared space transfers that knowledge (zero-shot), though less reliably than for seen categories.",
])
