"""Training jobs for the Training lab: one model trained in a background thread per job.

A page starts a job with :func:`start_job` and keeps only its id; it then polls
:func:`get_job` to draw the progress (steps, per-step losses) while the thread trains, so the
page stays responsive. Jobs live in a process-wide registry shared by every session. One job
trains at a time (the CPU is shared by everyone using the app); a second start while one runs
raises :class:`LabBusy`. A finished job's model is stored like any other (``origin="lab"``,
id ``lab-<method>-d<dim>-s<seed>``) and appears in ``load_catalog``.
"""
from __future__ import annotations

import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dml_core.core.store import ArtifactStore
from dml_core.core.vocabulary import METHOD_COLOURS, ordered_methods
from dml_core.learn.methods import COMPARED, FINE_TUNE_REGIMES, FINE_TUNED_SUFFIX, METHODS
from dml_core.pipeline.features import TaskFeatures
from dml_core.pipeline.models import train_model
from dml_core.pipeline.plan import ModelSpec
from dml_core.pipeline.profiles import stored_profile

#: Methods the lab offers; the binary triplet's miners are separate method ids.
LAB_METHODS = tuple(ordered_methods(COMPARED))
#: What a lab model trains (``learn.methods.EMBEDDERS``): an MLP head on the cached backbone
#: features, or (the ``*_ft`` methods, on any task) the backbone's top block with it on cached
#: activations, or the compact CNN of ``dml_core.learn.cnn`` end to end on the images.
LAB_EMBEDDERS = ("head", "top_blocks", "cnn")
MINERS = {"all": "binary_triplet", "semihard": "binary_triplet_semihard", "hard": "binary_triplet_hard",
          "easy": "binary_triplet_easy", "batch_hard": "binary_triplet_batch_hard"}
DIMS = (16, 32, 64, 128, 256)
MAX_STEPS = 2000


class LabBusy(RuntimeError):
    """Another training job is running in this process."""


@dataclass
class Job:
    """One training run. ``status``: "starting" → "training" → "saving" → "done" | "stopped" | "failed"."""

    id: str
    home: str
    task: str
    method: str
    dim: int
    steps: int
    seed: int
    embedder: str = "head"
    status: str = "starting"
    step: int = 0
    losses: list = field(default_factory=list)
    error: str | None = None
    model_id: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    stop_requested: bool = False
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.status in ("starting", "training", "saving")

    @property
    def seconds(self) -> float:
        return (self.finished or time.time()) - self.started

    def stop(self) -> None:
        """Ask the thread to stop after the current step; the model is stored as trained so far."""
        self.stop_requested = True


_jobs: dict[str, Job] = {}
_lock = threading.Lock()
_features: dict[tuple[str, str], TaskFeatures] = {}


def resolve_method(method: str, miner: str | None = None) -> str:
    """Method id of ``learn.methods.METHODS`` for a lab choice (binary triplet + miner → its variant)."""
    if method == "binary_triplet" and miner:
        if miner not in MINERS:
            raise ValueError(f"unknown miner {miner!r}; choose from {', '.join(MINERS)}")
        return MINERS[miner]
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(LAB_METHODS)}")
    return method


def lab_methods(embedder: str = "head") -> tuple[str, ...]:
    """The ``LAB_METHODS`` that can train with ``embedder`` (the CNN has ``*_ft`` variants of a few)."""
    if embedder not in LAB_EMBEDDERS:
        raise ValueError(f"unknown embedder {embedder!r}; choose from {', '.join(LAB_EMBEDDERS)}")
    return LAB_METHODS if embedder == "head" else tuple(m for m in LAB_METHODS if m + FINE_TUNED_SUFFIX in METHODS)


def lab_miners(embedder: str = "head") -> tuple[str, ...]:
    """The binary triplet's miners for ``embedder``: all of them on features, its tuned default with a trained backbone."""
    return tuple(MINERS) if embedder == "head" else ("all",)


def resolve_choice(method: str, miner: str | None = None, embedder: str = "head") -> str:
    """Method id for a lab choice of loss, binary miner and embedder (a trained backbone → the ``*_ft`` variant)."""
    if method not in lab_methods(embedder):
        raise ValueError(f"{method!r} has no {embedder} variant; choose from {', '.join(lab_methods(embedder))}")
    if embedder == "head":
        return resolve_method(method, miner)
    if miner not in (None, *lab_miners(embedder)):
        raise ValueError(f"the fine-tuned binary triplet trains with the {lab_miners(embedder)[0]!r} miner only")
    return method + FINE_TUNED_SUFFIX


def training_images(home: str | Path, task: str, embedder: str) -> int:
    """How many images a lab model trains on: the train split, plus the extra split the full
    profile renders for the CNN (``data.splits.EXTRA_SPLIT``)."""
    from dml_core.data.splits import EXTRA_SPLIT, split_key

    store = ArtifactStore(home)
    count = len(store.load_array(*split_key(task, "train"), name="labels.npy", mmap=True))
    if embedder == "cnn" and store.is_valid(*split_key(task, EXTRA_SPLIT)):
        count += len(store.load_array(*split_key(task, EXTRA_SPLIT), name="labels.npy", mmap=True))
    return count


def lab_spec(method: str, dim: int, seed: int = 0, embedder: str = "head") -> ModelSpec:
    """A lab model's spec; a fine-tuned method's id names its embedder, so both regimes can be kept."""
    return ModelSpec(method, dim, seed, prefix="lab-" if embedder == "head" else f"lab-{embedder}-")


def lab_model_id(method: str, dim: int, seed: int = 0, embedder: str = "head") -> str:
    return lab_spec(method, dim, seed, embedder).id


def start_job(task: str, method: str, dim: int = 128, steps: int = 200, seed: int = 0, home: str | Path | None = None,
              embedder: str | None = None) -> Job:
    """Start training ``method`` (a ``METHODS`` id) on ``task``'s cached features in a thread.

    dim: embedding width (1–1024). steps: optimiser steps (1–``MAX_STEPS``). seed: makes the
    run deterministic. home: the artifact root (default ``DML_HOME``). embedder: for a fine-tuned
    method, "top_blocks" or "cnn" (``learn.methods.FINE_TUNE_REGIMES``; default: the method's own).
    Raises ValueError for a bad setting and LabBusy when a job is already training.
    """
    if method not in METHODS or method == "cross_modal":
        raise ValueError(f"unknown method {method!r}")
    embedder = embedder or METHODS[method].embedder
    if embedder not in LAB_EMBEDDERS or (embedder == "head") != (METHODS[method].embedder == "head"):
        raise ValueError(f"{method!r} cannot train the {embedder!r} embedder")
    if not 1 <= int(dim) <= 1024:
        raise ValueError(f"dimension must be between 1 and 1024, got {dim}")
    if not 1 <= int(steps) <= MAX_STEPS:
        raise ValueError(f"steps must be between 1 and {MAX_STEPS}, got {steps}")
    store = ArtifactStore(home)
    stored_profile(store, task)  # MissingArtifact now, not in the thread, when nothing is built
    with _lock:
        if any(job.running for job in _jobs.values()):
            raise LabBusy("a model is already training; wait for it to finish (or stop it)")
        job = Job(uuid.uuid4().hex[:10], str(store.root), task, method, int(dim), int(steps), int(seed), embedder)
        _jobs[job.id] = job
    job.thread = threading.Thread(target=_run, args=(job,), name=f"lab-{job.id}", daemon=True)
    job.thread.start()
    return job


def get_job(job_id: str | None) -> Job | None:
    return _jobs.get(job_id) if job_id else None


def active_job() -> Job | None:
    """The job training right now in this process, if any."""
    return next((job for job in _jobs.values() if job.running), None)


def task_features(store: ArtifactStore, task: str) -> TaskFeatures:
    """Cached features and label neighbours of a task, loaded once per process and root."""
    key = (str(store.root), task)
    if key not in _features:
        _features[key] = TaskFeatures(store, task, progress=False)
    return _features[key]


def _run(job: Job) -> None:
    try:
        store = ArtifactStore(job.home)
        profile = stored_profile(store, job.task)
        data = task_features(store, job.task)
        spec = lab_spec(job.method, job.dim, job.seed, job.embedder)
        regime = FINE_TUNE_REGIMES.get(job.embedder, {})  # none for a head
        store.remove(job.task, "runs", spec.id)  # the lab always starts afresh, never resumes
        job.status = "training"

        def on_step(step: int, loss: float):
            job.step = step
            job.losses.append(loss)
            if step >= job.steps or job.stop_requested:
                job.status = "saving"
            return not job.stop_requested

        job.model_id = train_model(data, spec, profile, steps=job.steps, origin="lab", progress=False, on_step=on_step,
                                   **regime)
        job.status = "stopped" if job.stop_requested else "done"
    except Exception as exc:  # shown to the person in one line; the traceback goes to the log
        traceback.print_exc()
        job.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        job.status = "failed"
    finally:
        job.finished = time.time()


def loss_sparkline(losses, total_steps: int, colour: str = METHOD_COLOURS["log_ratio"], width: int = 640, height: int = 220) -> str:
    """An inline SVG line chart of per-step losses (x: step 1..total_steps, y: loss, 0 at the bottom).

    Cheap to build (a string, no plotting library): the Training lab redraws it twice a second
    while a model trains in a thread of the same process, and heavy Python in the polling loop
    would slow that thread down through the GIL.
    """
    pad_left, pad_bottom, pad_top, pad_right = 46, 24, 10, 10
    plot_w, plot_h = width - pad_left - pad_right, height - pad_top - pad_bottom
    values = np.asarray(losses, dtype=np.float64)
    values = values[np.isfinite(values)]
    top = float(values.max()) if len(values) else 1.0
    top = top * 1.05 if top > 0 else 1.0
    total = max(int(total_steps), 2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'style="max-width:{width}px;font:11px sans-serif;fill:#5b5570">']
    for fraction in (0.0, 0.5, 1.0):
        y = pad_top + plot_h * (1 - fraction)
        parts.append(f'<line x1="{pad_left}" x2="{width - pad_right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eeeaf6"/>')
        parts.append(f'<text x="{pad_left - 6}" y="{y + 4:.1f}" text-anchor="end">{top * fraction:.3g}</text>')
    for step in (1, total // 2, total):
        x = pad_left + plot_w * (step - 1) / (total - 1)
        parts.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle">{step}</text>')
    if len(values):
        xs = pad_left + plot_w * np.arange(len(values)) / (total - 1)
        ys = pad_top + plot_h * (1 - values / top)
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round"/>')
    parts.append("</svg>")
    return "".join(parts)
