"""Training lab: train a model with your choice of loss, mining and dimension, live."""
import plotly.graph_objects as go
import streamlit as st

from dml_core import lab, views
from dml_core.build import stored_profile
from dml_core.store import ArtifactError, ArtifactStore
from pages import _common as ui

task = ui.task_selector()
catalog = ui.catalog_or_none(task)
if catalog is None:
    st.stop()
profile = stored_profile(ArtifactStore(ui.home()), task)

ui.page_header("Training lab", "Train a head on the cached backbone features with the loss and mining you choose; "
               "it joins every other page when done.")

METHOD_NAMES = {"log_ratio": "Log-ratio (dense)", "dense_triplet": "Dense triplet", "binary_triplet": "Binary triplet",
                "contrastive": "Contrastive"}
MINER_NAMES = {"all": "all violating", "semihard": "semi-hard", "hard": "hard", "easy": "easy", "batch_hard": "batch-hard"}


def loss_figure(losses, colour, height=260):
    fig = go.Figure(go.Scatter(y=losses, x=list(range(1, len(losses) + 1)), mode="lines",
                               line=dict(color=colour, width=2), name="loss"))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="loss")
    return ui.style_figure(fig, height)


form, live = st.columns([1, 1.6], gap="large")
with form:
    method = st.radio("Loss", lab.LAB_METHODS, format_func=METHOD_NAMES.get, key="lab_method", horizontal=True)
    miner = None
    if method == "binary_triplet":
        miner = st.radio("Mining (binary triplet)", list(lab.MINERS), format_func=MINER_NAMES.get, key="lab_miner",
                         horizontal=True, help="Which triplets of (anchor, positive = a label neighbour, negative) "
                                               "the loss sees.")
    st.caption(views.method_definition(lab.resolve_method(method, miner)))
    dim = st.select_slider("Embedding dimension", lab.DIMS, value=profile.dim if profile.dim in lab.DIMS else 128, key="lab_dim")
    steps = st.slider("Steps", 10, 1000, min(max(profile.steps, 10), 1000), step=10, key="lab_steps",
                      help=f"The build trained its models for {profile.steps} steps; same batch size and optimiser.")
    seed = st.number_input("Seed", 0, 99, 0, key="lab_seed")
    method_id = lab.resolve_method(method, miner)
    model_id = lab.lab_model_id(method_id, dim, seed)
    exists = model_id in catalog.models
    running = lab.active_job()
    start = st.button("Train", type="primary", icon="▶️", disabled=running is not None, width="stretch", key="lab_train")
    st.caption(f"Saved as `{model_id}`" + (" — replaces the lab model with these settings." if exists else "."))
    if start:
        try:
            job = lab.start_job(task, method_id, dim, steps, seed, home=ui.home())
            st.session_state["lab_job"] = job.id
            running = job
        except lab.LabBusy as exc:
            st.warning(str(exc))
        except (ValueError, ArtifactError) as exc:
            st.error(f"Cannot start training: {exc}")

job = lab.get_job(st.session_state.get("lab_job")) or running

with live:
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
                             f"step {job.step}/{job.steps}{loss} · {job.seconds:.0f} s")
            st.markdown(views.loss_sparkline(job.losses, job.steps, views.method_colour(job.method)),
                        unsafe_allow_html=True)
            if st.button("Stop (keep the model as trained so far)", key="lab_stop"):
                job.stop()
            if not job.running:
                st.rerun()

        progress(job.id)
    else:
        colour = views.method_colour(job.method)
        if job.status == "failed":
            st.error(f"Training failed: {job.error}")
        else:
            st.success(f"**{job.model_id}** trained for {job.step} steps in {job.seconds:.0f} s"
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
        table = views.lab_comparison(result_catalog, job.model_id)
        left, right = st.columns([1.6, 1], gap="large")
        with left:
            ui.metric_table(table[["model", "origin", "nDCG@10", "nDCG@100", "mld@10", "Spearman ρ"]])
        with right:
            ordered = table.sort_values("nDCG@10")
            fig = go.Figure(go.Bar(
                x=ordered["nDCG@10"], y=ordered["model"], orientation="h",
                marker=dict(color=[views.method_colour(m) for m in ordered["method"]],
                            line=dict(color=["#111827" if o == "lab" else "rgba(0,0,0,0)" for o in ordered["origin"]], width=2.5)),
                text=[f"{v:.3f}" for v in ordered["nDCG@10"]], textposition="inside", insidetextanchor="end",
                textfont=dict(color="white"),
            ))
            fig.update_xaxes(title="nDCG@10", range=[0, 1])
            ui.chart(ui.style_figure(fig, 60 + 34 * len(ordered)), key="lab_compare_bar")
        st.caption(f"Lab models: {', '.join(m for m in result_catalog.model_ids() if m.startswith('lab-')) or '—'}. "
                   "The lab model's metrics are computed on the same queries and gallery as the build's.")
