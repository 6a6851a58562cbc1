"""Shared look of the Learn pages: colours, figure style, formula and takeaway blocks.

Colours follow the rest of the app (``dml_core.app.METHOD_COLOURS``): warm colours (orange,
yellow, red, pink, gold) for methods trained with *binary* labels, each compared method its own,
violet for methods that use the *continuous* label,
neutral greys and blues for everything that is not a loss (Euclidean vs learned metric,
before / after training). The computations live in ``dml_core.toys``; pages only draw.
"""
from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image

from dml_core.app import METHOD_COLOURS, PLOT_FONT, QUALITATIVE
from pages import _common as common

COLOURS = {
    "binary_triplet": METHOD_COLOURS["binary_triplet"],   # orange: binary labels
    "triplet": METHOD_COLOURS["binary_triplet"],
    "contrastive": METHOD_COLOURS["contrastive"],          # yellow: binary labels
    "hard": METHOD_COLOURS["binary_triplet_hard"],
    "semihard": METHOD_COLOURS["binary_triplet_semihard"],
    "easy": METHOD_COLOURS["binary_triplet_easy"],
    "all": METHOD_COLOURS["binary_triplet"],               # the binary triplet's own miner: every non-zero triplet
    "proxy_nca": "#be185d",                                # deep pink: class labels too, unlike the triplet's orange
    "log_ratio": METHOD_COLOURS["log_ratio"],              # violet: continuous labels
    "cross_modal": METHOD_COLOURS["cross_modal"],          # teal
    "euclidean": "#6b7280",                                # grey: before / untrained
    "learned": "#2563eb",                                  # blue: after / learned
    "genuine": "#16a34a",
    "impostor": "#dc2626",
    "anchor": "#111827",
}
LABELS = {
    "binary_triplet": "Binary triplet",
    "triplet": "Triplet",
    "contrastive": "Contrastive",
    "log_ratio": "Log-ratio",
    "hard": "Hard",
    "semihard": "Semi-hard",
    "easy": "Easy",
    "all": "All (non-zero)",
    "proxy_nca": "ProxyNCA",
}
CLASS_COLOURS = QUALITATIVE
#: Streamlit's plotly theme, cut to flat charts (``plane_template``): the Learn pages draw with it.
STREAMLIT_TEMPLATE = common.plane_template("streamlit")


def header(title: str, lede: str) -> None:
    """Page title and a one-line lede under it."""
    st.title(title)
    st.caption(lede)


def method_heading(method: str, note: str = "") -> None:
    """A small heading with the method's colour dot (binary = warm, continuous = violet)."""
    colour = COLOURS.get(method, "#334155")
    suffix = f" <span style='color:#6b6480;font-weight:400;font-size:.9rem'>{note}</span>" if note else ""
    st.markdown(f"<div style='font-weight:650;font-size:1.05rem'><span style='display:inline-block;width:.7rem;"
                f"height:.7rem;border-radius:50%;background:{colour};margin-right:.45rem'></span>"
                f"{LABELS.get(method, method)}{suffix}</div>", unsafe_allow_html=True)


def takeaway(lines: list[str]) -> None:
    """The page's three-line takeaway, in a bordered box at the bottom."""
    with st.container(border=True):
        st.markdown("**Takeaway**\n\n" + "\n".join(f"- {line}" for line in lines))


def legend_shown(fig) -> bool:
    """Whether plotly draws a legend: asked for, or by default (more than one trace) with an entry."""
    shown = fig.layout.showlegend if fig.layout.showlegend is not None else len(fig.data) > 1
    return bool(shown) and any(trace.showlegend is not False for trace in fig.data)


def style(fig, height: int = 360, legend: str = "bottom", title: str | None = None):
    """White plot, light grid, legend under the plot (below the x-axis title) or right of it;
    the same look as the other pages. Returns a new figure (``restyled``)."""
    top, bottom = (40 if title else 12), 8
    if legend == "bottom" and legend_shown(fig):
        # Plotly places a legend in units of the plot area's height, and its axis titles in
        # pixels: convert, so the legend starts under the tick labels and the x-axis title.
        below = 60 if fig.layout.xaxis.title.text else 34
        bottom = below + 26
        place = dict(orientation="h", yanchor="top", y=-below / max(height - top - bottom, 1), xanchor="left", x=0)
    else:
        place = dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.01)
    settings = dict(template=STREAMLIT_TEMPLATE, height=height, margin=dict(l=8, r=8, t=top, b=bottom), font=PLOT_FONT,
                    plot_bgcolor="#ffffff", paper_bgcolor="rgba(0,0,0,0)",
                    legend=dict(**place, title_text="", font=dict(size=11)))
    if title:
        settings["title"] = dict(text=title, x=0, xanchor="left", font=dict(size=14))
    return common.restyled(fig, settings, dict(showgrid=True, gridcolor="#eeeaf6", zeroline=False, linecolor="#ddd6ee"))


def equal_axes(fig):
    """Same scale on x and y, so distances in the plot are distances in the embedding."""
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def plot(fig, key: str | None = None) -> None:
    """Show a plotly figure at full column width with a quiet toolbar."""
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False, "displayModeBar": False})


def grey_strip(images: np.ndarray, scale: int = 5, gap: int = 2) -> Image.Image:
    """A row of small grey images (N, H, W) in [0, 1], upscaled for display, as one PIL image."""
    n, h, w = images.shape
    canvas = np.ones((h, n * (w + gap) - gap), dtype=np.float32)
    for i, im in enumerate(images):
        canvas[:, i * (w + gap): i * (w + gap) + w] = im
    pil = Image.fromarray((np.clip(canvas, 0, 1) * 255).astype(np.uint8))
    return pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)


def rgb_image(image: np.ndarray, scale: int = 4) -> Image.Image:
    """A small uint8 RGB image upscaled (nearest neighbour) for display."""
    pil = Image.fromarray(image)
    return pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)


def seed_input(key: str, help_text: str = "Every number gives a different data sample, initialisation and batch order.") -> int:
    """The page's seed control."""
    return int(st.number_input("Seed", min_value=0, max_value=999, value=0, step=1, key=key, help=help_text))
