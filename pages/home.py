"""Home: what the lab is and where to go."""
import streamlit as st

import pages  # noqa: F401  (a deep link as the first request: see pages/__init__.py)

st.title("Beyond Binary")
st.caption("An interactive lab for deep metric learning with continuous labels.")
st.markdown(
    """
Most metric learning treats similarity as **binary**: a pair is either "same" or "different".
Yet for human pose, room layout or image captions, similarity comes in **degrees**.
This lab reproduces *Deep Metric Learning Beyond Binary Supervision* (Kim et al., CVPR 2019) —
the **log-ratio loss** with **dense triplet mining** — next to the binary methods it argues
against (contrastive loss, triplet loss with hard / semi-hard / easy mining), on three retrieval
tasks with continuous labels.

| task | images | label | label distance |
|---|---|---|---|
| **pose** | articulated figures, 16 MPII joints | 2-D joint positions | mean per-joint distance after centring and scale normalisation |
| **layout** | ray-cast box rooms with furniture | floor / ceiling / wall segmentation | fraction of pixels with a different surface class |
| **caption** | scenes of named objects | five generated captions | 1 − cosine similarity of sentence embeddings |
"""
)
