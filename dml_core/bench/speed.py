"""Throughput of the log-ratio loss: batched closed form vs the official per-anchor loop.

``log_ratio_speed`` times loss + backward on the same random embeddings for
  * ``batched``: :func:`dml_core.learn.losses.log_ratio_loss`, all anchors at once, O(B m) work;
  * ``batched_pairwise``: the (B, m, m) pair tensor written out, all anchors at once;
  * ``per_anchor``: one anchor per call, its m x m matrix built with ``repeat`` and a
    Python loop over anchors with a backward each, as the paper's official code does it.
Implementations run interleaved (round-robin) so that machine load hits all alike; the
median time of each is reported as triplets (anchor, i, j) per second.
"""
from __future__ import annotations

import statistics
import time

import torch

from dml_core.learn.losses import log_ratio_loss, log_ratio_loss_pairwise, log_ratio_loss_reference


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def log_ratio_speed(n_anchors: int = 64, m: int = 127, dim: int = 128, repeats: int = 5,
                    threads: int | None = 2, seed: int = 0) -> dict:
    """Triplets per second of the three implementations (loss + backward), measured side by side.

    n_anchors: anchors per call (B). m: others per anchor (the official batch is 130 = anchor
    + 129). dim: embedding width. repeats: timed rounds (after one warm-up round).
    threads: torch intra-op threads during the measurement (restored after); None keeps them.
    Returns {"triplets": B m (m-1) / 2, "<impl>_triplets_per_s": ..., "<impl>_seconds": median,
    "speedup": batched vs per_anchor, "speedup_pairwise": batched_pairwise vs per_anchor,
    "threads", "n_anchors", "m", "dim", "max_abs_difference": largest loss difference}.
    """
    generator = torch.Generator().manual_seed(seed)
    anchor = torch.randn(n_anchors, dim, generator=generator)
    others = torch.randn(n_anchors, m, dim, generator=generator)
    label_dist = torch.rand(n_anchors, m, generator=generator) + 0.01

    # Leaf tensors are made before the clock starts; only loss + backward are timed.
    def batched(loss_fn):
        def setup():
            a, o = anchor.clone().requires_grad_(), others.clone().requires_grad_()
            return lambda: loss_fn(a, o, label_dist).backward()
        return setup

    def per_anchor():
        leaves = [(anchor[b:b + 1].clone().requires_grad_(), others[b:b + 1].clone().requires_grad_())
                  for b in range(n_anchors)]

        def run():
            for b, (a, o) in enumerate(leaves):
                log_ratio_loss_reference(a, o, label_dist[b:b + 1]).backward()
        return run

    impls = {"batched": batched(log_ratio_loss), "batched_pairwise": batched(log_ratio_loss_pairwise),
             "per_anchor": per_anchor}
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            values = [float(f(anchor, others, label_dist)) for f in
                      (log_ratio_loss, log_ratio_loss_pairwise, log_ratio_loss_reference)]
        for setup in impls.values():
            setup()()                               # warm-up
        times = {name: [] for name in impls}
        for _ in range(repeats):
            for name, setup in impls.items():
                times[name].append(_timed(setup()))
    finally:
        torch.set_num_threads(previous)
    triplets = n_anchors * m * (m - 1) // 2
    result = {"triplets": triplets, "threads": threads or previous, "n_anchors": n_anchors, "m": m, "dim": dim,
              "max_abs_difference": max(values) - min(values)}
    for name, samples in times.items():
        seconds = statistics.median(samples)
        result[f"{name}_seconds"] = seconds
        result[f"{name}_triplets_per_s"] = triplets / seconds
    result["speedup"] = result["per_anchor_seconds"] / result["batched_seconds"]
    result["speedup_pairwise"] = result["per_anchor_seconds"] / result["batched_pairwise_seconds"]
    return result


# ------------------------------------------------------------------------ shared CPU
#: A neighbour that keeps two cores busy the way another torch job would: float matmuls on
#: two OpenMP threads (which spin between products).
COMPETITOR = ("import torch\ntorch.set_num_threads(2)\na = torch.randn(768, 768)\n"
              "while True:\n    a = torch.tanh(a @ a)\n")


def _training_seconds(features_path: str, labels_path: str, task: str, steps: int, threads: int) -> float:
    """Seconds of ``steps`` log-ratio training steps on stored features, with ``threads`` torch threads."""
    import numpy as np

    from dml_core.data.tasks import get_task
    from dml_core.learn.train import fit

    torch.set_num_threads(threads)
    features, labels = np.load(features_path, mmap_mode="r"), np.load(labels_path)
    _, history = fit(features, labels, get_task(task).label_distance, "log_ratio", steps=steps, progress=False)
    return history["seconds"]


def training_rate(features_path: str, labels_path: str, task: str, workers: int, threads: int, steps: int = 60) -> float:
    """Training steps/s of ``workers`` processes with ``threads`` threads each, all at once."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from dml_core.core.workers import single_thread_worker

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=single_thread_worker if threads == 1 else None) as pool:
        job = (features_path, labels_path, task, 5, threads)
        list(pool.map(_training_seconds, *zip(*[job] * workers)))                 # warm-up: imports, first steps
        seconds = list(pool.map(_training_seconds, *zip(*[(features_path, labels_path, task, steps, threads)] * workers)))
    return workers * steps / max(seconds)


def contention(features, labels, task: str, workers: int, steps: int = 60) -> dict:
    """Training steps/s alone and while a competing CPU-bound process with 2 busy threads runs,
    for the build's layout (``workers`` single-threaded processes) and for one process with as
    many threads (the layout the build used before). ``*_slowdown`` = alone / shared."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import numpy as np

    layouts = {"build": (workers, 1), "one_process": (1, workers)}
    with tempfile.TemporaryDirectory() as tmp:
        features_path, labels_path = str(Path(tmp) / "features.npy"), str(Path(tmp) / "labels.npy")
        np.save(features_path, np.ascontiguousarray(features, dtype=np.float32))
        np.save(labels_path, np.asarray(labels))
        alone = {name: training_rate(features_path, labels_path, task, w, t, steps) for name, (w, t) in layouts.items()}
        competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)
            shared = {name: training_rate(features_path, labels_path, task, w, t, steps) for name, (w, t) in layouts.items()}
        finally:
            competitor.kill()
            competitor.wait(timeout=30)
    out = {"workers": workers, "steps": steps, "task": task}
    for name in layouts:
        out[f"{name}_steps_per_s_alone"] = round(alone[name], 2)
        out[f"{name}_steps_per_s_shared"] = round(shared[name], 2)
        out[f"{name}_slowdown"] = round(alone[name] / shared[name], 2)
    return out
