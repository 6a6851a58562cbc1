"""Training lab: train a model with your choice of loss, mining and dimension, live."""
import plotly.graph_objects as go
import streamlit as st

from dml_core import app
from dml_core.app import lab
from pages import _common as ui

NDCG = app.METRIC_LABELS["ndcg@10"]

task = ui.task_selector()
catalog = ui.catalog_or_none(task)
if catalog is None:
    st.stop()
profile = app.task_profile(ui.home(), task)

ui.page_header("Training lab", "Train a model with the loss, mining and embedder you choose; it joins every other "
               "page when done.")

METHOD_NAMES = {"log_ratio": "Log-ratio (dense)", "rank_n_contrast": "Rank-N-Contrast", "dense_triplet": "Dense triplet",
                "binary_triplet": "Binary triplet", "contrastive": "Contrastive"}
MINER_NAMES = {"all": "all violating", "semihard": "semi-hard", "hard": "hard", "easy": "easy", "batch_hard": "batch-hard"}


def loss_figure(losses, colour, height=260):
    fig = go.Figure(go.Scatter(y=losses, x=list(range(1, len(losses) + 1)), mode="lines",
                               line=dict(color=colour, width=2), name="loss"))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="loss")
    return ui.style_figure(fig, height)


form, live = st.columns([1, 1.6], gap="large")
with form:
    embedder = st.radio("Embedder", lab.LAB_EMBEDDERS, format_func=lambda e: app.EMBEDDER_KINDS[e].capitalize(), key="lab_embedder", horizontal=True,
                        help="Head: an MLP on the cached EfficientNet-Lite0 features (what most build models train). "
                             "Fine-tuned backbone: EfficientNet-Lite0's top block trained with the head, on cached "
                             "activations of the blocks below (dml_core/learn/top_blocks.py). CNN: the small network of "
                             "dml_core/learn/cnn.py trained from scratch on the task's images.")
    method = st.radio("Loss", lab.lab_methods(embedder), format_func=METHOD_NAMES.get, key="lab_method", horizontal=True)
    miner = None
    if method == "binary_triplet":
        miner = st.radio("Mining (binary triplet)", lab.lab_miners(embedder), format_func=MINER_NAMES.get, key="lab_miner",
                         horizontal=True, help="Which triplets of (anchor, positive = a label neighbour, negative) "
                                               "the loss sees.")
    method_id = lab.resolve_choice(method, miner, embedder)
    st.caption(app.method_definition(method_id))
    dim = st.select_slider("Embedding dimension", lab.DIMS, value=profile.dim if profile.dim in lab.DIMS else 128, key="lab_dim")
    steps = st.slider("Steps", 10, 1000, min(max(profile.steps, 10), 1000), step=10, key="lab_steps",
                      help=f"The build trained its models for {profile.steps} steps; same batch size and optimiser.")
    seed = st.number_input("Seed", 0, 99, 0, key="lab_seed")
    model_id = lab.lab_model_id(method_id, dim, seed, embedder)
    exists = model_id in catalog.models
    running = lab.active_job()
    start = st.button("Train", type="primary", icon="▶️", disabled=running is not None, width="stretch", key="lab_train")
    st.caption(f"Saved as `{model_id}`" + (" — replaces the lab model with these settings." if exists else "."))
    if start:
        try:
            job = lab.start_job(task, method_id, dim, steps, seed, home=ui.home(), embedder=embedder)
            st.session_state["lab_job"] = job.id
            running = job
        except lab.LabBusy as exc:
            st.warning(str(exc))
        except (ValueError, app.ArtifactError) as exc:
            st.error(f"Cannot start training: {exc}")

job = lab.get_job(st.session_state.get("lab_job")) or running

with live:
    if embedder == "top_blocks":
        st.info("**A step costs more than a head's.** Each step runs EfficientNet-Lite0's top block, its 1×1 head "
                "convolution and the head forward and backward on a batch of cached activations (the progress line "
                "shows the steps/s); the activations are computed once, the first time, before the first step.",
                icon=":material/info:")
    if embedder == "cnn":
        full = app.get_profile("full")
        images = lab.training_images(ui.home(), task, embedder)
        st.info(f"**The CNN is slower, and short of data here.** Every step runs the whole network forward and backward "
                f"on a batch of images, where a head only sees cached feature vectors (the progress line shows the "
                f"steps/s). This build has **{images:,} training images** for it, too few to learn features from "
                f"scratch: the full profile renders {full.cnn_train:,} and trains {full.cnn_steps:,} steps. Expect it "
                f"to score below the frozen-feature heads on this build.", icon=":material/info:")
    if job is None:
        st.markdown("<div class='bb-sub' style='margin-top:2rem'>Progress and the loss curve appear here while "
                    "training runs. The page stays usable; you can open other pages meanwhile.</div>",
                    unsafe_allow_html=True)
    elif job.running:
        @st.fragment(run_every=1.0)  # light on purpose: every run costs the training thread GIL time
        def progress(job_id: str):
            job = lab.get_job(job_id)
            if job is None:
                return
            loss = f" · loss {job.losses[-1]:.4f}" if job.losses else ""
            words = {"starting": "Loading features", "training": "Training", "saving": "Embedding, indexing, mapping"}
            st.progress(min(job.step / job.steps, 1.0),
                        text=f"{words.get(job.status, job.status)} · {job.task} · `{job.method}` d={job.dim} · "
                             f"step {job.step}/{job.steps}{loss} · {job.seconds:.0f} s · {job.step / max(job.seconds, 1e-9):.1f} steps/s")
            st.markdown(lab.loss_sparkline(job.losses, job.steps, app.method_colour(job.method)),
                        unsafe_allow_html=True)
            if st.button("Stop (keep the model as trained so far)", key="lab_stop"):
                job.stop()
            if not job.running:
                st.rerun()

        progress(job.id)
    else:
        colour = app.method_colour(job.method)
        if job.status == "failed":
            st.error(f"Training failed: {job.error}")
        else:
            st.success(f"**{job.model_id}** trained for {job.step} steps in {job.seconds:.0f} s "
                       f"({job.step / max(job.seconds, 1e-9):.1f} steps/s, embedding and indexing included)"
                       + (" (stopped early)" if job.status == "stopped" else "")
                       + ". It is now selectable on Compare, Upload, Embedding space and Benchmarks.")
        if job.losses:
            ui.chart(loss_figure(job.losses, colour), key="lab_final_loss")

# ----------------------------------------------------------------------- result vs build
if job is not None and job.status in ("done", "stopped") and job.model_id:
    if st.session_state.get("lab_cleared") != job.id:
        ui.clear_catalogs()  # every page reloads the task with the new model
        st.session_state["lab_cleared"] = job.id
    result_catalog = ui.catalog_or_none(job.task)
    if result_catalog is not None and job.model_id in result_catalog.models:
        st.subheader(f"{job.model_id} vs the build's models (d={job.dim}, {job.task})")
        table = app.lab_comparison(result_catalog, job.model_id)
        reference = app.task_reference(ui.home(), job.task)
        columns = ["model", "origin", *app.HEADLINE_LABELS]
        shown, scale_rows = app.with_reference(table[columns], reference, label_column="model")
        ui.metric_table(shown, reference_rows=scale_rows)
        left, right = st.columns([1.8, 1], gap="large", vertical_alignment="center")
        with left:
            ordered = table.sort_values(NDCG)
            floor = reference["random"]["ndcg@10"]
            axis_range, axis_note = app.value_axis(reference, "ndcg@10")
            fig = go.Figure(go.Bar(  # bars grow from random retrieval's score: their length is the gain over chance
                x=ordered[NDCG] - floor, base=floor, y=ordered["model"], orientation="h",
                marker=dict(color=[app.method_colour(m) for m in ordered["method"]],
                            line=dict(color=["#111827" if o == "lab" else "rgba(0,0,0,0)" for o in ordered["origin"]], width=2.5)),
                text=[f"{v:.3f}" for v in ordered[NDCG]], textposition="outside", cliponaxis=False,
                hovertemplate="%{y}: nDCG@10 %{text}<extra></extra>",
            ))
            fig.update_xaxes(title=NDCG, range=axis_range)
            fig.update_layout(title=dict(text=axis_note, font=dict(size=13)))
            for name, line in app.REFERENCE_LINES.items():
                fig.add_vline(reference[name]["ndcg@10"], line=line)
            ui.chart(ui.style_figure(fig, 100 + 30 * len(ordered)), key="lab_compare_bar")
        with right:
            st.caption("Bars start at random retrieval's nDCG@10 (dashed line) and the axis ends at the oracle's "
                       "(dotted), so each bar's length is what the model adds over chance, on the whole scale. "
                       "The lab model has a dark outline.")
        st.caption(f"Lab models: {', '.join(m for m in result_catalog.model_ids() if m.startswith('lab-')) or '—'}. "
                   "The lab model's metrics are computed on the same queries and gallery as the build's.")
